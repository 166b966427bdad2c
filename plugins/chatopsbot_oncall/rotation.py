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
from chatopsbot_oncall.pagerduty import DEFAULT_URL, Source

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

    def at(self, moment: datetime) -> tuple[str, datetime, datetime | None] | None:
        """Who is on call at ``moment``, since and until when (``shift_at`` by name): the
        shape a PagerDuty schedule answers in too."""
        shift = self.shift_at(moment)
        return None if shift is None else (shift[0].name, shift[1], shift[2])

    def upcoming(self, moment: datetime, count: int) -> list[tuple[Member, datetime, datetime]]:
        """The current shift (if any) and the next ones, ``count`` in all."""
        k = max(self.index_at(moment), 0)
        return [
            (self.members[i % len(self.members)], self.handoff(i), self.handoff(i + 1))
            for i in range(k, k + count)
        ]

    def find(self, text: str) -> Member:
        """A member matched loosely: exact, then by prefix, then by substring (case-insensitive)."""
        return find_member(self.name, self.members, text)


def find_member(team: str, members: tuple[Member, ...], text: str) -> Member:
    """The one member of ``team`` that ``text`` names: exact, then by prefix, then by
    substring (case-insensitive); :class:`LookupError` saying why otherwise."""
    wanted = text.casefold().lstrip("@")
    for test in (
        lambda m: m.name.casefold() == wanted,
        lambda m: m.name.casefold().startswith(wanted),
        lambda m: wanted in m.name.casefold(),
    ):
        found = [m for m in members if test(m)]
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            names = ", ".join(m.name for m in found)
            raise LookupError(f"{text!r} matches several members of {team}: {names}")
    known = ", ".join(m.name for m in members)
    raise LookupError(f"no member {text!r} in {team}; members: {known}")


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
    names = [m.name.casefold() for m in members]
    if len(set(names)) != len(names):
        raise PluginConfigError(attribute.name, "a member is listed twice")
    users = [m.user.casefold() for m in members if m.user]
    if len(set(users)) != len(users):
        raise PluginConfigError(attribute.name, "two members have the same user")


def _local_start(_: object, attribute: Attribute[datetime | None], value: datetime | None) -> None:
    if value is not None and value.tzinfo is not None:
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
    """One ``[plugins.oncall.teams.<name>]`` table as written: a rotation (``members``,
    ``rotation``, ``start``, ``timezone``), or ``pagerduty`` (then ``members`` is optional:
    whom ``oncall override`` may name, and ``timezone`` how times are shown)."""

    members: tuple[str | MemberTable, ...] = field(default=(), validator=_members_ok)
    rotation: Rotation | None = None
    start: datetime | None = field(default=None, validator=_local_start)
    timezone: ZoneInfo = field(factory=lambda: ZoneInfo("UTC"))
    channel: str = field(default="", validator=_channel_jid)
    pagerduty: Source | None = None


@frozen
class OncallTable:
    """``[plugins.oncall]`` as written: the teams, the account their channels belong to, and
    how PagerDuty is reached (``pagerduty_cache``: how long an answer is reused)."""

    teams: dict[str, TeamTable] = field(factory=dict)
    account_id: str = ""
    pagerduty_token: str = field(default="", repr=False)
    pagerduty_url: str = DEFAULT_URL
    pagerduty_cache: timedelta = timedelta(seconds=60)
    pagerduty_timeout: float = 5.0


@frozen
class PagerDutyTeam:
    """A team whose rotation is PagerDuty's (a schedule or an escalation policy)."""

    name: str
    members: tuple[Member, ...]
    zone: ZoneInfo
    source: Source
    channel: str = ""

    def find(self, text: str) -> Member:
        """A member named in the config (overrides name them); see :meth:`Team.find`."""
        if not self.members:
            raise LookupError(
                f"{self.name}'s rotation is in PagerDuty: list the people an override may name "
                f"in [plugins.oncall.teams.{self.name}] members, or override in PagerDuty"
            )
        return find_member(self.name, self.members, text)


def read_table(config: Mapping[str, Any]) -> OncallTable:
    """``[plugins.oncall]`` as written, types and keys checked; every error names its key."""
    table = load_config(OncallTable, config, hooks={Rotation: parse_rotation})
    if table.pagerduty_timeout <= 0:
        raise PluginConfigError("pagerduty_timeout", "expected a number of seconds above 0")
    if not table.pagerduty_url.startswith(("https://", "http://")):
        raise PluginConfigError("pagerduty_url", "expected an http(s) URL")
    return table


def parse_teams(config: Mapping[str, Any]) -> dict[str, Team | PagerDutyTeam]:
    """Read ``[plugins.oncall]`` into its teams; every error names its key."""
    return teams_of(read_table(config))


def teams_of(table: OncallTable) -> dict[str, Team | PagerDutyTeam]:
    """The teams of a checked table: a team is a rotation or PagerDuty's, never both."""
    teams: dict[str, Team | PagerDutyTeam] = {}
    for name, team in table.teams.items():
        if team.channel and not table.account_id:
            raise PluginConfigError(
                f"teams.{name}.channel",
                "announcing needs plugins.oncall.account_id (the Zoom account id)",
            )
        members = tuple(_member(item) for item in team.members)
        if team.pagerduty is not None:
            if bool(team.pagerduty.schedule) == bool(team.pagerduty.escalation_policy):
                raise PluginConfigError(
                    f"teams.{name}.pagerduty",
                    'expected one of schedule = "P..." or escalation_policy = "P..."',
                )
            for key in ("rotation", "start"):
                if getattr(team, key) is not None:
                    raise PluginConfigError(
                        f"teams.{name}.{key}", "not with pagerduty: PagerDuty is the rotation"
                    )
            if not table.pagerduty_token:
                raise PluginConfigError(
                    f"teams.{name}.pagerduty",
                    "needs plugins.oncall.pagerduty_token (a read-only PagerDuty API key)",
                )
            teams[name.lower()] = PagerDutyTeam(
                name, members, team.timezone, team.pagerduty, team.channel
            )
            continue
        if not members:
            raise PluginConfigError(f"teams.{name}.members", "expected a non-empty list of names")
        if team.rotation is None or team.start is None:
            key = "rotation" if team.rotation is None else "start"
            raise PluginConfigError(
                f"teams.{name}.{key}", 'required (or pagerduty = { schedule = "P..." })'
            )
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
