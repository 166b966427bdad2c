"""The built-in ``polls`` plugin: ask a question, vote with buttons, see the tally live.

Written against the public API, plus one name it lacks: the outbound failure ``ctx.send_to``
raises (a deleted card is told apart from other failures by it). ``[plugins.polls]``:
``timezone`` (IANA, default UTC) is the zone ``--closes-at 17:00`` is read in and deadlines are
shown in; ``close`` (``"creator_or_admin"``, the default, or ``"anyone"``) says who may close
a poll.
"""

from __future__ import annotations

from chatopsbot_polls.plugin import PollsPlugin

__all__ = ["PollsPlugin"]
