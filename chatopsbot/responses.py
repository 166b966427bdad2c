"""What handlers return: frozen values that say what to post, never how Zoom spells it.

A handler returns one response, a sequence of them, or ``None``. The outbound layer renders each
one to Zoom's JSON (``chatopsbot.zoom.cards``) and sends it in the order it was produced.

- :class:`Text` and :class:`Card` post a new message. ``private=True`` shows it to the caller only
  (``visible_to_user`` in a channel, a plain message in a 1:1 chat); ``reply_to`` posts it in
  the thread of an earlier message.
- :class:`Edit` replaces the content of an earlier message, :class:`Delete` removes one.
- :class:`Post` sends any of them to another conversation (the way jobs and timers answer).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence

from attrs import field, frozen

from chatopsbot.values import Conversation


def _tuple(items: Iterable[object]) -> tuple[object, ...]:
    return tuple(items)


class ButtonStyle(enum.Enum):
    """The looks Zoom offers for a button."""

    PRIMARY = "Primary"
    DEFAULT = "Default"
    DANGER = "Danger"
    DISABLED = "Disabled"


@frozen
class Style:
    """Text styling for a head, sub-head or paragraph. Zoom ignores it when markdown is on."""

    color: str | None = None
    bold: bool = False
    italic: bool = False


@frozen
class Paragraph:
    """A block of text in a card (Zoom's ``message`` item); ``link`` makes the whole text a link."""

    text: str
    link: str | None = None
    style: Style | None = None


@frozen
class Field:
    """One key/value pair; ``short`` fields pair up in two columns."""

    key: str
    value: str
    short: bool = False
    editable: bool = False


@frozen
class Fields:
    """A list of key/value pairs (Zoom's ``fields`` item)."""

    items: tuple[Field, ...] = field(converter=_tuple)


@frozen
class Button:
    """A button; a click comes back as an ``interactive_message_actions`` event with ``value``."""

    text: str
    value: str
    style: ButtonStyle = ButtonStyle.DEFAULT


@frozen
class Actions:
    """A row of buttons; ``limit`` is how many show before the rest fold into a menu."""

    buttons: tuple[Button, ...] = field(converter=_tuple)
    limit: int | None = None


@frozen
class SelectOption:
    """One entry of a dropdown."""

    text: str
    value: str


@frozen
class Select:
    """A dropdown; a pick comes back as an ``interactive_message_select`` event."""

    text: str
    options: tuple[SelectOption, ...] = field(converter=_tuple)
    selected: SelectOption | None = None


@frozen
class Divider:
    """A horizontal rule between card items."""

    bold: bool = False
    dotted: bool = False
    color: str | None = None


@frozen
class Attachment:
    """A link to a file or page shown with a title, a description and an optional image."""

    url: str
    title: str
    description: str = ""
    image_url: str | None = None
    ext: str | None = None
    size: int | None = None


@frozen
class Section:
    """Items grouped under a coloured sidebar, with an optional footer."""

    items: tuple[CardItem, ...] = field(converter=_tuple)
    sidebar_color: str | None = None
    footer: str | None = None


CardItem = Paragraph | Fields | Actions | Select | Divider | Attachment | Section


@frozen
class Text:
    """A new message holding one paragraph of text (markdown when ``markdown=True``)."""

    text: str
    markdown: bool = False
    private: bool = False
    reply_to: str | None = None


@frozen
class Card:
    """A new message with a head, an optional sub-head and body items."""

    head: str | None = None
    sub_head: str | None = None
    body: tuple[CardItem, ...] = field(default=(), converter=_tuple)
    head_style: Style | None = None
    markdown: bool = False
    private: bool = False
    reply_to: str | None = None

    def __attrs_post_init__(self) -> None:
        if self.head is None and not self.body:
            raise ValueError("a card needs a head or at least one body item")
        if self.sub_head is not None and self.head is None:
            # Zoom's schema nests the sub-head inside the head: without one it would vanish.
            raise ValueError("a card's sub_head needs a head")


Content = Text | Card


@frozen
class Edit:
    """Replace the content of an earlier message (its id came from sending it, or from a click)."""

    message_id: str
    content: Content


@frozen
class Delete:
    """Remove an earlier message the bot sent."""

    message_id: str


Response = Text | Card | Edit | Delete


@frozen
class Post:
    """``response`` for ``conversation``: where a handler's result goes when it is not the
    conversation being answered. Jobs and timers, which answer no one, return these.

    ``visible_to`` (a user id) makes a private response visible to that user in a channel.
    ``on_behalf_of`` (a user JID: the subscriber, the lock holder) is who the message goes out
    for, sent to Zoom as ``user_jid``; a user-managed app needs it for channels.
    Returned, it is decided with the rest of the unit (written to the outbox in one
    transaction); ``await ctx.send_to(...)`` is the same, sent at once, with the message id.
    """

    conversation: Conversation
    response: Response
    visible_to: str | None = None
    on_behalf_of: str | None = None


Outgoing = Response | Post
HandlerResult = Outgoing | Sequence[Outgoing] | None


@frozen
class Sent:
    """What sending a message yields: Zoom's id for it, ``None`` if Zoom returned none."""

    message_id: str | None


def as_responses(result: object) -> tuple[Outgoing, ...]:
    """Normalise what a handler returned into a tuple, refusing anything that is not a response."""
    if result is None:
        return ()
    if isinstance(result, Text | Card | Edit | Delete | Post):
        return (result,)
    if isinstance(result, str | bytes) or not isinstance(result, Iterable):
        raise TypeError(f"a handler must return responses or None, not {type(result).__name__}")
    items = tuple(result)
    for item in items:
        if not isinstance(item, Text | Card | Edit | Delete | Post):
            raise TypeError(f"a handler returned a {type(item).__name__} among its responses")
    return items
