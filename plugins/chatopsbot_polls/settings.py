"""``[plugins.polls]``: the time zone deadlines are read in, and who may close a poll."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from attrs import frozen

from chatopsbot import PluginConfigError, require_known_keys

ClosePolicy = Literal["creator_or_admin", "anyone"]
#: The values ``close`` takes; the first is the default.
CLOSE_POLICIES: tuple[ClosePolicy, ...] = ("creator_or_admin", "anyone")


@frozen
class PollSettings:
    """The validated table: ``timezone`` for ``--closes-at`` and shown deadlines; ``close``
    says who may close a poll someone else asked (``creator_or_admin`` or ``anyone``)."""

    timezone: ZoneInfo
    close: ClosePolicy = "creator_or_admin"


def parse_settings(config: Mapping[str, Any]) -> PollSettings:
    """Validate ``[plugins.polls]``; a wrong value raises :class:`PluginConfigError` naming it."""
    require_known_keys(config, ("timezone", "close"))
    name = config.get("timezone", "UTC")
    if not isinstance(name, str):
        raise PluginConfigError("timezone", "expected a string")
    try:
        zone = ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise PluginConfigError("timezone", f"unknown time zone {name!r}") from None
    close = config.get("close", CLOSE_POLICIES[0])
    for policy in CLOSE_POLICIES:
        if close == policy:
            return PollSettings(zone, policy)
    choices = " or ".join(f'"{c}"' for c in CLOSE_POLICIES)
    raise PluginConfigError("close", f"expected {choices}, got {close!r}")
