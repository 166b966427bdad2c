"""chatopsbot.zoom.auth and chatopsbot.zoom.client, against the fake Zoom and small stub servers."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from chatopsbot.clock import ManualClock
from chatopsbot.context import Conversation
from chatopsbot.responses import Card, Delete, Edit, Text
from chatopsbot.zoom.auth import TokenCache, TokenError
from chatopsbot.zoom.cards import ApiCall, render, render_content
from chatopsbot.zoom.client import (
    TOKEN_REJECTED_CODES,
    ApiResult,
    ZoomApi,
    ZoomApiError,
    parse_retry_after,
)
from chatopsbot.zoom.fake import FakeZoom, Fault

CHANNEL = Conversation("acct-1", "ops@conference.xmpp.zoom.us", "ops")
NOW = datetime(2025, 8, 22, 22, 0, tzinfo=UTC).timestamp()


def send(text: str = "hello", conversation: Conversation = CHANNEL) -> ApiCall:
    return render(
        Text(text), robot_jid="bot@xmpp.zoom.us", conversation=conversation, caller_id=None
    )


def tokens_for(session: aiohttp.ClientSession, zoom: FakeZoom, **kwargs: Any) -> TokenCache:
    options: dict[str, Any] = {
        "oauth_url": zoom.oauth_url,
        "client_id": zoom.client_id,
        "client_secret": zoom.client_secret,
        **kwargs,
    }
    return TokenCache(session, **options)


def api_for(
    session: aiohttp.ClientSession, zoom: FakeZoom, **kwargs: Any
) -> tuple[ZoomApi, TokenCache]:
    tokens = tokens_for(session, zoom)
    return ZoomApi(session, base_url=zoom.api_base_url, tokens=tokens, **kwargs), tokens


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@asynccontextmanager
async def stub(handler: Handler) -> AsyncIterator[str]:
    """A loopback server answering every request with ``handler``; yields its base URL."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


# parse_retry_after


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("30", 30.0),
        ("0", 0.0),
        ("1", 1.0),
        (" 12.5 ", 12.5),
        ("-5", 0.0),
        ("2025-08-23T00:00:00Z", 7200.0),
        ("2025-08-23T00:00:00+00:00", 7200.0),
        ("2025-08-23T01:00:00+02:00", 3600.0),
        ("2025-08-22T22:00:30.5Z", 30.5),
        ("Sat, 23 Aug 2025 00:00:00 GMT", 7200.0),
        ("Fri, 22 Aug 2025 22:01:00 GMT", 60.0),
    ],
)
def test_parse_retry_after(value, expected):
    assert parse_retry_after(value, NOW) == expected


@pytest.mark.parametrize(
    "value",
    [
        "2025-08-22T00:00:00Z",
        "2000-01-01T00:00:00Z",
        "Thu, 01 Jan 1970 00:00:00 GMT",
        "Fri, 22 Aug 2025 21:59:59 GMT",
    ],
)
def test_a_retry_after_date_in_the_past_is_zero(value):
    assert parse_retry_after(value, NOW) == 0.0


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "   ",
        "soon",
        "tomorrow at noon",
        "Mon",
        "2025-13-01T00:00:00Z",
        "Fri, 32 Aug 2025 00:00:00 GMT",
        # Dates without a time zone cannot be placed: unreadable, not guessed.
        "2025-08-23T00:00:00",
        "2025-08-23",
        "Sat, 23 Aug 2025 00:00:00 -0000",
    ],
)
def test_an_absent_or_unreadable_retry_after_is_none(value):
    assert parse_retry_after(value, NOW) is None


def test_an_rfc_7231_date_from_the_standard_library():
    when = datetime(2025, 8, 22, 22, 5, tzinfo=UTC)
    assert parse_retry_after(format_datetime(when, usegmt=True), NOW) == 300.0


@pytest.mark.parametrize("value", ["inf", "Infinity", "1e400", "nan"])
def test_non_finite_retry_after_is_unreadable(value):
    assert parse_retry_after(value, NOW) is None


# TokenCache


