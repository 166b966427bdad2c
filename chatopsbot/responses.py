"""What handlers return: frozen values that say what to post, never how Zoom spells it.

A handler returns one response, a sequence of them, or ``None``. The outbound layer renders each
one to Zoom's JSON (``chatopsbot.zoom.cards``) and sends it in the order it was produced.

- :class:`Text` and :class:`Card` post a new message. ``private=True`` shows it to the caller only
  (``visible_to_user`` in a channel, a plain message in a 1:1 chat); ``reply_to`` posts it in
  the thread of an earlier message.
- :class:`Edit` replaces the content of an earlier message, :class:`Delete` removes one.
- :class:`Post` sends any of them to another conversation (the way jobs and timers answer).

A card's body is built from one class per Zoom card element (:data:`CardItem`, and
:class:`Pages` at the top). Each checks itself when built and raises :class:`CardError` naming
the element and what is wrong, so a card Zoom would refuse never leaves the handler.
"""

from __future__ import annotations

import datetime
import enum
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import attrs
from attrs import field, frozen

from chatopsbot.errors import ChatopsbotError
from chatopsbot.markdown import MAX_TEXT, split_text
from chatopsbot.values import Conversation


def _tuple(items: Iterable[object]) -> tuple[object, ...]:
    return tuple(items)


#: Zoom documents no limit for a button's or an option's value (it comes back in the click).
#: This cap is ours, generous against what ``ctx.button`` makes (about 300 bytes at most), and
#: keeps a card from carrying documents in its values.
MAX_VALUE_BYTES = 1024


class CardError(ChatopsbotError, ValueError):
    """A card element Zoom would refuse or could not route back; the message names it."""


def _label(kind: str, name: str) -> str:
    shown = name if len(name) <= 40 else name[:37] + "..."
    return f"{kind} {shown!r}" if name else kind


def _fail(kind: str, name: str, problem: str) -> CardError:
    return CardError(f"{_label(kind, name)}: {problem}")


def _check_value(kind: str, name: str, value: str) -> None:
    size = len(value.encode())
    if size > MAX_VALUE_BYTES:
        raise _fail(kind, name, f"value is {size:,} bytes, over the limit of {MAX_VALUE_BYTES:,}")


def _check_action_id(kind: str, name: str, action_id: str) -> None:
    if not action_id:
        raise _fail(kind, name, "no action_id: make one with ctx.action_id(action, payload)")
    _check_value(kind, name, action_id)


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
    """A block of text in a card (Zoom's ``message`` item); ``link`` makes the whole text a link.

    ``markdown`` sets Zoom's per-element ``is_markdown_support`` (``None``: the card's choice).
    ``editable=True`` lets people edit the text in place; the edit reaches the plugin's action
    named by ``action_id`` (``ctx.action_id("rename")``), or its ``message_edited`` action.
    """

    text: str
    link: str | None = None
    style: Style | None = None
    editable: bool = False
    markdown: bool | None = None
    action_id: str | None = None

    def __attrs_post_init__(self) -> None:
        if self.markdown and self.link:
            # Zoom answers 7001 "Invalid request body format" to this combination.
            raise _fail("Paragraph", self.text, "markdown and link cannot be combined")
        if self.action_id is not None:
            if not self.editable:
                raise _fail("Paragraph", self.text, "an action_id needs editable=True")
            _check_action_id("Paragraph", self.text, self.action_id)


@frozen
class Field:
    """One key/value pair; ``short`` fields pair up in two columns.

    ``editable=True`` makes the value a form field; an edit reaches the plugin's action named
    by ``action_id``, or its ``field_edited`` action.
    """

    key: str
    value: str
    short: bool = False
    editable: bool = False
    action_id: str | None = None

    def __attrs_post_init__(self) -> None:
        if not self.key:
            raise _fail("Field", "", "no key")
        if self.action_id is not None:
            if not self.editable:
                raise _fail("Field", self.key, "an action_id needs editable=True")
            _check_action_id("Field", self.key, self.action_id)


@frozen
class Fields:
    """A list of key/value pairs (Zoom's ``fields`` item)."""

    items: tuple[Field, ...] = field(converter=_tuple)

    def __attrs_post_init__(self) -> None:
        if not self.items:
            raise _fail("Fields", "", "no fields")
        keys = [f.key for f in self.items if f.editable]
        for key in keys:
            if keys.count(key) > 1:
                # An edit names its field by key only: two editable fields with one key
                # could not be told apart.
                raise _fail("Field", key, "two editable fields share this key")


@frozen
class Button:
    """A button; a click comes back as an ``interactive_message_actions`` event with ``value``."""

    text: str
    value: str
    style: ButtonStyle = ButtonStyle.DEFAULT

    def __attrs_post_init__(self) -> None:
        if not self.text.strip():
            raise _fail("Button", self.text, "no text")
        if not self.value:
            raise _fail("Button", self.text, "no value")
        _check_value("Button", self.text, self.value)


