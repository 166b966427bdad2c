"""Addressing for the outbound layer: who a response goes to, and on whose behalf.

:class:`Messenger` turns "this response, to this conversation, for this user" into a rendered API
call queued on the :class:`~chatopsbot.outbound.Outbox`. Commands, button clicks, scheduled jobs
and HTTP hooks all send through it.
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Callable, Mapping
from typing import Any

from chatopsbot.clock import Clock
from chatopsbot.context import Conversation
from chatopsbot.outbound import Outbox
from chatopsbot.responses import Card, Delete, Edit, Response, Sent, Text
from chatopsbot.store import Backend
from chatopsbot.zoom.cards import render
from chatopsbot.zoom.client import ApiResult


class ConversationSender:
    """Sends responses for one conversation, in order, on behalf of one user (if any).

    ``caller_id`` is who sees the private responses; ``None`` where nobody asked (jobs, hooks).
    """

    def __init__(
        self,
        outbox: Outbox,
        *,
        robot_jid: str,
        conversation: Conversation,
        caller_id: str | None,
        log_extra: Mapping[str, Any],
        on_card: Callable[[str], None] | None = None,
    ) -> None:
        self._outbox = outbox
        self._robot_jid = robot_jid
        self._conversation = conversation
        self._caller_id = caller_id
        self._log_extra = log_extra
        self._on_card = on_card

    def post(self, response: Response) -> asyncio.Future[ApiResult]:
        """Queue ``response`` and return the future of Zoom's answer (awaiting it is optional)."""
        call = render(
            response,
            robot_jid=self._robot_jid,
            conversation=self._conversation,
            caller_id=self._caller_id,
        )
        # Fail here, in the handler's own context (the caller gets a reference), rather than
        # later in the outbox: a value JSON cannot carry (a date, say) is a handler bug.
        json.dumps(call.body)
        key = self._conversation.jid
        if isinstance(response, Text | Card) and response.to_jid:
            key = response.to_jid
        future = self._outbox.submit(call, key=key, log_extra=self._log_extra)
        if self._on_card is not None and isinstance(response, Card):
            future.add_done_callback(self._card_sent)
        return future

    def _card_sent(self, future: asyncio.Future[ApiResult]) -> None:
        if self._on_card is not None and not future.cancelled() and future.exception() is None:
            message_id = future.result().message_id
            if message_id:
                self._on_card(message_id)

    async def send(self, response: Response) -> Sent:
        """Queue ``response``, wait until Zoom has it, and return its message id."""
        result = await self.post(response)
        if isinstance(response, Edit | Delete):
            return Sent(result.message_id or response.message_id)
        return Sent(result.message_id)


#: Which plugin sent which card, so edits of its form fields find their way back.
AUTHORS = "chatopsbot:card-authors"
#: How long a card's author is remembered: form edits on older cards are not routed.
AUTHOR_DAYS = 90


class Messenger:
    """Makes :class:`ConversationSender` objects for one bot, and remembers who sent each card."""

    def __init__(self, outbox: Outbox, robot_jid: str, backend: Backend, clock: Clock) -> None:
        self._outbox = outbox
        self._robot_jid = robot_jid
        self._backend = backend
        self._clock = clock
        self._writes: set[asyncio.Task[None]] = set()

    def to(
        self,
        conversation: Conversation,
        *,
        caller_id: str | None = None,
        log_extra: Mapping[str, Any] | None = None,
        plugin: str | None = None,
    ) -> ConversationSender:
        """A sender for ``conversation``; private responses are shown to ``caller_id``.

        With ``plugin``, the cards sent are remembered as that plugin's (see :meth:`author`).
        """
        return ConversationSender(
            self._outbox,
            robot_jid=self._robot_jid,
            conversation=conversation,
            caller_id=caller_id,
            log_extra=log_extra or {"channel": conversation.name or conversation.jid},
            on_card=None if plugin is None else functools.partial(self._remember, plugin),
        )

    async def author(self, message_id: str) -> str | None:
        """The plugin that sent the card ``message_id``, if it is remembered."""
        return await self._backend.get(AUTHORS, message_id, self._clock.timestamp())

    async def flush(self) -> None:
        """Wait for the authors being written (on shutdown)."""
        if self._writes:
            await asyncio.gather(*self._writes, return_exceptions=True)

    def _remember(self, plugin: str, message_id: str) -> None:
        expires = self._clock.timestamp() + AUTHOR_DAYS * 86400
        task = asyncio.get_running_loop().create_task(
            self._backend.put(AUTHORS, message_id, plugin, expires)
        )
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)
