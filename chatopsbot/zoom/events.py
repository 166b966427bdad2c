"""Zoom's webhook bodies parsed into typed values, and nothing else reads Zoom's event JSON.

Chatbot events use camelCase (``accountId``, ``toJid``); ``app_deauthorized`` and the
``team_chat.*`` events (mentions, shared links, the bot added to or removed from a channel) use
snake_case and name users and channels by id, not JID: :func:`user_jid` and :func:`channel_jid`
derive the addresses replies need.
:func:`parse_event` turns raw bytes into one of the classes below or raises :class:`EventError`
with a reason fit for a log line and a 400 answer.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

import attrs
from attrs import field, frozen

from chatopsbot.errors import ChatopsbotError
from chatopsbot.jsonbody import BodyError, load_json

log = logging.getLogger("chatopsbot.zoom.events")


class EventError(ChatopsbotError, ValueError):
    """A webhook body that is not a well-formed Zoom event; the message says what is wrong."""


@frozen
class UrlValidation:
    """Zoom checking that the endpoint is ours (``endpoint.url_validation``)."""

    plain_token: str


@frozen
class ChatEvent:
    """What every chatbot event carries: the account, the conversation and the user."""

    account_id: str
    robot_jid: str
    to_jid: str
    user_id: str
    user_jid: str
    user_name: str
    channel_name: str
    timestamp: int

    @property
    def dedupe_key(self) -> str:
        """Identifies one delivery's content, so a redelivery of it can be recognised."""
        return "|".join(
            (
                type(self).__name__,
                self.account_id,
                self.to_jid,
                self.user_jid,
                str(self.timestamp),
                *self._identity(),
            )
        )

    def _identity(self) -> tuple[str, ...]:
        return ()


@frozen
class BotNotification(ChatEvent):
    """A slash command or a 1:1 message to the bot; ``cmd`` is the text after the slash command."""

    cmd: str
    trigger_id: str = ""

    def _identity(self) -> tuple[str, ...]:
        return (self.trigger_id, self.cmd)


@frozen
class Callback:
    """Zoom's one-time answer address for an interactive event (``callback_url`` with the
    bearer ``callback_token``), usable once within 30 minutes. The token stays out of reprs
    and logs: it authorises a post."""

    url: str
    token: str = field(repr=False)


@frozen
class InteractiveEvent(ChatEvent):
    """A user acted on a card the bot sent: ``message_id`` names it, ``original`` is its content.

    ``callback`` is Zoom's one-time answer address when the event carried one.
    """

    message_id: str
    original: Mapping[str, Any]
    callback: Callback | None = field(default=None, kw_only=True)


@frozen
class ButtonClicked(InteractiveEvent):
    """``interactive_message_actions``: a click on a button with this text and value."""

    text: str
    value: str

    def _identity(self) -> tuple[str, ...]:
        return (self.message_id, self.value)


@frozen
class OptionSelected(InteractiveEvent):
    """``interactive_message_select``: the values picked in a dropdown."""

    values: tuple[str, ...]

    def _identity(self) -> tuple[str, ...]:
        return (self.message_id, *self.values)


@frozen
class FieldEdited(InteractiveEvent):
    """``interactive_message_fields_editable``: a form field changed from one value to another."""

    key: str
    current_value: str
    new_value: str

    def _identity(self) -> tuple[str, ...]:
        return (self.message_id, self.key, self.new_value)


@frozen
class MessageEdited(InteractiveEvent):
    """``interactive_message_editable``: an editable text changed from ``origin`` to ``target``."""

    origin: str
    target: str

    def _identity(self) -> tuple[str, ...]:
        return (self.message_id, self.target)


@frozen
class SubmittedItem:
    """One element's value in a form submission: ``kind`` is Zoom's name for the element
    (``actionItem`` for the button pressed, ``plain_text_input``, ...), ``values`` what it
    holds (several for checkboxes)."""

    kind: str
    action_id: str
    text: str
    values: tuple[str, ...]


@frozen
class FormSubmitted(InteractiveEvent):
    """``chat_message.submit``: a card's form was submitted with these items.

    Zoom publishes no sample of this event; the shape followed is the one Zoom's ERP sample
    app reads (``object.to_jid``, ``object.submit_items``), parsed leniently.
    """

    items: tuple[SubmittedItem, ...]

    def _identity(self) -> tuple[str, ...]:
        return (self.message_id, *(f"{i.action_id}={','.join(i.values)}" for i in self.items))