@frozen
class Actions:
    """A row of buttons; ``limit`` is how many show before the rest fold into a menu."""

    buttons: tuple[Button, ...] = field(converter=_tuple)
    limit: int | None = None

    def __attrs_post_init__(self) -> None:
        if not self.buttons:
            raise _fail("Actions", "", "no buttons")
        if self.limit is not None and self.limit < 1:
            raise _fail("Actions", "", f"limit {self.limit} shows no button; use 1 or more")


@frozen
class SelectOption:
    """One entry of a dropdown, or of a group of radio buttons."""

    text: str
    value: str

    def __attrs_post_init__(self) -> None:
        if not self.text.strip():
            raise _fail("Option", self.value, "no text")
        _check_value("Option", self.text, self.value)


def _check_options(kind: str, name: str, options: tuple[SelectOption | Checkbox, ...]) -> None:
    if not options:
        raise _fail(kind, name, "no options")
    values = [o.value for o in options]
    for option in options:
        if values.count(option.value) > 1:
            # The pick comes back as a value only: two options with one could not be told apart.
            raise _fail(kind, name, f"options {option.text!r} and others share a value")


@frozen
class Select:
    """A dropdown of the plugin's options (``ctx.option(...)``); a pick comes back as an
    ``interactive_message_select`` event."""

    text: str
    options: tuple[SelectOption, ...] = field(converter=_tuple)
    selected: SelectOption | None = None

    def __attrs_post_init__(self) -> None:
        _check_options("Select", self.text, self.options)
        if self.selected is not None and self.selected not in self.options:
            raise _fail("Select", self.text, f"selected {self.selected.text!r} is not an option")


@frozen
class MemberSelect:
    """A dropdown of the channel's members, filled by Zoom (``static_source: "members"``).

    Zoom chooses the values (who was picked), so the handler is named by ``action_id``
    (``ctx.action_id("assign", payload)``), which the bot keeps with the card it sent; the
    handler gets the picked values in ``ctx.values``. A card holds at most one select filled
    by Zoom: Zoom's event does not say which select was used.
    """

    text: str
    action_id: str

    def __attrs_post_init__(self) -> None:
        _check_action_id("MemberSelect", self.text, self.action_id)


@frozen
class ChannelSelect:
    """A dropdown of the user's channels, filled by Zoom (``static_source: "channels"``);
    routed like :class:`MemberSelect`."""

    text: str
    action_id: str

    def __attrs_post_init__(self) -> None:
        _check_action_id("ChannelSelect", self.text, self.action_id)


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

    def __attrs_post_init__(self) -> None:
        if not self.url:
            raise _fail("Attachment", self.title, "no url")
        if not self.title:
            raise _fail("Attachment", self.url, "no title")
        if self.size is not None and self.size < 0:
            raise _fail("Attachment", self.title, f"size {self.size} is negative")


@frozen
class File:
    """A file to download: a title linking to ``url``, a description and an icon."""

    title: str
    url: str
    description: str = ""
    icon_url: str | None = None

    def __attrs_post_init__(self) -> None:
        if not self.title:
            raise _fail("File", self.url, "no title")
        if not self.url:
            raise _fail("File", self.title, "no url")


@frozen
class ProgressBar:
    """A progress bar at ``value`` percent (0 to 100)."""

    value: float

    def __attrs_post_init__(self) -> None:
        if not 0 <= self.value <= 100:
            raise _fail("ProgressBar", "", f"value {self.value!r} is not between 0 and 100")


@frozen
class DatePicker:
    """A date picker; the chosen date reaches the action named by ``action_id``."""

    action_id: str
    initial: datetime.date | None = None

    def __attrs_post_init__(self) -> None:
        _check_action_id("DatePicker", "", self.action_id)


@frozen
class TimePicker:
    """A time picker (hours and minutes); the chosen time reaches ``action_id``'s action."""

    action_id: str
    initial: datetime.time | None = None

    def __attrs_post_init__(self) -> None:
        _check_action_id("TimePicker", "", self.action_id)


@frozen
class RadioButtons:
    """One choice among ``options``; the chosen value reaches ``action_id``'s action."""

    action_id: str
    options: tuple[SelectOption, ...] = field(converter=_tuple)
    initial: SelectOption | None = None

    def __attrs_post_init__(self) -> None:
        name = self.options[0].text if self.options else ""
        _check_action_id("RadioButtons", name, self.action_id)
        _check_options("RadioButtons", name, self.options)
        if self.initial is not None and self.initial not in self.options:
            raise _fail("RadioButtons", name, f"initial {self.initial.text!r} is not an option")


