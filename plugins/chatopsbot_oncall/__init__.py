"""The built-in ``oncall`` plugin: rotations from the config, overrides from chat, handoffs.

Written against the public API only. Who is on call is a pure function of the config, the
overrides and the time (:mod:`chatopsbot_oncall.rotation`).
"""

from __future__ import annotations

from chatopsbot_oncall.plugin import OncallPlugin

__all__ = ["OncallPlugin"]
