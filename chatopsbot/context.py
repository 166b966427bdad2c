"""What plugin code receives: who asked, where, with which arguments, and ways to answer.

Handlers never see aiohttp, Zoom's JSON or tokens; everything they may use is on a context.
:class:`PluginContext` holds what every kind of handler gets (config, store, log, clock,
sending, buttons); :class:`ConversationContext` the person acting (``actor``) and where;
:class:`Context` adds a command and its arguments, :class:`ActionContext` the card clicked.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Generic, Protocol

from attrs import field, frozen
from typing_extensions import TypeVar

from chatopsbot.clock import Clock
from chatopsbot.commands import UnknownCommand
from chatopsbot.responses import Button, ButtonStyle, Response, SelectOption, Sent
from chatopsbot.values import Conversation, User
from chatopsbot.zoom.events import Callback

#: What the plugin's ``chatops_config`` returned: ``Context[DeploySettings]`` types
#: ``ctx.config``; a bare ``Context`` leaves it ``Any``.
ConfigT = TypeVar("ConfigT", default=Any)

__all__ = [
    "ActionContext",
    "Context",
    "Conversation",
    "ConversationContext",
    "Outlet",
    "PluginContext",
    "Sender",
    "User",
]

if TYPE_CHECKING:
    from chatopsbot.access import AccessSettings
    from chatopsbot.actions import ActionCodec
    from chatopsbot.audit import AuditReader
    from chatopsbot.commands import Command, CommandTree
    from chatopsbot.scheduler import Timers
    from chatopsbot.store import Store


class Sender(Protocol):
    """The outbound layer for one conversation, as plugin code sees it."""

    async def send(self, response: Response) -> Sent:
        """Send now (in order with everything else for this conversation) and wait for Zoom."""
        ...


class Outlet(Protocol):
    """Gives a :class:`Sender` for any conversation."""

    def to(
        self,
        conversation: Conversation,
        *,
        caller_id: str | None = None,
        log_extra: Mapping[str, Any] | None = None,
        plugin: str | None = None,
        on_behalf: str | None = None,
    ) -> Sender:
        """A sender for ``conversation``; private responses are shown to ``caller_id``;
        ``on_behalf`` is the JID of the user the messages go out for."""
        ...


@frozen(kw_only=True)
class PluginContext(Generic[ConfigT]):
    """What every handler of a plugin gets, whatever called it.

    ``config`` is what the plugin's ``chatops_config`` hook returned for its
    ``[plugins.<name>]`` table (``None`` without the hook); ``store`` is its own storage;
    ``timers`` its one-shot timers (see ``chatopsbot.timer``).
    """

    plugin: str
    # Kept out of repr: a plugin's settings may hold tokens.
    config: ConfigT = field(repr=False)
    store: Store
    timers: Timers
    log: logging.LoggerAdapter[logging.Logger]
    clock: Clock
    # Machinery, not API: private (attrs still takes them as outlet= and codec=).
    _outlet: Outlet = field(alias="outlet")
    _codec: ActionCodec = field(alias="codec")
    #: The plugins' hooks, to call the ones a plugin offers others (``chatops_hookspecs``):
    #: ``await ctx.hooks.first(spec, **kwargs)`` (see :class:`~chatopsbot.HookCaller`).
    hooks: Any
    #: The bot's audit log, to read: who did what (``[audit] keep``); ``None`` outside a bot.
    audit: AuditReader | None = None

    async def send_to(
        self,
        conversation: Conversation,
        response: Response,
        *,
        visible_to: str | None = None,
        on_behalf_of: str | None = None,
    ) -> Sent:
        """Send ``response`` to any conversation (a channel or a 1:1 chat) and get its id.

        A private response (``private=True``) is shown to the user id ``visible_to`` only.
        ``on_behalf_of`` is the JID of the user it goes out for (a subscriber, a lock holder),
        sent to Zoom as ``user_jid``.
        """
        sender = self._outlet.to(
            conversation,
            caller_id=visible_to,
            log_extra={"plugin": self.plugin},
            plugin=self.plugin,
            on_behalf=on_behalf_of,
        )
        return await sender.send(response)

    def button(
        self,
        text: str,
        action: str,
        payload: str = "",
        style: ButtonStyle = ButtonStyle.DEFAULT,
        *,
        expires_in: float | timedelta | None = None,
    ) -> Button:
        """A button whose click reaches this plugin's ``action`` handler with ``payload``.

        It works on the card it is sent on only; with ``expires_in`` (seconds or a
        timedelta), only until then: a later click gets the "no longer works" reply.
        """
        return Button(text, self._value(action, payload, expires_in), style)

    def pseudonym(self, value: str) -> str:
        """A stable stand-in for ``value`` (say, a user id) that cannot be turned back into it
        without the bot's secret: store it where the value itself must not be kept."""
        return self._codec.pseudonym(self.plugin, value)

    def option(
        self,
        text: str,
        action: str,
        payload: str = "",
        *,
        expires_in: float | timedelta | None = None,
    ) -> SelectOption:
        """A dropdown option whose pick reaches this plugin's ``action`` with ``payload``."""
        return SelectOption(text, self._value(action, payload, expires_in))

    def action_id(
        self, action: str, payload: str = "", *, expires_in: float | timedelta | None = None
    ) -> str:
        """The signed ``action_id`` of an element whose value the user or Zoom chooses (a
        picker, an input, a member or channel select, an editable text or field): what they
        choose reaches this plugin's ``action`` with ``payload`` (in a form, the field's name:
        ``ctx.form[payload]``)."""
        return self._value(action, payload, expires_in)

    def _value(self, action: str, payload: str, expires_in: float | timedelta | None) -> str:
        if isinstance(expires_in, timedelta):
            expires_in = expires_in.total_seconds()
        expires_at = None if expires_in is None else self.clock.timestamp() + expires_in
        return self._codec.encode(self.plugin, action, payload, expires_at=expires_at)


