"""The hook the on-call plugin offers other plugins: answer who is on call from elsewhere.

A plugin that reads PagerDuty, Opsgenie or any other schedule implements it; the on-call
plugin then shows that answer (overrides made in chat still come first) instead of its own
rotation for that team.
"""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import datetime

from chatopsbot import hookspec


@hookspec(firstresult=True)
def chatops_oncall_lookup(
    team: str, moment: datetime
) -> Awaitable[tuple[str, datetime | None] | None] | None:
    """Return an awaitable of ``(who, until)`` for ``team`` at ``moment``, or ``None``.

    Called whenever the on-call plugin needs the current person: return ``None`` (not an
    awaitable) for teams you do not know, so the built-in rotation answers. ``until`` may be
    ``None`` when the other system does not say.
    """
    raise NotImplementedError
