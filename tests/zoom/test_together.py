"""Zoom specifics in isolation: signatures, event parsing, card rendering, token and API client."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from datetime import UTC, datetime

import aiohttp
import pytest

from chatopsbot.context import Conversation
from chatopsbot.responses import (
    Actions,
    Attachment,
    Button,
    ButtonStyle,
    Card,
    Delete,
    Divider,
    Edit,
    Field,
    Fields,
    Paragraph,
    Section,
    Select,
    SelectOption,
    Style,
    Text,
    as_responses,
)
from chatopsbot.zoom.auth import TokenCache, TokenError
from chatopsbot.zoom.cards import ApiCall, RenderError, render
from chatopsbot.zoom.client import ZoomApi, ZoomApiError, parse_retry_after
from chatopsbot.zoom.events import (
    AppDeauthorized,
    BotInstalled,
    BotNotification,
    ButtonClicked,
    EventError,
    FieldEdited,
    OptionSelected,
    UnknownEvent,
    UrlValidation,
    parse_event,
)
from chatopsbot.zoom.fake import FakeZoom, Fault
from chatopsbot.zoom.payloads import bot_installed, bot_notification, button_clicked, field_edited
from chatopsbot.zoom.signature import SignatureError, sign, url_validation_answer, verify

# Signatures.


def test_sign_matches_zooms_recipe():
    body = b'{"event":"x"}'
    expected = hmac.new(b"s3cret", b"v0:1700000000:" + body, hashlib.sha256).hexdigest()
    assert sign("s3cret", "1700000000", body) == f"v0={expected}"


@pytest.mark.parametrize(
    ("secret", "timestamp", "signature", "now", "message"),
    [
        ("", "100", "v0=x", 100, "no secret token configured"),
        ("s", None, "v0=x", 100, "missing x-zm-request-timestamp header"),
        ("s", "100", None, 100, "missing x-zm-signature header"),
        ("s", "soon", "v0=x", 100, "x-zm-request-timestamp is not a number: 'soon'"),
        ("s", "100", "v0=x", 401, "timestamp 100 is 301 s away from now"),
        ("s", "100", "v0=wrong", 100, "signature does not match"),
        ("s", "100", "v0=\udc80", 100, "signature does not match"),
    ],
)
def test_verify_refuses_with_the_reason(secret, timestamp, signature, now, message):
    with pytest.raises(SignatureError, match=message):
        verify(secret, timestamp, signature, b"{}", now)


def test_verify_accepts_fresh_signed_bodies_within_five_minutes():
    for now in (100, 400, -200):
        verify("s", "100", sign("s", "100", b"{}"), b"{}", now)


def test_url_validation_answer():
    answer = url_validation_answer("s", "plain")
    assert answer == {
        "plainToken": "plain",
        "encryptedToken": hmac.new(b"s", b"plain", hashlib.sha256).hexdigest(),
    }


# Events.


def body(event: dict[str, object]) -> bytes:
    return json.dumps(event).encode()


def test_every_event_type_parses():
    note = parse_event(body(bot_notification("deploy status api", timestamp=5)))
    assert isinstance(note, BotNotification)
    assert (note.cmd, note.user_id, note.to_jid, note.timestamp) == (
        "deploy status api",
        "u-alice",
        "ops@conference.xmpp.zoom.us",
        5,
    )
    click = parse_event(body(button_clicked("v", message_id="m1", text="Go")))
    assert isinstance(click, ButtonClicked)
    assert (click.value, click.text, click.message_id) == ("v", "Go", "m1")
    edit = parse_event(body(field_edited("k", "a", "b", message_id="m2")))
    assert isinstance(edit, FieldEdited)
    assert (edit.key, edit.current_value, edit.new_value) == ("k", "a", "b")
    assert isinstance(parse_event(body(bot_installed())), BotInstalled)
    select = parse_event(
        body(
            {
                "event": "interactive_message_select",
                "payload": {
                    **button_clicked("x", message_id="m3")["payload"],
                    "selectedItems": [{"text": "A", "value": "a"}, {"text": "B", "value": "b"}],
                },
            }
        )
    )
    assert isinstance(select, OptionSelected)
    assert select.values == ("a", "b")
    gone = parse_event(
        body(
            {
                "event": "app_deauthorized",
                "payload": {"account_id": "a1", "user_data_retention": True},
            }
        )
    )
    assert isinstance(gone, AppDeauthorized)
    assert (gone.account_id, gone.keep_data) == ("a1", True)
    assert parse_event(
        body({"event": "endpoint.url_validation", "payload": {"plainToken": "t"}})
    ) == (UrlValidation("t"))
    assert parse_event(body({"event": "meeting.started", "payload": {}})) == UnknownEvent(
        "meeting.started"
    )


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"\xff", "body is not UTF-8 (byte 0)"),
        (
            b"{",
            "malformed JSON: Expecting property name enclosed in double quotes at line 1 column 2",
        ),
        (b"[]", "body: expected an object, got an array"),
        (b"{}", "body.event: missing"),
        (
            b'{"event": "bot_notification", "payload": 3}',
            "body.payload: expected an object, got a number",
        ),
    ],
)
def test_malformed_bodies_say_what_is_wrong(raw, message):
    with pytest.raises(EventError) as info:
        parse_event(raw)
    assert str(info.value) == message


def test_missing_and_mistyped_fields_name_their_path():
    event = bot_notification("x")
    del event["payload"]["toJid"]
    with pytest.raises(EventError, match=r"^body\.payload\.toJid: missing$"):
        parse_event(body(event))
    event = bot_notification("x")
    event["payload"]["userJid"] = 5
    with pytest.raises(
        EventError, match=r"^body\.payload\.userJid: expected a string, got a number$"
    ):
        parse_event(body(event))


def test_dedupe_keys_tell_redeliveries_from_new_events():
    event = bot_notification("ping", timestamp=7)
    first = parse_event(body(event))
    again = parse_event(body(event))
    other = parse_event(body(bot_notification("ping", timestamp=8)))
    assert isinstance(first, BotNotification)
    assert isinstance(again, BotNotification)
    assert isinstance(other, BotNotification)
    assert first.dedupe_key == again.dedupe_key != other.dedupe_key


# Rendering.

CHANNEL = Conversation("acct", "ops@conference.xmpp.zoom.us", "ops")
DM = Conversation("acct", "alice@xmpp.zoom.us")


def test_text_private_and_in_a_thread():
    call = render(
        Text("hi", private=True, reply_to="m0"),
        robot_jid="bot",
        conversation=CHANNEL,
        caller_id="u1",
    )
    assert call == ApiCall(
        "POST",
        "/im/chat/messages",
        "acct",
        body={
            "robot_jid": "bot",
            "to_jid": "ops@conference.xmpp.zoom.us",
            "account_id": "acct",
            "content": {"body": [{"type": "message", "text": "hi"}]},
            "reply_to": "m0",
            "visible_to_user": "u1",
        },
    )
    dm = render(
        Text("hi", private=True, markdown=True), robot_jid="bot", conversation=DM, caller_id="u1"
    )
    assert dm.body is not None
    assert "visible_to_user" not in dm.body  # a 1:1 chat is private already
    assert dm.body["is_markdown_support"] is True
    with pytest.raises(RenderError):
        render(Text("x", private=True), robot_jid="bot", conversation=CHANNEL, caller_id=None)


def test_card_items_render_to_zooms_schema():
    card = Card(
        head="Deploy",
        sub_head="api",
        head_style=Style(color="#FF0000", bold=True),
        body=[
            Paragraph("see", link="https://x", style=Style(italic=True)),
            Fields((Field("Env", "prod", short=True), Field("Note", "", editable=True))),
            Actions(
                (Button("Go", "v1", ButtonStyle.PRIMARY), Button("No", "v2", ButtonStyle.DANGER)),
                limit=2,
            ),
            Select("Pick", (SelectOption("A", "a"),), selected=SelectOption("A", "a")),
            Divider(),
            Attachment("https://f", "Report", "pdf", image_url="https://i", ext="pdf", size=10),
            Section((Paragraph("inner"),), sidebar_color="#00FF00", footer="ft"),
        ],
    )
    call = render(card, robot_jid="bot", conversation=CHANNEL, caller_id=None)
    assert call.body is not None
    assert call.body["content"] == {
        "head": {
            "text": "Deploy",
            "style": {"bold": True, "italic": False, "color": "#FF0000"},
            "sub_head": {"text": "api"},
        },
        "body": [
            {
                "type": "message",
                "text": "see",
                "link": "https://x",
                "style": {"bold": False, "italic": True},
            },
            {
                "type": "fields",
                "items": [
                    {"key": "Env", "value": "prod", "short": True, "editable": False},
                    {"key": "Note", "value": " ", "short": False, "editable": True},
                ],
            },
            {
                "type": "actions",
                "items": [
                    {"text": "Go", "value": "v1", "style": "Primary"},
                    {"text": "No", "value": "v2", "style": "Danger"},
                ],
                "limit": 2,
            },
            {
                "type": "select",
                "text": "Pick",
                "select_items": [{"text": "A", "value": "a"}],
                "selected_item": {"text": "A", "value": "a"},
            },
            {"type": "divider", "style": {"bold": False, "dotted": False}},
            {
                "type": "attachments",
                "resource_url": "https://f",
                "information": {"title": {"text": "Report"}, "description": {"text": "pdf"}},
                "img_url": "https://i",
                "ext": "pdf",
                "size": 10,
            },
            {
                "type": "section",
                "sections": [{"type": "message", "text": "inner"}],
                "sidebar_color": "#00FF00",
                "footer": "ft",
            },
        ],
    }


def test_edit_and_delete_address_the_message():
    edit = render(Edit("a/b c", Text("new")), robot_jid="bot", conversation=CHANNEL, caller_id=None)
    assert (edit.method, edit.path) == ("PUT", "/im/chat/messages/a%2Fb%20c")
    assert edit.body is not None
    assert "to_jid" not in edit.body
    delete = render(Delete("m1"), robot_jid="bot", conversation=CHANNEL, caller_id=None)
    assert (delete.method, delete.path, delete.params) == (
        "DELETE",
        "/im/chat/messages/m1",
        {"account_id": "acct", "robot_jid": "bot"},
    )


def test_handler_results_are_normalised_or_refused():
    assert as_responses(None) == ()
    assert as_responses(Text("a")) == (Text("a"),)
    assert as_responses([Text("a"), Delete("m")]) == (Text("a"), Delete("m"))
    for junk in ("text", 5, [Text("a"), "b"]):
        with pytest.raises(TypeError):
            as_responses(junk)
    with pytest.raises(ValueError, match="a card needs a head or at least one body item"):
        Card()


# Retry-After, the token cache and the API client.


def test_retry_after_in_seconds_or_dates():
    now = datetime(2025, 8, 22, 23, 0, tzinfo=UTC).timestamp()
    assert parse_retry_after("2", now) == 2.0
    assert parse_retry_after("2025-08-23T00:00:00Z", now) == 3600.0
    assert parse_retry_after("Sat, 23 Aug 2025 00:00:00 GMT", now) == 3600.0
    assert parse_retry_after("2025-08-22T00:00:00Z", now) == 0.0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None


class Ticks:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_token_cache_single_flight_and_early_refresh():
    ticks = Ticks()
    async with FakeZoom() as zoom, aiohttp.ClientSession() as session:
        tokens = TokenCache(
            session,
            oauth_url=zoom.oauth_url,
            client_id=zoom.client_id,
            client_secret=zoom.client_secret,
            monotonic=ticks,
        )
        got = await asyncio.gather(*(tokens.get() for _ in range(20)))
        assert len(set(got)) == 1
        assert zoom.token_requests == 1
        ticks.now = 3600 - 61
        assert await tokens.get() == got[0]
        ticks.now = 3600 - 59  # within the 60 s margin: refreshed early
        assert await tokens.get() != got[0]
        assert zoom.token_requests == 2


async def test_wrong_credentials_are_not_retryable():
    async with FakeZoom() as zoom, aiohttp.ClientSession() as session:
        tokens = TokenCache(session, oauth_url=zoom.oauth_url, client_id="x", client_secret="y")
        with pytest.raises(TokenError) as info:
            await tokens.get()
        assert info.value.retryable is False


async def api(zoom: FakeZoom, session: aiohttp.ClientSession) -> ZoomApi:
    tokens = TokenCache(
        session,
        oauth_url=zoom.oauth_url,
        client_id=zoom.client_id,
        client_secret=zoom.client_secret,
    )
    return ZoomApi(session, base_url=zoom.api_base_url, tokens=tokens)


def send(zoom: FakeZoom) -> ApiCall:
    return render(Text("hi"), robot_jid=zoom.robot_jid, conversation=CHANNEL, caller_id=None)


async def test_a_rejected_token_is_refreshed_once_and_the_call_retried():
    async with FakeZoom() as zoom, aiohttp.ClientSession() as session:
        client = await api(zoom, session)
        first = await client.call(send(zoom))
        assert first.status == 201
        assert first.message_id
        assert first.tracking_id.startswith("v=2.0;")
        zoom.expire_tokens()
        assert (await client.call(send(zoom))).status == 201
        assert zoom.token_requests == 2
        assert [r.status for r in zoom.requests] == [201, 401, 201]


async def test_errors_carry_code_message_tracking_id_and_retry_after():
    async with FakeZoom() as zoom, aiohttp.ClientSession() as session:
        client = await api(zoom, session)
        zoom.inject(
            Fault(400, {"code": 7001, "message": "Invalid request body format."}),
            Fault(
                429,
                {"code": 429, "message": "daily"},
                {"Retry-After": "2999-01-01T00:00:00Z", "X-RateLimit-Type": "Daily-limit"},
            ),
        )
        with pytest.raises(ZoomApiError) as bad:
            await client.call(send(zoom))
        assert (bad.value.status, bad.value.code, bad.value.message) == (
            400,
            7001,
            "Invalid request body format.",
        )
        assert bad.value.tracking_id.startswith("v=2.0;")
        with pytest.raises(ZoomApiError) as daily:
            await client.call(send(zoom))
        assert daily.value.daily_limit is True
        assert daily.value.retry_after is not None
        assert daily.value.retry_after > 10**9


async def test_the_fake_enforces_a_strict_one_second_window():
    async with FakeZoom(rate_limit=3) as zoom, aiohttp.ClientSession() as session:
        client = await api(zoom, session)
        for _ in range(3):
            await client.call(send(zoom))
        with pytest.raises(ZoomApiError) as info:
            await client.call(send(zoom))
        assert (info.value.status, info.value.retry_after) == (429, 1.0)
        assert zoom.rate_limited == 1
