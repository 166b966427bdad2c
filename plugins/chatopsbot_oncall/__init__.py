"""The built-in ``oncall`` plugin: rotations from the config or PagerDuty, overrides from
chat, handoffs.

Written against the public API only. Who is on call is a pure function of the rotation (the
config's, :mod:`chatopsbot_oncall.rotation`, or PagerDuty's schedule,
:mod:`chatopsbot_oncall.pagerduty`), the overrides and the time.
"""

from __future__ import annotations

from chatopsbot_oncall.plugin import OncallPlugin

__all__ = ["OncallPlugin"]
