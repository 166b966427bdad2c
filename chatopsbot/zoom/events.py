"""Zoom's webhook bodies parsed into typed values, and nothing else reads Zoom's event JSON.

Chatbot events use camelCase (``accountId``, ``toJid``); ``app_deauthorized`` uses snake_case.
:func:`parse_event` turns raw bytes into one of the classes below or raises :class:`EventError`
with a reason fit for a log line and a 400 answer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from attrs import frozen

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
class InteractiveEvent(ChatEvent):
    """A user acted on a card the bot sent: ``message_id`` names it, ``original`` is its content."""

    message_id: str
    original: Mapping[str, Any]


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
    parser = _PARSERS.get(name)
    if parser is None:
        return UnknownEvent(name)
    return parser(envelope.table("payload"))


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
    fields = {
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
