"""Who can act in the console and where: a few demo people, their channels and direct chats.

Ids follow the test kit's (``u-<name>``, ``<name>@xmpp.zoom.us``), so a config's access rules
written for the shell or the tests hold here too.
"""

from __future__ import annotations

from collections.abc import Mapping
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


def place(key: object, who: Person, channels: Mapping[str, str]) -> Place:
    """A channel by its key in ``channels`` (``#ops``; the ``#`` optional), or ``dm`` for
    ``who``'s direct chat with the bot."""
    if key == DM:
        return Place(who.jid, "")
    if isinstance(key, str):
        wanted = key if key.startswith("#") else f"#{key}"
        if wanted in channels:
            return Place(channels[wanted], channel_name(channels[wanted]))
    names = ", ".join([*channels, DM])
    raise CastError(f"place: expected one of {names}, got {key!r}")


def channel_jid(name: str) -> str:
    """The JID of the console channel ``name``."""
    return f"{name}@conference.xmpp.zoom.us"


def channel_name(jid: str) -> str:
    """What Zoom sends as ``channelName`` for a channel's JID (empty for anything else)."""
    return jid.split("@", 1)[0] if is_channel(jid) else ""


def is_channel(jid: str) -> bool:
    """Whether ``jid`` is a channel's (rather than a person's)."""
    return "@conference." in jid


def default_channels() -> dict[str, str]:
    """The channels every console has, by key."""
    return {f"#{name}": channel_jid(name) for name in CHANNELS}


def add_channel(channels: dict[str, str], jid: str) -> bool:
    """Add a channel the bot talks to (named in a config, or where it just posted) under
    ``#<name>``, or its whole JID if that name is taken; whether it was new."""
    if not is_channel(jid) or jid in channels.values():
        return False
    key = f"#{channel_name(jid)}"
    channels[jid if key in channels else key] = jid
    return True


def channels_in(table: object) -> list[str]:
    """Every channel JID named in a configuration table (on-call announcement channels...)."""
    if isinstance(table, str):
        return [table] if is_channel(table) and " " not in table else []
    if isinstance(table, Mapping):
        return [jid for value in table.values() for jid in channels_in(value)]
    if isinstance(table, list | tuple):
        return [jid for value in table for jid in channels_in(value)]
    return []


def places_json(channels: Mapping[str, str]) -> list[dict[str, str]]:
    """The places the page lists: each channel, then the direct chat."""
    return [{"key": key, "name": key, "jid": jid} for key, jid in channels.items()] + [
        {"key": DM, "name": "Direct message with the bot", "jid": ""}
    ]
