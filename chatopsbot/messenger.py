"""Addressing for the outbound layer: who a response goes to, for whom, and when it is decided.

A :class:`ConversationSender` renders each response as it is produced (so a response Zoom could
never take fails in the handler's own context) and adds it to the :class:`Decisions` of the
unit of work it belongs to: one event, one job run, one HTTP hook call. The dispatcher writes a
unit's decisions to the outbox when the unit ends, in the same transaction that marks its event
handled. :meth:`ConversationSender.send` (``ctx.send``) writes everything decided so far at once,
in order, and waits for Zoom's answer.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from chatopsbot.audit import AuditEntry
from chatopsbot.clock import Clock
from chatopsbot.outbound.outbox import Outbox
from chatopsbot.outbound.sender import AUTHORS, CardRecord, card_versions, encode_call
from chatopsbot.responses import Card, Delete, Edit, Post, Response, Sent, Text
from chatopsbot.storage import Backend, NewMessage
from chatopsbot.values import Conversation
from chatopsbot.zoom.cards import ApiCall, RenderError, render, routes
from chatopsbot.zoom.client import ApiResult
from chatopsbot.zoom.unfurls import unfurl_call

__all__ = ["ConversationSender", "Decisions", "Messenger"]


class Decisions:
    """Messages one unit of work has decided to send and not yet written, in order."""

    def __init__(self) -> None:
        self._messages: list[NewMessage] = []
        #: What the unit did, for the audit log: written with its last messages.
        self.audit: list[AuditEntry] = []

    def add(self, message: NewMessage) -> None:
        """Decide ``message`` (written with the rest of the unit)."""
        self._messages.append(message)

    def take(self) -> list[NewMessage]:
        """Everything decided so far, emptying the list."""
        taken, self._messages = self._messages, []
        return taken

    def __len__(self) -> int:
        return len(self._messages)


class ConversationSender:
    """Sends responses for one conversation, in order, on behalf of one user (if any).

    ``caller_id`` is who sees the private responses; ``None`` where nobody asked (jobs, hooks).
    ``on_behalf`` is the JID of the user the messages go out for (Zoom's ``user_jid``);
    ``thread`` a message new messages reply to unless they name one themselves.
    """

    def __init__(
        self,
        messenger: Messenger,
        decisions: Decisions,
        *,
        conversation: Conversation,
        caller_id: str | None,
        log_extra: Mapping[str, Any],
        plugin: str | None,
        on_behalf: str | None = None,
        thread: str | None = None,
    ) -> None:
        self._messenger = messenger
        self._decisions = decisions
        self._conversation = conversation
        self._caller_id = caller_id
        self._log_extra = log_extra
        self._plugin = plugin
        self._on_behalf = on_behalf
        self._thread = thread

    def post(self, response: Response | Post) -> None:
        """Decide ``response``: it is written to the outbox when the unit of work ends.

        A :class:`~chatopsbot.Post` goes to its own conversation, in the same unit of work.
        """
        if isinstance(response, Post):
            elsewhere = ConversationSender(
                self._messenger,
                self._decisions,
                conversation=response.conversation,
                caller_id=response.visible_to,
                log_extra=self._log_extra,
                plugin=self._plugin,
                on_behalf=response.on_behalf_of or self._on_behalf,
            )
            elsewhere.post(response.response)
            return
        self._decisions.add(self._message(response))

    async def send(self, response: Response) -> Sent:
        """Decide ``response`` now (after anything decided before), wait until Zoom has it,
        and return its message id."""
        message = self._message(response)
        pending = [*self._decisions.take(), message]
        futures = await self._messenger.outbox.add(pending, wait=True)
        result: ApiResult = await futures[-1]
        if isinstance(response, Edit | Delete):
            return Sent(result.message_id or response.message_id)
        return Sent(result.message_id)

    def _message(self, response: Response) -> NewMessage:
        conversation = self._conversation
        if self._thread and isinstance(response, Text | Card) and response.reply_to is None:
            response = attrs.evolve(response, reply_to=self._thread)
        user_managed = self._messenger.app_type == "user"
        on_behalf = self._on_behalf
        if user_managed and on_behalf is None and not conversation.is_channel:
            # A 1:1 chat is with the user who installed the app (``user@.../robot_bot@...``).
            on_behalf = conversation.jid.partition("/")[0]
        if user_managed and on_behalf is None:
            raise RenderError(
                'a user-managed app ([zoom] app_type = "user") sends every message on behalf '
                "of a user: give the Post an on_behalf_of JID"
            )
        if (
            user_managed
            and on_behalf is not None
            and isinstance(response, Text | Card)
            and response.private
            and conversation.is_channel
        ):
            # A user-managed app has no visible_to_user: what only the user may see goes to
            # their 1:1 chat with the bot instead (a thread of the channel means nothing there).
            conversation = Conversation(conversation.account_id, on_behalf)
            response = attrs.evolve(response, reply_to=None)
        call = render(
            response,
            robot_jid=self._messenger.robot_jid,
            conversation=conversation,
            caller_id=self._caller_id,
        )
        if on_behalf is not None:
            call = _for_user(call, on_behalf)
        lane = conversation.jid
        meta: dict[str, Any] = {"log": dict(self._log_extra)}
        if self._plugin is not None and isinstance(response, Card | Edit | Delete):
            meta["author"] = self._plugin
            # What Zoom fills in (a member picked, a field edited) comes back with no value
            # of the plugin's: where it goes is kept with the card, not sent to Zoom.
            card_routes = routes(response)
            if card_routes:
                meta["routes"] = card_routes
        # Encoding here, in the handler's own context, makes a value JSON cannot carry (a
        # date, say) a handler error the caller hears about, not a loss in the outbox.
        return NewMessage(
            lane=lane,
            account=self._conversation.account_id,
            payload=encode_call(call),
            meta=json.dumps(meta, default=str, separators=(",", ":")),
        )


def _for_user(call: ApiCall, user_jid: str) -> ApiCall:
    """``call`` with Zoom's ``user_jid`` (in the body; a delete's in the query) unless set."""
    if call.method == "DELETE":
        return attrs.evolve(call, params={"user_jid": user_jid, **(call.params or {})})
    return attrs.evolve(call, body={"user_jid": user_jid, **(call.body or {})})


class Messenger:
    """Makes :class:`ConversationSender` objects for one bot (an ``Outlet`` for plugins).

    A messenger made with :meth:`for_unit` adds to that unit's decisions; the bot's own
    messenger gives every sender a unit of its own, written as soon as it is sent.
    """

    def __init__(
        self,
        outbox: Outbox,
        robot_jid: str,
        backend: Backend,
        clock: Clock,
        decisions: Decisions | None = None,
        *,
        app_type: str = "admin",
        on_behalf: str | None = None,
        thread: tuple[str, str] | None = None,
    ) -> None:
        self.outbox = outbox
        self.robot_jid = robot_jid
        #: ``[zoom] app_type``: ``"admin"`` or ``"user"`` (see :class:`ConversationSender`).
        self.app_type = app_type
        self._backend = backend
        self._clock = clock
        self._decisions = decisions
        self._on_behalf = on_behalf
        self._thread = thread

    def audit(self, entry: AuditEntry) -> None:
        """Record ``entry`` in the audit log with the unit's replies (a messenger made with
        :meth:`for_unit`: what is not a unit of work writes with :class:`AuditLog`)."""
        if self._decisions is None:
            raise RuntimeError("audit entries belong to a unit of work (Messenger.for_unit)")
        self._decisions.audit.append(entry)

    def for_unit(self, decisions: Decisions) -> Messenger:
        """A messenger whose senders add to ``decisions``."""
        return Messenger(
            self.outbox,
            self.robot_jid,
            self._backend,
            self._clock,
            decisions,
            app_type=self.app_type,
        )

    def within(
        self, *, on_behalf: str | None = None, thread: tuple[str, str] | None = None
    ) -> Messenger:
        """This messenger (same unit), its senders acting ``on_behalf`` of a user JID and
        answering in ``thread`` (a conversation JID and the message its replies go under)."""
        return Messenger(
            self.outbox,
            self.robot_jid,
            self._backend,
            self._clock,
            self._decisions,
            app_type=self.app_type,
            on_behalf=on_behalf or self._on_behalf,
            thread=thread or self._thread,
        )

    def to(
        self,
        conversation: Conversation,
        *,
        caller_id: str | None = None,
        log_extra: Mapping[str, Any] | None = None,
        plugin: str | None = None,
        on_behalf: str | None = None,
    ) -> ConversationSender:
        """A sender for ``conversation``; private responses are shown to ``caller_id``.

        With ``plugin``, the cards sent are remembered as that plugin's (see :meth:`author`).
        ``on_behalf`` (a user JID) is who the messages go out for, if not this messenger's.
        """
        thread = self._thread[1] if self._thread and self._thread[0] == conversation.jid else None
        return ConversationSender(
            self,
            self._decisions if self._decisions is not None else Decisions(),
            conversation=conversation,
            caller_id=caller_id,
            log_extra=log_extra or {"channel": conversation.name or conversation.jid},
            plugin=plugin,
            on_behalf=on_behalf or self._on_behalf,
            thread=thread,
        )

    def unfurl(
        self,
        conversation: Conversation,
        user_id: str,
        trigger_id: str,
        card: Card,
        log_extra: Mapping[str, Any],
    ) -> None:
        """Decide the unfurl of a link shared in ``conversation``: ``card`` shown under it
        (through Zoom's unfurl endpoint, queued, paced and retried like any message)."""
        if self._decisions is None:
            raise RuntimeError("an unfurl belongs to a unit of work (Messenger.for_unit)")
        call = unfurl_call(conversation.account_id, user_id, trigger_id, card)
        self._decisions.add(
            NewMessage(
                lane=conversation.jid,
                account=conversation.account_id,
                payload=encode_call(call),
                meta=json.dumps({"log": dict(log_extra)}, default=str, separators=(",", ":")),
            )
        )

    async def commit(
        self,
        messages: Sequence[NewMessage],
        *,
        settle: tuple[str, float] | None = None,
        audit: Sequence[AuditEntry] = (),
    ) -> None:
        """Write ``messages`` (a unit's decisions), settling the inbox key ``settle`` and
        recording the ``audit`` entries with them, in one transaction."""
        if messages or settle is not None or audit:
            await self.outbox.add(messages, settle=settle, audit=audit)

    async def forget_cards(self, account: str) -> int:
        """Delete what is remembered of the cards sent in ``account`` (who each private card
        was for, its values); return how many records went. Records written before cards
        named their account cannot be told apart and stay until they expire."""
        gone = 0
        for key, text in await self._backend.scan(AUTHORS, "", self._clock.timestamp()):
            if CardRecord.from_json(text).account == account:
                gone += int(await self._backend.delete(AUTHORS, key))
        return gone

    async def card(self, message_id: str) -> CardRecord | None:
        """What is remembered of the card ``message_id`` (its plugin, viewer and values)."""
        # One read: the card's record and its versions share the message id as a prefix.
        rows = dict(await self._backend.scan(AUTHORS, message_id, self._clock.timestamp()))
        text = rows.pop(message_id, None)
        if text is None:
            return None
        card = CardRecord.from_json(text)
        versions = card_versions(message_id)
        for key in sorted(k for k in rows if k.startswith(versions)):
            card = card.merge(CardRecord.from_json(rows[key]))
        return card