@frozen
class Checkbox:
    """One box of a :class:`Checkboxes` group; ``selected`` ticks it to begin with."""

    text: str
    value: str
    selected: bool = False

    def __attrs_post_init__(self) -> None:
        if not self.text.strip():
            raise _fail("Checkbox", self.value, "no text")
        _check_value("Checkbox", self.text, self.value)


@frozen
class Checkboxes:
    """Boxes to tick (``switch=True``: drawn as switches); the ticked values reach
    ``action_id``'s action."""

    action_id: str
    options: tuple[Checkbox, ...] = field(converter=_tuple)
    switch: bool = False

    def __attrs_post_init__(self) -> None:
        name = self.options[0].text if self.options else ""
        _check_action_id("Checkboxes", name, self.action_id)
        _check_options("Checkboxes", name, self.options)


class AlertLevel(enum.Enum):
    """How an :class:`Alert` is coloured."""

    INFO = "info"
    SUCCESS = "success"
    WARNING = "warning"
    ERROR = "error"


@frozen
class Alert:
    """A coloured notice; ``closable`` lets the reader dismiss it."""

    text: str
    level: AlertLevel = AlertLevel.INFO
    closable: bool = False

    def __attrs_post_init__(self) -> None:
        if not self.text.strip():
            raise _fail("Alert", "", "no text")


@frozen
class Image:
    """One picture of :class:`Images`; ``alt_text`` is what a screen reader says."""

    url: str
    alt_text: str = ""

    def __attrs_post_init__(self) -> None:
        if not self.url:
            raise _fail("Image", self.alt_text, "no url")


@frozen
class Images:
    """One picture, or several to flip through; ``current`` is the one shown first."""

    images: tuple[Image, ...] = field(converter=_tuple)
    current: int = 0

    def __attrs_post_init__(self) -> None:
        if not self.images:
            raise _fail("Images", "", "no images")
        if not 0 <= self.current < len(self.images):
            raise _fail(
                "Images", "", f"current {self.current} is not an index of {len(self.images)}"
            )


@frozen
class TextInput:
    """A text box (Zoom's ``plain_text_input``) labelled ``text``; what is typed reaches
    ``action_id``'s action when the form is submitted."""

    action_id: str
    text: str
    value: str = ""
    placeholder: str = ""
    multiline: bool = False
    min_length: int | None = None
    max_length: int | None = None

    def __attrs_post_init__(self) -> None:
        _check_action_id("TextInput", self.text, self.action_id)
        low, high = self.min_length, self.max_length
        if low is not None and low < 0:
            raise _fail("TextInput", self.text, f"min_length {low} is negative")
        if high is not None and high < 1:
            raise _fail("TextInput", self.text, f"max_length {high} allows no text")
        if low is not None and high is not None and low > high:
            raise _fail("TextInput", self.text, f"min_length {low} is over max_length {high}")
        if high is not None and len(self.value) > high:
            raise _fail("TextInput", self.text, f"value is over max_length {high}")


@frozen
class Video:
    """A video to play in the card, with its title, thumbnail, author and provider."""

    title: str
    video_url: str
    thumbnail_url: str | None = None
    title_url: str | None = None
    author_name: str | None = None
    provider_name: str | None = None
    provider_icon_url: str | None = None
    action_id: str | None = None
    markdown: bool = False

    def __attrs_post_init__(self) -> None:
        if not self.title:
            raise _fail("Video", self.video_url, "no title")
        if not self.video_url:
            raise _fail("Video", self.title, "no video_url")
        if self.action_id is not None:
            _check_value("Video", self.title, self.action_id)


@frozen
class Section:
    """Items grouped under a coloured sidebar, with an optional footer (``footer_icon`` an
    image URL, ``timestamp`` shown beside it)."""

    items: tuple[CardItem, ...] = field(converter=_tuple)
    sidebar_color: str | None = None
    footer: str | None = None
    footer_icon: str | None = None
    timestamp: datetime.datetime | None = None

    def __attrs_post_init__(self) -> None:
        if not self.items:
            raise _fail("Section", self.footer or "", "no items")
        for item in self.items:
            if isinstance(item, Pages):
                raise _fail("Section", self.footer or "", "pages go at the top of a card body")
        if self.timestamp is not None and self.timestamp.tzinfo is None:
            raise _fail("Section", self.footer or "", "timestamp needs a time zone")


CardItem = (
    Paragraph
    | Fields
    | Actions
    | Select
    | MemberSelect
    | ChannelSelect
    | Divider
    | Attachment
    | File
    | ProgressBar
    | DatePicker
    | TimePicker
    | RadioButtons
    | Checkboxes
    | Alert
    | Images
    | TextInput
    | Video
    | Section
)