async def test_one_token_fetch_serves_many_concurrent_callers():
    async with FakeZoom() as zoom, aiohttp.ClientSession() as session:
        tokens = tokens_for(session, zoom)
        got = await asyncio.gather(*(tokens.get() for _ in range(20)))
        assert got == ["token-1"] * 20
        assert zoom.token_requests == 1
        assert tokens.fetches == 1
        # Later callers use the cached token without asking again.
        assert await tokens.get() == "token-1"
        assert zoom.token_requests == 1


async def test_the_token_is_refreshed_within_the_margin_of_expiry():
    now = [1000.0]
    async with FakeZoom(token_lifetime=3600) as zoom, aiohttp.ClientSession() as session:
        tokens = tokens_for(session, zoom, monotonic=lambda: now[0])
        assert await tokens.get() == "token-1"
        now[0] = 1000.0 + 3600 - 60 - 0.001  # just outside the 60 s margin
        assert await tokens.get() == "token-1"
        assert zoom.token_requests == 1
        now[0] = 1000.0 + 3600 - 60  # exactly at the margin: refresh
        assert await tokens.get() == "token-2"
        assert zoom.token_requests == 2
        assert tokens.fetches == 2
        # The new token's life counts from when it was requested.
        now[0] = 4540.0 + 3539.0
        assert await tokens.get() == "token-2"
        assert zoom.token_requests == 2


async def test_a_custom_margin():
    now = [0.0]
    async with FakeZoom(token_lifetime=100) as zoom, aiohttp.ClientSession() as session:
        tokens = tokens_for(session, zoom, monotonic=lambda: now[0], margin=10.0)
        assert await tokens.get() == "token-1"
        now[0] = 89.9
        assert await tokens.get() == "token-1"
        now[0] = 90.0
        assert await tokens.get() == "token-2"


async def test_concurrent_callers_share_one_refresh():
    now = [0.0]
    async with FakeZoom() as zoom, aiohttp.ClientSession() as session:
        tokens = tokens_for(session, zoom, monotonic=lambda: now[0])
        await tokens.get()
        now[0] = 3600.0
        got = await asyncio.gather(*(tokens.get() for _ in range(10)))
        assert got == ["token-2"] * 10
        assert zoom.token_requests == 2


async def test_invalidate_forgets_only_the_rejected_token():
    async with FakeZoom() as zoom, aiohttp.ClientSession() as session:
        tokens = tokens_for(session, zoom)
        assert await tokens.get() == "token-1"
        tokens.invalidate("token-0")  # an older token: the current one stays
        assert await tokens.get() == "token-1"
        assert zoom.token_requests == 1
        tokens.invalidate("token-1")
        assert await tokens.get() == "token-2"
        assert zoom.token_requests == 2


async def test_the_token_request_uses_basic_auth_and_client_credentials():
    seen: list[tuple[str, str | None, dict[str, str]]] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append((request.method, request.headers.get("Authorization"), dict(request.query)))
        return web.json_response({"access_token": "abc", "expires_in": 3599})

    async with stub(handler) as url, aiohttp.ClientSession() as session:
        tokens = TokenCache(
            session, oauth_url=url + "/oauth/token", client_id="id", client_secret="sé"
        )
        assert await tokens.get() == "abc"
    expected = "Basic " + base64.b64encode("id:sé".encode()).decode()
    assert seen == [("POST", expected, {"grant_type": "client_credentials"})]


async def test_wrong_credentials_are_not_retryable():
    async with FakeZoom() as zoom, aiohttp.ClientSession() as session:
        tokens = TokenCache(
            session, oauth_url=zoom.oauth_url, client_id=zoom.client_id, client_secret="wrong"
        )
        with pytest.raises(TokenError) as info:
            await tokens.get()
        assert info.value.retryable is False
        assert str(info.value) == (
            'token request answered 401: {"reason": "Invalid client_id or client_secret", '
            '"error": "invalid_client"}'
        )
        assert tokens.fetches == 0
        assert zoom.token_requests == 1


