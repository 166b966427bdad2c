"""Plain values every layer shares: who acts, and where.

The bottom layer: it imports nothing from chatopsbot, so access rules, actions, commands and
contexts can all use these without importing each other.
"""

from __future__ import annotations

from attrs import frozen

__all__ = ["Conversation", "User"]


@frozen
class User:
    """A Zoom user: ``id`` is the user id, ``jid`` the chat address, ``name`` the display name.

    Rules and checks go by ``id`` or ``jid``; ``name`` is for display (anyone may take any).
    """

    id: str
    jid: str
    name: str


@frozen
class Conversation:
    """Where a message came from and where replies go.

    ``jid`` is a channel JID (``...@conference.xmpp.zoom.us``) or, in a 1:1 chat with the bot, the
    address Zoom gave for that chat. ``name`` is the channel name when Zoom sent one. Plugins may
    store it (``attrs.asdict``) to send there later, from a job or an HTTP hook.
    """

    account_id: str
    jid: str
    name: str = ""

    @property
    def is_channel(self) -> bool:
        """True in a channel, False in a 1:1 chat with the bot."""
        return "@conference." in self.jid