@frozen
class BotInstalled:
    """``bot_installed``: a user (or their admin) added the bot to an account."""

    account_id: str
    robot_jid: str
    user_id: str
    user_jid: str
    user_name: str
    timestamp: int

    @property
    def dedupe_key(self) -> str:
        """Identifies one delivery's content, so a redelivery of it can be recognised."""
        return f"BotInstalled|{self.account_id}|{self.user_jid}|{self.timestamp}"


@frozen
class AppDeauthorized:
    """``app_deauthorized``: an account removed the app; ``keep_data`` is Zoom's retention flag."""

    account_id: str
    user_id: str
    client_id: str
    deauthorized_at: str
    keep_data: bool

    @property
    def dedupe_key(self) -> str:
        """Identifies one delivery's content, so a redelivery of it can be recognised."""
        return f"AppDeauthorized|{self.account_id}|{self.user_id}|{self.deauthorized_at}"


@frozen
class Span:
    """Where a mention sits in a message: characters ``start`` up to (not including) ``end``."""

    start: int
    end: int


@frozen
class ChannelEvent:
    """What the ``team_chat.*`` events share: the account, who acted and which channel.

    ``operator_id`` and ``account_id`` are empty for a user from another account
    (``external``); Zoom names the channel by id, see :func:`channel_jid`.
    """

    account_id: str
    operator_id: str
    operator: str
    channel_id: str
    channel_name: str
    timestamp: int
    external: bool = False

    @property
    def dedupe_key(self) -> str:
        """Identifies one delivery's content, so a redelivery of it can be recognised."""
        return "|".join(
            (type(self).__name__, self.account_id, self.channel_id, str(self.timestamp))
        )


@frozen
class AppMention(ChannelEvent):
    """``team_chat.app_mention``: someone wrote to the bot with an @mention in a channel.

    ``message`` is the text as Zoom sent it (with or without the mention; ``mentions`` are the
    spans Zoom marked, when it did). ``thread_id`` is the thread's first message when the
    mention was posted inside a thread.
    """

    message_id: str = ""
    message: str = ""
    thread_id: str = ""
    mentions: tuple[Span, ...] = ()

    @property
    def dedupe_key(self) -> str:
        """Identifies one delivery's content, so a redelivery of it can be recognised."""
        return f"AppMention|{self.account_id}|{self.channel_id}|{self.message_id}"


@frozen
class LinkShared:
    """``team_chat.link_shared``: a user posted a link of a domain the app registered.

    The unfurl goes to ``POST /im/chat/users/{unfurl_user}/unfurls/{trigger_id}``
    (``response_url`` is that address; its ids win over the payload's when both are there).
    ``conversation_type`` is ``to_channel`` (``channel_id``) or ``to_contact`` (``contact_id``).
    """

    account_id: str
    operator_id: str
    operator: str
    conversation_type: str
    channel_id: str
    channel_name: str
    contact_id: str
    link: str
    trigger_id: str
    unfurl_user: str
    message_id: str
    thread_id: str
    timestamp: int
    #: Shared by a guest of another account (``by_external_user``).
    external: bool = False

    @property
    def dedupe_key(self) -> str:
        """Identifies one delivery's content, so a redelivery of it can be recognised."""
        return f"LinkShared|{self.account_id}|{self.trigger_id}|{self.link}"


@frozen
class ChannelAppAdded(ChannelEvent):
    """``team_chat.channel_app_added``: apps (``app_ids``, bot JIDs' local parts) joined a
    channel."""

    app_ids: tuple[str, ...] = ()


@frozen
class ChannelAppRemoved(ChannelEvent):
    """``team_chat.channel_app_removed``: apps (``app_ids``) were removed from a channel."""

    app_ids: tuple[str, ...] = ()


@frozen
class UnknownEvent:
    """An event this version does not handle; acknowledged and logged, never dispatched."""

    name: str


Event = (
    UrlValidation
    | BotNotification
    | ButtonClicked
    | OptionSelected
    | FieldEdited
    | MessageEdited
    | FormSubmitted
    | BotInstalled
    | AppDeauthorized
    | AppMention
    | LinkShared
    | ChannelAppAdded
    | ChannelAppRemoved
    | UnknownEvent
)