@frozen(kw_only=True)
class ConversationContext(PluginContext[ConfigT]):
    """What handlers started by a person in a conversation share: who acts (``actor``, the
    same name for a command's caller and a button's clicker), where, and how to answer."""

    actor: User
    conversation: Conversation
    _sender: Sender = field(alias="sender")
    _access: AccessSettings = field(alias="access")

    @property
    def account_id(self) -> str:
        """The Zoom account the event came from."""
        return self.conversation.account_id

    @property
    def actor_is_admin(self) -> bool:
        """Whether the person acting is one of the bot's admins (``[access] admins``)."""
        return self._access.is_admin(self.actor)

    async def send(self, response: Response) -> Sent:
        """Send a response in this conversation now and get its message id back.

        Use it for progress messages and for cards the handler edits later; returned responses
        are sent after everything sent this way.
        """
        return await self._sender.send(response)


@frozen(kw_only=True)
class Context(ConversationContext[ConfigT]):
    """Everything a command handler gets: who called (``actor``), the conversation and the
    parsed ``args``."""

    command: Command
    args: Mapping[str, Any]
    _commands: CommandTree = field(alias="commands")

    def runnable(self) -> list[Command]:
        """The commands the actor may run here, by name (what ``help`` lists)."""
        return [c for c in self._commands if self.may_run(c)]

    def lookup(self, words: Sequence[str]) -> tuple[Command, list[str]]:
        """The command ``words`` start with, and the words after it, if the actor may run it;
        :class:`~chatopsbot.commands.UnknownCommand` otherwise (listing only the subcommands
        the actor may run), so what they may not run stays unseen."""
        try:
            found, rest = self._commands.resolve(words)
        except UnknownCommand as exc:
            raise self._commands.narrow(exc, self.may_run) from None
        if not self.may_run(found):
            raise UnknownCommand(" ".join(words))
        return found, rest

    def may_run(self, command: Command) -> bool:
        """Whether the actor may run ``command`` here (what ``help`` lists)."""
        return self._access.permits(command, self.actor, self.conversation)


@frozen(kw_only=True)
class ActionContext(ConversationContext[ConfigT]):
    """What an action handler gets: who clicked, where, on which message, with which payload.

    ``message_id`` is the card clicked on (return ``Edit(ctx.message_id, ...)`` to update it);
    ``original`` its content as Zoom sent it back; ``payload`` what the button carried;
    ``values`` every payload picked, for a dropdown (``(old, new)`` for a form field edit;
    what Zoom filled in for a member or channel select, a picker or an input); ``form`` the
    values of a submitted form, by name.
    ``callback`` is Zoom's one-time answer address (``url``, ``token``) when the event carried
    one: a reply posted there within 30 minutes, by the plugin itself, needs no bot token.
    """

    message_id: str
    original: Mapping[str, Any]
    action: str
    payload: str
    values: tuple[str, ...]
    #: A submitted form's values, by each element's ``action_id`` payload (its name); a
    #: checkbox group's ticked values, a picker's ISO date or ``HH:MM`` time, an input's text.
    form: Mapping[str, tuple[str, ...]] = field(factory=dict)
    callback: Callback | None = None
