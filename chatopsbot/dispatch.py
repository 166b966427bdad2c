"""From a parsed event to responses on their way out: commands, clicks, installs.

No aiohttp here: the webhook handler parses and acknowledges, then hands each event to
:meth:`Dispatcher.dispatch` in a task of its own. Whatever a handler does, raises or takes too
long, the person who asked hears about it privately and everyone else carries on.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import attrs

from chatopsbot.access import AccessSettings, Verdict
from chatopsbot.actions import Action, ActionCodec, ExpiredAction, InvalidAction
from chatopsbot.audit import AuditEntry, AuditLog, AuditReader
from chatopsbot.clock import Clock
from chatopsbot.commands import (
    Command,
    CommandTree,
    HelpRequested,
    UnknownCommand,
    UsageError,
    format_help,
    format_overview,
    format_usage,
    parse_args,
    tokenize,
)
from chatopsbot.context import ActionContext, Context, PluginContext
from chatopsbot.hookspecs import (
    chatops_account_removed,
    chatops_channel_joined,
    chatops_channel_left,
    chatops_unfurl,
)
from chatopsbot.mentions import command_text
from chatopsbot.messenger import ConversationSender, Decisions, Messenger
from chatopsbot.metrics import Metrics
from chatopsbot.outbound.sender import CardRecord
from chatopsbot.responses import (
    Actions,
    Button,
    ButtonStyle,
    Card,
    Edit,
    HandlerResult,
    Post,
    Text,
    as_responses,
)
from chatopsbot.scheduler import Scheduler
from chatopsbot.storage import PROPOSALS, StorageError
from chatopsbot.store import Backend, Store
from chatopsbot.values import Conversation, User
from chatopsbot.zoom.events import (
    AppDeauthorized,
    AppMention,
    BotInstalled,
    BotNotification,
    ButtonClicked,
    ChannelAppAdded,
    ChannelAppRemoved,
    ChannelEvent,
    Event,
    FieldEdited,
    FormSubmitted,
    InteractiveEvent,
    LinkShared,
    MessageEdited,
    OptionSelected,
    app_id,
    channel_jid,
    user_jid,
)

log = logging.getLogger("chatopsbot.dispatch")
T = TypeVar("T")

WELCOME = "Thanks for adding me! Type help to see what I can do."
EXPIRED = "This confirmation has expired or was already answered. Run the command again."
#: Button values of the runtime itself (confirmations) use this reserved plugin name.
CORE = "chatopsbot"
CONFIRM_SECONDS = 300
#: Longer commands are refused before parsing: nobody types more, and parsing is not free.
MAX_COMMAND = 4000
#: How long a handled event's replies wait for storage to come back before the event is left
#: to be handled anew. The handler took at most its time limit; the leader takes unfinished
#: events over 30 s after that, so the two never overlap.
RECORD_GRACE = 20.0
STALE_BUTTON = "Sorry, this button no longer works. Run the command again for a fresh one."
UNKNOWN = "(unknown)"


class Dispatcher:
    """Runs the handler an event calls for and sends what it returns."""

    def __init__(
        self,
        *,
        commands: CommandTree,
        actions: Mapping[tuple[str, str], Action],
        configs: Mapping[str, Any],
        messenger: Messenger,
        codec: ActionCodec,
        backend: Backend,
        clock: Clock,
        command_timeout: float,
        metrics: Metrics,
        scheduler: Scheduler,
        access: AccessSettings,
        hooks: Any = None,
        welcome: str = WELCOME,
        channel_welcome: str = "",
        forget_tokens: Callable[[], None] | None = None,
    ) -> None:
        self._hooks = hooks
        self._welcome = welcome
        self._channel_welcome = channel_welcome
        self._forget_tokens = forget_tokens
        self._access = access
        self._audit_log = AuditLog(backend)
        self._scheduler = scheduler
        self._commands = commands
        self._actions = actions
        self._configs = configs
        self._messenger = messenger
        self._codec = codec
        self._backend = backend
        self._clock = clock
        self._timeout = command_timeout
        self._metrics = metrics
        # What every context of a plugin shares, by plugin: built once, not per event.
        self._shared: dict[str, tuple[dict[str, Any], logging.Logger]] = {}

    def plugin_context(
        self, plugin: str, extra: Mapping[str, Any], outlet: Messenger | None = None
    ) -> dict[str, Any]:
        """The fields every context of ``plugin`` shares, for building one.

        ``outlet`` is the unit of work's messenger; without one, every send stands alone.
        """
        shared = self._shared.get(plugin)
        if shared is None:
            # Each of these is a stateless view of the plugin's share: one per plugin serves
            # every context.
            fields = {
                "plugin": plugin,
                "config": self._configs.get(plugin),
                "store": Store(self._backend, plugin, self._clock),
                "timers": self._scheduler.for_plugin(plugin),
                "clock": self._clock,
                "codec": self._codec,
                "hooks": self._hooks,
                "audit": AuditReader(self._audit_log),
            }
            logger = logging.getLogger(f"chatopsbot.plugin.{plugin or 'unknown'}")
            shared = self._shared[plugin] = (fields, logger)
        fields, logger = shared
        return {
            **fields,
            "log": logging.LoggerAdapter(logger, {**extra, "plugin": plugin}),
            "outlet": outlet or self._messenger,
        }

    def context_for(self, plugin: str) -> PluginContext:
        """A context for plugin code that runs outside any command or click (jobs, HTTP hooks)."""
        return PluginContext(**self.plugin_context(plugin, {}))

    async def dispatch(self, event: Event, settle: tuple[str, float] | None = None) -> None:
        """Handle one event and write what it decided; never raises (failures are logged).

        ``settle`` is the event's inbox key and how long to remember it: the key is marked
        handled in the same transaction that writes the replies to the outbox.
        """

        async def attempt() -> Decisions:
            decisions = Decisions()
            try:
                await self._handle(event, self._messenger.for_unit(decisions))
            except StorageError:
                raise
            except Exception:
                log.exception("dispatching %s failed", type(event).__name__)
            return decisions

        try:
            # Storage failing before the work is done (reading the card or the proposal):
            # try the event again soon; if storage stays away, it stays pending, to be
            # handled anew, rather than settled with nothing done.
            decisions = await _patiently(attempt)
        except StorageError as exc:
            log.error(
                "could not handle %s (%s); it stays pending and is handled again later",
                type(event).__name__,
                exc,
            )
            return
        await self._record(event, decisions, settle)

    async def _handle(self, event: Event, out: Messenger) -> None:
        """Run what ``event`` calls for, deciding into ``out``."""
        match event:
            case BotNotification():
                await self._command(event, out.within(on_behalf=event.user_jid))
            case ButtonClicked() | OptionSelected():
                await self._action(event, out.within(on_behalf=event.user_jid))
            case FieldEdited() | MessageEdited():
                await self._form_edit(event, out.within(on_behalf=event.user_jid))
            case FormSubmitted():
                await self._form(event, out.within(on_behalf=event.user_jid or None))
            case BotInstalled():
                conversation = Conversation(event.account_id, event.user_jid)
                log.info(
                    "installed by %s",
                    event.user_name or event.user_jid,
                    extra={"account": event.account_id},
                )
                if self._welcome:
                    out.to(conversation, on_behalf=event.user_jid).post(Text(self._welcome))
            case AppDeauthorized():
                await self._deauthorized(event, out)
            case AppMention():
                await self._mention(event, out)
            case LinkShared():
                await self._unfurl(event, out)
            case ChannelAppAdded():
                await self._joined(event, out)
            case ChannelAppRemoved():
                await self._left(event, out)
            case _:
                log.debug("nothing to do for %r", event)

    async def _mention(self, event: AppMention, out: Messenger) -> None:
        """An @mention in a channel runs the command it carries, as the slash command would
        (same access rules), answered in the mention's thread."""
        if event.external or not event.account_id or not event.operator_id:
            # A guest from another account (Zoom's own sample is one): its ids are not ones
            # the access rules could name, so nothing it asks for runs.
            log.info(
                "a mention in %s by a user of another account: not answered",
                event.channel_name or event.channel_id,
            )
            return
        bot = self._messenger.robot_jid
        caller = user_jid(event.operator_id, bot)
        channel = channel_jid(event.channel_id, bot)
        notification = BotNotification(
            account_id=event.account_id,
            robot_jid=bot,
            to_jid=channel,
            user_id=event.operator_id,
            user_jid=caller,
            user_name=event.operator,
            channel_name=event.channel_name,
            timestamp=event.timestamp,
            cmd=command_text(event.message, event.mentions, self._starts_command),
            trigger_id=event.message_id,
        )
        # In the thread the mention was posted in, or under the mention itself.
        thread = event.thread_id or event.message_id
        await self._command(notification, out.within(on_behalf=caller, thread=(channel, thread)))

    def _starts_command(self, text: str) -> bool:
        try:
            self._commands.resolve(tokenize(text))
        except (UnknownCommand, UsageError):
            return False
        return True

    async def _unfurl(self, event: LinkShared, out: Messenger) -> None:
        """Ask the plugins, in turn, for a card to show under a shared link.

        A plugin's card is shown only where the person who shared the link may run the
        plugin's commands: the rules of its command group (``[access.commands."deploy"]`` for
        the deploy plugin) and of ``<plugin>:unfurl`` apply, as to an action. A link shared by
        a guest of another account is not unfurled.
        """
        if event.external or not event.operator_id:
            log.info("a link shared by a user of another account: not unfurled")
            return
        bot = self._messenger.robot_jid
        actor = User(event.operator_id, user_jid(event.operator_id, bot), event.operator)
        if event.channel_id:
            where = Conversation(
                event.account_id, channel_jid(event.channel_id, bot), event.channel_name
            )
        else:
            where = Conversation(
                event.account_id, user_jid(event.contact_id or event.operator_id, bot)
            )
        extra = {**_extra(actor, where), "event": "link_shared"}
        kwargs = {"link": event.link, "conversation": where, "actor": actor}

        def may_show(plugin: str) -> bool:
            name = f"{plugin}:unfurl"
            return self._verdict(name, False, actor, where, extra, stands_for=plugin).allowed

        answers = await self._ask(chatops_unfurl, extra, out, kwargs, first=True, asks=may_show)
        for plugin, answer in answers:
            if not isinstance(answer, Card):
                log.error(
                    "plugin %s answered an unfurl with a %s, not a Card",
                    plugin,
                    type(answer).__name__,
                    extra=extra,
                )
                continue
            log.info("unfurling a link with plugin %s", plugin, extra={**extra, "plugin": plugin})
            out.unfurl(
                where, event.unfurl_user, event.trigger_id, answer, {**extra, "plugin": plugin}
            )
            return
        log.debug("no plugin unfurls %s", event.link, extra=extra)

    async def _joined(self, event: ChannelAppAdded, out: Messenger) -> None:
        """Added to a channel: the configured welcome, then what plugins post there."""
        if not self._about_me(event):
            return
        conversation, actor = self._channel_of(event)
        extra = _extra(actor, conversation)
        log.info(
            "added to channel %s by %s",
            conversation.name or conversation.jid,
            actor.name or actor.id,
            extra=extra,
        )
        out = out.within(on_behalf=actor.jid or None)
        if self._channel_welcome:
            out.to(conversation, log_extra=extra).post(Text(self._channel_welcome))
        kwargs = {"conversation": conversation, "actor": actor}
        for plugin, result in await self._ask(chatops_channel_joined, extra, out, kwargs):
            sender = out.to(conversation, log_extra={**extra, "plugin": plugin}, plugin=plugin)
            try:
                for response in as_responses(result):
                    sender.post(response)
            except Exception:
                log.exception(
                    "plugin %s: what it posts on joining a channel failed", plugin, extra=extra
                )

    async def _left(self, event: ChannelAppRemoved, out: Messenger) -> None:
        """Removed from a channel: plugins drop what targets it; its queued messages go."""
        if not self._about_me(event):
            return
        conversation, actor = self._channel_of(event)
        extra = _extra(actor, conversation)
        kwargs = {"conversation": conversation}
        counts = await self._ask(chatops_channel_left, extra, out, kwargs)
        queued = await self._messenger.outbox.forget(conversation.account_id, conversation.jid)
        log.warning(
            "removed from channel %s by %s: dropped %s; %d queued message(s) to it dropped",
            conversation.name or conversation.jid,
            actor.name or actor.id or "someone",
            _counted(counts),
            queued,
            extra=extra,
        )

    async def _deauthorized(self, event: AppDeauthorized, out: Messenger) -> None:
        """An account removed the app: its queued messages go (they can no longer be sent)
        and, unless Zoom says the user chose to keep it, everything stored about it."""
        account = event.account_id
        extra = {"account": account}
        if self._forget_tokens is not None:
            # One token serves every account; a fresh one after a deauthorization costs
            # one request and leaves nothing issued before it in use.
            self._forget_tokens()
        queued = await self._messenger.outbox.forget(account)
        if event.keep_data:
            log.warning(
                "account %s removed the app; Zoom says its data is to be kept "
                "(user_data_retention): %d queued message(s) dropped, stored data kept",
                account,
                queued,
                extra=extra,
            )
            return
        counts = await self._ask(chatops_account_removed, extra, out, {"account_id": account})
        audit = await self._backend.audit_forget(account)
        cards = await self._messenger.forget_cards(account)
        log.warning(
            "account %s removed the app: deleted %s, %d audit entr%s, %d card record(s), "
            "%d queued or dead message(s)",
            account,
            _counted(counts),
            audit,
            "y" if audit == 1 else "ies",
            cards,
            queued,
            extra=extra,
        )

    def _about_me(self, event: ChannelAppAdded | ChannelAppRemoved) -> bool:
        """Whether the apps the event names include this bot (an empty list counts)."""
        me = app_id(self._messenger.robot_jid)
        if event.app_ids and me not in {a.lower() for a in event.app_ids}:
            # Said plainly: if Zoom ever named apps otherwise, this line shows why nothing ran.
            log.info(
                "%s in %s names other apps (%s), not this bot (%s): nothing to do",
                type(event).__name__,
                event.channel_name or event.channel_id,
                ", ".join(event.app_ids),
                me,
            )
            return False
        return True

    def _channel_of(self, event: ChannelEvent) -> tuple[Conversation, User]:
        bot = self._messenger.robot_jid
        conversation = Conversation(
            event.account_id, channel_jid(event.channel_id, bot), event.channel_name
        )
        jid = user_jid(event.operator_id, bot) if event.operator_id else ""
        return conversation, User(event.operator_id, jid, event.operator)

    async def _ask(
        self,
        spec: Callable[..., object],
        extra: Mapping[str, Any],
        out: Messenger,
        kwargs: Mapping[str, Any],
        *,
        first: bool = False,
        asks: Callable[[str], bool] | None = None,
    ) -> list[tuple[str, Any]]:
        """Call a runtime hook of every plugin that has it (and that ``asks`` admits), each
        with its own context and under the command time limit; a failing one is logged and
        skipped. Returns the answers that are not ``None`` (with ``first``, only the first)."""
        if self._hooks is None:
            return []
        answers: list[tuple[str, Any]] = []
        for plugin, call in self._hooks.implementations(spec):
            if asks is not None and not asks(plugin):
                continue
            ctx = PluginContext(**self.plugin_context(plugin, extra, out))
            try:
                async with asyncio.timeout(self._timeout):
                    answer = call(ctx=ctx, **kwargs)
                    if inspect.isawaitable(answer):
                        answer = await answer
            except StorageError:
                raise
            except Exception:
                _log_failure(f"{plugin}: {spec.__name__}", {**extra, "plugin": plugin})
                continue
            if answer is not None:
                answers.append((plugin, answer))
                if first:
                    break
        return answers

    async def decide(self, plugin: str, result: object, what: str) -> None:
        """Write what a job or timer of ``plugin`` returned (``Post`` values) as one unit.

        Nothing answers a job, so a bare response has nowhere to go: a ``TypeError``, logged
        by the scheduler like any failure of the job.
        """
        decisions = Decisions()
        out = self._messenger.for_unit(decisions)
        for item in as_responses(result):
            if not isinstance(item, Post):
                raise TypeError(
                    f"{what} returned a {type(item).__name__} with no conversation: "
                    "return Post(conversation, response) instead"
                )
            sender = out.to(
                item.conversation,
                caller_id=item.visible_to,
                plugin=plugin,
                on_behalf=item.on_behalf_of,
            )
            sender.post(item.response)
        if len(decisions):
            await self._write(decisions, None)

    async def _record(
        self, event: Event, decisions: Decisions, settle: tuple[str, float] | None
    ) -> None:
        """Write what the event decided. If storage stays away, the event stays pending in the
        inbox: it is handled anew later (after a restart, or by the replica that takes over
        orphaned events)."""
        what = type(event).__name__
        try:
            await self._write(decisions, settle)
        except StorageError as exc:
            log.error("could not record what %s decided (%s); it is handled again later", what, exc)
        except Exception:
            log.exception("could not record what %s decided; it is handled again later", what)

    async def _write(self, decisions: Decisions, settle: tuple[str, float] | None) -> None:
        """Write a unit's decisions; while storage is away, keep trying for a while.

        Trying again (rather than leaving the work to be done anew) keeps its replies in
        their place: they are written as soon as storage is back, before newer ones.
        """
        pending = decisions.take()
        audit = tuple(decisions.audit)
        await _patiently(lambda: self._messenger.commit(pending, settle=settle, audit=audit))

    async def _command(self, event: BotNotification, out: Messenger) -> None:
        caller = User(event.user_id, event.user_jid, event.user_name)
        conversation = Conversation(event.account_id, event.to_jid, event.channel_name)
        extra = _extra(caller, conversation)
        sender = out.to(conversation, caller_id=caller.id or None, log_extra=extra)

        tell = _teller(sender)

        def act(kind: str, what: str, result: str) -> None:
            ref = event.trigger_id or str(event.timestamp)
            self._audit(out, kind, caller, conversation, what, event.cmd, result, ref)

        if len(event.cmd) > MAX_COMMAND:
            self._count(UNKNOWN, "usage")
            tell(f"That command is {len(event.cmd)} characters long; the limit is {MAX_COMMAND}.")
            return
        try:
            # The slash command alone asks for help, as typing "help" would.
            words = tokenize(event.cmd) or ["help"]
            command, rest = self._commands.resolve(words)
            extra["command"] = command.name
            verdict = self._verdict(command.name, command.admin_only, caller, conversation, extra)
            if not verdict.allowed:
                self._count(command.name, "denied")
                act("command", command.name, "denied")
                tell(_denied(command.name, verdict.admin_only))
                return
            args = parse_args(command, rest)
        except HelpRequested as exc:
            self._count(exc.command.name, "help")
            tell(format_help(exc.command))
            return
        except UnknownCommand as exc:
            self._count(UNKNOWN, "unknown")
            log.info("unknown command %r", event.cmd[:200], extra=extra)
            may_run = functools.partial(
                self._access.permits, user=caller, conversation=conversation
            )
            tell(_unknown(self._commands.narrow(exc, may_run)))
            return
        except UsageError as exc:
            self._count(exc.command.name if exc.command else UNKNOWN, "usage")
            tell(_usage(exc))
            return
        if command.confirm:
            # The confirmation card is the core's own: its buttons are bound to it like any.
            proposer = out.to(
                conversation, caller_id=caller.id or None, log_extra=extra, plugin=CORE
            )
            await self._propose(command, rest, args, caller, conversation, proposer)
            self._count(command.name, "proposed")
            act("command", command.name, "proposed")
            return
        outcome = await self._run_command(command, args, caller, conversation, extra, out)
        act("command", command.name, outcome)

    async def _run_command(
        self,
        command: Command,
        args: Mapping[str, Any],
        caller: User,
        conversation: Conversation,
        extra: dict[str, Any],
        out: Messenger,
    ) -> str:
        # Which plugin: a handler's failure (an invalid card, say) is logged with it.
        extra["plugin"] = command.plugin
        # Same conversation, same outbox lane: in order with any reply decided before it.
        sender = out.to(
            conversation, caller_id=caller.id or None, log_extra=extra, plugin=command.plugin
        )
        ctx = Context(
            **self.plugin_context(command.plugin, extra, out),
            actor=caller,
            conversation=conversation,
            command=command,
            args=args,
            commands=self._commands,
            sender=sender,
            access=self._access,
        )

        tell = _teller(sender)

        outcome = await self._invoke(
            command.handler(ctx), command.name, command.timeout, sender, extra, tell, command
        )
        self._count(command.name, outcome)
        return outcome

    async def _propose(
        self,
        command: Command,
        words: list[str],
        args: Mapping[str, Any],
        caller: User,
        conversation: Conversation,
        sender: ConversationSender,
    ) -> None:
        """Ask the caller, privately, to confirm a command marked ``confirm``."""
        proposal = secrets.token_hex(8)
        question = _question(command, args)
        record = {
            "command": command.name,
            "words": words,
            "question": question,
            "caller": attrs.asdict(caller),
            "conversation": attrs.asdict(conversation),
        }
        expires = self._clock.timestamp() + CONFIRM_SECONDS
        await self._backend.put(PROPOSALS, proposal, json.dumps(record), expires)
        buttons = (
            Button("Confirm", self._codec.encode(CORE, "confirm", proposal), ButtonStyle.DANGER),
            Button("Cancel", self._codec.encode(CORE, "cancel", proposal)),
        )
        sender.post(
            Card(
                head=question,
                sub_head=f"Only you see this; it expires in {CONFIRM_SECONDS // 60} minutes.",
                body=[Actions(buttons)],
                private=True,
            )
        )

    async def _answer(
        self,
        event: ButtonClicked | OptionSelected,
        name: str,
        proposal: str,
        clicker: User,
        sender: ConversationSender,
        extra: dict[str, Any],
        out: Messenger,
    ) -> None:
        """Confirm or cancel a proposal: only its caller may, and only once, within its time."""
        text = await self._backend.get(PROPOSALS, proposal, self._clock.timestamp())
        record = json.loads(text) if text else None
        where = Conversation(event.account_id, event.to_jid, event.channel_name)
        what = record["command"] if record else f"{CORE}:{name}"
        detail = " ".join(record["words"]) if record else proposal

        def act(result: str) -> None:
            self._audit(out, "confirm", clicker, where, what, detail, result, event.message_id)

        if record is not None and record["caller"]["id"] != clicker.id:
            act("denied")
            sender.post(Text(f"Only {record['caller']['name']} can answer this.", private=True))
            return
        # Deleting is the atomic "take": of two quick clicks, one wins.
        if record is None or not await self._backend.delete(PROPOSALS, proposal):
            act("expired")
            sender.post(Text(EXPIRED, private=True))
            return
        command = self._commands.find(record["command"])
        if name == "cancel" or command is None:
            act("cancelled")
            sender.post(Edit(event.message_id, Text(f"Cancelled: {record['question']}")))
            return
        try:
            # The command may have changed since it was proposed (a plugin upgrade).
            args = parse_args(command, record["words"])
        except (UsageError, HelpRequested) as exc:
            act("usage")
            sender.post(Text(f"{command.name} can no longer run as proposed: {exc}", private=True))
            return
        caller, where = User(**record["caller"]), Conversation(**record["conversation"])
        extra["command"] = command.name
        # Rules may have changed (or an admin been removed) since it was proposed.
        verdict = self._verdict(command.name, command.admin_only, caller, where, extra)
        if not verdict.allowed:
            self._count(command.name, "denied")
            act("denied")
            sender.post(Edit(event.message_id, Text(f"Not run: {record['question']}")))
            sender.post(Text(_denied(command.name, verdict.admin_only), private=True))
            return
        sender.post(Edit(event.message_id, Text(f"Confirmed: {record['question']}")))
        act(await self._run_command(command, args, caller, where, extra, out))

    async def _action(self, event: ButtonClicked | OptionSelected, out: Messenger) -> None:
        clicker = User(event.user_id, event.user_jid, event.user_name)
        conversation = Conversation(event.account_id, event.to_jid, event.channel_name)
        extra = _extra(clicker, conversation)
        sender = out.to(conversation, caller_id=clicker.id or None, log_extra=extra)
        values = (event.value,) if isinstance(event, ButtonClicked) else event.values
        if isinstance(event, OptionSelected) and not any(map(self._codec.looks_signed, values)):
            # Values Zoom chose (a member, a channel): routed by what the card's record keeps.
            await self._filled(event, "select", values, out)
            return
        try:
            now = self._clock.timestamp()
            decoded = [self._codec.decode(value, now) for value in values]
            plugin, name, _ = decoded[0]
            if any((p, n) != (plugin, name) for p, n, _ in decoded):
                raise InvalidAction("a dropdown mixing actions")
            card = await self._messenger.card(event.message_id)
            if card is None or card.plugin != plugin:
                raise InvalidAction(f"message {event.message_id} is not a card {plugin} sent")
            if not all(card.admits(value) for value in values):
                raise InvalidAction(f"a value that card {event.message_id} does not carry")
            if card.viewer is not None and card.viewer != clicker.id:
                raise InvalidAction(f"a private card shown to someone else ({card.viewer})")
            if plugin == CORE and name in ("confirm", "cancel"):
                await self._answer(event, name, decoded[0][2], clicker, sender, extra, out)
                return
            if (plugin, name) not in self._actions:
                raise InvalidAction(f"no action {name!r} in plugin {plugin!r}")
        except InvalidAction as exc:
            log.warning("refused a click on message %s: %s", event.message_id, exc, extra=extra)
            self._metrics.count(self._metrics.actions, UNKNOWN, "stale")
            result = "expired" if isinstance(exc, ExpiredAction) else "stale"
            self._audit(
                out, "action", clicker, conversation, UNKNOWN, str(exc), result, event.message_id
            )
            sender.post(Text(STALE_BUTTON, private=True))
            return
        payloads = tuple(payload for _, _, payload in decoded)
        await self._run_action(event, plugin, name, payloads[0], payloads, clicker, extra, out)

    async def _form_edit(self, event: FieldEdited | MessageEdited, out: Messenger) -> None:
        """Hand a form edit to the plugin that sent the card: to the action its element's
        ``action_id`` names, else to its ``field_edited``/``message_edited`` action."""
        card = await self._messenger.card(event.message_id)
        route = _edit_route(event, card.routes if card is not None else {})
        if route is not None:
            if isinstance(event, FieldEdited):
                values = (event.current_value, event.new_value)
            else:
                values = (event.origin, event.target)
            await self._filled(event, route, values, out)
            return
        plugin = None if card is None or card.deleted else card.plugin
        name = "field_edited" if isinstance(event, FieldEdited) else "message_edited"
        clicker = User(event.user_id, event.user_jid, event.user_name)
        extra = _extra(clicker, Conversation(event.account_id, event.to_jid, event.channel_name))
        if plugin is None or (plugin, name) not in self._actions:
            log.info("%s on message %s: no plugin handles it", name, event.message_id, extra=extra)
            return
        if isinstance(event, FieldEdited):
            payload, values = event.key, (event.current_value, event.new_value)
        else:
            payload, values = "", (event.origin, event.target)
        await self._run_action(event, plugin, name, payload, values, clicker, extra, out)

    async def _filled(
        self, event: InteractiveEvent, route: str, values: tuple[str, ...], out: Messenger
    ) -> None:
        """Run the action the card's record keeps for ``route`` (see
        :func:`chatopsbot.zoom.cards.routes`) with what Zoom filled in."""
        clicker = User(event.user_id, event.user_jid, event.user_name)
        conversation = Conversation(event.account_id, event.to_jid, event.channel_name)
        extra = _extra(clicker, conversation)
        try:
            card = await self._messenger.card(event.message_id)
            if card is None or card.deleted:
                raise InvalidAction(f"message {event.message_id} is not a card the bot has")
            action_id = card.routes.get(route)
            if action_id is None:
                raise InvalidAction(f"card {event.message_id} has no {route!r}")
            plugin, name, payload = self._codec.decode(action_id, self._clock.timestamp())
            self._check_card(event, card, plugin, clicker, name)
        except InvalidAction as exc:
            self._refuse(event, exc, clicker, conversation, extra, out)
            return
        await self._run_action(event, plugin, name, payload, values, clicker, extra, out)

    async def _form(self, event: FormSubmitted, out: Messenger) -> None:
        """A submitted form goes to the action of the button that submitted it (else of its
        first element); ``ctx.form`` holds the values of that action's elements by name."""
        clicker = User(event.user_id, event.user_jid, event.user_name)
        conversation = Conversation(event.account_id, event.to_jid, event.channel_name)
        extra = _extra(clicker, conversation)
        now = self._clock.timestamp()
        try:
            card = await self._messenger.card(event.message_id)
            if card is None or card.deleted:
                raise InvalidAction(f"message {event.message_id} is not a card the bot has")
            decoded = []
            for item in event.items:
                pressed = item.kind == "actionItem" and not item.action_id
                signed = (item.values[0] if item.values else "") if pressed else item.action_id
                if not signed and item.text:
                    # Zoom's sample app reads inputs as {text, value}: found by their label.
                    signed = card.routes.get(f"input:{item.text}", "")
                if not self._codec.looks_signed(signed):
                    log.info("a form item (%s) without a bot action_id: left out", item.kind)
                    continue
                plugin, name, payload = self._codec.decode(signed, now)
                if plugin != card.plugin or not card.admits(signed):
                    raise InvalidAction(f"a form value that card {event.message_id} lacks")
                decoded.append((pressed, name, payload, item.values))
            if not decoded:
                raise InvalidAction("a form submission with nothing the bot made")
            _, name, payload, _ = next((d for d in decoded if d[0]), decoded[0])
            self._check_card(event, card, card.plugin, clicker, name)
        except InvalidAction as exc:
            self._refuse(event, exc, clicker, conversation, extra, out)
            return
        form = {key: values for pressed, n, key, values in decoded if n == name and not pressed}
        values = tuple(v for pressed, n, _, vs in decoded if n == name and not pressed for v in vs)
        await self._run_action(
            event, card.plugin, name, payload, values, clicker, extra, out, form=form
        )

    def _check_card(
        self, event: InteractiveEvent, card: CardRecord, plugin: str, clicker: User, name: str
    ) -> None:
        """Refuse (:class:`InvalidAction`) an action the card was not drawn for."""
        if card.plugin != plugin:
            raise InvalidAction(f"message {event.message_id} is not a card {plugin} sent")
        if card.viewer is not None and card.viewer != clicker.id:
            raise InvalidAction(f"a private card shown to someone else ({card.viewer})")
        if (plugin, name) not in self._actions:
            raise InvalidAction(f"no action {name!r} in plugin {plugin!r}")

    def _refuse(
        self,
        event: InteractiveEvent,
        exc: InvalidAction,
        clicker: User,
        conversation: Conversation,
        extra: dict[str, Any],
        out: Messenger,
    ) -> None:
        """Log and audit a refused interaction; tell the person, privately."""
        log.warning("refused an action on message %s: %s", event.message_id, exc, extra=extra)
        self._metrics.count(self._metrics.actions, UNKNOWN, "stale")
        result = "expired" if isinstance(exc, ExpiredAction) else "stale"
        self._audit(
            out, "action", clicker, conversation, UNKNOWN, str(exc), result, event.message_id
        )
        sender = out.to(conversation, caller_id=clicker.id or None, log_extra=extra)
        sender.post(Text(STALE_BUTTON, private=True))

    async def _run_action(
        self,
        event: InteractiveEvent,
        plugin: str,
        name: str,
        payload: str,
        values: tuple[str, ...],
        clicker: User,
        extra: dict[str, Any],
        out: Messenger,
        *,
        form: Mapping[str, tuple[str, ...]] | None = None,
    ) -> None:
        handler = self._actions[(plugin, name)]
        conversation = Conversation(event.account_id, event.to_jid, event.channel_name)
        label = f"{plugin}:{name}"
        extra["command"] = label
        sender = out.to(conversation, caller_id=clicker.id or None, log_extra=extra, plugin=plugin)

        tell = _teller(sender)

        stands_for = self._commands.find(handler.command) if handler.command else None
        admin_only = handler.admin_only or (stands_for is not None and stands_for.admin_only)
        verdict = self._verdict(
            label, admin_only, clicker, conversation, extra, stands_for=handler.command
        )
        # Never the payload: it is the plugin's own data (an anonymous poll's vote says what
        # was chosen), and the log keeps who acted, where, on which card, with what result.
        detail = ""

        def act(result: str) -> None:
            self._audit(
                out, "action", clicker, conversation, label, detail, result, event.message_id
            )

        if not verdict.allowed:
            self._metrics.count(self._metrics.actions, label, "denied")
            act("denied")
            tell(_denied(label, verdict.admin_only, action=True))
            return
        ctx = ActionContext(
            **self.plugin_context(plugin, extra, out),
            actor=clicker,
            conversation=conversation,
            message_id=event.message_id,
            original=event.original,
            action=name,
            payload=payload,
            values=values,
            form=form or {},
            sender=sender,
            access=self._access,
            callback=event.callback,
        )
        outcome = await self._invoke(handler.handler(ctx), label, None, sender, extra, tell)
        self._metrics.count(self._metrics.actions, label, outcome)
        act(outcome)

    async def _invoke(
        self,
        call: Awaitable[HandlerResult],
        name: str,
        own_limit: float | None,
        sender: ConversationSender,
        extra: Mapping[str, Any],
        tell: Callable[[str], None],
        command: Command | None = None,
    ) -> str:
        """Run a handler under its time limit, send what it returns; return the outcome."""
        limit = own_limit or self._timeout
        timer = asyncio.timeout(limit)
        try:
            async with timer:
                result = await call
            # Rendering happens as each is queued: a response Zoom could never take is a
            # handler error the caller hears about, not a silent loss.
            for response in as_responses(result):
                sender.post(response)
        except UsageError as exc:
            # A handler may reject what only it can check; same private usage reply.
            if exc.command is None:
                exc.command = command
            tell(_usage(exc))
            return "usage"
        except TimeoutError:
            if timer.expired():
                ref = _log_failure(name, extra, limit)
                tell(
                    f"Sorry, {name} took longer than {limit:g} s and was stopped (reference {ref})."
                )
                return "timeout"
            # The handler's own call timed out, not the handler: an ordinary failure.
            tell(_failed(name, _log_failure(name, extra)))
            return "error"
        except Exception:
            tell(_failed(name, _log_failure(name, extra)))
            return "error"
        return "ok"

    def _verdict(
        self,
        name: str,
        admin_only: bool,
        user: User,
        conversation: Conversation,
        extra: Mapping[str, Any],
        *,
        stands_for: str | None = None,
    ) -> Verdict:
        """Check the rules; a refusal's reason goes to the log, never to the user."""
        verdict = self._access.check(
            name,
            admin_only=admin_only,
            user=user,
            conversation=conversation,
            stands_for=stands_for,
        )
        if not verdict.allowed:
            log.warning("refused %s: %s", name, verdict.reason, extra=extra)
        return verdict

    def _audit(
        self,
        out: Messenger,
        kind: str,
        user: User,
        conversation: Conversation,
        what: str,
        detail: str,
        result: str,
        ref: str,
    ) -> None:
        """Note what a person did for the audit log, written with the unit's replies."""
        out.audit(
            AuditEntry(
                at=self._clock.timestamp(),
                kind=kind,
                actor_id=user.id,
                actor_name=user.name,
                actor_jid=user.jid,
                account_id=conversation.account_id,
                conversation=conversation.jid,
                conversation_name=conversation.name,
                what=what,
                detail=detail,
                result=result,
                ref=ref,
            )
        )

    def _count(self, command: str, outcome: str) -> None:
        self._metrics.count(self._metrics.commands, command, outcome)