_JSON_TYPES = {
    str: "a string",
    bool: "a boolean",
    int: "a number",
    float: "a number",
    list: "an array",
    dict: "an object",
    type(None): "null",
}


class _Fields:
    """Typed reads from one JSON object, with errors that name the offending path."""

    def __init__(self, data: object, path: str) -> None:
        if not isinstance(data, dict):
            raise EventError(f"{path}: expected an object, got {_describe(data)}")
        self._data: dict[str, Any] = data
        self._path = path

    def text(self, key: str, *, required: bool = True) -> str:
        value = self._get(key, required, "")
        if not isinstance(value, str):
            raise EventError(f"{self._path}.{key}: expected a string, got {_describe(value)}")
        if not value.isascii():
            try:
                value.encode()
            except UnicodeEncodeError:
                # JSON's \ud800-style escapes can spell half a character, which no storage
                # (nor Zoom) takes: refused here, not failing later while handling it.
                raise EventError(
                    f"{self._path}.{key}: not valid Unicode (a lone surrogate)"
                ) from None
        return value

    def number(self, key: str, *, required: bool = False) -> int:
        value = self._get(key, required, 0)
        # Zoom's own schema types timestamp as a string in places, so digits in a string count.
        if isinstance(value, str) and value.isascii() and value.isdecimal() and len(value) <= 18:
            return int(value)
        # A whole float (1724371200123.0) is the integer it spells.
        if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
            return int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise EventError(f"{self._path}.{key}: expected an integer, got {_describe(value)}")
        return value

    def flag(self, key: str, *, default: bool) -> bool:
        value = self._get(key, False, default)
        # Zoom's own app_deauthorized sample sends "true"/"false" as strings.
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        if not isinstance(value, bool):
            raise EventError(f"{self._path}.{key}: expected a boolean, got {_describe(value)}")
        return value

    def table(self, key: str, *, required: bool = True) -> _Fields:
        return _Fields(self._get(key, required, {}), f"{self._path}.{key}")

    def array(self, key: str) -> list[Any]:
        value = self._get(key, True, [])
        if not isinstance(value, list):
            raise EventError(f"{self._path}.{key}: expected an array, got {_describe(value)}")
        return value

    def raw(self) -> dict[str, Any]:
        return self._data

    @property
    def path(self) -> str:
        return self._path

    def _get(self, key: str, required: bool, default: object) -> object:
        if key in self._data and self._data[key] is not None:
            return self._data[key]
        if required:
            raise EventError(f"{self._path}.{key}: missing")
        return default


def _describe(value: object) -> str:
    return _JSON_TYPES.get(type(value), type(value).__name__)


def _present(p: _Fields, key: str) -> str:
    # Replies need each of these (account, addresses, the user a private reply is shown to):
    # an event with one empty cannot be answered, so it is refused at the door.
    value = p.text(key)
    if not value.strip():
        raise EventError(f"{p.path}.{key}: empty")
    return value


def _chat_fields(p: _Fields) -> dict[str, Any]:
    return {
        "account_id": _present(p, "accountId"),
        "robot_jid": _present(p, "robotJid"),
        "to_jid": _present(p, "toJid"),
        "user_id": _present(p, "userId"),
        "user_jid": _present(p, "userJid"),
        "user_name": p.text("userName", required=False),
        "channel_name": p.text("channelName", required=False),
        # Part of what tells a redelivery from a new event: without it, two identical
        # commands within the hour would look like one.
        "timestamp": p.number("timestamp", required=True),
    }


def _interactive_fields(p: _Fields) -> dict[str, Any]:
    original = p.table("original", required=False).raw()
    return {**_chat_fields(p), "message_id": p.text("messageId"), "original": original}


def _bot_notification(p: _Fields) -> BotNotification:
    return BotNotification(
        **_chat_fields(p),
        cmd=p.text("cmd", required=False),
        trigger_id=p.text("triggerId", required=False),
    )


def _button_clicked(p: _Fields) -> ButtonClicked:
    item = p.table("actionItem")
    return ButtonClicked(
        **_interactive_fields(p), text=item.text("text", required=False), value=item.text("value")
    )