@pytest.mark.parametrize(
    ("status", "body", "retryable", "message"),
    [
        (503, "down for maintenance", True, "token request answered 503: down for maintenance"),
        (500, "x" * 300, True, "token request answered 500: " + "x" * 200),
        (400, "bad grant", False, "token request answered 400: bad grant"),
        (403, "", False, "token request answered 403: "),
        (200, "not json", True, "token response is not the JSON Zoom documents"),
        (200, "[]", True, "token response is not the JSON Zoom documents"),
        (200, '{"access_token": "t"}', True, "token response is not the JSON Zoom documents"),
        (200, '{"expires_in": 3600}', True, "token response is not the JSON Zoom documents"),
        (
            200,
            '{"access_token": "", "expires_in": 3600}',
            True,
            "token response lacks access_token or expires_in",
        ),
        (
            200,
            '{"access_token": 5, "expires_in": 3600}',
            True,
            "token response lacks access_token or expires_in",
        ),
        (
            200,
            '{"access_token": "t", "expires_in": "3600"}',
            True,
            "token response lacks access_token or expires_in",
        ),
    ],
)
async def test_token_endpoint_failures(status, body, retryable, message):
    async def handler(request: web.Request) -> web.Response:
        return web.Response(status=status, text=body)

    async with stub(handler) as url, aiohttp.ClientSession() as session:
        tokens = TokenCache(session, oauth_url=url, client_id="a", client_secret="b")
        with pytest.raises(TokenError) as info:
            await tokens.get()
    assert (str(info.value), info.value.retryable) == (message, retryable)
    assert tokens.fetches == 0


async def test_an_unreachable_token_endpoint_is_retryable():
    zoom = FakeZoom()
    await zoom.start()
    oauth_url = zoom.oauth_url
    await zoom.close()
    async with aiohttp.ClientSession() as session:
        tokens = TokenCache(session, oauth_url=oauth_url, client_id="a", client_secret="b")
        with pytest.raises(TokenError) as info:
            await tokens.get()
    assert info.value.retryable is True
    assert str(info.value).startswith("token request failed: ClientConnectorError: ")
    assert isinstance(info.value.__cause__, aiohttp.ClientConnectorError)


async def test_a_slow_token_endpoint_times_out_as_retryable():
    release = asyncio.Event()

    async def handler(request: web.Request) -> web.Response:
        await release.wait()
        return web.json_response({})

    async with stub(handler) as url, aiohttp.ClientSession() as session:
        tokens = TokenCache(session, oauth_url=url, client_id="a", client_secret="b", timeout=0.05)
        with pytest.raises(TokenError) as info:
            await tokens.get()
        release.set()
    assert info.value.retryable is True
    assert str(info.value).startswith("token request failed: ")


async def test_a_failed_fetch_is_retried_by_the_next_caller():
    answers = [web.Response(status=503, text="busy"), None]

    async def handler(request: web.Request) -> web.Response:
        answer = answers.pop(0)
        return answer or web.json_response({"access_token": "later", "expires_in": 3600})

    async with stub(handler) as url, aiohttp.ClientSession() as session:
        tokens = TokenCache(session, oauth_url=url, client_id="a", client_secret="b")
        with pytest.raises(TokenError):
            await tokens.get()
        assert await tokens.get() == "later"
        assert tokens.fetches == 1


# ZoomApi.call


async def test_a_call_sends_the_body_with_a_bearer_token():
    async with FakeZoom() as zoom, aiohttp.ClientSession() as session:
        api, tokens = api_for(session, zoom)
        call = send("hello")
        result = await api.call(call)
        assert isinstance(result, ApiResult)
        assert result.status == 201
        assert result.message_id == "msg-2"  # id 1 went to the token
        assert result.tracking_id == "v=2.0;clid=fake;rid=WEB_1"
        assert result.data["robot_jid"] == "bot@xmpp.zoom.us"
        assert result.data["to_jid"] == "ops@conference.xmpp.zoom.us"
        assert zoom.token_requests == 1
        assert tokens.fetches == 1
        [request] = zoom.requests
        assert (request.method, request.path, request.status, request.message_id) == (
            "POST",
            "/v2/im/chat/messages",
            201,
            "msg-2",
        )
        assert request.body == call.body
        message = zoom.messages["msg-2"]
        assert (message.to_jid, message.account_id, message.text) == (
            "ops@conference.xmpp.zoom.us",
            "acct-1",
            "hello",
        )
        assert message.content == render_content(Text("hello"))