async def _patiently(attempt: Callable[[], Awaitable[T]]) -> T:
    """``attempt()``, tried again with backoff while storage fails, for up to
    :data:`RECORD_GRACE`; then its :class:`StorageError` is raised."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + RECORD_GRACE
    delay = 0.25
    while True:
        try:
            return await attempt()
        except StorageError:
            if loop.time() + delay > give_up:
                raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


def _teller(sender: ConversationSender) -> Callable[[str], None]:
    """Replies only the person who asked (or clicked) sees."""

    def tell(text: str) -> None:
        sender.post(Text(text, private=True))

    return tell


def _counted(counts: list[tuple[str, Any]]) -> str:
    """``deploy: 3, polls: 1`` from what plugins said they removed (numbers only)."""
    parts = [
        f"{plugin}: {n}" for plugin, n in counts if isinstance(n, int) and not isinstance(n, bool)
    ]
    return ", ".join(parts) or "nothing plugins keep"


def _edit_route(event: FieldEdited | MessageEdited, routes: Mapping[str, str]) -> str | None:
    """The key under which the card keeps the action for this edit, if it keeps one."""
    if isinstance(event, FieldEdited):
        key = f"field:{event.key}"
        return key if key in routes else None
    key = f"message:{event.origin}"
    if key in routes:
        return key
    # Zoom may hand the text back changed in whitespace; one editable text is unambiguous.
    texts = [k for k in routes if k.startswith("message:")]
    return texts[0] if len(texts) == 1 else None


def _extra(user: User, conversation: Conversation) -> dict[str, Any]:
    return {
        "caller": user.name or user.jid,
        "channel": conversation.name or conversation.jid,
        "account": conversation.account_id,
    }


def _question(command: Command, args: Mapping[str, Any]) -> str:
    assert command.confirm is not None  # noqa: S101 - only called for commands that confirm
    values = {k: " ".join(map(str, v)) if isinstance(v, tuple) else v for k, v in args.items()}
    try:
        return command.confirm.format_map(values)
    except (KeyError, IndexError, ValueError, AttributeError):
        return command.confirm


def _log_failure(name: str, extra: Mapping[str, Any], timeout: float | None = None) -> str:
    """Log a handler failure under a short reference the user can quote; return it."""
    ref = secrets.token_hex(4)
    if timeout is not None:
        log.error(
            "%s timed out after %g s [ref %s]", name, timeout, ref, extra={**extra, "ref": ref}
        )
    else:
        log.exception("%s failed [ref %s]", name, ref, extra={**extra, "ref": ref})
    return ref


def _failed(name: str, ref: str) -> str:
    return f"Sorry, {name} failed (reference {ref}). Tell the bot's operators."


def _usage(exc: UsageError) -> str:
    if exc.command is None:
        return f"{exc}\nType help to see the commands."
    return f"{exc}\n{format_usage(exc.command)}\nType help {exc.command.name} for details."


def _denied(name: str, admin_only: bool, *, action: bool = False) -> str:
    """What a refused user hears: what they may do, not how the rules are built."""
    if admin_only:
        what = f"Only the bot's admins may {'do that' if action else f'run {name}'}."
    elif action:
        what = "You may not do that here."
    else:
        what = f"You may not run {name} here."
    return (
        f"{what} Type help to see what you can run here; "
        "an admin can give you access (whoami shows the ids they need)."
    )


def _unknown(exc: UnknownCommand) -> str:
    if exc.subcommands:
        return "Did you mean one of these?\n" + format_overview(exc.subcommands)
    text = f"Unknown command {exc.text!r}."
    if exc.suggestions:
        text += " Did you mean " + " or ".join(repr(s) for s in exc.suggestions) + "?"
    return text + "\nType help to see the commands."
