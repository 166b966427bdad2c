"""chatopsbot.zoom.events: Zoom webhook bodies into typed events, or an EventError that says why."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from chatopsbot.zoom import payloads
from chatopsbot.zoom.events import (
    AppDeauthorized,
    AppMention,
    BotInstalled,
    BotNotification,
    ButtonClicked,
    Callback,
    ChannelAppAdded,
    ChannelAppRemoved,
    EventError,
    FieldEdited,
    LinkShared,
    MessageEdited,
    OptionSelected,
    Span,
    UnknownEvent,
    UrlValidation,
    app_id,
    channel_jid,
    parse_event,
    user_jid,
)
from chatopsbot.zoom.signature import verify

ACCOUNT = "gVcjZnWWRLWvv_GtyGuaxg"
ROBOT = "v1pky3qvbd5zqkv7hqjb9yvw@xmpp.zoom.us"
CHANNEL = "c0a8b5e3f2d14e6f9a7b3c2d1e0f4a5b@conference.xmpp.zoom.us"
USER_ID = "KdYKjnimT4KPd8FFgQt9FQ"
USER_JID = "kdykjnimt4kpd8ffgqt9fq@xmpp.zoom.us"
TS = 1724371200123
MESSAGE_ID = "5DD614F4-DD18-6A3B-8ED4-1C9BA3F45BEB"
ORIGINAL = {
    "head": {"text": "Deploy api to prod?"},
    "body": [
        {"type": "message", "text": "Requested by Alice"},
        {
            "type": "actions",
            "items": [
                {"text": "Approve", "value": "approve-42", "style": "Primary"},
                {"text": "Reject", "value": "reject-42", "style": "Danger"},
            ],
        },
    ],
}


def chat_payload(**extra: Any) -> dict[str, Any]:
    return {
        "accountId": ACCOUNT,
        "channelName": "ops",
        "robotJid": ROBOT,
        "timestamp": TS,
        "toJid": CHANNEL,
        "userId": USER_ID,
        "userJid": USER_JID,
        "userName": "Alice Example",
        **extra,
    }


def envelope(event: str, payload: object) -> dict[str, Any]:
    return {"event": event, "event_ts": TS, "payload": payload}


def notification(**extra: Any) -> dict[str, Any]:
    return envelope(
        "bot_notification",
        chat_payload(
            **{"cmd": "deploy api --env prod", "triggerId": "6o9-A0CFSxSf_vmqCGBm4w", **extra}
        ),
    )


def click(**extra: Any) -> dict[str, Any]:
    return envelope(
        "interactive_message_actions",
        chat_payload(
            **{
                "messageId": MESSAGE_ID,
                "actionItem": {"text": "Approve", "value": "approve-42", "style": "Primary"},
                "original": ORIGINAL,
                **extra,
            }
        ),
    )


def select(**extra: Any) -> dict[str, Any]:
    return envelope(
        "interactive_message_select",
        chat_payload(
            **{
                "messageId": MESSAGE_ID,
                "selectedItems": [{"text": "Prod", "value": "prod"}, {"text": "EU", "value": "eu"}],
                "original": ORIGINAL,
                **extra,
            }
        ),
    )


def field_edit(**extra: Any) -> dict[str, Any]:
    return envelope(
        "interactive_message_fields_editable",
        chat_payload(
            **{
                "messageId": MESSAGE_ID,
                "fieldEditItem": {"key": "Owner", "currentValue": "Bob", "newValue": "Carol"},
                "original": ORIGINAL,
                **extra,
            }
        ),
    )


def text_edit(**extra: Any) -> dict[str, Any]:
    return envelope(
        "interactive_message_editable",
        chat_payload(
            **{
                "messageId": MESSAGE_ID,
                "editItem": {"origin": "old summary", "target": "new summary"},
                "original": ORIGINAL,
                **extra,
            }
        ),
    )


def installed(**extra: Any) -> dict[str, Any]:
    return envelope(
        "bot_installed",
        {
            "accountId": ACCOUNT,
            "robotJid": ROBOT,
            "timestamp": TS,
            "userId": USER_ID,
            "userJid": USER_JID,
            "userName": "Alice Example",
            **extra,
        },
    )


def deauthorized(**extra: Any) -> dict[str, Any]:
    return {
        "event": "app_deauthorized",
        "payload": {
            "user_data_retention": True,
            "account_id": "EabCDEFghiLHMA",
            "user_id": "z9jkdsfsdfjhdkfjQ",
            "signature": "827edc3452044f0bc86bdd5684afb7d1e6becfa1a767f24df1b287853cf73000",
            "deauthorization_time": "2019-06-17T13:52:28.632Z",
            "client_id": "ADZ9k9bTWmGUoUbECUKU_a",
            **extra,
        },
    }


def parse(data: object) -> Any:
    return parse_event(json.dumps(data).encode())


def error_of(body: bytes | object) -> str:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    with pytest.raises(EventError) as info:
        parse_event(raw)
    return str(info.value)


def without(data: dict[str, Any], *path: str) -> dict[str, Any]:
    out = copy.deepcopy(data)
    node = out
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]
    return out


def replaced(data: dict[str, Any], value: object, *path: str) -> dict[str, Any]:
    out = copy.deepcopy(data)
    node = out
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return out


COMMON: dict[str, Any] = {
    "account_id": ACCOUNT,
    "robot_jid": ROBOT,
    "to_jid": CHANNEL,
    "user_id": USER_ID,
    "user_jid": USER_JID,
    "user_name": "Alice Example",
    "channel_name": "ops",
    "timestamp": TS,
}


# Each event type.


def test_bot_notification():
    assert parse(notification()) == BotNotification(
        **COMMON, cmd="deploy api --env prod", trigger_id="6o9-A0CFSxSf_vmqCGBm4w"
    )


def test_bot_notification_in_a_1_to_1_chat_without_channel_name_or_trigger_id():
    payload = chat_payload(toJid=USER_JID, cmd="help")
    del payload["channelName"]
    event = parse(envelope("bot_notification", payload))
    assert event == BotNotification(
        **{**COMMON, "to_jid": USER_JID, "channel_name": ""}, cmd="help", trigger_id=""
    )


def test_an_empty_cmd_is_a_valid_bot_notification():
    event = parse(replaced(notification(), "", "payload", "cmd"))
    assert isinstance(event, BotNotification)
    assert event.cmd == ""


def test_a_missing_cmd_is_an_empty_one_not_a_400():
    # Zoom does not retry a 4xx: refusing it would lose the event. It asks for help.
    body = notification()
    del body["payload"]["cmd"]
    event = parse(body)
    assert isinstance(event, BotNotification)
    assert event.cmd == ""


def test_non_ascii_text_survives():
    event = parse(replaced(notification(userName="Zoë 山田"), "say “héllo” 👋", "payload", "cmd"))
    assert isinstance(event, BotNotification)
    assert (event.cmd, event.user_name) == ("say “héllo” 👋", "Zoë 山田")


def test_button_clicked():
    assert parse(click()) == ButtonClicked(
        **COMMON, message_id=MESSAGE_ID, original=ORIGINAL, text="Approve", value="approve-42"
    )


def test_button_clicked_without_text_or_original():
    data = without(without(click(), "payload", "actionItem", "text"), "payload", "original")
    assert parse(data) == ButtonClicked(
        **COMMON, message_id=MESSAGE_ID, original={}, text="", value="approve-42"
    )


def test_option_selected_keeps_every_value_in_order():
    assert parse(select()) == OptionSelected(
        **COMMON, message_id=MESSAGE_ID, original=ORIGINAL, values=("prod", "eu")
    )


def test_field_edited():
    assert parse(field_edit()) == FieldEdited(
        **COMMON,
        message_id=MESSAGE_ID,
        original=ORIGINAL,
        key="Owner",
        current_value="Bob",
        new_value="Carol",
    )


def test_field_edited_from_an_empty_value():
    data = replaced(field_edit(), {"key": "Owner", "newValue": "Carol"}, "payload", "fieldEditItem")
    event = parse(data)
    assert isinstance(event, FieldEdited)
    assert (event.key, event.current_value, event.new_value) == ("Owner", "", "Carol")


def test_message_edited():
    assert parse(text_edit()) == MessageEdited(
        **COMMON,
        message_id=MESSAGE_ID,
        original=ORIGINAL,
        origin="old summary",
        target="new summary",
    )


def test_message_edited_with_an_empty_edit_item():
    event = parse(replaced(text_edit(), {}, "payload", "editItem"))
    assert isinstance(event, MessageEdited)
    assert (event.origin, event.target) == ("", "")


def test_bot_installed():
    assert parse(installed()) == BotInstalled(
        account_id=ACCOUNT,
        robot_jid=ROBOT,
        user_id=USER_ID,
        user_jid=USER_JID,
        user_name="Alice Example",
        timestamp=TS,
    )


def test_bot_installed_needs_no_user_id():
    event = parse(without(installed(), "payload", "userId"))
    assert isinstance(event, BotInstalled)
    assert event.user_id == ""


def test_app_deauthorized_with_snake_case_fields():
    assert parse(deauthorized()) == AppDeauthorized(
        account_id="EabCDEFghiLHMA",
        user_id="z9jkdsfsdfjhdkfjQ",
        client_id="ADZ9k9bTWmGUoUbECUKU_a",
        deauthorized_at="2019-06-17T13:52:28.632Z",
        keep_data=True,
    )


@pytest.mark.parametrize(("flag", "keep"), [(True, True), (False, False), (None, False)])
def test_app_deauthorized_retention_as_a_boolean(flag, keep):
    event = parse(deauthorized(user_data_retention=flag))
    assert isinstance(event, AppDeauthorized)
    assert event.keep_data is keep


def test_app_deauthorized_with_only_an_account_id():
    event = parse({"event": "app_deauthorized", "payload": {"account_id": "A1"}})
    assert event == AppDeauthorized(
        account_id="A1", user_id="", client_id="", deauthorized_at="", keep_data=False
    )


@pytest.mark.parametrize(("flag", "keep"), [("true", True), ("false", False)])
def test_app_deauthorized_retention_as_zoom_documents_it(flag, keep):
    event = parse(deauthorized(user_data_retention=flag))
    assert isinstance(event, AppDeauthorized)
    assert event.keep_data is keep


def test_url_validation():
    data = {
        "payload": {"plainToken": "qgg8vlvZRS6UYooatFL8Aw"},
        "event_ts": 1654503849680,
        "event": "endpoint.url_validation",
    }
    assert parse(data) == UrlValidation("qgg8vlvZRS6UYooatFL8Aw")


@pytest.mark.parametrize(
    "data",
    [
        {"event": "meeting.started", "payload": {"object": {"id": 1}}},
        {"event": "meeting.started"},
        {"event": "team_chat.channel_message_posted", "payload": "whatever"},
        {"event": ""},
        {"event": "BOT_NOTIFICATION", "payload": {}},
    ],
)
def test_unknown_events_are_named_not_parsed(data):
    assert parse(data) == UnknownEvent(data["event"])


def test_timestamps_as_digit_strings_are_numbers():
    event = parse(notification(timestamp=str(TS)))
    assert isinstance(event, BotNotification)
    assert event.timestamp == TS


def test_a_missing_or_null_timestamp_is_refused():
    # It tells a redelivery from a new, identical command: without it both would look alike.
    for event in (without(notification(), "payload", "timestamp"), notification(timestamp=None)):
        with pytest.raises(EventError, match=r"^body\.payload\.timestamp: missing$"):
            parse(event)


def test_null_optional_fields_are_empty():
    event = parse(notification(userName=None, channelName=None, triggerId=None))
    assert isinstance(event, BotNotification)
    assert (event.user_name, event.channel_name, event.trigger_id) == ("", "", "")


def test_unknown_extra_fields_are_ignored():
    event = parse(notification(newField={"x": 1}, userEmail="alice@example.com"))
    assert isinstance(event, BotNotification)
    assert event.cmd == "deploy api --env prod"


# Bodies that are not events.


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"\xff\xfe{}", "body is not UTF-8 (byte 0)"),
        (b'{"event": "\xff"}', "body is not UTF-8 (byte 11)"),
        (b'{"event": "caf\xc3"}', "body is not UTF-8 (byte 14)"),
        (b"", "malformed JSON: Expecting value at line 1 column 1"),
        (b"   ", "malformed JSON: Expecting value at line 1 column 4"),
        (
            b"{",
            "malformed JSON: Expecting property name enclosed in double quotes at line 1 column 2",
        ),
        (b'{"event" "x"}', "malformed JSON: Expecting ':' delimiter at line 1 column 10"),
        (b'{\n  "event": x\n}', "malformed JSON: Expecting value at line 2 column 12"),
        (b'{"event": "x"}\n{}', "malformed JSON: Extra data at line 2 column 1"),
        (b"[" * 100_000, "malformed JSON: nested too deeply"),
        (b"[]", "body: expected an object, got an array"),
        (b"[{}]", "body: expected an object, got an array"),
        (b'"bot_notification"', "body: expected an object, got a string"),
        (b"42", "body: expected an object, got a number"),
        (b"4.2", "body: expected an object, got a number"),
        (b"true", "body: expected an object, got a boolean"),
        (b"null", "body: expected an object, got null"),
        (b"{}", "body.event: missing"),
        (b'{"payload": {}}', "body.event: missing"),
        (b'{"event": null}', "body.event: missing"),
        (b'{"event": 7}', "body.event: expected a string, got a number"),
        (b'{"event": ["bot_notification"]}', "body.event: expected a string, got an array"),
        (b'{"event": "bot_notification"}', "body.payload: missing"),
        (b'{"event": "bot_notification", "payload": null}', "body.payload: missing"),
        (
            b'{"event": "bot_notification", "payload": "x"}',
            "body.payload: expected an object, got a string",
        ),
        (
            b'{"event": "bot_installed", "payload": []}',
            "body.payload: expected an object, got an array",
        ),
        (
            b'{"event": "app_deauthorized", "payload": 1}',
            "body.payload: expected an object, got a number",
        ),
        (
            b'{"event": "endpoint.url_validation", "payload": false}',
            "body.payload: expected an object, got a boolean",
        ),
    ],
)
def test_bodies_that_are_not_events_say_what_is_wrong(body, message):
    assert error_of(body) == message


def test_event_error_is_a_value_error():
    assert issubclass(EventError, ValueError)


# Fields that are missing or of the wrong type name their path.

MISSING = [
    (notification, ("payload", "accountId"), "body.payload.accountId: missing"),
    (notification, ("payload", "robotJid"), "body.payload.robotJid: missing"),
    (notification, ("payload", "toJid"), "body.payload.toJid: missing"),
    (notification, ("payload", "userId"), "body.payload.userId: missing"),
    (notification, ("payload", "userJid"), "body.payload.userJid: missing"),
    (click, ("payload", "messageId"), "body.payload.messageId: missing"),
    (click, ("payload", "actionItem"), "body.payload.actionItem: missing"),
    (click, ("payload", "actionItem", "value"), "body.payload.actionItem.value: missing"),
    (click, ("payload", "userId"), "body.payload.userId: missing"),
    (select, ("payload", "selectedItems"), "body.payload.selectedItems: missing"),
    (select, ("payload", "messageId"), "body.payload.messageId: missing"),
    (field_edit, ("payload", "fieldEditItem"), "body.payload.fieldEditItem: missing"),
    (field_edit, ("payload", "fieldEditItem", "key"), "body.payload.fieldEditItem.key: missing"),
    (text_edit, ("payload", "editItem"), "body.payload.editItem: missing"),
    (text_edit, ("payload", "toJid"), "body.payload.toJid: missing"),
    (installed, ("payload", "accountId"), "body.payload.accountId: missing"),
    (installed, ("payload", "robotJid"), "body.payload.robotJid: missing"),
    (installed, ("payload", "userJid"), "body.payload.userJid: missing"),
    (deauthorized, ("payload", "account_id"), "body.payload.account_id: missing"),
]


@pytest.mark.parametrize(("make", "path", "message"), MISSING)
def test_a_missing_field_names_its_path(make, path, message):
    assert error_of(without(make(), *path)) == message


@pytest.mark.parametrize(("make", "path", "message"), MISSING)
def test_a_null_required_field_counts_as_missing(make, path, message):
    assert error_of(replaced(make(), None, *path)) == message


def test_url_validation_without_a_token():
    assert error_of({"event": "endpoint.url_validation", "payload": {}}) == (
        "body.payload.plainToken: missing"
    )


@pytest.mark.parametrize(
    ("make", "path", "value", "message"),
    [
        (notification, ("payload", "cmd"), 5, "body.payload.cmd: expected a string, got a number"),
        (
            notification,
            ("payload", "cmd"),
            5.5,
            "body.payload.cmd: expected a string, got a number",
        ),
        (
            notification,
            ("payload", "cmd"),
            ["deploy"],
            "body.payload.cmd: expected a string, got an array",
        ),
        (
            notification,
            ("payload", "accountId"),
            {"id": "x"},
            "body.payload.accountId: expected a string, got an object",
        ),
        (
            notification,
            ("payload", "robotJid"),
            True,
            "body.payload.robotJid: expected a string, got a boolean",
        ),
        (
            notification,
            ("payload", "toJid"),
            1,
            "body.payload.toJid: expected a string, got a number",
        ),
        (
            notification,
            ("payload", "userId"),
            12345,
            "body.payload.userId: expected a string, got a number",
        ),
        (
            notification,
            ("payload", "userJid"),
            [],
            "body.payload.userJid: expected a string, got an array",
        ),
        (
            notification,
            ("payload", "userName"),
            0,
            "body.payload.userName: expected a string, got a number",
        ),
        (
            notification,
            ("payload", "channelName"),
            False,
            "body.payload.channelName: expected a string, got a boolean",
        ),
        (
            notification,
            ("payload", "triggerId"),
            9,
            "body.payload.triggerId: expected a string, got a number",
        ),
        (
            notification,
            ("payload", "timestamp"),
            "soon",
            "body.payload.timestamp: expected an integer, got a string",
        ),
        (
            notification,
            ("payload", "timestamp"),
            "",
            "body.payload.timestamp: expected an integer, got a string",
        ),
        (
            notification,
            ("payload", "timestamp"),
            "-5",
            "body.payload.timestamp: expected an integer, got a string",
        ),
        (
            notification,
            ("payload", "timestamp"),
            True,
            "body.payload.timestamp: expected an integer, got a boolean",
        ),
        (
            notification,
            ("payload", "timestamp"),
            [TS],
            "body.payload.timestamp: expected an integer, got an array",
        ),
        (
            notification,
            ("payload", "timestamp"),
            {},
            "body.payload.timestamp: expected an integer, got an object",
        ),
        (notification, ("payload", "userId"), "", "body.payload.userId: empty"),
        (
            click,
            ("payload", "messageId"),
            1,
            "body.payload.messageId: expected a string, got a number",
        ),
        (
            click,
            ("payload", "actionItem"),
            "approve",
            "body.payload.actionItem: expected an object, got a string",
        ),
        (
            click,
            ("payload", "actionItem"),
            [],
            "body.payload.actionItem: expected an object, got an array",
        ),
        (
            click,
            ("payload", "actionItem", "value"),
            42,
            "body.payload.actionItem.value: expected a string, got a number",
        ),
        (
            click,
            ("payload", "actionItem", "text"),
            {},
            "body.payload.actionItem.text: expected a string, got an object",
        ),
        (
            click,
            ("payload", "original"),
            [],
            "body.payload.original: expected an object, got an array",
        ),
        (
            click,
            ("payload", "original"),
            "card",
            "body.payload.original: expected an object, got a string",
        ),
        (click, ("payload", "userId"), "", "body.payload.userId: empty"),
        (
            select,
            ("payload", "selectedItems"),
            {"value": "prod"},
            "body.payload.selectedItems: expected an array, got an object",
        ),
        (
            select,
            ("payload", "selectedItems"),
            "prod",
            "body.payload.selectedItems: expected an array, got a string",
        ),
        (
            field_edit,
            ("payload", "fieldEditItem"),
            [],
            "body.payload.fieldEditItem: expected an object, got an array",
        ),
        (
            field_edit,
            ("payload", "fieldEditItem", "newValue"),
            3,
            "body.payload.fieldEditItem.newValue: expected a string, got a number",
        ),
        (
            field_edit,
            ("payload", "fieldEditItem", "currentValue"),
            True,
            "body.payload.fieldEditItem.currentValue: expected a string, got a boolean",
        ),
        (
            text_edit,
            ("payload", "editItem"),
            "new summary",
            "body.payload.editItem: expected an object, got a string",
        ),
        (
            text_edit,
            ("payload", "editItem", "target"),
            1,
            "body.payload.editItem.target: expected a string, got a number",
        ),
        (
            installed,
            ("payload", "userJid"),
            1,
            "body.payload.userJid: expected a string, got a number",
        ),
        (
            installed,
            ("payload", "timestamp"),
            "later",
            "body.payload.timestamp: expected an integer, got a string",
        ),
        (
            deauthorized,
            ("payload", "account_id"),
            7,
            "body.payload.account_id: expected a string, got a number",
        ),
        (
            deauthorized,
            ("payload", "deauthorization_time"),
            1560779548632,
            "body.payload.deauthorization_time: expected a string, got a number",
        ),
        (
            deauthorized,
            ("payload", "user_data_retention"),
            1,
            "body.payload.user_data_retention: expected a boolean, got a number",
        ),
        (
            deauthorized,
            ("payload", "user_data_retention"),
            "yes",
            "body.payload.user_data_retention: expected a boolean, got a string",
        ),
    ],
)
def test_a_mistyped_field_names_its_path_and_both_types(make, path, value, message):
    assert error_of(replaced(make(), value, *path)) == message


def test_url_validation_with_a_non_string_token():
    data = {"event": "endpoint.url_validation", "payload": {"plainToken": 5}}
    assert error_of(data) == "body.payload.plainToken: expected a string, got a number"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (replaced(select(), [], "payload", "selectedItems"), "body.payload.selectedItems: empty"),
        (
            replaced(select(), [{"text": "Prod"}], "payload", "selectedItems"),
            "body.payload.selectedItems[0].value: missing",
        ),
        (
            replaced(select(), [{"value": "a"}, "b"], "payload", "selectedItems"),
            "body.payload.selectedItems[1]: expected an object, got a string",
        ),
        (
            {"event": "endpoint.url_validation", "payload": {"plainToken": ""}},
            "body.payload.plainToken: empty",
        ),
    ],
)
def test_every_error_path_starts_at_body(data, message):
    assert error_of(data) == message


@pytest.mark.parametrize(
    "data",
    [
        replaced(select(), [], "payload", "selectedItems"),
        replaced(select(), [{"text": "Prod"}], "payload", "selectedItems"),
        replaced(select(), [{"value": 1}], "payload", "selectedItems"),
        replaced(select(), [None], "payload", "selectedItems"),
        {"event": "endpoint.url_validation", "payload": {"plainToken": ""}},
    ],
)
def test_bad_selections_and_empty_tokens_are_event_errors(data):
    # The exact wording is covered (as a known bug) by test_every_error_path_starts_at_body.
    message = error_of(data)
    assert message.startswith(("payload.selectedItems", "body.payload.selectedItems")) or (
        message in ("payload.plainToken: empty", "body.payload.plainToken: empty")
    )


@pytest.mark.parametrize("timestamp", ["²", "1²", "9" * 5000])
def test_unparseable_digit_strings_are_event_errors(timestamp):
    with pytest.raises(EventError, match=r"^body\.payload\.timestamp: "):
        parse(notification(timestamp=timestamp))


def test_a_float_timestamp_is_accepted_or_refused_sensibly():
    outcome: object
    try:
        outcome = parse(notification(timestamp=1724371200123.0)).timestamp
    except EventError as exc:
        outcome = str(exc)
    # Either accepted as the integer it is, or refused with a message that makes sense.
    assert outcome == 1724371200123 or (isinstance(outcome, str) and "got a number" not in outcome)


# Recognising redeliveries.


def key_of(data: dict[str, Any]) -> str:
    event = parse(data)
    assert not isinstance(event, UrlValidation | UnknownEvent)
    return str(event.dedupe_key)


def test_identical_deliveries_share_a_dedupe_key():
    raw = json.dumps(notification()).encode()
    first, second = parse_event(raw), parse_event(raw)
    assert isinstance(first, BotNotification)
    assert isinstance(second, BotNotification)
    assert first.dedupe_key == second.dedupe_key
    assert first.dedupe_key == (
        f"BotNotification|{ACCOUNT}|{CHANNEL}|{USER_JID}|{TS}|6o9-A0CFSxSf_vmqCGBm4w|"
        "deploy api --env prod"
    )


def test_the_dedupe_key_ignores_formatting_and_the_envelope_timestamp():
    data = notification()
    pretty = json.dumps(data, indent=2, sort_keys=True).encode()
    redelivered = replaced(data, TS + 5000, "event_ts")
    keys = {key_of(data), key_of(json.loads(pretty)), key_of(redelivered)}
    assert len(keys) == 1


@pytest.mark.parametrize(
    "change",
    [
        {"cmd": "deploy api --env staging"},
        {"timestamp": TS + 1},
        {"triggerId": "another-trigger"},
        {"userJid": "bob@xmpp.zoom.us"},
        {"toJid": "other@conference.xmpp.zoom.us"},
        {"accountId": "another-account"},
    ],
)
def test_a_different_command_or_moment_is_a_different_key(change):
    assert key_of(notification()) != key_of(notification(**change))


def test_the_dedupe_key_ignores_names_that_do_not_identify_the_delivery():
    assert key_of(notification()) == key_of(notification(userName="Alice B.", channelName="x"))


def test_interactive_dedupe_keys():
    head = f"{ACCOUNT}|{CHANNEL}|{USER_JID}|{TS}|{MESSAGE_ID}"
    assert key_of(click()) == f"ButtonClicked|{head}|approve-42"
    assert key_of(select()) == f"OptionSelected|{head}|prod|eu"
    assert key_of(field_edit()) == f"FieldEdited|{head}|Owner|Carol"
    assert key_of(text_edit()) == f"MessageEdited|{head}|new summary"


def test_interactive_keys_tell_clicks_apart():
    other_button = replaced(
        click(), {"text": "Reject", "value": "reject-42"}, "payload", "actionItem"
    )
    assert key_of(click()) != key_of(other_button)
    assert key_of(click()) != key_of(click(messageId="another-message"))
    assert key_of(click()) != key_of(click(timestamp=TS + 1))
    assert key_of(click()) != key_of(click(userJid="bob@xmpp.zoom.us"))
    # The same click delivered twice, original card and all, is one click.
    assert key_of(click()) == key_of(click())


def test_event_types_never_share_keys():
    keys = [key_of(make()) for make in (notification, click, select, field_edit, text_edit)]
    assert len(set(keys)) == 5


def test_install_and_deauthorization_keys():
    assert key_of(installed()) == f"BotInstalled|{ACCOUNT}|{USER_JID}|{TS}"
    assert key_of(installed()) != key_of(installed(timestamp=TS + 1))
    assert key_of(deauthorized()) == (
        "AppDeauthorized|EabCDEFghiLHMA|z9jkdsfsdfjhdkfjQ|2019-06-17T13:52:28.632Z"
    )
    assert key_of(deauthorized()) == key_of(deauthorized(user_data_retention=False))
    later = deauthorized(deauthorization_time="2019-06-18T00:00:00.000Z")
    assert key_of(deauthorized()) != key_of(later)


# The payload builders produce what the parser reads.


def test_payloads_bot_notification_round_trips():
    data = payloads.bot_notification(
        "deploy api",
        account_id="acct-9",
        to_jid=USER_JID,
        channel_name="",
        user_id="u-bob",
        user_jid="bob@xmpp.zoom.us",
        user_name="Bob",
        timestamp=1700000000000,
    )
    assert parse(data) == BotNotification(
        account_id="acct-9",
        robot_jid="bot@xmpp.zoom.us",
        to_jid=USER_JID,
        user_id="u-bob",
        user_jid="bob@xmpp.zoom.us",
        user_name="Bob",
        channel_name="",
        timestamp=1700000000000,
        cmd="deploy api",
        trigger_id="trigger-1700000000000",
    )


def test_payloads_bot_notification_defaults_round_trip():
    data = payloads.bot_notification("help")
    event = parse(data)
    assert event == BotNotification(
        account_id="acct-1",
        robot_jid="bot@xmpp.zoom.us",
        to_jid="ops@conference.xmpp.zoom.us",
        user_id="u-alice",
        user_jid="alice@xmpp.zoom.us",
        user_name="Alice",
        channel_name="ops",
        timestamp=data["payload"]["timestamp"],
        cmd="help",
        trigger_id=f"trigger-{data['payload']['timestamp']}",
    )
    assert event.timestamp > 0


def test_payloads_built_back_to_back_are_not_redeliveries():
    assert key_of(payloads.bot_notification("x")) != key_of(payloads.bot_notification("x"))


def test_payloads_bot_installed_round_trips():
    data = payloads.bot_installed(
        account_id="acct-2", user_id="u-bob", user_jid="b@x", user_name="B"
    )
    assert parse(data) == BotInstalled(
        account_id="acct-2",
        robot_jid="bot@xmpp.zoom.us",
        user_id="u-bob",
        user_jid="b@x",
        user_name="B",
        timestamp=data["payload"]["timestamp"],
    )


def test_payloads_interactive_builders_round_trip():
    clicked = payloads.button_clicked("v1", message_id="m1", text="Go", original={"head": {}})
    event = parse(clicked)
    assert isinstance(event, ButtonClicked)
    assert (event.message_id, event.text, event.value, event.original) == (
        "m1",
        "Go",
        "v1",
        {"head": {}},
    )
    assert (event.account_id, event.user_id, event.to_jid) == (
        "acct-1",
        "u-alice",
        "ops@conference.xmpp.zoom.us",
    )
    picked = parse(payloads.option_selected(["a", "b"], message_id="m2", user_id="u-bob"))
    assert isinstance(picked, OptionSelected)
    assert (picked.message_id, picked.values, picked.user_id) == ("m2", ("a", "b"), "u-bob")
    edited = parse(payloads.field_edited("Owner", "Bob", "Carol", message_id="m3"))
    assert isinstance(edited, FieldEdited)
    assert (edited.key, edited.current_value, edited.new_value) == ("Owner", "Bob", "Carol")


def test_payloads_signed_bodies_verify_and_parse():
    event = payloads.bot_notification("ping", timestamp=1700000000000)
    body, headers = payloads.signed("s3cret", event, timestamp=1700000000)
    assert headers["Content-Type"] == "application/json"
    assert headers["x-zm-request-timestamp"] == "1700000000"
    verify("s3cret", headers["x-zm-request-timestamp"], headers["x-zm-signature"], body, 1.7e9)
    parsed = parse_event(body)
    assert isinstance(parsed, BotNotification)
    assert parsed.cmd == "ping"


# The team_chat events (snake_case, users and channels named by id) and interactive callbacks.

SAMPLES = Path(__file__).parent / "samples"


def sample_event(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((SAMPLES / name).read_text())["event"]
    return event


MENTION = "zoomdocs_team_chat.app_mention_json-example.json"
LINK = "zoomdocs_team_chat.link_shared_json-example.json"
ADDED = "zoomdocs_team_chat.channel_app_added_json-example.json"
REMOVED = "zoomdocs_team_chat.channel_app_removed_json-example.json"


def test_app_mention_sample():
    event = parse(sample_event(MENTION))
    assert event == AppMention(
        account_id="asgVcjZnWWRLWvv_GtyGuaxg",
        operator_id="z8yCxjabcdEFGHfp8uQ",
        operator="example@zoom.us",
        channel_id="8AmQ0WOoQ1O3a84yYFc2xQ",
        channel_name="Team Chat",
        timestamp=1696914490157,
        external=True,
        message_id="5DD614F4-DD19-4C39-8D03-93C4D0A0C839",
        message="hello",
        thread_id="5DD614F4-DD19-4C39-8D03-93C4D0A0C838",
        mentions=(),
    )


def test_app_mention_with_zooms_at_items():
    data = sample_event(MENTION)
    data["payload"]["object"]["message"] = "@Ops Bot deploy"
    data["payload"]["object"]["at_items"] = [{"start_position": 0, "end_position": 8}]
    assert parse(data).mentions == (Span(0, 8),)


def test_link_shared_sample_takes_the_ids_of_response_url():
    event = parse(sample_event(LINK))
    assert isinstance(event, LinkShared)
    assert (event.unfurl_user, event.trigger_id) == ("exampleUserId", "exampleTriggerId")
    assert event.operator_id == "exampleuserId"
    assert event.link == "https://sg.com/1234w"
    assert event.conversation_type == "to_channel"
    assert event.thread_id == "5DD614F4-DD19-4C39-8D03-93C4D0A0C838"


def test_link_shared_without_response_url_uses_the_payloads_ids():
    data = sample_event(LINK)
    del data["response_url"]
    event = parse(data)
    assert (event.unfurl_user, event.trigger_id) == ("exampleuserId", "exampleTriggerId")


def test_link_shared_with_a_response_url_that_is_no_url_is_refused_naming_it():
    # urlsplit raises ValueError on it: a 4xx naming the field, not a 500 Zoom would retry.
    data = sample_event(LINK)
    data["response_url"] = "https://[zoom.us/v2/im/chat/users/u/unfurls/t"
    with pytest.raises(EventError, match=r"body.response_url: not a URL"):
        parse(data)


@pytest.mark.parametrize(("name", "kind"), [(ADDED, ChannelAppAdded), (REMOVED, ChannelAppRemoved)])
def test_channel_app_samples(name, kind):
    event = parse(sample_event(name))
    assert type(event) is kind
    assert event.channel_id == "55feed8f37174c11ae4595b8223a932a"
    assert event.channel_name == "test18"
    assert event.app_ids == ("v1initnyujsz-sk6c3q7cpxg",)
    assert event.timestamp == 1703638484590


def test_team_chat_events_fall_back_to_the_envelope_time():
    data = sample_event(ADDED)
    del data["payload"]["object"]["timestamp"]
    assert parse(data).timestamp == 1703638484596


TEAM_CHAT_ERRORS = [
    (MENTION, ("payload", "object"), None, "body.payload.object: missing"),
    (MENTION, ("payload", "object", "channel_id"), None, "body.payload.object.channel_id: missing"),
    (MENTION, ("payload", "object", "message_id"), None, "body.payload.object.message_id: missing"),
    (MENTION, ("payload", "object", "message_id"), "", "body.payload.object.message_id: empty"),
    (
        MENTION,
        ("payload", "object", "message"),
        7,
        "body.payload.object.message: expected a string, got a number",
    ),
    (
        MENTION,
        ("payload", "object", "at_items"),
        "x",
        "body.payload.object.at_items: expected an array, got a string",
    ),
    (
        MENTION,
        ("payload", "object", "at_items"),
        [{"start_position": 0}],
        "body.payload.object.at_items[0].end_position: missing",
    ),
    (
        MENTION,
        ("payload", "by_external_user"),
        "maybe",
        "body.payload.by_external_user: expected a boolean, got a string",
    ),
    (LINK, ("payload", "object", "link"), None, "body.payload.object.link: missing"),
    (LINK, ("payload", "object", "link"), " ", "body.payload.object.link: empty"),
    (
        LINK,
        ("response_url",),
        5,
        "body.response_url: expected a string, got a number",
    ),
    (ADDED, ("payload", "object", "channel_id"), None, "body.payload.object.channel_id: missing"),
    (
        ADDED,
        ("payload", "object", "app_members"),
        [{"display_name": "x"}],
        "body.payload.object.app_members[0].id: missing",
    ),
    (
        REMOVED,
        ("payload", "object"),
        [],
        "body.payload.object: expected an object, got an array",
    ),
    (
        REMOVED,
        ("payload", "account_id"),
        1,
        "body.payload.account_id: expected a string, got a number",
    ),
]


@pytest.mark.parametrize(("name", "path", "value", "message"), TEAM_CHAT_ERRORS)
def test_malformed_team_chat_events_say_what_is_wrong(name, path, value, message):
    data = sample_event(name)
    if value is None:
        data = without(data, *path)
    else:
        node = data
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    assert error_of(data) == message


def test_a_link_without_any_trigger_id_is_refused():
    data = without(sample_event(LINK), "response_url")
    data = without(data, "payload", "object", "trigger_id")
    assert error_of(data) == "body.payload.object.trigger_id: missing"


def test_team_chat_dedupe_keys():
    mention = parse(sample_event(MENTION))
    assert mention.dedupe_key == (
        "AppMention|asgVcjZnWWRLWvv_GtyGuaxg|8AmQ0WOoQ1O3a84yYFc2xQ|"
        "5DD614F4-DD19-4C39-8D03-93C4D0A0C839"
    )
    assert parse(sample_event(LINK)).dedupe_key == (
        "LinkShared|exampleAccountId|exampleTriggerId|https://sg.com/1234w"
    )
    added, removed = parse(sample_event(ADDED)), parse(sample_event(REMOVED))
    assert added.dedupe_key != removed.dedupe_key
    assert added.dedupe_key == parse(sample_event(ADDED)).dedupe_key


def test_interactive_events_keep_zooms_callback_without_showing_its_token():
    data = sample_event("zoomdocs_interactive_message_actions_json-example.json")
    event = parse(data)
    assert event.callback == Callback(data["callback_url"], data["callback_token"])
    assert data["callback_token"] not in repr(event)
    assert data["callback_url"] in repr(event)


def test_interactive_events_without_a_callback():
    event = parse(sample_event("zoomdocs_interactive_message_select_json-example.json"))
    assert event.callback is None


def test_jids_of_users_and_channels_named_by_id():
    assert user_jid("KdYKjnimT4KPd8KKdQt9FQ", "v1bot@xmpp.zoom.us") == (
        "kdykjnimt4kpd8kkdqt9fq@xmpp.zoom.us"
    )
    assert channel_jid("8AmQ0WOoQ1O3a84yYFc2xQ", "v1bot@xmppdev.zoom.us") == (
        "8amq0wooq1o3a84yyfc2xq@conference.xmppdev.zoom.us"
    )
    assert app_id("V1Init@xmpp.zoom.us") == "v1init"


def test_payloads_team_chat_builders_round_trip():
    mention = parse(payloads.app_mention("@bot echo", mentions=[(0, 4)], thread_id="T"))
    assert (mention.message, mention.mentions, mention.thread_id) == (
        "@bot echo",
        (Span(0, 4),),
        "T",
    )
    link = parse(payloads.link_shared("https://x.example/1", trigger_id="trg"))
    assert (link.link, link.trigger_id, link.unfurl_user) == (
        "https://x.example/1",
        "trg",
        "u-alice",
    )
    added = parse(payloads.channel_app(True, robot_jid="Bot@xmpp.zoom.us"))
    assert isinstance(added, ChannelAppAdded)
    assert added.app_ids == ("Bot",)
    assert isinstance(parse(payloads.channel_app(False)), ChannelAppRemoved)
    gone = parse(payloads.app_deauthorized(account_id="a9", retention=True))
    assert (gone.account_id, gone.keep_data) == ("a9", True)
    assert (
        parse(payloads.app_deauthorized()).dedupe_key
        != parse(payloads.app_deauthorized()).dedupe_key
    )


@pytest.mark.parametrize(
    ("make", "path"),
    [
        (notification, ("payload", "accountId")),
        (notification, ("payload", "cmd")),
        (deauthorized, ("payload", "account_id")),
        (lambda: sample_event(MENTION), ("payload", "object", "message")),
    ],
)
def test_half_a_character_is_refused_with_its_path(make, path):
    data = make()
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = "a\udc80"
    assert error_of(data) == f"body.{'.'.join(path)}: not valid Unicode (a lone surrogate)"