async def test_the_authorization_header_is_the_cached_bearer_token():
    seen: list[str | None] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization"))
        return web.json_response({"message_id": "m"}, headers={"x-zm-trackingid": "t-1"})

    async with FakeZoom() as zoom, stub(handler) as url, aiohttp.ClientSession() as session:
        tokens = tokens_for(session, zoom)
        api = ZoomApi(session, base_url=url + "/v2/", tokens=tokens)
        first = await api.call(send("a"))
        await api.call(send("b"))
    assert seen == ["Bearer token-1", "Bearer token-1"]
    assert first == ApiResult(200, {"message_id": "m"}, "t-1")
    assert zoom.token_requests == 1


async def test_edit_and_delete_through_the_fake():
    async with FakeZoom() as zoom, aiohttp.ClientSession() as session:
        api, _ = api_for(session, zoom)
        sent = await api.call(send("draft"))
        assert sent.message_id == "msg-2"
        edit = render(
            Edit("msg-2", Card("final")),
            robot_jid="bot@xmpp.zoom.us",
            conversation=CHANNEL,
            caller_id=None,
        )
        edited = await api.call(edit)
        assert (edited.status, edited.message_id) == (200, "msg-2")
        assert zoom.messages["msg-2"].content == {"head": {"text": "final"}}
        assert zoom.messages["msg-2"].edits == 1
        delete = render(
            Delete("msg-2"), robot_jid="bot@xmpp.zoom.us", conversation=CHANNEL, caller_id=None
        )
        deleted = await api.call(delete)
        assert deleted.status == 200
        assert zoom.messages["msg-2"].deleted is True
        assert [(r.method, r.path, r.status) for r in zoom.requests] == [
            ("POST", "/v2/im/chat/messages", 201),
            ("PUT", "/v2/im/chat/messages/msg-2", 200),
            ("DELETE", "/v2/im/chat/messages/msg-2", 200),
        ]
        assert zoom.requests[2].params == {"account_id": "acct-1", "robot_jid": "bot@xmpp.zoom.us"}
        assert zoom.requests[2].body == {}


async def test_an_expired_token_is_refreshed_once_and_the_call_retried():
    async with FakeZoom() as zoom, aiohttp.ClientSession() as session:
        api, tokens = api_for(session, zoom)
        await api.call(send("first"))
        zoom.expire_tokens()
        result = await api.call(send("second"))
        assert result.status == 201
        assert result.message_id == "msg-4"  # token-1, msg-2, token-3, msg-4
        assert zoom.token_requests == 2
        assert tokens.fetches == 2
        assert [r.status for r in zoom.requests] == [201, 401, 201]
        assert [m.text for m in zoom.sent()] == ["first", "second"]


async def test_a_token_rejected_twice_is_not_retried_again():
    async with FakeZoom() as zoom, aiohttp.ClientSession() as session:
        api, _ = api_for(session, zoom)
        await api.call(send("first"))
        zoom.expire_tokens()
        zoom.inject(Fault(401, {"code": 124, "message": "Invalid access token."}))
        with pytest.raises(ZoomApiError) as info:
            await api.call(send("second"))
        assert (info.value.status, info.value.code) == (401, 124)
        assert zoom.token_requests == 2
        assert [r.status for r in zoom.requests] == [201, 401, 401]


async def test_code_7010_also_means_a_rejected_token():
    assert frozenset({124, 7010}) == TOKEN_REJECTED_CODES
    async with FakeZoom() as zoom, aiohttp.ClientSession() as session:
        api, _ = api_for(session, zoom)
        zoom.inject(Fault(401, {"code": 7010, "message": "Invalid token."}))
        result = await api.call(send())
        assert result.status == 201
        assert zoom.token_requests == 2
        assert [r.status for r in zoom.requests] == [401, 201]


