"""The on-call plugin's hooks: who is on call, schedules, overrides, handoff announcements.

Who may do what, and who sees what (the README's table says the same):

- ``oncall [team]`` and ``oncall schedule <team>``: anyone allowed by ``[access]``, in any
  conversation, answered there for all to see. Who carries a pager is meant to be found (that
  is the point of being on call), and the answer holds only configured names and times.
- ``oncall overrides <team>``: the same people; answered privately, since it says who set
  each override.
- ``oncall me``: anyone; privately, and only about the rotations their Zoom user id or JID is
  configured in (``members = [{ name = "Bob", user = "<id or JID>" }]``), never by name.
- ``oncall override`` and ``oncall clear``: admins only by default (``admin_only``); an operator
  may open them up with an access rule for the command.

A team's overrides are one stored value (``overrides:<team>``, ``{id: override}``), changed in
one atomic step: the overlap check and the write of a new override cannot come apart, however
many arrive at once and on however many replicas. Overrides stored one per key by earlier
versions (``override:<team>:<id>``) are read too, and folded in by the next change.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any, Protocol

import attrs
from attrs import frozen

from chatopsbot import (
    Arg,
    Command,
    Context,
    Conversation,
    DurationError,
    Job,
    Option,
    Outcome,
    PluginContext,
    Post,
    Refused,
    Text,
    UsageError,
    command,
    every,
    hookimpl,
    next_time_of_day,
    parse_time_of_day,
)
from chatopsbot_oncall import hookspecs
from chatopsbot_oncall.pagerduty import NOBODY, PagerDuty, Schedule, Unavailable
from chatopsbot_oncall.rotation import (
    PagerDutyTeam,
    Team,
    fmt,
    parse_duration,
    read_table,
    teams_of,
)

#: No argument of these commands needs more (a team, a member, an id, a duration, a time);
#: longer text is refused before it is looked up or echoed back.
MAX_ARG_LENGTH = 64
#: The longest override; a longer absence is a change of the rotation in the config.
MAX_OVERRIDE = timedelta(days=366)
#: A team's overrides, ``{id: override}``.
OVERRIDES = "overrides:"
#: Channels the bot was removed from (channel JID): no handoff is announced there until it
#: is added back.
LEFT = "left:"
#: Where earlier versions kept each override (``override:<team>:<id>``); read, then folded in.
OVERRIDE = "override:"
ANNOUNCED = "announced:"
#: The last schedule PagerDuty gave for a team (``pagerduty:<team>``): shown, with a note,
#: while PagerDuty cannot answer.
LAST_KNOWN = "pagerduty:"


@frozen
class OncallSettings:
    """``[plugins.oncall]``: the teams, the account their channels belong to, and how
    PagerDuty is reached for teams whose rotation is there."""

    teams: Mapping[str, Team | PagerDutyTeam]
    account_id: str = ""
    pagerduty_url: str = ""
    pagerduty_token: str = attrs.field(default="", repr=False)
    pagerduty_cache: timedelta = timedelta(seconds=60)
    pagerduty_timeout: float = 5.0


class Rota(Protocol):
    """Who a rotation puts on call at a moment: the config's (:class:`Team`) or PagerDuty's
    (:class:`Schedule`), before overrides."""

    def at(self, moment: datetime) -> tuple[str, datetime, datetime | None] | None:
        """``(who, since, until)`` at ``moment`` (``until`` ``None``: no end known)."""


class _Unknown:
    """PagerDuty unreachable and nothing known from before: no one to show."""

    def at(self, moment: datetime) -> None:
        return None


@frozen
class OnCall:
    """Who is on call for a team at a moment, since when, until when, and why."""

    name: str
    since: datetime
    until: datetime | None
    override: dict[str, Any] | None = None
    #: ``rotation``, ``override``, ``pagerduty`` or ``lookup`` (another plugin's system).
    source: str = "rotation"
    #: Why the answer may be out of date (PagerDuty unreachable: its last known schedule).
    note: str = ""


def effective(rota: Rota, moment: datetime, overrides: list[dict[str, Any]]) -> OnCall | None:
    """The rotation, with overrides on top (the newest covering override wins)."""
    now = moment.timestamp()
    covering = [o for o in overrides if o["start"] <= now < o["end"]]
    if covering:
        o = max(covering, key=lambda o: o["created"])
        return OnCall(o["member"], _at(o["start"]), _at(o["end"]), o, "override")
    shift = rota.at(moment)
    if shift is None:
        return None
    name, since, until = shift
    bound = until.timestamp() if until is not None else float("inf")
    later = [o["start"] for o in overrides if now < o["start"] < bound]
    return OnCall(name, since, _at(min(later)) if later else until)


def live_overrides(
    snapshot: Mapping[str, Any], team_key: str, now: float
) -> dict[str, dict[str, Any]]:
    """The overrides still running or to come (``{id: override}``), from a snapshot of a
    team's key and any per-override keys of earlier versions (those fill in, never replace)."""
    found: dict[str, dict[str, Any]] = dict(snapshot.get(team_key) or {})
    for key, value in snapshot.items():
        if key != team_key and isinstance(value, dict):
            found.setdefault(value["id"], value)
    return {i: o for i, o in found.items() if o["end"] > now}