def _option_selected(p: _Fields) -> OptionSelected:
    items = p.array("selectedItems")
    values = tuple(
        _Fields(item, f"{p.path}.selectedItems[{i}]").text("value") for i, item in enumerate(items)
    )
    if not values:
        raise EventError(f"{p.path}.selectedItems: empty")
    return OptionSelected(**_interactive_fields(p), values=values)


def _field_edited(p: _Fields) -> FieldEdited:
    item = p.table("fieldEditItem")
    return FieldEdited(
        **_interactive_fields(p),
        key=item.text("key"),
        current_value=item.text("currentValue", required=False),
        new_value=item.text("newValue", required=False),
    )


def _message_edited(p: _Fields) -> MessageEdited:
    item = p.table("editItem")
    return MessageEdited(
        **_interactive_fields(p),
        origin=item.text("origin", required=False),
        target=item.text("target", required=False),
    )


def _bot_installed(p: _Fields) -> BotInstalled:
    return BotInstalled(
        account_id=p.text("accountId"),
        robot_jid=p.text("robotJid"),
        user_id=p.text("userId", required=False),
        user_jid=p.text("userJid"),
        user_name=p.text("userName", required=False),
        timestamp=p.number("timestamp"),
    )


def _app_deauthorized(p: _Fields) -> AppDeauthorized:
    return AppDeauthorized(
        account_id=p.text("account_id"),
        user_id=p.text("user_id", required=False),
        client_id=p.text("client_id", required=False),
        deauthorized_at=p.text("deauthorization_time", required=False),
        keep_data=p.flag("user_data_retention", default=False),
    )


def _url_validation(p: _Fields) -> UrlValidation:
    token = p.text("plainToken")
    if not token:
        raise EventError(f"{p.path}.plainToken: empty")
    if not token.isascii():
        raise EventError(f"{p.path}.plainToken: not ASCII")
    return UrlValidation(token)


def _team_chat_fields(envelope: _Fields, p: _Fields) -> tuple[_Fields, dict[str, Any]]:
    """The ``object`` of a ``team_chat.*`` payload, and the fields every such event has."""
    obj = p.table("object")
    # Zoom leaves account_id and operator_id empty for a user of another account.
    timestamp = obj.number("timestamp") or envelope.number("event_ts")
    return obj, {
        "account_id": p.text("account_id", required=False),
        "operator_id": p.text("operator_id", required=False),
        "operator": p.text("operator", required=False),
        "channel_id": obj.text("channel_id", required=False),
        "channel_name": obj.text("channel_name", required=False),
        "timestamp": timestamp,
        "external": p.flag("by_external_user", default=False),
    }


def _app_mention(envelope: _Fields, p: _Fields) -> AppMention:
    obj, common = _team_chat_fields(envelope, p)
    if not common["channel_id"].strip():
        raise EventError(f"{obj.path}.channel_id: missing")
    spans = []
    if obj.raw().get("at_items") is not None:
        for i, item in enumerate(obj.array("at_items")):
            at = _Fields(item, f"{obj.path}.at_items[{i}]")
            spans.append(
                Span(
                    at.number("start_position", required=True),
                    at.number("end_position", required=True),
                )
            )
    return AppMention(
        **common,
        message_id=_present(obj, "message_id"),
        message=obj.text("message", required=False),
        thread_id=obj.text("reply_main_message_id", required=False),
        mentions=tuple(spans),
    )


#: ``response_url`` of a shared link: ``.../im/chat/users/{userId}/unfurls/{triggerId}``.
_UNFURL_URL = re.compile(r"/im/chat/users/(?P<user>[^/?#]+)/unfurls/(?P<trigger>[^/?#]+)/?$")