async def test_other_401s_are_not_retried():
    async with FakeZoom() as zoom, aiohttp.ClientSession() as session:
        api, _ = api_for(session, zoom)
        zoom.inject(Fault(401, {"code": 300, "message": "Not allowed."}))
        with pytest.raises(ZoomApiError) as info:
            await api.call(send())
        assert (info.value.status, info.value.code, info.value.message) == (
            401,
            300,
            "Not allowed.",
        )
        assert zoom.token_requests == 1
        assert len(zoom.requests) == 1


async def test_a_daily_limit_429_carries_the_wait():
    async with FakeZoom() as zoom, aiohttp.ClientSession() as session:
        clock = ManualClock(datetime(2025, 8, 22, 22, 0, tzinfo=UTC))
        api, _ = api_for(session, zoom, clock=clock)
        zoom.inject(
            Fault(
                429,
                {"code": 429, "message": "You have reached the maximum daily rate limit."},
                {"Retry-After": "2025-08-23T00:00:00Z", "X-RateLimit-Type": "Daily-limit"},
            )
        )
        with pytest.raises(ZoomApiError) as info:
            await api.call(send())
        error = info.value
        assert error.status == 429
        assert error.code == 429
        assert error.daily_limit is True
        assert error.retry_after == 7200.0
        assert error.message == "You have reached the maximum daily rate limit."
        assert error.tracking_id == "v=2.0;clid=fake;rid=WEB_1"


async def test_a_per_second_429_is_not_the_daily_limit():
    async with FakeZoom() as zoom, aiohttp.ClientSession() as session:
        api, _ = api_for(session, zoom)
        zoom.inject(Fault(429, {"code": 429}, {"Retry-After": "2", "X-RateLimit-Type": "QPS"}))
        with pytest.raises(ZoomApiError) as info:
            await api.call(send())
        assert (info.value.daily_limit, info.value.retry_after) == (False, 2.0)


async def test_a_429_without_headers_has_no_wait_and_no_daily_limit():
    async with FakeZoom() as zoom, aiohttp.ClientSession() as session:
        api, _ = api_for(session, zoom)
        zoom.inject(Fault(429, {"code": 429, "message": "Too many requests."}))
        with pytest.raises(ZoomApiError) as info:
            await api.call(send())
        assert (info.value.retry_after, info.value.daily_limit) == (None, False)


async def test_retry_after_is_only_read_on_429s():
    async with FakeZoom() as zoom, aiohttp.ClientSession() as session:
        api, _ = api_for(session, zoom)
        zoom.inject(Fault(503, {"message": "busy"}, {"Retry-After": "9"}))
        with pytest.raises(ZoomApiError) as info:
            await api.call(send())
        assert (info.value.status, info.value.retry_after, info.value.code) == (503, None, None)


async def test_a_400_carries_code_message_and_tracking_id():
    async with FakeZoom() as zoom, aiohttp.ClientSession() as session:
        api, _ = api_for(session, zoom)
        zoom.inject(Fault(400, {"code": 7001, "message": "Invalid request body format."}))
        with pytest.raises(ZoomApiError) as info:
            await api.call(send())
        error = info.value
        assert (error.status, error.code, error.message, error.tracking_id) == (
            400,
            7001,
            "Invalid request body format.",
            "v=2.0;clid=fake;rid=WEB_1",
        )
        assert (error.retry_after, error.daily_limit) == (None, False)
        assert str(error) == (
            "Zoom answered 400 (code 7001): Invalid request body format. "
            "[tracking v=2.0;clid=fake;rid=WEB_1]"
        )
        # The fault was used up: the next call behaves.
        assert (await api.call(send())).status == 201


async def test_the_fakes_own_validation_errors_come_back_as_api_errors():
    async with FakeZoom() as zoom, aiohttp.ClientSession() as session:
        api, _ = api_for(session, zoom)
        wrong_robot = render(
            Text("x"), robot_jid="other@xmpp.zoom.us", conversation=CHANNEL, caller_id=None
        )
        with pytest.raises(ZoomApiError) as info:
            await api.call(wrong_robot)
        assert (info.value.status, info.value.code, info.value.message) == (
            400,
            7004,
            "Invalid robot_jid.",
        )
        missing = render(
            Delete("msg-999"), robot_jid="bot@xmpp.zoom.us", conversation=CHANNEL, caller_id=None
        )
        with pytest.raises(ZoomApiError) as info:
            await api.call(missing)
        assert (info.value.status, info.value.code, info.value.message) == (
            404,
            8001,
            "Invalid message_id.",
        )


