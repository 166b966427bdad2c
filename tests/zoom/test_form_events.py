"""chat_message.submit, read leniently (its shape is unverified), and card records keeping the
routes of what Zoom fills in."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from chatopsbot.outbound.sender import CardRecord
from chatopsbot.responses import Card, ChannelSelect, Edit, Field, Fields, Paragraph, TextInput
from chatopsbot.zoom.cards import ApiCall, routes
from chatopsbot.zoom.events import FormSubmitted, SubmittedItem, UnknownEvent, parse_event
from chatopsbot.zoom.payloads import form_submitted


def parse(event: object) -> object:
    return parse_event(json.dumps(event).encode())


def test_the_shape_zooms_sample_app_reads():
    event = {
        "event": "chat_message.submit",
        "payload": {
            "accountId": "acct-1",
            "robotJid": "bot@xmpp.zoom.us",
            "userId": "u-alice",
            "userJid": "alice@xmpp.zoom.us",
            "userName": "Alice",
            "timestamp": 1764097200000,
            "object": {
                "to_jid": "ops@conference.xmpp.zoom.us",
                "message_id": "m-1",
                "submit_items": [
                    {"actionItem": {"text": "Send", "value": "cob1:p:a::sig"}},
                    {"plain_text_input": {"text": "Reason", "value": "flaky"}},
                ],
            },
        },
    }
    parsed = parse(event)
    assert isinstance(parsed, FormSubmitted)
    assert (parsed.account_id, parsed.to_jid, parsed.message_id) == (
        "acct-1",
        "ops@conference.xmpp.zoom.us",
        "m-1",
    )
    assert parsed.items == (
        SubmittedItem("actionItem", "", "Send", ("cob1:p:a::sig",)),
        SubmittedItem("plain_text_input", "", "Reason", ("flaky",)),
    )


def test_checkbox_values_as_a_list_of_strings_or_of_objects():
    items: list[Any] = [
        {"checkboxes": {"action_id": "c1", "value": ["a", "b"]}},
        {"checkboxes": {"action_id": "c2", "selected_options": [{"value": "x"}]}},
        {"datepicker": {"action_id": "d", "value": "2026-12-01"}},
    ]
    parsed = parse(form_submitted(items, message_id="m-1"))
    assert isinstance(parsed, FormSubmitted)
    assert [(i.action_id, i.values) for i in parsed.items] == [
        ("c1", ("a", "b")),
        ("c2", ("x",)),
        ("d", ("2026-12-01",)),
    ]


@pytest.mark.parametrize(
    "payload",
    [None, [], {}, {"accountId": "a", "object": {"to_jid": "t"}}, {"object": "nope"}],
)
def test_a_submission_that_cannot_be_answered_is_unknown_not_an_error(payload, caplog):
    with caplog.at_level(logging.WARNING, logger="chatopsbot.zoom.events"):
        assert parse({"event": "chat_message.submit", "payload": payload}) == UnknownEvent(
            "chat_message.submit"
        )
    assert "acknowledged, not handled" in caplog.text


def test_items_that_do_not_fit_are_left_out_and_logged(caplog):
    items: list[Any] = [
        {"datepicker": {"value": True}},
        {"a": {"value": "1"}, "b": {"value": "2"}},
        {"input": {"value": [1, 2]}},
        {"input": "text"},
        {"plain_text_input": {"value": "kept"}},
    ]
    with caplog.at_level(logging.WARNING, logger="chatopsbot.zoom.events"):
        parsed = parse(form_submitted(items, message_id="m-1"))
    assert isinstance(parsed, FormSubmitted)
    assert [i.values for i in parsed.items] == [("kept",)]
    assert [r.getMessage().split(" does")[0] for r in caplog.records] == [
        f"chat_message.submit: submit_items[{i}]" for i in range(4)
    ]


def test_submit_items_not_a_list_is_logged_and_empty(caplog):
    event = form_submitted([], message_id="m-1")
    event["payload"]["object"]["submit_items"] = {"x": 1}
    with caplog.at_level(logging.WARNING, logger="chatopsbot.zoom.events"):
        parsed = parse(event)
    assert isinstance(parsed, FormSubmitted)
    assert parsed.items == ()
    assert "submit_items is not a list (an object)" in caplog.text


def test_routes_name_what_zoom_fills_in():
    card = Card(
        body=[
            ChannelSelect("Where", "r-select"),
            Paragraph("draft", editable=True, action_id="r-text"),
            Fields([Field("Owner", "bob", editable=True, action_id="r-field")]),
            TextInput("r-input", "Reason"),
            Paragraph("plain"),
        ]
    )
    expected = {
        "select": "r-select",
        "message:draft": "r-text",
        "field:Owner": "r-field",
        "input:Reason": "r-input",
    }
    assert routes(card) == expected
    assert routes(Edit("m-1", card)) == expected


def test_a_card_record_keeps_its_routes_through_storage_and_edits():
    call = ApiCall("POST", "/im/chat/messages", "acct-1", body={"content": {"head": {"text": "x"}}})
    record = CardRecord.of("widgets", call, {"select": "v1"})
    assert CardRecord.from_json(record.to_json()) == record
    later = CardRecord.of("widgets", call, {"field:Owner": "v2"})
    assert record.merge(later).routes == {"select": "v1", "field:Owner": "v2"}
    assert CardRecord.of("widgets", call, "not a mapping").routes == {}
    assert CardRecord.from_json('{"plugin":"widgets"}').routes == {}
