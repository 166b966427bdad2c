"""The alerts plugin's hooks: Alertmanager's webhook in, one card per group, silences out.

A group's card is one store key (the group's ``groupKey`` and destination, hashed). Every change
to it (a notification, a silence, an acknowledgement) is one atomic step of the store that bumps
its revision; sends happen after the step, never inside it. The first notification of a group
claims its card and posts it; any change after that edits it, and each editor reads again after
its edit until the card shows the latest revision, so of two notifications racing one posts the
card and the last edit shows whichever was stored last. A group that resolved and fires again
gets a new card (the green one stays as the record of the last episode).
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
from collections.abc import Callable, Iterable, Mapping
from datetime import timedelta
from typing import Any

import attrs

from chatopsbot import (
    Action,
    ActionContext,
    Arg,
    Button,
    ButtonStyle,
    Card,
    Command,
    Context,
    Conversation,
    DurationError,
    Edit,
    HandlerResult,
    HookError,
    HookRequest,
    HookResponse,
    PluginContext,
    Refused,
    Route,
    Text,
    UsageError,
    action,
    command,
    format_duration,
    hookimpl,
    parse_duration,
    route,
)
from chatopsbot_alerts import card, credentials
from chatopsbot_alerts.alertmanager import Alertmanager, AlertmanagerError
from chatopsbot_alerts.matchers import MatcherError, equality, parse_matchers
from chatopsbot_alerts.notification import Notification, NotificationInvalid, parse
from chatopsbot_alerts.settings import AlertsSettings, read_settings

log = logging.getLogger("chatopsbot.plugin.alerts")

#: How long a group's card is remembered after its last change.
KEPT = timedelta(days=30)
#: A claim to post a card never fulfilled (its process died) is given up after this long.
CLAIM_SECONDS = 300.0
#: A silence being made from a card holds off other clicks this long at most.
PENDING_SECONDS = 30.0
#: What the card's silence buttons offer.
SPANS = {"1h": timedelta(hours=1), "4h": timedelta(hours=4)}
#: The longest silence a command may make.
LONGEST = timedelta(days=30)
_SILENCE_ID = re.compile(r"^[A-Za-z0-9-]{1,64}$")
#: A webhook body bigger than this is refused (Alertmanager's ``max_alerts`` keeps it small).
MAX_BODY = 2 * 1024 * 1024


def group_id(group_key: str, where: Conversation) -> str:
    """The card's id: the group and where its card goes (one group may reach two channels)."""
    raw = "\n".join((group_key, where.account_id, where.jid))
    return hashlib.sha256(raw.encode()).hexdigest()[:24]


def _key(gid: str) -> str:
    return f"group:{gid}"


