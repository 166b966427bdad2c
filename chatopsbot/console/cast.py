"""Who can act in the console and where: a few demo people, their channels and direct chats.

Ids follow the test kit's (``u-<name>``, ``<name>@xmpp.zoom.us``), so a config's access rules
written for the shell or the tests hold here too.
"""

from __future__ import annotations

from typing import Any

from attrs import frozen

#: The channels the console shows; a direct chat with the bot is the place ``dm``.
CHANNELS = ("ops", "deploys", "random")
DM = "dm"


class CastError(ValueError):
    """An unknown person or place; ``str()`` says which and what exists."""


@frozen
class Person:
    """A demo user."""

    key: str
    name: str
    admin: bool = False

    @property
    def id(self) -> str:
        """The Zoom user id events carry (``userId``)."""
        return f"u-{self.key}"

    @property
    def jid(self) -> str:
        """The user's JID, also the conversation of a direct chat with the bot."""
        return f"{self.key}@xmpp.zoom.us"

    def as_json(self) -> dict[str, Any]:
        """What the page shows in the "who you are" switch."""
        return {
            "key": self.key,
            "name": self.name,
            "id": self.id,
            "jid": self.jid,
            "admin": self.admin,
        }


#: Alice is an admin (admin-only commands can be tried); Bob and Carol show what others see.
PEOPLE = (Person("alice", "Alice", admin=True), Person("bob", "Bob"), Person("carol", "Carol"))


@frozen
class Place:
    """Where a person types: a channel (``channel_name`` set) or the direct chat with the bot."""

    jid: str
    channel_name: str

    @property
    def is_channel(self) -> bool:
        """Whether this is a channel rather than a direct chat."""
        return bool(self.channel_name)


def person(key: object) -> Person:
    """The demo person called ``key``; :class:`CastError` naming the known ones otherwise."""
    for known in PEOPLE:
        if known.key == key:
            return known
    names = ", ".join(p.key for p in PEOPLE)
    raise CastError(f"user: expected one of {names}, got {key!r}")


def place(key: object, who: Person) -> Place:
    """``#ops`` (or ``ops``) for a channel, ``dm`` for ``who``'s direct chat with the bot."""
    if key == DM:
        return Place(who.jid, "")
    name = key.lstrip("#") if isinstance(key, str) else key
    if name in CHANNELS:
        return Place(channel_jid(str(name)), str(name))
    names = ", ".join([*(f"#{c}" for c in CHANNELS), DM])
    raise CastError(f"place: expected one of {names}, got {key!r}")


def channel_jid(name: str) -> str:
    """The JID of the console channel ``name``."""
    return f"{name}@conference.xmpp.zoom.us"


def places_json() -> list[dict[str, str]]:
    """The places the page lists: each channel, then the direct chat."""
    return [{"key": f"#{c}", "name": f"#{c}", "jid": channel_jid(c)} for c in CHANNELS] + [
        {"key": DM, "name": "Direct message with the bot", "jid": ""}
    ]