def overlapping(
    overrides: Iterable[Mapping[str, Any]], start: float, end: float
) -> list[Mapping[str, Any]]:
    """The overrides that share some time with ``[start, end)``, earliest first."""
    return sorted(
        (o for o in overrides if o["start"] < end and start < o["end"]), key=lambda o: o["start"]
    )


def _at(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp).astimezone()


def _bounded(ctx: Context) -> None:
    """Refuse a command whose text arguments are longer than :data:`MAX_ARG_LENGTH`."""
    for name, value in ctx.args.items():
        if isinstance(value, str) and len(value) > MAX_ARG_LENGTH:
            raise UsageError(
                f"<{name}> is {len(value)} characters long; at most {MAX_ARG_LENGTH} are allowed"
            )


class OncallPlugin:
    """Rotations from ``[plugins.oncall.teams.*]`` or PagerDuty; overrides live in the
    plugin's store."""

    def __init__(self) -> None:
        # Opened at the first PagerDuty request, on the running loop; closed at cleanup.
        self._pagerduty: PagerDuty | None = None

    @hookimpl
    def chatops_config(self, config: Mapping[str, Any]) -> OncallSettings:
        """Validate the teams; a bad zone, an empty member list or a bad rotation names its key."""
        table = read_table(config)
        return OncallSettings(
            teams_of(table),
            table.account_id,
            table.pagerduty_url,
            table.pagerduty_token,
            table.pagerduty_cache,
            table.pagerduty_timeout,
        )

    @hookimpl
    async def chatops_cleanup(self) -> None:
        """Close the PagerDuty session, if one was opened."""
        if self._pagerduty is not None:
            await self._pagerduty.close()
            self._pagerduty = None

    @hookimpl
    def chatops_hookspecs(self) -> Iterable[object]:
        """``chatops_oncall_lookup``, for plugins that read another on-call system."""
        return [hookspecs]

    @hookimpl
    def chatops_jobs(self) -> Iterable[Job]:
        """Watch for handoffs and announce each one once."""
        return [every(30, name="handoffs")(self.announce)]

    @hookimpl
    async def chatops_channel_left(self, ctx: PluginContext, conversation: Conversation) -> int:
        """The bot left a channel: handoffs of the teams announced there stop (until it is
        added back); returns how many teams announced there."""
        teams = [
            t for t in self._settings(ctx).teams.values() if _same_jid(t.channel, conversation.jid)
        ]
        if teams:
            await ctx.store.set(LEFT + conversation.jid.lower(), True)
        return len(teams)

    @hookimpl
    async def chatops_channel_joined(self, ctx: PluginContext, conversation: Conversation) -> None:
        """The bot is back in a channel: its teams' handoffs are announced there again."""
        await ctx.store.delete(LEFT + conversation.jid.lower())

    @hookimpl
    async def chatops_account_removed(self, ctx: PluginContext, account_id: str) -> int:
        """The account the teams belong to removed the app: overrides (who set them, for
        whom) and what was announced go. Without ``account_id`` in the config (no team
        announces in a channel) the install serves one account: any removal is its own."""
        configured = self._settings(ctx).account_id
        if configured and account_id != configured:
            return 0
        gone = 0
        for key, _ in await ctx.store.list():
            gone += int(await ctx.store.delete(key))
        return gone

    @hookimpl
    def chatops_commands(self) -> Iterable[Command]:
        """``oncall`` and its subcommands."""
        team = Arg("team", help="a team from the config")
        return [
            command(
                "oncall",
                help="Who is on call now, until when, and who is next",
                args=(attrs.evolve(team, required=False),),
            )(self.now),
            command(
                "oncall schedule",
                help="A team's coming shifts",
                args=(team,),
                options=(Option("count", type=int, default=8, help="how many (1 to 52)"),),
            )(self.schedule),
            command("oncall me", help="Your coming shifts (by your Zoom user id)")(self.me),
            command(
                "oncall override",
                help="Put someone on call from now, for a while or until a time (admins)",
                admin_only=True,
                args=(team, Arg("member"), Arg("duration", required=False, help="like 2h, 1d")),
                options=(Option("until", metavar="TIME", help="HH:MM or 2026-12-01T09:00"),),
                examples=(
                    "oncall override platform bob 4h",
                    "oncall override platform bob --until 18:00",
                ),
            )(self.override),
            command("oncall overrides", help="A team's overrides", args=(team,))(self.overrides),
            command(
                "oncall clear",
                help="Remove a team's overrides, or one of them (admins)",
                admin_only=True,
                args=(team, Arg("id", required=False)),
            )(self.clear),
        ]

    # Commands.

    async def now(self, ctx: Context) -> Text:
        """Every team, or one team in more detail."""
        _bounded(ctx)
        settings = self._settings(ctx)
        if not settings.teams:
            return Text(
                "No on-call teams are configured ([plugins.oncall.teams.<name>]).", private=True
            )
        moment = ctx.clock.now()
        if ctx.args["team"]:
            team = self._team(ctx, ctx.args["team"])
            return Text(await self._detail(ctx, team, moment))
        lines = []
        for team in settings.teams.values():
            current = await self._current(ctx, team, moment)
            if current is None:
                lines.append(await self._no_one(ctx, team, moment))
                continue
            ends = current.until
            if current.source == "lookup":
                lines.append(f"{team.name}: {current.name} (from the on-call system)")
                continue
            if ends is None:
                lines.append(_noted(f"{team.name}: {current.name}", current.note))
                continue
            rota, _ = await self._rota(ctx, team, moment)
            nxt = effective(rota, ends, await self._overrides(ctx, team))
            then = f", then {nxt.name}" if nxt else ""
            line = f"{team.name}: {current.name} until {fmt(ends, team.zone)}{then}"
            lines.append(_noted(line, current.note))
        return Text("\n".join(lines))

    async def schedule(self, ctx: Context) -> Text:
        """The next shifts of a team, overrides included."""
        _bounded(ctx)
        count = ctx.args["count"]
        if not 1 <= count <= 52:
            raise UsageError("--count must be between 1 and 52")
        team = self._team(ctx, ctx.args["team"])
        lines = [f"{team.name} on call:"]
        for name, since, until in await self._timeline(ctx, team, ctx.clock.now(), count):
            lines.append(f"{fmt(since, team.zone)} → {fmt(until, team.zone)}: {name}")
        return Text("\n".join(lines))

    async def me(self, ctx: Context) -> Text:
        """The caller's coming shifts, privately; members are matched by Zoom id or JID only."""
        c = ctx.actor
        lines = []
        member_of = 0
        for team in self._settings(ctx).teams.values():
            mine = [m.name for m in team.members if m.is_user(c.id, c.jid)]
            member_of += bool(mine)
            if not mine:
                continue
            for name, since, until in await self._timeline(ctx, team, ctx.clock.now(), 12):
                if name in mine:
                    lines.append(f"{team.name}: {fmt(since, team.zone)} → {fmt(until, team.zone)}")
        if not member_of:
            return Text(
                f"You are not in any on-call rotation: no member of a team is configured with "
                f"your Zoom user id ({c.id}) or JID ({c.jid}); a display name is not enough. "
                f"An operator adds you in [plugins.oncall.teams.<team>] members, like "
                f'{{ name = "Your name", user = "{c.id}" }}.',
                private=True,
            )
        if not lines:
            return Text("You have no shifts coming up.", private=True)
        return Text("Your shifts:\n" + "\n".join(lines[:10]), private=True)

    async def override(self, ctx: Context) -> Text | list[Post | Text]:
        """Someone takes the pager; whoever they replace is told privately."""
        _bounded(ctx)
        team = self._team(ctx, ctx.args["team"])
        try:
            member = team.find(ctx.args["member"])
        except LookupError as exc:
            raise UsageError(str(exc)) from None
        moment = ctx.clock.now()
        end = self._end(ctx, team, moment)
        start = moment.timestamp()
        rota, _ = await self._rota(ctx, team, moment)
        record: dict[str, Any] = {
            "id": secrets.token_hex(3),
            "team": team.name.lower(),
            "member": member.name,
            "start": start,
            "end": end.timestamp(),
            "created": start,
            "by": ctx.actor.name,
            # Who set it, as an identity: the name above is only what Zoom displayed then.
            "by_id": ctx.actor.id,
        }

        def add(overrides: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
            # The overlap check and the write are one step: of overlapping overrides set at
            # once, the first to get here is stored and every other one is refused.
            clash = overlapping(overrides.values(), start, record["end"])
            if clash:
                raise Refused("overlap", detail=clash[0])
            replaced = effective(rota, moment, list(overrides.values()))
            new = {**record, "replaced": replaced.name if replaced else ""}
            return {**overrides, record["id"]: new}

        result = await self._change_overrides(ctx, team, add)
        if not result.applied:
            o = result.detail
            raise UsageError(
                f"it overlaps override {o['id']} "
                f"({o['member']} until {fmt(_at(o['end']), team.zone)}); "
                f"oncall clear {team.name} {o['id']} first"
            )
        record = result.new[OVERRIDES + record["team"]][record["id"]]
        replaced = record["replaced"]
        who = next((m for m in team.members if replaced and m.name == replaced), None)
        done = Text(
            f"{member.name} is on call for {team.name} until {fmt(end, team.zone)} "
            f"(override {record['id']})"
        )
        if who is None or not who.user or who.name == member.name:
            return done
        note = Text(
            f"{member.name} takes the {team.name} pager from you until "
            f"{fmt(end, team.zone)} (set by {ctx.actor.name})."
        )
        # Decided with the confirmation (a failure to deliver it is the outbox's, not the
        # override's): a direct message when the member's JID is known, else a private note
        # here if this is a channel, which only a user id can address.
        if "@" in who.user:
            return [Post(Conversation(ctx.account_id, who.user), note), done]
        if ctx.conversation.is_channel:
            private = attrs.evolve(note, private=True)
            return [Post(ctx.conversation, private, visible_to=who.user), done]
        ctx.log.info(
            "override %s: %s has no JID configured, so is not told", record["id"], who.name
        )
        return done

    async def overrides(self, ctx: Context) -> Text:
        """A team's current and future overrides."""
        _bounded(ctx)
        team = self._team(ctx, ctx.args["team"])
        rows = await self._overrides(ctx, team)
        if not rows:
            return Text(f"{team.name} has no overrides.", private=True)
        lines = [
            f"{o['id']}: {o['member']} {fmt(_at(o['start']), team.zone)} → "
            f"{fmt(_at(o['end']), team.zone)} (set by {o['by']})"
            for o in sorted(rows, key=lambda o: o["start"])
        ]
        return Text(f"Overrides of {team.name}:\n" + "\n".join(lines), private=True)

    async def clear(self, ctx: Context) -> Text:
        """Remove one override, or all of a team's."""
        _bounded(ctx)
        team = self._team(ctx, ctx.args["team"])
        wanted = ctx.args["id"]

        def drop(overrides: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
            if not wanted:
                return {}
            if wanted not in overrides:
                raise Refused("unknown")
            return {i: o for i, o in overrides.items() if i != wanted}

        result = await self._change_overrides(ctx, team, drop)
        if not result.applied:
            raise UsageError(
                f"no override {wanted!r} in {team.name}; oncall overrides {team.name} lists them"
            )
        now = ctx.clock.now().timestamp()
        team_key = OVERRIDES + team.name.lower()
        before = live_overrides(result.old, team_key, now)
        after = live_overrides(result.new, team_key, now)
        return Text(f"Removed {len(before) - len(after)} override(s) of {team.name}.")

    # The handoff watch.

    async def announce(self, ctx: PluginContext) -> None:
        """Announce in the team's channel whenever who is on call changes; once per change."""
        settings: OncallSettings = ctx.config
        moment = ctx.clock.now()
        for key, team in settings.teams.items():
            if not team.channel:
                continue
            current = await self._current(ctx, team, moment)
            if current is None:
                continue
            # A lookup plugin says who, not since when (nor a gap in PagerDuty's schedule):
            # only a new name is a handoff then.
            vague = current.source == "lookup" or current.name == NOBODY
            since = None if vague else current.since.timestamp()
            state = {"name": current.name, "since": since}
            last = await ctx.store.get(ANNOUNCED + key)
            if last == state:
                continue
            if last is not None and await ctx.store.exists(LEFT + team.channel.lower()):
                ctx.log.warning(
                    "not announcing %s's handoff to %s: the bot was removed from %s",
                    team.name,
                    current.name,
                    team.channel,
                )
            elif last is not None:
                where = Conversation(settings.account_id, team.channel, team.name)
                # On behalf of the person now on call, when their JID is configured.
                jids = [m.user for m in team.members if m.name == current.name and "@" in m.user]
                await ctx.send_to(
                    where,
                    Text(
                        f"📟 {current.name} is now on call for {team.name}"
                        + (f" until {fmt(current.until, team.zone)}." if current.until else ".")
                    ),
                    on_behalf_of=jids[0] if jids else None,
                )
            # Stored after sending: a crash in between repeats this announcement, never skips it.
            await ctx.store.set(ANNOUNCED + key, state)

    # Helpers.

    def _settings(self, ctx: PluginContext) -> OncallSettings:
        settings: OncallSettings = ctx.config
        return settings

    def _team(self, ctx: PluginContext, name: str) -> Team | PagerDutyTeam:
        teams = self._settings(ctx).teams
        team = teams.get(name.lower())
        if team is None:
            known = ", ".join(t.name for t in teams.values()) or "none are configured"
            raise UsageError(f"unknown team {name!r}; teams: {known}")
        return team

    async def _current(
        self, ctx: PluginContext, team: Team | PagerDutyTeam, moment: datetime
    ) -> OnCall | None:
        """Overrides first, then PagerDuty for its teams; for the others, then a lookup
        plugin, then the rotation."""
        overrides = await self._overrides(ctx, team)
        if isinstance(team, PagerDutyTeam):
            rota, note = await self._rota(ctx, team, moment)
            found = effective(rota, moment, overrides)
            if found is None or found.override is not None:
                return found
            return attrs.evolve(found, source="pagerduty", note=note)
        current = effective(team, moment, overrides)
        if current is not None and current.override is not None:
            return current
        # Awaited one by one: a lookup plugin's async "don't know" (None) lets the next answer.
        answer = await ctx.hooks.first(
            hookspecs.chatops_oncall_lookup, team=team.name, moment=moment
        )
        if answer is None:
            return current
        name, until = answer
        return OnCall(name, moment, until, source="lookup")

    async def _rota(
        self, ctx: PluginContext, team: Team | PagerDutyTeam, moment: datetime
    ) -> tuple[Rota, str]:
        """The team's rotation before overrides, and a note when it may be out of date.

        PagerDuty's answer is reused for ``pagerduty_cache``; each new one is stored, so that
        while PagerDuty cannot answer (slow, down, 429) the last known schedule is shown, with
        a note saying so, even after a restart or on another replica.
        """
        if isinstance(team, Team):
            return team, ""
        settings = self._settings(ctx)
        if self._pagerduty is None:
            self._pagerduty = PagerDuty(
                url=settings.pagerduty_url,
                token=settings.pagerduty_token,
                timeout=settings.pagerduty_timeout,
                cache=settings.pagerduty_cache,
            )
        key = LAST_KNOWN + team.name.lower()
        try:
            schedule, fresh = await self._pagerduty.schedule(team.name.lower(), team.source, moment)
        except Unavailable as exc:
            ctx.log.warning("PagerDuty (%s of %s): %s", team.source.describe(), team.name, exc)
            stored = await ctx.store.get(key)
            if stored is None:
                return _Unknown(), f"could not reach PagerDuty ({exc}), last known: nothing yet"
            last = Schedule.from_json(stored)
            return last, (
                f"could not reach PagerDuty ({exc}), last known: its schedule as of "
                f"{fmt(last.fetched, team.zone)}"
            )
        if fresh:
            await ctx.store.set(key, schedule.to_json())
        return schedule, ""

    async def _no_one(
        self, ctx: PluginContext, team: Team | PagerDutyTeam, moment: datetime
    ) -> str:
        """The line for a team with no one on call: not started yet, or PagerDuty's."""
        if isinstance(team, Team):
            return f"{team.name}: the rotation starts {fmt(team.handoff(0), team.zone)}"
        _, note = await self._rota(ctx, team, moment)
        return f"{team.name}: " + (note or f"PagerDuty ({team.source.describe()}) shows no one")

    async def _overrides(
        self, ctx: PluginContext, team: Team | PagerDutyTeam
    ) -> list[dict[str, Any]]:
        now = ctx.clock.now().timestamp()
        team_key = OVERRIDES + team.name.lower()
        legacy = [key for key, _ in await ctx.store.list(f"{OVERRIDE}{team.name.lower()}:")]
        snapshot = await ctx.store.get_many([team_key, *legacy])
        return list(live_overrides(snapshot, team_key, now).values())

    async def _change_overrides(
        self,
        ctx: PluginContext,
        team: Team | PagerDutyTeam,
        change: Callable[[dict[str, dict[str, Any]]], dict[str, dict[str, Any]]],
    ) -> Outcome:
        """Apply ``change`` to the team's live overrides (``{id: override}``) in one atomic
        step; it may raise :class:`Refused`. Expired overrides are dropped on the way, and
        keys of earlier versions folded into the team's one key."""
        now = ctx.clock.now().timestamp()
        team_key = OVERRIDES + team.name.lower()
        # No key of the old layout is written any more: the set can only shrink, so listing
        # it before the step is safe (one gone meanwhile is simply absent from the snapshot).
        legacy = [key for key, _ in await ctx.store.list(f"{OVERRIDE}{team.name.lower()}:")]

        def apply(snapshot: dict[str, Any]) -> dict[str, Any]:
            overrides = change(live_overrides(snapshot, team_key, now))
            return {**dict.fromkeys(legacy), team_key: overrides or None}

        return await ctx.store.update_many([team_key, *legacy], apply)

    async def _timeline(
        self, ctx: PluginContext, team: Team | PagerDutyTeam, moment: datetime, count: int
    ) -> list[tuple[str, datetime, datetime]]:
        overrides = await self._overrides(ctx, team)
        rota, _ = await self._rota(ctx, team, moment)
        out: list[tuple[str, datetime, datetime]] = []
        cursor = max(moment, team.handoff(0)) if isinstance(team, Team) else moment
        while len(out) < count:
            current = effective(rota, cursor, overrides)
            if current is None or current.until is None:
                break
            out.append((current.name, max(current.since, cursor), current.until))
            cursor = current.until
        return out

    async def _detail(
        self, ctx: PluginContext, team: Team | PagerDutyTeam, moment: datetime
    ) -> str:
        current = await self._current(ctx, team, moment)
        if current is not None and current.source == "lookup":
            until = f" until {fmt(current.until, team.zone)}" if current.until else ""
            return f"{team.name}: {current.name} is on call{until} (from the on-call system)"
        timeline = await self._timeline(ctx, team, moment, 5)
        if not timeline:
            if current is not None:
                # On call with no end (someone PagerDuty always pages first).
                return _noted(f"{team.name}: {current.name} is on call", current.note)
            return await self._no_one(ctx, team, moment)
        (name, _, ends), *rest = timeline
        lines = [f"{team.name}: {name} is on call until {fmt(ends, team.zone)}"]
        if rest:
            lines.append(f"Next: {rest[0][0]} from {fmt(rest[0][1], team.zone)}")
        lines += [f"Then: {n} from {fmt(since, team.zone)}" for n, since, _ in rest[1:]]
        if isinstance(team, PagerDutyTeam):
            rota, note = await self._rota(ctx, team, moment)
            source = team.source.describe(rota.name if isinstance(rota, Schedule) else "")
            lines.append(f"⚠ {note}" if note else f"From PagerDuty ({source}).")
        return "\n".join(lines)

    def _end(self, ctx: Context, team: Team | PagerDutyTeam, moment: datetime) -> datetime:
        duration, until = ctx.args["duration"], ctx.args["until"]
        if bool(duration) == bool(until):
            raise UsageError("give a duration (like 4h) or --until TIME, one of the two")
        if duration:
            try:
                return moment + parse_duration(duration, MAX_OVERRIDE)
            except ValueError as exc:
                raise UsageError(str(exc)) from None
        try:
            return next_time_of_day(parse_time_of_day(until), moment, team.zone)
        except DurationError:
            pass  # not HH:MM: a date and time, then
        try:
            end = datetime.fromisoformat(until)
        except ValueError:
            raise UsageError(f"invalid time {until!r}: use HH:MM or 2026-12-01T09:00") from None
        end = end if end.tzinfo else end.replace(tzinfo=team.zone)
        if end <= moment:
            raise UsageError(f"{fmt(end, team.zone)} is in the past")
        if end - moment > MAX_OVERRIDE:
            raise UsageError(f"{fmt(end, team.zone)} is more than {MAX_OVERRIDE.days} days away")
        return end


def _same_jid(a: str | None, b: str) -> bool:
    # JIDs compare without case (XMPP folds the local part).
    return a is not None and a.lower() == b.lower()


def _noted(line: str, note: str) -> str:
    """A team's line, with why it may be out of date."""
    return f"{line} ⚠ {note}" if note else line
