"""Rotations as pure arithmetic: handoffs fall on the same local wall-clock time, DST or not."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from attrs import frozen

from chatopsbot import DurationError, PluginConfigError, require_known_keys
from chatopsbot import parse_duration as parse_any_duration

_INTERVAL = re.compile(r"^(\d+)([hd])$")


@frozen
class Member:
    """A person in a rotation: ``name`` is how chat refers to them (``oncall override``),
    ``user`` their Zoom user id or JID when the config gives one."""

    name: str
    user: str = ""

    def is_user(self, user_id: str, jid: str) -> bool:
        """Whether a Zoom user is this member: by the configured id or JID, never by name.

        A display name is no identity (anyone can take any name), so a member configured by
        name alone is nobody's ``oncall me``.
        """
        if not self.user:
            return False
        return self.user.casefold() in (user_id.casefold(), jid.casefold())


@frozen
class Team:
    """One ``[plugins.oncall.teams.<name>]`` table, validated."""

    name: str
    members: tuple[Member, ...]
    period: timedelta
    start: datetime  # naive, local to ``zone``
    zone: ZoneInfo
    channel: str = ""

    def handoff(self, k: int) -> datetime:
        """The ``k``-th handoff (0 is ``start``), aware, at the same local time every time."""
        local = self.start + k * self.period
        return local.replace(tzinfo=self.zone)

    def index_at(self, moment: datetime) -> int:
        """How many handoffs have happened by ``moment`` (minus one): the shift it falls in."""
        local = moment.astimezone(self.zone).replace(tzinfo=None)
        k = math.floor((local - self.start) / self.period)
        # Wall-clock arithmetic is off near a change of the clocks: a handoff time that does
        # not exist (spring) happens an hour later, one that happens twice (autumn) counts
        # the first time. Settle on the instants the handoffs really happen at.
        at = moment.astimezone(UTC)
        while self.handoff(k).astimezone(UTC) > at:
            k -= 1
        while self.handoff(k + 1).astimezone(UTC) <= at:
            k += 1
        return k

    def shift_at(self, moment: datetime) -> tuple[Member, datetime, datetime] | None:
        """Who the rotation puts on call at ``moment``, from when until when; None before start."""
        k = self.index_at(moment)
        if k < 0:
            return None
        return self.members[k % len(self.members)], self.handoff(k), self.handoff(k + 1)

    def upcoming(self, moment: datetime, count: int) -> list[tuple[Member, datetime, datetime]]:
        """The current shift (if any) and the next ones, ``count`` in all."""
        k = max(self.index_at(moment), 0)
        return [
            (self.members[i % len(self.members)], self.handoff(i), self.handoff(i + 1))
            for i in range(k, k + count)
        ]

    def find(self, text: str) -> Member:
        """A member matched loosely: exact, then by prefix, then by substring (case-insensitive)."""
        wanted = text.casefold().lstrip("@")
        for test in (
            lambda m: m.name.casefold() == wanted,
            lambda m: m.name.casefold().startswith(wanted),
            lambda m: wanted in m.name.casefold(),
        ):
            found = [m for m in self.members if test(m)]
            if len(found) == 1:
                return found[0]
            if len(found) > 1:
                names = ", ".join(m.name for m in found)
                raise LookupError(f"{text!r} matches several members of {self.name}: {names}")
        known = ", ".join(m.name for m in self.members)
        raise LookupError(f"no member {text!r} in {self.name}; members: {known}")


def parse_duration(text: str, longest: timedelta) -> timedelta:
    """An override's length (``4h``, ``1d12h``, ``90m``: the framework's durations), any case;
    :class:`ValueError` (its message fit for the user) if it is not one, is zero, or is longer
    than ``longest``."""
    try:
        return parse_any_duration(text, longest=longest)
    except DurationError as exc:
        raise ValueError(f"invalid duration {text!r}: {exc.problem}") from None


def parse_period(text: object, key: str) -> timedelta:
    """``daily``, ``weekly``, or an interval like ``3d`` or ``12h``."""
    if text == "daily":
        return timedelta(days=1)
    if text == "weekly":
        return timedelta(weeks=1)
    match = _INTERVAL.match(text) if isinstance(text, str) else None
    if match is None or int(match[1]) == 0:
        raise PluginConfigError(key, "expected daily, weekly or an interval like 3d or 12h")
    amount = int(match[1])
    return timedelta(days=amount) if match[2] == "d" else timedelta(hours=amount)


def parse_teams(config: Mapping[str, Any]) -> dict[str, Team]:
    """Validate ``teams``; every error names the key."""
    teams_table = config.get("teams", {})
    if not isinstance(teams_table, Mapping):
        raise PluginConfigError("teams", "expected tables like [plugins.oncall.teams.platform]")
    teams: dict[str, Team] = {}
    for name, table in teams_table.items():
        teams[name.lower()] = _team(name, table, f"teams.{name}", config)
    return teams


def _team(name: str, table: object, key: str, config: Mapping[str, Any]) -> Team:
    if not isinstance(table, Mapping):
        raise PluginConfigError(key, "expected a table")
    require_known_keys(table, ("members", "rotation", "start", "timezone", "channel"), prefix=key)
    members = _members(table.get("members"), f"{key}.members")
    period = parse_period(table.get("rotation"), f"{key}.rotation")
    zone_name = table.get("timezone")
    if not isinstance(zone_name, str):
        raise PluginConfigError(f"{key}.timezone", "required: an IANA time zone like Europe/Berlin")
    try:
        zone = ZoneInfo(zone_name)
    except (ZoneInfoNotFoundError, ValueError):
        raise PluginConfigError(f"{key}.timezone", f"unknown time zone {zone_name!r}") from None
    start_text = table.get("start")
    try:
        start = datetime.fromisoformat(start_text) if isinstance(start_text, str) else None
    except ValueError:
        start = None
    if start is None or start.tzinfo is not None:
        raise PluginConfigError(
            f"{key}.start", "expected the first handoff as local time, like 2026-01-05T09:00"
        )
    channel = table.get("channel", "")
    if not isinstance(channel, str) or (channel and "@conference." not in channel):
        raise PluginConfigError(
            f"{key}.channel", "expected a channel JID (...@conference.xmpp.zoom.us)"
        )
    if channel and not isinstance(config.get("account_id"), str):
        raise PluginConfigError(
            f"{key}.channel", "announcing needs plugins.oncall.account_id (the Zoom account id)"
        )
    return Team(name, members, period, start, zone, channel)


_MEMBER_TABLE = '{ name = "...", user = "<Zoom user id or JID>" }'


def _members(value: object, key: str) -> tuple[Member, ...]:
    """A list of names (``"Alice"``) or tables (``{ name = "Alice", user = "u-alice" }``).

    Only a member with ``user`` can be recognised as the person asking (``oncall me``) and told
    privately when someone takes their pager; a plain name keeps working for everything else.
    """
    if not isinstance(value, Sequence) or isinstance(value, str) or not value:
        raise PluginConfigError(key, "expected a non-empty list of names")
    members = []
    for i, item in enumerate(value):
        if isinstance(item, str) and item.strip():
            members.append(Member(item.strip()))
        elif (
            isinstance(item, Mapping) and isinstance(item.get("name"), str) and item["name"].strip()
        ):
            unknown = sorted(set(item) - {"name", "user"})
            if unknown:
                raise PluginConfigError(
                    f"{key}[{i}].{unknown[0]}", f"unknown key; expected {_MEMBER_TABLE}"
                )
            user = item.get("user", "")
            if "user" in item and (not isinstance(user, str) or len(user.split()) != 1):
                raise PluginConfigError(
                    f"{key}[{i}].user",
                    "expected the member's Zoom user id or JID (one word, like "
                    '"KdYKjnimT4KPd8FFgQt9FQ" or "alice@xmpp.zoom.us"); leave the key out '
                    "if it is not known",
                )
            members.append(Member(item["name"].strip(), user.strip()))
        else:
            raise PluginConfigError(f"{key}[{i}]", f"expected a name, or {_MEMBER_TABLE}")
    names = [m.name.casefold() for m in members]
    if len(set(names)) != len(names):
        raise PluginConfigError(key, "a member is listed twice")
    users = [m.user.casefold() for m in members if m.user]
    if len(set(users)) != len(users):
        raise PluginConfigError(key, "two members have the same user")
    return tuple(members)


def fmt(moment: datetime, zone: ZoneInfo) -> str:
    """A time in the team's zone with the zone's name: ``Mon 2026-11-30 09:00 CET``."""
    local = moment.astimezone(zone)
    return f"{local:%a %Y-%m-%d %H:%M} {local.tzname()}"
