"""From a parsed event to responses on their way out: commands, errors, installs.

No aiohttp here: the webhook handler parses and acknowledges, then hands each event to
:meth:`Dispatcher.dispatch` in a task of its own. Whatever a handler does, raises or takes too
long, the caller hears about it privately and every other conversation carries on.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable, Mapping
from typing import Any

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
from chatopsbot.context import Context, Conversation, User
from chatopsbot.metrics import Metrics
from chatopsbot.outbound import Outbox
from chatopsbot.responses import Card, Delete, Edit, Response, Sent, Text, as_responses
from chatopsbot.store import Backend, Store
from chatopsbot.zoom.cards import render
from chatopsbot.zoom.client import ApiResult
from chatopsbot.zoom.events import (
    AppDeauthorized,
    BotInstalled,
    BotNotification,
    Event,
    InteractiveEvent,
)

log = logging.getLogger("chatopsbot.dispatch")

WELCOME = "Thanks for adding me! Type help to see what I can do."
UNKNOWN = "(unknown)"


class ConversationSender:
    """Sends responses for one conversation, in order, on behalf of one caller (if any)."""

    def __init__(
        self,
        outbox: Outbox,
        *,
        robot_jid: str,
        conversation: Conversation,
        caller_id: str | None,
        log_extra: Mapping[str, Any],
    ) -> None:
        self._outbox = outbox
        self._robot_jid = robot_jid
        self._conversation = conversation
        self._caller_id = caller_id
        self._log_extra = log_extra

    def post(self, response: Response) -> asyncio.Future[ApiResult]:
        """Queue ``response`` and return the future of Zoom's answer (awaiting it is optional)."""
        call = render(
            response,
            robot_jid=self._robot_jid,
            conversation=self._conversation,
            caller_id=self._caller_id,
        )
        key = self._conversation.jid
        if isinstance(response, Text | Card) and response.to_jid:
            key = response.to_jid
        return self._outbox.submit(call, key=key, log_extra=self._log_extra)

    async def send(self, response: Response) -> Sent:
        """Queue ``response``, wait until Zoom has it, and return its message id."""
        result = await self.post(response)
        if isinstance(response, Edit | Delete):
            return Sent(result.message_id or response.message_id)
        return Sent(result.message_id)