@pytest.mark.parametrize(
    ("status", "text", "code", "message"),
    [
        (502, "upstream exploded", None, "upstream exploded"),
        (502, "", None, "Bad Gateway"),
        (500, '{"code": "E1", "message": "odd"}', None, "odd"),
        (500, '{"code": 5}', 5, '{"code": 5}'),
        (500, "[1, 2]", None, "[1, 2]"),
        (418, "y" * 300, None, "y" * 200),
    ],
)
async def test_error_bodies_that_are_not_zoom_json(status, text, code, message):
    async def handler(request: web.Request) -> web.Response:
        return web.Response(status=status, text=text)

    async with FakeZoom() as zoom, stub(handler) as url, aiohttp.ClientSession() as session:
        api = ZoomApi(session, base_url=url, tokens=tokens_for(session, zoom))
        with pytest.raises(ZoomApiError) as info:
            await api.call(send())
    assert (info.value.status, info.value.code, info.value.message, info.value.tracking_id) == (
        status,
        code,
        message,
        "",
    )


@pytest.mark.parametrize(
    ("status", "text", "data"),
    [
        (204, "", {}),
        (200, "not json", {}),
        (200, "[1]", {}),
        (202, '{"message_id": ""}', {"message_id": ""}),
        (200, '{"message_id": 5}', {"message_id": 5}),
    ],
)
async def test_successes_without_a_message_id(status, text, data):
    async def handler(request: web.Request) -> web.Response:
        return web.Response(status=status, text=text or None)

    async with FakeZoom() as zoom, stub(handler) as url, aiohttp.ClientSession() as session:
        api = ZoomApi(session, base_url=url, tokens=tokens_for(session, zoom))
        result = await api.call(send())
    assert result == ApiResult(status, data, "")
    assert result.message_id is None


async def test_a_dropped_connection_is_a_client_error():
    async with FakeZoom() as zoom, aiohttp.ClientSession() as session:
        api, _ = api_for(session, zoom)
        zoom.inject(Fault(0))
        with pytest.raises(aiohttp.ClientError):
            await api.call(send())
        assert (await api.call(send("again"))).status == 201


async def test_a_slow_answer_times_out():
    async with FakeZoom() as zoom, aiohttp.ClientSession() as session:
        api, _ = api_for(session, zoom, timeout=0.05)
        zoom.inject(Fault(200, {"message_id": "late"}, delay=0.3))
        with pytest.raises(TimeoutError):
            await api.call(send())


async def test_the_fakes_strict_rate_limit_answers_429():
    now = [1000.0]
    async with (
        FakeZoom(rate_limit=2, clock=lambda: now[0]) as zoom,
        aiohttp.ClientSession() as session,
    ):
        api, _ = api_for(session, zoom)
        assert (await api.call(send("1"))).status == 201
        assert (await api.call(send("2"))).status == 201
        with pytest.raises(ZoomApiError) as info:
            await api.call(send("3"))
        error = info.value
        assert (error.status, error.code, error.retry_after, error.daily_limit) == (
            429,
            429,
            1.0,
            False,
        )
        assert error.message == "You have reached the maximum per-second rate limit."
        assert zoom.rate_limited == 1
        # Another account has its own window.
        other = Conversation("acct-2", "dev@conference.xmpp.zoom.us")
        assert (await api.call(send("elsewhere", other))).status == 201
        # A second later the window has moved on.
        now[0] += 1.0
        assert (await api.call(send("4"))).status == 201
        assert [r.status for r in zoom.requests] == [201, 201, 429, 201, 201]
        assert [m.text for m in zoom.sent()] == ["1", "2", "elsewhere", "4"]
