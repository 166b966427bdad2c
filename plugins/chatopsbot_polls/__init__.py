"""The built-in ``polls`` plugin: ask a question, vote with buttons, see the tally live.

Written against the public API only. ``[plugins.polls] timezone`` (IANA, default UTC) is the
zone ``--closes-at 17:00`` is read in and deadlines are shown in.
"""

from __future__ import annotations

from chatopsbot_polls.plugin import PollsPlugin

__all__ = ["PollsPlugin"]