def _link_shared(envelope: _Fields, p: _Fields) -> LinkShared:
    obj, common = _team_chat_fields(envelope, p)
    user, trigger = common["operator_id"], obj.text("trigger_id", required=False)
    response_url = envelope.text("response_url", required=False)
    try:
        found = _UNFURL_URL.search(urlsplit(response_url).path) if response_url else None
    except ValueError as exc:  # urlsplit: "Invalid IPv6 URL", a bad port, ...
        raise EventError(f"{envelope.path}.response_url: not a URL ({exc})") from None
    if found:
        # Zoom's own address for the answer: its ids are the ones the unfurl must use.
        user, trigger = unquote(found["user"]), unquote(found["trigger"])
    if not trigger.strip():
        raise EventError(f"{obj.path}.trigger_id: missing")
    if not user.strip():
        raise EventError(f"{p.path}.operator_id: missing")
    link = obj.text("link")
    if not link.strip():
        raise EventError(f"{obj.path}.link: empty")
    return LinkShared(
        account_id=common["account_id"],
        operator_id=common["operator_id"],
        operator=common["operator"],
        conversation_type=obj.text("type", required=False),
        channel_id=common["channel_id"],
        channel_name=common["channel_name"],
        contact_id=obj.text("contact_id", required=False),
        link=link,
        trigger_id=trigger,
        unfurl_user=user,
        message_id=obj.text("message_id", required=False),
        thread_id=obj.text("reply_main_message_id", required=False),
        timestamp=common["timestamp"],
        external=common["external"],
    )


def _app_ids(obj: _Fields) -> tuple[str, ...]:
    if obj.raw().get("app_members") is None:
        return ()
    return tuple(
        _Fields(item, f"{obj.path}.app_members[{i}]").text("id")
        for i, item in enumerate(obj.array("app_members"))
    )


def _channel_app_added(envelope: _Fields, p: _Fields) -> ChannelAppAdded:
    obj, common = _team_chat_fields(envelope, p)
    if not common["channel_id"].strip():
        raise EventError(f"{obj.path}.channel_id: missing")
    return ChannelAppAdded(**common, app_ids=_app_ids(obj))


def _channel_app_removed(envelope: _Fields, p: _Fields) -> ChannelAppRemoved:
    obj, common = _team_chat_fields(envelope, p)
    if not common["channel_id"].strip():
        raise EventError(f"{obj.path}.channel_id: missing")
    return ChannelAppRemoved(**common, app_ids=_app_ids(obj))


#: Events whose parser reads the envelope too (``event_ts``, ``response_url``).
_ENVELOPE_PARSERS: dict[str, Callable[[_Fields, _Fields], Event]] = {
    "team_chat.app_mention": _app_mention,
    "team_chat.link_shared": _link_shared,
    "team_chat.channel_app_added": _channel_app_added,
    "team_chat.channel_app_removed": _channel_app_removed,
}


def _callback(envelope: _Fields) -> Callback | None:
    """The top-level ``callback_url``/``callback_token`` of an interactive event, if any."""
    url = envelope.text("callback_url", required=False)
    token = envelope.text("callback_token", required=False)
    return Callback(url, token) if url and token else None


def user_jid(user_id: str, bot_jid: str) -> str:
    """The chat address of the user ``user_id``, on the bot's own XMPP domain.

    Zoom's JIDs are the id lower-cased (XMPP folds the local part's case) at the domain of the
    bot's JID (``xmpp.zoom.us``, or ``xmppdev.zoom.us`` for a development app).
    """
    return f"{user_id.lower()}@{_domain(bot_jid)}"


def channel_jid(channel_id: str, bot_jid: str) -> str:
    """The chat address of the channel ``channel_id`` (``...@conference.<bot's domain>``)."""
    return f"{channel_id.lower()}@conference.{_domain(bot_jid)}"


def app_id(bot_jid: str) -> str:
    """How ``team_chat`` events name the bot in ``app_members``: its JID's local part."""
    return bot_jid.partition("@")[0].lower()


def _domain(jid: str) -> str:
    return jid.partition("@")[2] or "xmpp.zoom.us"


_PARSERS: dict[str, Callable[[_Fields], Event]] = {
    "endpoint.url_validation": _url_validation,
    "bot_notification": _bot_notification,
    "interactive_message_actions": _button_clicked,
    "interactive_message_select": _option_selected,
    "interactive_message_fields_editable": _field_edited,
    "interactive_message_editable": _message_edited,
    "bot_installed": _bot_installed,
    "app_deauthorized": _app_deauthorized,
}