class AlertsPlugin:
    """The alerts plugin; its one piece of state is the Alertmanager client (its session)."""

    def __init__(self) -> None:
        self._alertmanager = Alertmanager("")

    @hookimpl
    def chatops_config(self, config: Mapping[str, Any]) -> AlertsSettings:
        """``[plugins.alerts]``, read into :class:`AlertsSettings`."""
        settings = read_settings(config)
        self._alertmanager = Alertmanager(settings.alertmanager_url)
        if not settings.webhook_token:
            log.warning(
                "no webhook_token: POST /hooks/alerts refuses every request; "
                "set [plugins.alerts] webhook_token to receive Alertmanager's alerts"
            )
        elif not settings.channel and not settings.routes:
            log.warning(
                "no channel: alerts are received but shown nowhere; "
                "set [plugins.alerts] channel and account_id"
            )
        return settings

    @hookimpl
    async def chatops_cleanup(self) -> None:
        """Close the session to Alertmanager."""
        await self._alertmanager.close()

    @hookimpl
    async def chatops_channel_left(self, ctx: PluginContext, conversation: Conversation) -> int:
        """The bot left a channel: the group cards it kept there go (it cannot edit them).

        Alerts routed there still arrive; their cards become dead letters at once, which the
        log shows, until the route is changed or the bot is added back.
        """
        # Zoom names the channel by id there: its JID is compared without case.
        wanted = conversation.jid.lower()
        return await self._forget(ctx, lambda where: str(where.get("jid", "")).lower() == wanted)

    @hookimpl
    async def chatops_account_removed(self, ctx: PluginContext, account_id: str) -> int:
        """An account removed the app: the group cards kept for its channels go."""
        return await self._forget(ctx, lambda where: where.get("account_id") == account_id)

    async def _forget(
        self, ctx: PluginContext, matches: Callable[[Mapping[str, Any]], bool]
    ) -> int:
        gone = 0
        for key, record in await ctx.store.list("group:"):
            if matches(record.get("conversation", {})):
                gone += int(await ctx.store.delete(key))
        return gone

    @hookimpl
    def chatops_routes(self) -> Iterable[Route]:
        """``POST /hooks/alerts``: Alertmanager's webhook receiver."""
        return [route("POST", max_body=MAX_BODY)(self.receive)]

    @hookimpl
    def chatops_actions(self) -> Iterable[Action]:
        """The card's buttons; each may be clicked by whoever may run its command."""
        return [
            action("silence", command="alerts silence")(self.silence_clicked),
            action("unsilence", command="alerts expire")(self.unsilence_clicked),
            action("ack", command="alerts")(self.ack_clicked),
        ]

    @hookimpl
    def chatops_commands(self) -> Iterable[Command]:
        """``alerts``, ``alerts silences``, ``alerts silence``, ``alerts expire``."""
        return [
            command("alerts", help="The alert groups firing now")(self.firing),
            command("alerts silences", help="Alertmanager's active and pending silences")(
                self.silences
            ),
            command(
                "alerts silence",
                help="Silence alerts in Alertmanager: alerts silence alertname=X,job=~api.* 2h why",
                args=(
                    Arg("matchers", help="name=value, name!=value, name=~regex, name!~regex, ..."),
                    Arg("duration", help="how long, like 30m, 2h or 1d"),
                    Arg("comment", required=False, variadic=True),
                ),
            )(self.silence),
            command(
                "alerts expire",
                help="End a silence now",
                args=(Arg("id", help="the silence's id (alerts silences lists them)"),),
            )(self.expire),
        ]

    # Alertmanager in.

    async def receive(
        self, ctx: PluginContext[AlertsSettings], request: HookRequest
    ) -> HookResponse:
        """One webhook notification: post or edit its group's card."""
        settings = ctx.config
        credentials.check(request, settings.webhook_token)
        try:
            notification = parse(request.json())
        except NotificationInvalid as exc:
            raise HookError(400, str(exc)) from None
        where = settings.destination(notification.common_labels)
        if where is None:
            ctx.log.warning(
                "alert group %s not shown: no route matches and [plugins.alerts] channel is unset",
                notification.group_key,
            )
            return HookResponse(200, {"accepted": False, "reason": "no channel configured"})
        gid = group_id(notification.group_key, where)
        changed = await self._record(ctx, gid, notification, where)
        return HookResponse(200, {"accepted": True, "group": gid, "changed": changed})

    async def _record(
        self, ctx: PluginContext, gid: str, notification: Notification, where: Conversation
    ) -> bool:
        """Store the notification on the group's card; post or edit the card. Whether the
        card changed (a repeat notification changes nothing)."""
        data = notification.to_json()
        token = secrets.token_hex(8)
        now = ctx.clock.timestamp()

        def step(current: dict[str, Any] | None) -> dict[str, Any]:
            fresh = {
                "group_key": notification.group_key,
                "conversation": attrs.asdict(where),
                "message_id": None,
                "claim": token,
                "claimed_at": now,
                "rev": 1,
                "notification": data,
                "ack": None,
                "silence": None,
            }
            if current is None or _abandoned(current, now):
                return fresh
            if current["notification"] == data:
                raise Refused("repeat")
            if _over(current) and notification.status == "firing":
                # A new episode: a new card; a silence still running stays on it.
                silence = current.get("silence")
                live = silence is not None and silence["until"] > now and silence["id"]
                return {**fresh, "silence": silence if live else None, "rev": current["rev"] + 1}
            return {**current, "notification": data, "rev": current["rev"] + 1}

        result = await ctx.store.attempt(_key(gid), step, ttl=KEPT)
        if not result.applied:
            return False
        record = result.new
        if record["message_id"] is None and record["claim"] == token:
            await self._post(ctx, gid, record)
        elif record["message_id"] is not None:
            await self._draw(ctx, gid)
        # Else another notification's handler is posting the card: it draws this one after.
        return True

    async def _post(self, ctx: PluginContext, gid: str, record: dict[str, Any]) -> None:
        """Post the card this handler claimed, note its id, then catch up with later changes."""
        where = Conversation(**record["conversation"])
        token = record["claim"]
        try:
            sent = await ctx.send_to(where, self._card(ctx, gid, record))
        except BaseException:
            # Give the claim back: Alertmanager sends again, and that posts the card.
            def release(current: dict[str, Any] | None) -> None:
                if current is None or current["claim"] != token or current["message_id"]:
                    raise Refused("taken")

            await ctx.store.attempt(_key(gid), release)
            raise

        def posted(current: dict[str, Any] | None) -> dict[str, Any]:
            if current is None or current["claim"] != token:
                raise Refused("gone")
            return {**current, "message_id": sent.message_id}

        await ctx.store.attempt(_key(gid), posted, ttl=KEPT)
        await self._draw(ctx, gid, record["rev"])

    async def _draw(self, ctx: PluginContext, gid: str, drawn: int | None = None) -> None:
        """Edit the card until it shows the latest revision (``drawn``: the one it shows).

        Each edit is queued before the next read, so whichever handler queues the last edit
        read the latest revision: a change stored after that read is drawn by its own handler.
        """
        while True:
            record = await ctx.store.get(_key(gid))
            if record is None or record["message_id"] is None or record["rev"] == drawn:
                return
            where = Conversation(**record["conversation"])
            await ctx.send_to(where, Edit(record["message_id"], self._card(ctx, gid, record)))
            drawn = record["rev"]

    def _card(self, ctx: PluginContext, gid: str, record: Mapping[str, Any]) -> Card:
        view = _view(record, ctx.clock.timestamp())
        n = view.notification
        buttons: list[Button] = []
        if n.status == "firing" and n.firing:
            if view.silence is None:
                buttons += [
                    ctx.button("Silence 1 h", "silence", f"{gid}:1h"),
                    ctx.button("Silence 4 h", "silence", f"{gid}:4h"),
                ]
            if view.ack is None:
                buttons.append(ctx.button("Acknowledge", "ack", gid, ButtonStyle.PRIMARY))
        if view.silence is not None:
            buttons.append(ctx.button("Unsilence", "unsilence", gid))
        return card.render(view, buttons)

    # The card's buttons.

    async def silence_clicked(self, ctx: ActionContext[AlertsSettings]) -> HandlerResult:
        """Silence the group in Alertmanager for 1 h or 4 h, with its group labels as matchers."""
        gid, _, span = ctx.payload.partition(":")
        duration = SPANS.get(span)
        record = await ctx.store.get(_key(gid))
        if record is None or duration is None:
            return Text("This alert group is no longer tracked.", private=True)
        n = Notification.from_json(record["notification"])
        if n.status != "firing" or not n.firing:
            return Text(f"{card.title(n)} has resolved: there is nothing to silence.", private=True)
        matchers = equality(n.group_labels) or equality(n.common_labels)
        if not matchers:
            return Text(
                "This group has no labels in common to silence it by; "
                "use alerts silence <matchers> <duration> instead.",
                private=True,
            )
        now = ctx.clock.now()
        until = (now + duration).timestamp()
        mark = {"id": "", "by": ctx.actor.name, "until": until, "pending": now.timestamp()}

        def claim(current: dict[str, Any] | None) -> dict[str, Any]:
            if current is None:
                raise Refused("gone")
            known = current.get("silence")
            if known is not None and _silence_holds(known, now.timestamp()):
                raise Refused("silenced", detail=known)
            return {**current, "silence": mark}

        taken = await ctx.store.attempt(_key(gid), claim, ttl=KEPT)
        if not taken.applied:
            if taken.reason == "gone":
                return Text("This alert group is no longer tracked.", private=True)
            known = taken.detail
            return Text(
                f"{card.title(n)} is already silenced by {known['by']} until "
                f"{card.when(known['until'])}.",
                private=True,
            )
        try:
            silence_id = await self._alertmanager.create_silence(
                matchers,
                starts=now,
                ends=now + duration,
                created_by=f"{ctx.actor.name} ({ctx.actor.id})",
                comment=f"Silenced for {format_duration(duration)} from Zoom by {ctx.actor.name}",
            )
        except AlertmanagerError as exc:
            await self._settle_silence(ctx, gid, mark, None)
            return Text(f"Could not silence {card.title(n)}: {exc}", private=True)
        await self._settle_silence(
            ctx, gid, mark, {"id": silence_id, "by": ctx.actor.name, "until": until}
        )
        await self._draw(ctx, gid)
        matched = ", ".join(str(m) for m in matchers)
        return Text(
            f"Silenced {matched} until {card.when(until)} (silence {silence_id}).", private=True
        )

    async def _settle_silence(
        self,
        ctx: PluginContext,
        gid: str,
        mark: Mapping[str, Any],
        silence: Mapping[str, Any] | None,
    ) -> None:
        """Replace the pending mark with the silence made (or nothing, if it failed)."""

        def settle(current: dict[str, Any] | None) -> dict[str, Any]:
            if current is None or current.get("silence") != mark:
                raise Refused("changed")
            return {**current, "silence": silence, "rev": current["rev"] + 1}

        await ctx.store.attempt(_key(gid), settle, ttl=KEPT)

    async def unsilence_clicked(self, ctx: ActionContext[AlertsSettings]) -> HandlerResult:
        """Expire the silence made from this card."""
        gid = ctx.payload
        record = await ctx.store.get(_key(gid))
        silence = None if record is None else record.get("silence")
        if record is None or not silence or not silence.get("id"):
            return Text("This group is not silenced from its card.", private=True)
        try:
            await self._alertmanager.expire(silence["id"])
        except AlertmanagerError as exc:
            if not exc.gone:
                return Text(f"Could not lift the silence: {exc}", private=True)

        def clear(current: dict[str, Any] | None) -> dict[str, Any]:
            if current is None or (current.get("silence") or {}).get("id") != silence["id"]:
                raise Refused("changed")
            return {**current, "silence": None, "rev": current["rev"] + 1}

        await ctx.store.attempt(_key(gid), clear, ttl=KEPT)
        await self._draw(ctx, gid)
        return Text(f"Silence {silence['id']} lifted.", private=True)

    async def ack_clicked(self, ctx: ActionContext[AlertsSettings]) -> HandlerResult:
        """Record who acknowledged the group; the card shows it."""
        gid = ctx.payload
        mark = {"by": ctx.actor.name, "id": ctx.actor.id, "at": ctx.clock.timestamp()}

        def ack(current: dict[str, Any] | None) -> dict[str, Any]:
            if current is None:
                raise Refused("gone")
            if current.get("ack"):
                raise Refused("acked", detail=current["ack"])
            return {**current, "ack": mark, "rev": current["rev"] + 1}

        result = await ctx.store.attempt(_key(gid), ack, ttl=KEPT)
        if result.reason == "gone":
            return Text("This alert group is no longer tracked.", private=True)
        if result.reason == "acked":
            known = result.detail
            return Text(
                f"Already acknowledged by {known['by']} at {card.when(known['at'])}.", private=True
            )
        await self._draw(ctx, gid)
        return None

    # Commands.

    async def firing(self, ctx: Context[AlertsSettings]) -> Text:
        """The groups whose card shows something firing."""
        now = ctx.clock.timestamp()
        lines = []
        for _, record in await ctx.store.list("group:"):
            view = _view(record, now)
            n = view.notification
            if n.status != "firing" or not n.firing:
                continue
            text = f"🔥 {card.title(n)}: {len(n.firing)} firing"
            grouped = " ".join(f"{k}={v}" for k, v in sorted(n.group_labels.items()))
            if grouped:
                text += f" ({grouped})"
            where = Conversation(**record["conversation"])
            if where.jid != ctx.conversation.jid:
                text += f" · in {where.name or where.jid}"
            if view.ack is not None:
                text += f" · acknowledged by {view.ack.by}"
            if view.silence is not None:
                text += f" · silenced until {card.when(view.silence.until)}"
            lines.append(text)
        if not lines:
            return Text("Nothing is firing.")
        return Text("Firing now:\n" + "\n".join(sorted(lines)))

    async def silences(self, ctx: Context[AlertsSettings]) -> Text:
        """Alertmanager's active and pending silences, the soonest to end first."""
        try:
            found = await self._alertmanager.silences()
        except AlertmanagerError as exc:
            return Text(f"Could not list silences: {exc}", private=True)
        live = sorted(
            (s for s in found if s.state in ("active", "pending")), key=lambda s: s.ends_at
        )
        if not live:
            return Text("No active silences.")
        lines = []
        for s in live[:30]:
            matched = ",".join(str(m) for m in s.matchers)
            text = f"{s.id} · {matched} · until {card.stamp(s.ends_at)} · by {s.created_by}"
            if s.state == "pending":
                text += f" · starts {card.stamp(s.starts_at)}"
            if s.comment:
                text += f" · {s.comment[:200]}"
            lines.append(text)
        more = f"\n… and {len(live) - 30} more" if len(live) > 30 else ""
        return Text("Silences:\n" + "\n".join(lines) + more)

    async def silence(self, ctx: Context[AlertsSettings]) -> Text:
        """Make a silence from typed matchers and a duration."""
        try:
            matchers = parse_matchers(ctx.args["matchers"])
        except MatcherError as exc:
            raise UsageError(f"matchers: {exc}") from None
        try:
            duration = parse_duration(ctx.args["duration"], longest=LONGEST)
        except DurationError as exc:
            raise UsageError(f"duration: {exc}") from None
        comment = " ".join(ctx.args["comment"] or ()) or f"Silenced from Zoom by {ctx.actor.name}"
        if len(comment) > 1000:
            raise UsageError(f"comment: at most 1000 characters (this one has {len(comment)})")
        now = ctx.clock.now()
        try:
            silence_id = await self._alertmanager.create_silence(
                matchers,
                starts=now,
                ends=now + duration,
                created_by=f"{ctx.actor.name} ({ctx.actor.id})",
                comment=comment,
            )
        except AlertmanagerError as exc:
            return Text(f"Could not silence: {exc}", private=True)
        matched = ",".join(str(m) for m in matchers)
        return Text(
            f"🔕 {ctx.actor.name} silenced {matched} for {format_duration(duration)}, until "
            f"{card.when((now + duration).timestamp())} (silence {silence_id})."
        )

    async def expire(self, ctx: Context[AlertsSettings]) -> Text:
        """End a silence now."""
        silence_id = ctx.args["id"]
        if not _SILENCE_ID.match(silence_id):
            raise UsageError(
                "id: expected a silence id, like 7d8b3c1e-...; alerts silences lists them"
            )
        try:
            await self._alertmanager.expire(silence_id)
        except AlertmanagerError as exc:
            return Text(f"Could not expire silence {silence_id}: {exc}", private=True)
        return Text(f"🔔 {ctx.actor.name} expired silence {silence_id}.")


def _abandoned(record: Mapping[str, Any], now: float) -> bool:
    return record["message_id"] is None and now - record["claimed_at"] > CLAIM_SECONDS


def _over(record: Mapping[str, Any]) -> bool:
    """Whether the card was posted and shows its group all resolved."""
    return record["message_id"] is not None and record["notification"]["status"] == "resolved"


def _silence_holds(silence: Mapping[str, Any], now: float) -> bool:
    """A silence made (and not run out) or one being made (and not given up on)."""
    if silence.get("id"):
        return bool(silence["until"] > now)
    return bool(now - silence.get("pending", 0) < PENDING_SECONDS)


def _view(record: Mapping[str, Any], now: float) -> card.GroupView:
    ack = record.get("ack")
    silence = record.get("silence")
    return card.GroupView(
        Notification.from_json(record["notification"]),
        ack=card.Acknowledgement(ack["by"], ack["at"]) if ack else None,
        silence=(
            card.SilenceNote(silence["id"], silence["by"], silence["until"])
            if silence and silence.get("id") and silence["until"] > now
            else None
        ),
    )
