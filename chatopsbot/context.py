"""What a command handler receives: who asked, where, with which arguments, and a way to send.

Handlers never see aiohttp, Zoom's JSON or tokens; everything they may use is on :class:`Context`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from attrs import frozen

from chatopsbot.clock import Clock
from chatopsbot.responses import Response, Sent

if TYPE_CHECKING:
    from chatopsbot.commands import Command, CommandTree
    from chatopsbot.store import Store


@frozen
class User:
    """A Zoom user: ``id`` is the user id, ``jid`` the chat address, ``name`` the display name."""

    id: str
    jid: str
    name: str


@frozen
class Conversation:
    """Where a message came from and where replies go.

    ``jid`` is a channel JID (``...@conference.xmpp.zoom.us``) or, in a 1:1 chat with the bot, the
    address Zoom gave for that chat. ``name`` is the channel name when Zoom sent one.
    """

    account_id: str
    jid: str
    name: str = ""

    @property
    def is_channel(self) -> bool:
        """True in a channel, False in a 1:1 chat with the bot."""
        return "@conference." in self.jid


class Sender(Protocol):
    """The outbound layer as a handler sees it."""

    async def send(self, response: Response) -> Sent:
        """Send now (in order with everything else for this conversation) and wait for Zoom."""
        ...


@frozen
class Context:
    """Everything a handler gets for one command.

    ``args`` holds the parsed arguments and options by name; ``config`` is what the plugin's
    ``chatops_config`` hook returned for its ``[plugins.<name>]`` table (``None`` without one);
    ``store`` is the plugin's own storage.
    """

    caller: User
    conversation: Conversation
    command: Command
    args: Mapping[str, Any]
    config: Any
    log: logging.LoggerAdapter[logging.Logger]
    clock: Clock
    commands: CommandTree
    sender: Sender
    store: Store

    @property
    def account_id(self) -> str:
        """The Zoom account the command came from."""
        return self.conversation.account_id

    async def send(self, response: Response) -> Sent:
        """Send a response before the handler returns, and get its message id back.

        Use it for progress messages and for cards the handler edits later; returned responses
        are sent after everything sent this way.
        """
        return await self.sender.send(response)
