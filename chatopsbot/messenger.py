"""Addressing for the outbound layer: who a response goes to, and on whose behalf.

:class:`Messenger` turns "this response, to this conversation, for this user" into a rendered API
call queued on the :class:`~chatopsbot.outbound.Outbox`. Commands, button clicks, scheduled jobs
and HTTP hooks all send through it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from chatopsbot.context import Conversation
from chatopsbot.outbound import Outbox
from chatopsbot.responses import Card, Delete, Edit, Response, Sent, Text
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


class Messenger:
    """Makes :class:`ConversationSender` objects for one bot (its JID and its outbox)."""

    def __init__(self, outbox: Outbox, robot_jid: str) -> None:
        self._outbox = outbox
        self._robot_jid = robot_jid

    def to(
        self,
        conversation: Conversation,
        *,
        caller_id: str | None = None,
        log_extra: Mapping[str, Any] | None = None,
    ) -> ConversationSender:
        """A sender for ``conversation``; private responses are shown to ``caller_id``."""
        return ConversationSender(
            self._outbox,
            robot_jid=self._robot_jid,
            conversation=conversation,
            caller_id=caller_id,
            log_extra=log_extra or {"channel": conversation.name or conversation.jid},
        )