def parse_event(body: bytes) -> Event:
    """Parse one webhook body; raise :class:`EventError` saying what is wrong with it."""
    try:
        data = load_json(body)
    except BodyError as exc:
        raise EventError(str(exc)) from None
    envelope = _Fields(data, "body")
    name = envelope.text("event")
    if name == FORM_SUBMIT:
        return _form_submitted(data)
    envelope_parser = _ENVELOPE_PARSERS.get(name)
    if envelope_parser is not None:
        return envelope_parser(envelope, envelope.table("payload"))
    parser = _PARSERS.get(name)
    if parser is None:
        return UnknownEvent(name)
    event = parser(envelope.table("payload"))
    if isinstance(event, InteractiveEvent):
        callback = _callback(envelope)
        if callback is not None:
            event = attrs.evolve(event, callback=callback)
    return event


FORM_SUBMIT = "chat_message.submit"


def _first_text(tables: Sequence[Mapping[str, Any]], *keys: str) -> str:
    for table in tables:
        for key in keys:
            value = table.get(key)
            if isinstance(value, str | int) and not isinstance(value, bool) and str(value):
                return str(value)
    return ""


def _form_submitted(data: Mapping[str, Any]) -> FormSubmitted | UnknownEvent:
    """A form submission, read leniently: its shape is unverified, so what does not fit is
    logged and left out, and an event that cannot be answered is acknowledged, not refused
    (Zoom does not retry a 4xx: refusing would lose it for good)."""
    payload = data.get("payload")
    payload = payload if isinstance(payload, dict) else {}
    obj = payload.get("object")
    obj = obj if isinstance(obj, dict) else {}
    tables = [obj, payload, dict(data)]
    fields: dict[str, Any] = {
        "account_id": _first_text(tables, "accountId", "account_id"),
        "robot_jid": _first_text(tables, "robotJid", "robot_jid"),
        "to_jid": _first_text(tables, "to_jid", "toJid"),
        "user_id": _first_text(tables, "userId", "user_id", "operator_id"),
        "user_jid": _first_text(tables, "userJid", "user_jid", "operator_jid"),
        "user_name": _first_text(tables, "userName", "user_name", "operator"),
        "channel_name": _first_text(tables, "channelName", "channel_name"),
        "message_id": _first_text(tables, "messageId", "message_id", "msg_id"),
    }
    missing = [key for key in ("account_id", "to_jid", "user_id", "message_id") if not fields[key]]
    if missing:
        log.warning("%s without %s: acknowledged, not handled", FORM_SUBMIT, ", ".join(missing))
        return UnknownEvent(FORM_SUBMIT)
    stamp = _first_text(tables, "timestamp", "event_ts")
    raw_items = obj.get("submit_items", payload.get("submit_items"))
    if not isinstance(raw_items, list):
        log.warning("%s: submit_items is not a list (%s)", FORM_SUBMIT, _describe(raw_items))
        raw_items = []
    items = []
    for index, raw in enumerate(raw_items):
        item = _submitted_item(raw)
        if item is None:
            log.warning(
                "%s: submit_items[%d] does not fit; left out: %.200r", FORM_SUBMIT, index, raw
            )
        else:
            items.append(item)
    original = obj.get("original", payload.get("original"))
    return FormSubmitted(
        **fields,
        timestamp=int(stamp) if stamp.isdecimal() and len(stamp) <= 18 else 0,
        original=original if isinstance(original, dict) else {},
        items=tuple(items),
    )


def _submitted_item(raw: object) -> SubmittedItem | None:
    """``{"<kind>": {"action_id"?, "text"?, "value"}}``; ``value`` a string, or a list of
    strings or of ``{"value"}`` objects (checkboxes)."""
    if not isinstance(raw, dict) or len(raw) != 1:
        return None
    [(kind, inner)] = raw.items()
    if not isinstance(inner, dict):
        return None
    value = inner.get("value", inner.get("values", inner.get("selected_options")))
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        values: tuple[str, ...] = (str(value),)
    elif isinstance(value, list):
        picked = [v.get("value") if isinstance(v, dict) else v for v in value]
        if not all(isinstance(v, str) for v in picked):
            return None
        values = tuple(str(v) for v in picked)
    else:
        return None
    action_id = inner.get("action_id", "")
    text = inner.get("text", "")
    return SubmittedItem(
        str(kind),
        action_id if isinstance(action_id, str) else "",
        text if isinstance(text, str) else "",
        values,
    )
