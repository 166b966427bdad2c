"""Rotations as pure arithmetic: handoffs fall on the same local wall-clock time, DST or not."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from attrs import Attribute, field, frozen, validators

from chatopsbot import DurationError, PluginConfigError, load_config
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


@frozen
class Rotation:
    """How long a shift lasts: ``daily``, ``weekly``, or an interval like ``3d`` or ``12h``."""

    period: timedelta


def parse_rotation(text: object) -> Rotation:
    """Read a team's ``rotation``; :class:`ValueError` saying what is expected otherwise."""
    if text == "daily":
        return Rotation(timedelta(days=1))
    if text == "weekly":
        return Rotation(timedelta(weeks=1))
    match = _INTERVAL.match(text) if isinstance(text, str) else None
    if match is None or int(match[1]) == 0:
        raise ValueError("expected daily, weekly or an interval like 3d or 12h")
    amount = int(match[1])
    return Rotation(timedelta(days=amount) if match[2] == "d" else timedelta(hours=amount))


def _one_word_user(_: object, attribute: Attribute[str], value: str) -> None:
    if len(value.split()) != 1:
        raise PluginConfigError(
            attribute.name,
            "expected the member's Zoom user id or JID (one word, like "
            '"KdYKjnimT4KPd8FFgQt9FQ" or "alice@xmpp.zoom.us"); leave the key out '
            "if it is not known",
        )


def _has_name(_: object, attribute: Attribute[str], value: str) -> None:
    if not value.strip():
        raise PluginConfigError(attribute.name, "expected a name")


@frozen
class MemberTable:
    """``{ name = "Alice", user = "<Zoom user id or JID>" }`` in a team's ``members``."""

    name: str = field(validator=_has_name)
    user: str | None = field(default=None, validator=validators.optional(_one_word_user))


def _members_ok(_: object, attribute: Attribute[Any], value: tuple[str | MemberTable, ...]) -> None:
    members = [_member(item) for item in value]
    if not members:
        raise PluginConfigError(attribute.name, "expected a non-empty list of names")
    names = [m.name.casefold() for m in members]
    if len(set(names)) != len(names):
        raise PluginConfigError(attribute.name, "a member is listed twice")
    users = [m.user.casefold() for m in members if m.user]
    if len(set(users)) != len(users):
        raise PluginConfigError(attribute.name, "two members have the same user")


def _local_start(_: object, attribute: Attribute[datetime], value: datetime) -> None:
    if value.tzinfo is not None:
        raise PluginConfigError(
            attribute.name, "expected the first handoff as local time, like 2026-01-05T09:00"
        )


def _channel_jid(_: object, attribute: Attribute[str], value: str) -> None:
    if value and "@conference." not in value:
        raise PluginConfigError(
            attribute.name, "expected a channel JID (...@conference.xmpp.zoom.us)"
        )


@frozen
class TeamTable:
    """One ``[plugins.oncall.teams.<name>]`` table as written."""

    members: tuple[str | MemberTable, ...] = field(validator=_members_ok)
    rotation: Rotation
    start: datetime = field(validator=_local_start)
    timezone: ZoneInfo
    channel: str = field(default="", validator=_channel_jid)


@frozen
class OncallTable:
    """``[plugins.oncall]`` as written: the teams, and the account their channels belong to."""

    teams: dict[str, TeamTable] = field(factory=dict)
    account_id: str = ""


def parse_teams(config: Mapping[str, Any]) -> dict[str, Team]:
    """Read ``[plugins.oncall]`` (the framework checks types and keys); every error names
    its key."""
    table = load_config(OncallTable, config, hooks={Rotation: parse_rotation})
    teams: dict[str, Team] = {}
    for name, team in table.teams.items():
        if team.channel and not table.account_id:
            raise PluginConfigError(
                f"teams.{name}.channel",
                "announcing needs plugins.oncall.account_id (the Zoom account id)",
            )
        members = tuple(_member(item) for item in team.members)
        teams[name.lower()] = Team(
            name, members, team.rotation.period, team.start, team.timezone, team.channel
        )
    return teams


def _member(item: str | MemberTable) -> Member:
    if isinstance(item, str):
        return Member(item.strip())
    return Member(item.name.strip(), (item.user or "").strip())


def fmt(moment: datetime, zone: ZoneInfo) -> str:
    """A time in the team's zone with the zone's name: ``Mon 2026-11-30 09:00 CET``."""
    local = moment.astimezone(zone)
    return f"{local:%a %Y-%m-%d %H:%M} {local.tzname()}"