class Dispatcher:
    """Runs the handler an event calls for and sends what it returns."""

    def __init__(
        self,
        *,
        commands: CommandTree,
        configs: Mapping[str, Any],
        outbox: Outbox,
        robot_jid: str,
        clock: Clock,
        command_timeout: float,
        metrics: Metrics,
        backend: Backend,
    ) -> None:
        self._backend = backend
        self._commands = commands
        self._configs = configs
        self._outbox = outbox
        self._robot_jid = robot_jid
        self._clock = clock
        self._timeout = command_timeout
        self._metrics = metrics

    async def dispatch(self, event: Event) -> None:
        """Handle one event; never raises (failures are logged)."""
        try:
            match event:
                case BotNotification():
                    await self._command(event)
                case InteractiveEvent():
                    log.info(
                        "%s on message %s: no plugin handles card actions in this version",
                        type(event).__name__,
                        event.message_id,
                        extra={"caller": event.user_jid, "channel": event.to_jid},
                    )
                case BotInstalled():
                    await self._installed(event)
                case AppDeauthorized():
                    log.warning(
                        "account %s removed the app (keep data: %s)",
                        event.account_id,
                        event.keep_data,
                        extra={"account": event.account_id},
                    )
                case _:
                    log.debug("nothing to do for %r", event)
        except Exception:
            log.exception("dispatching %s failed", type(event).__name__)

    async def _installed(self, event: BotInstalled) -> None:
        conversation = Conversation(event.account_id, event.user_jid)
        sender = self._sender(conversation, event.user_id, {"account": event.account_id})
        log.info(
            "installed by %s",
            event.user_name or event.user_jid,
            extra={"account": event.account_id},
        )
        sender.post(Text(WELCOME))

    def _sender(
        self, conversation: Conversation, caller_id: str | None, extra: Mapping[str, Any]
    ) -> ConversationSender:
        return ConversationSender(
            self._outbox,
            robot_jid=self._robot_jid,
            conversation=conversation,
            caller_id=caller_id,
            log_extra=extra,
        )

    async def _command(self, event: BotNotification) -> None:
        caller = User(event.user_id, event.user_jid, event.user_name)
        conversation = Conversation(event.account_id, event.to_jid, event.channel_name)
        extra: dict[str, Any] = {
            "caller": event.user_name or event.user_jid,
            "channel": event.channel_name or event.to_jid,
            "account": event.account_id,
        }
        sender = self._sender(conversation, caller.id or None, extra)

        def tell(text: str) -> None:
            sender.post(Text(text, private=True))

        try:
            words = tokenize(event.cmd)
            if not words:
                self._count(UNKNOWN, "help")
                tell(_overview(self._commands))
                return
            command, rest = self._commands.resolve(words)
            extra["command"] = command.name
            args = parse_args(command, rest)
        except HelpRequested as exc:
            self._count(exc.command.name, "help")
            tell(format_help(exc.command))
            return
        except UnknownCommand as exc:
            self._count(UNKNOWN, "unknown")
            log.info("unknown command %r", event.cmd[:200], extra=extra)
            tell(_unknown(exc))
            return
        except UsageError as exc:
            self._count(exc.command.name if exc.command else UNKNOWN, "usage")
            tell(_usage(exc))
            return
        await self._run(command, args, caller, conversation, sender, extra, tell)

    async def _run(
        self,
        command: Command,
        args: Mapping[str, Any],
        caller: User,
        conversation: Conversation,
        sender: ConversationSender,
        extra: Mapping[str, Any],
        tell: Callable[[str], None],
    ) -> None:
        plugin_log = logging.getLogger(f"chatopsbot.plugin.{command.plugin or 'unknown'}")
        ctx = Context(
            caller=caller,
            conversation=conversation,
            command=command,
            args=args,
            config=self._configs.get(command.plugin),
            log=logging.LoggerAdapter(plugin_log, {**extra, "plugin": command.plugin}),
            clock=self._clock,
            commands=self._commands,
            sender=sender,
            store=Store(self._backend, command.plugin, self._clock),
        )
        timeout = command.timeout or self._timeout
        timer = asyncio.timeout(timeout)
        try:
            async with timer:
                result = await command.handler(ctx)
            responses = as_responses(result)
        except UsageError as exc:
            # A handler may reject arguments that only it can check; same private usage reply.
            self._count(command.name, "usage")
            tell(_usage(exc if exc.command else UsageError(str(exc), command)))
            return
        except TimeoutError:
            if not timer.expired():
                # The handler's own call timed out, not the handler: an ordinary failure.
                ref = self._fail(command, extra, "error")
                tell(f"Sorry, {command.name} failed (reference {ref}). Tell the bot's operators.")
                return
            ref = self._fail(command, extra, "timeout", timeout=timeout)
            tell(
                f"Sorry, {command.name} took longer than {timeout:g} s and was stopped "
                f"(reference {ref})."
            )
            return
        except Exception:
            ref = self._fail(command, extra, "error")
            tell(f"Sorry, {command.name} failed (reference {ref}). Tell the bot's operators.")
            return
        self._count(command.name, "ok")
        for response in responses:
            sender.post(response)

    def _fail(
        self,
        command: Command,
        extra: Mapping[str, Any],
        outcome: str,
        *,
        timeout: float | None = None,
    ) -> str:
        """Log the failure with a short reference the caller can quote; return that reference."""
        ref = secrets.token_hex(4)
        self._count(command.name, outcome)
        if timeout is not None:
            log.error(
                "command %s timed out after %g s [ref %s]",
                command.name,
                timeout,
                ref,
                extra={**extra, "ref": ref},
            )
        else:
            log.exception(
                "command %s failed [ref %s]", command.name, ref, extra={**extra, "ref": ref}
            )
        return ref

    def _count(self, command: str, outcome: str) -> None:
        self._metrics.commands.labels(command, outcome).inc()


def _overview(commands: CommandTree) -> str:
    return "Commands:\n" + format_overview(commands) + "\nType help <command> for details."


def _usage(exc: UsageError) -> str:
    if exc.command is None:
        return f"{exc}\nType help to see the commands."
    return f"{exc}\n{format_usage(exc.command)}\nType help {exc.command.name} for details."


def _unknown(exc: UnknownCommand) -> str:
    if exc.subcommands:
        return "Did you mean one of these?\n" + format_overview(exc.subcommands)
    text = f"Unknown command {exc.text!r}."
    if exc.suggestions:
        text += " Did you mean " + " or ".join(repr(s) for s in exc.suggestions) + "?"
    return text + "\nType help to see the commands."