@frozen
class Page:
    """One page of :class:`Pages`."""

    body: tuple[CardItem, ...] = field(converter=_tuple)

    def __attrs_post_init__(self) -> None:
        if not self.body:
            raise _fail("Page", "", "no items")


@frozen
class Pages:
    """Pages the reader turns through; ``current`` (from 1) is shown first."""

    pages: tuple[Page, ...] = field(converter=_tuple)
    current: int = 1

    def __attrs_post_init__(self) -> None:
        if not self.pages:
            raise _fail("Pages", "", "no pages")
        if not 1 <= self.current <= len(self.pages):
            raise _fail("Pages", "", f"current {self.current} is not a page of {len(self.pages)}")
        for page in self.pages:
            for item in page.body:
                if isinstance(item, Pages):
                    raise _fail("Pages", "", "pages cannot hold pages")


def walk(items: Iterable[CardItem | Pages]) -> Iterator[CardItem]:
    """Every element of a card body, sections and pages opened, in order."""
    for item in items:
        if isinstance(item, Pages):
            for page in item.pages:
                yield from walk(page.body)
        elif isinstance(item, Section):
            yield item
            yield from walk(item.items)
        else:
            yield item


def _check_card(name: str, body: tuple[CardItem | Pages, ...], markdown: bool) -> None:
    zoom_filled = [i for i in walk(body) if isinstance(i, MemberSelect | ChannelSelect)]
    if len(zoom_filled) > 1:
        raise _fail(
            "Card",
            name,
            "more than one member or channel select: Zoom's event would not say which was used",
        )
    editable_texts = [i.text for i in walk(body) if isinstance(i, Paragraph) and i.editable]
    for text in editable_texts:
        if editable_texts.count(text) > 1:
            raise _fail("Paragraph", text, "two editable paragraphs with the same text")
    if markdown:
        for item in walk(body):
            if isinstance(item, Paragraph) and item.link and item.markdown is not False:
                raise _fail(
                    "Paragraph", item.text, "a link in a markdown card needs markdown=False"
                )
            if isinstance(item, Fields):
                for f in item.items:
                    if f.editable:
                        raise _fail(
                            "Field", f.key, "an editable field cannot be in a markdown card"
                        )


@frozen
class Text:
    """A new message holding one paragraph of text (markdown when ``markdown=True``)."""

    text: str
    markdown: bool = False
    private: bool = False
    reply_to: str | None = None


@frozen
class Card:
    """A new message with a head, an optional sub-head and body items.

    ``markdown`` turns on Zoom's markdown for the head, sub-head, texts, field values and
    footers (``escape_markdown`` keeps user text literal). ``settings`` is Zoom's card
    ``settings`` object, passed as given.
    """

    head: str | None = None
    sub_head: str | None = None
    body: tuple[CardItem | Pages, ...] = field(default=(), converter=_tuple)
    head_style: Style | None = None
    markdown: bool = False
    private: bool = False
    reply_to: str | None = None
    sub_head_style: Style | None = None
    settings: Mapping[str, Any] | None = None

    def __attrs_post_init__(self) -> None:
        if self.head is None and not self.body:
            raise ValueError("a card needs a head or at least one body item")
        if self.sub_head is not None and self.head is None:
            # Zoom's schema nests the sub-head inside the head: without one it would vanish.
            raise ValueError("a card's sub_head needs a head")
        if self.sub_head_style is not None and self.sub_head is None:
            raise _fail("Card", self.head or "", "sub_head_style without a sub_head")
        _check_card(self.head or "", self.body, self.markdown)


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
    """Normalise what a handler returned into a tuple, refusing anything that is not a response.

    A :class:`Text` longer than Zoom takes (:data:`chatopsbot.markdown.MAX_TEXT`) becomes
    several, in order.
    """
    if result is None:
        return ()
    if isinstance(result, Text | Card | Edit | Delete | Post):
        return _split((result,))
    if isinstance(result, str | bytes) or not isinstance(result, Iterable):
        raise TypeError(f"a handler must return responses or None, not {type(result).__name__}")
    items = tuple(result)
    for item in items:
        if not isinstance(item, Text | Card | Edit | Delete | Post):
            raise TypeError(f"a handler returned a {type(item).__name__} among its responses")
    return _split(items)


def _split(items: tuple[Outgoing, ...]) -> tuple[Outgoing, ...]:
    out: list[Outgoing] = []
    for item in items:
        text = item.response if isinstance(item, Post) else item
        if not isinstance(text, Text) or len(text.text) <= MAX_TEXT:
            out.append(item)
            continue
        for part in split_text(text.text, MAX_TEXT):
            piece = attrs.evolve(text, text=part)
            out.append(attrs.evolve(item, response=piece) if isinstance(item, Post) else piece)
    return tuple(out)
