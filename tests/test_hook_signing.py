"""Signed hook requests (the v1 scheme): the pure signing function, and ``verify_request``
through the real path (HTTP into the app, the plugin's store, the fake Zoom)."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chatopsbot import (
    SIGNATURE_WINDOW,
    Conversation,
    HookError,
    HookRequest,
    HookResponse,
    PluginContext,
    Text,
    hookimpl,
    route,
    sign_request,
    verify_request,
    verify_signature,
)
from chatopsbot.clock import ManualClock
from chatopsbot.routes import signature_base
from tests.conftest import CHANNEL

SECRET = "ci-token"
T = 1764061200  # 2025-11-25 09:00 UTC
START = datetime.fromtimestamp(T, UTC)


def request(method: str, path: str, query: dict[str, str], body: bytes, **headers: str) -> Any:
    return HookRequest(
        method=method,
        path=path,
        query=query,
        headers={k.replace("_", "-").lower(): v for k, v in headers.items()},
        body=body,
    )


# The pure part: what is signed, and how.


def test_the_base_string_is_exactly_as_documented():
    assert signature_base(
        "post", "/hooks/notify/signed", {}, b'{"text":"hi"}', timestamp=T, delivery_id="d-1"
    ) == (b'v1:1764061200:d-1:POST:/hooks/notify/signed::{"text":"hi"}')
    # Query parameters sorted by name, percent-encoded: no ":" before the body but separators.
    assert signature_base(
        "GET", "/hooks/x/a b:c", {"z": "1", "a": "x y:&=é"}, b"", timestamp=T
    ) == (b"v1:1764061200::GET:/hooks/x/a%20b%3Ac:a=x%20y%3A%26%3D%C3%A9&z=1:")


def test_signatures_match_what_openssl_computes():
    # The values below come from the shell example in docs/writing-plugins.md:
    #   printf '%s' "$base" | openssl dgst -sha256 -hmac "$SECRET" -r
    headers = sign_request(
        SECRET,
        "POST",
        "/hooks/notify/signed",
        body=b'{"text":"hi"}',
        timestamp=T,
        delivery_id="d-1",
    )
    assert headers == {
        "X-Chatopsbot-Timestamp": "1764061200",
        "X-Chatopsbot-Signature": (
            "v1=e56e3e07924256f5ddbbffa2a829ec3036c39bb3057adb9411111bd2ee04e453"
        ),
        "X-Delivery-Id": "d-1",
    }
    lock = sign_request(
        SECRET,
        "GET",
        "/hooks/deploy/lock",
        query={"service": "api", "environment": "prod"},
        timestamp=T,
    )
    assert lock["X-Chatopsbot-Signature"] == (
        "v1=0e78d983b204a302aa17a1fd5682b8be57941e7330dfcd1f354e0e01df631d55"
    )
    assert "X-Delivery-Id" not in lock


def test_a_delivery_id_is_a_plain_token():
    with pytest.raises(ValueError, match="delivery id"):
        sign_request(SECRET, "POST", "/hooks/x", timestamp=T, delivery_id="a:b")


def test_verify_signature_checks_each_part():
    body = b'{"text":"hi"}'
    headers = sign_request(SECRET, "POST", "/hooks/x", body=body, timestamp=T, delivery_id="d-1")
    good = request("POST", "/hooks/x", {}, body, **headers)
    assert verify_signature(good, SECRET, now=T) == "d-1"
    assert verify_signature(good, SECRET, now=T + SIGNATURE_WINDOW) == "d-1"
    assert verify_signature(good, SECRET, now=T - SIGNATURE_WINDOW) == "d-1"
    refusals = [
        (request("PUT", "/hooks/x", {}, body, **headers), SECRET, T),
        (request("POST", "/hooks/y", {}, body, **headers), SECRET, T),
        (request("POST", "/hooks/x", {"a": "1"}, body, **headers), SECRET, T),
        (request("POST", "/hooks/x", {}, body + b" ", **headers), SECRET, T),
        (request("POST", "/hooks/x", {}, body, **{**headers, "X-Delivery-Id": "d-2"}), SECRET, T),
        (good, "other", T),
        (good, "", T),
    ]
    for req, secret, now in refusals:
        with pytest.raises(HookError) as exc:
            verify_signature(req, secret, now=now)
        assert (exc.value.status, exc.value.message) == (
            401,
            "missing or wrong X-Chatopsbot-Signature",
        )
    with pytest.raises(HookError, match=r"timestamp too old \(more than 300 s"):
        verify_signature(good, SECRET, now=T + SIGNATURE_WINDOW + 1)
    with pytest.raises(HookError, match=r"timestamp too far in the future \(more than 300 s"):
        verify_signature(good, SECRET, now=T - SIGNATURE_WINDOW - 1)
    # Several signatures (a secret rotation): one matching is enough.
    rotated = {**headers, "X-Chatopsbot-Signature": "v1=00, " + headers["X-Chatopsbot-Signature"]}
    assert verify_signature(request("POST", "/hooks/x", {}, body, **rotated), SECRET, now=T)


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "missing X-Chatopsbot-Timestamp"),
        (
            {"X-Signature-256": "sha256=00"},
            "missing X-Chatopsbot-Timestamp: a body-only X-Signature-256 is not accepted here; "
            "sign with the v1 scheme (X-Chatopsbot-Timestamp, X-Chatopsbot-Signature)",
        ),
        ({"X-Chatopsbot-Timestamp": "soon"}, "X-Chatopsbot-Timestamp: expected unix seconds"),
        ({"X-Chatopsbot-Timestamp": "-5"}, "X-Chatopsbot-Timestamp: expected unix seconds"),
        ({"X-Chatopsbot-Timestamp": str(T)}, "missing or wrong X-Chatopsbot-Signature"),
    ],
)
def test_missing_or_malformed_headers_say_what_is_wrong(headers, message):
    with pytest.raises(HookError) as exc:
        verify_signature(request("POST", "/hooks/x", {}, b"", **headers), SECRET, now=T)
    assert (exc.value.status, exc.value.message) == (401, message)


# Through the app.


@route("POST", "/signed")
async def signed(ctx: PluginContext, req: HookRequest) -> HookResponse:
    delivery = await verify_request(ctx, req, SECRET)
    if delivery.duplicate:
        return delivery.duplicate_response
    try:
        data = req.json()
        if data.get("fail"):
            raise RuntimeError("handling failed")
        sent = await ctx.send_to(Conversation("acct-1", CHANNEL, "ops"), Text(data["text"]))
    except BaseException:
        await delivery.forget(ctx)
        raise
    return HookResponse(202, {"message_id": sent.message_id, "delivery": delivery.id})


@route("GET", "/check", max_body=0)
async def check(ctx: PluginContext, req: HookRequest) -> HookResponse:
    await verify_request(ctx, req, SECRET)
    return HookResponse(200, {"service": req.query.get("service")})


@route("POST", "/unset")
async def unset(ctx: PluginContext, req: HookRequest) -> HookResponse:
    await verify_request(ctx, req, "")
    return HookResponse(202, {})


@route("POST", "/careless")
async def careless(ctx: PluginContext, req: HookRequest) -> HookResponse:
    """A handler that does not forget its delivery when it fails: the app gives it back."""
    delivery = await verify_request(ctx, req, SECRET)
    if delivery.duplicate:
        return delivery.duplicate_response
    if req.json().get("fail"):
        raise RuntimeError("handling failed")
    return HookResponse(202, {"done": True})


class Signed:
    @hookimpl
    def chatops_routes(self) -> list[Any]:
        return [signed, check, unset, careless]


@pytest.fixture
async def bot(start_bot: Any) -> Any:
    return await start_bot(extra={"ci": Signed()}, clock=ManualClock(START))


async def post(bot: Any, text: str = "deployed", **kwargs: Any) -> Any:
    return await bot.signed_hook(
        "POST", "ci", "/signed", secret=SECRET, json={"text": text}, **kwargs
    )


async def test_a_signed_request_is_handled_and_its_replay_is_a_duplicate(bot):
    first = await post(bot, delivery_id="run-7")
    assert first.status == 202
    assert [m.text for m in bot.zoom.sent()] == ["deployed"]
    again = await post(bot, delivery_id="run-7")
    assert (again.status, again.body) == (200, {"status": "duplicate", "delivery": "run-7"})
    # GitHub's header counts as the delivery id too.
    github = await post(bot, "other", headers={"X-GitHub-Delivery": "run-7"})
    assert github.status == 401  # it was not signed with that id: the id is part of the signature
    base_headers = sign_request(
        SECRET,
        "POST",
        "/hooks/ci/signed",
        body=b'{"text": "gh"}',
        timestamp=T,
        delivery_id="run-8",
    )
    gh = {**base_headers, "X-GitHub-Delivery": base_headers.pop("X-Delivery-Id")}
    for expected in (202, 200):
        result = await bot.hook("POST", "ci", "/signed", data=b'{"text": "gh"}', headers=gh)
        assert result.status == expected
    assert [m.text for m in bot.zoom.sent()] == ["deployed", "gh"]


async def test_a_delivery_id_is_remembered_for_twice_the_window(bot):
    await post(bot, delivery_id="d-1")
    await bot.advance(timedelta(seconds=2 * SIGNATURE_WINDOW - 1))
    stale = await post(bot, delivery_id="d-1", timestamp=T)
    assert stale.status == 401  # the original request cannot come back: it is too old now
    assert (await post(bot, delivery_id="d-1")).body["status"] == "duplicate"
    assert len(bot.zoom.sent()) == 1


async def test_stale_and_future_timestamps_are_refused(bot):
    old = await post(bot, timestamp=T - SIGNATURE_WINDOW - 1)
    assert (old.status, old.body) == (
        401,
        {"error": "timestamp too old (more than 300 s before the bot's clock)"},
    )
    future = await post(bot, timestamp=T + SIGNATURE_WINDOW + 1)
    assert future.status == 401
    assert future.body["error"].startswith("timestamp too far in the future")
    assert (await post(bot, timestamp=T - SIGNATURE_WINDOW)).status == 202


async def test_a_captured_request_replayed_later_is_refused(bot):
    body = json.dumps({"text": "once"}).encode()
    headers = sign_request(SECRET, "POST", "/hooks/ci/signed", body=body, timestamp=T)
    assert (await bot.hook("POST", "ci", "/signed", data=body, headers=headers)).status == 202
    await bot.advance(timedelta(seconds=SIGNATURE_WINDOW + 1))
    replay = await bot.hook("POST", "ci", "/signed", data=body, headers=headers)
    assert replay.status == 401
    assert [m.text for m in bot.zoom.sent()] == ["once"]


async def test_a_get_signature_is_bound_to_its_query(bot):
    ok = await bot.signed_hook("GET", "ci", "/check?service=api", secret=SECRET)
    assert (ok.status, ok.body) == (200, {"service": "api"})
    headers = sign_request(SECRET, "GET", "/hooks/ci/check", query={"service": "api"}, timestamp=T)
    assert (await bot.hook("GET", "ci", "/check?service=api", headers=headers)).status == 200
    for other in ("/check?service=web", "/check", "/check?service=api&x=1"):
        refused = await bot.hook("GET", "ci", other, headers=headers)
        assert refused.status == 401, other
    # A read is answered again with the same id: only changes are deduplicated.
    for _ in range(2):
        result = await bot.signed_hook(
            "GET", "ci", "/check?service=api", secret=SECRET, delivery_id="poll-1"
        )
        assert result.status == 200


async def test_a_failed_delivery_is_handled_when_retried(bot):
    failed = await bot.signed_hook(
        "POST", "ci", "/signed", secret=SECRET, json={"fail": True}, delivery_id="d-9"
    )
    assert failed.status == 500
    retried = await post(bot, "second try", delivery_id="d-9")
    assert retried.status == 202
    assert [m.text for m in bot.zoom.sent()] == ["second try"]


async def test_body_only_signatures_and_an_empty_secret_are_refused(bot):
    body = b'{"text": "x"}'
    legacy = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    result = await bot.hook("POST", "ci", "/signed", data=body, headers={"X-Signature-256": legacy})
    assert result.status == 401
    assert "body-only X-Signature-256 is not accepted" in result.body["error"]
    for secret in ("", SECRET):
        unset = await bot.signed_hook("POST", "ci", "/unset", secret=secret, json={})
        assert (unset.status, unset.body) == (
            401,
            {"error": "missing or wrong X-Chatopsbot-Signature"},
        )
    assert bot.zoom.sent() == []


async def test_a_malformed_delivery_id_is_a_400(bot):
    headers = sign_request(SECRET, "POST", "/hooks/ci/signed", body=b"{}", timestamp=T)
    result = await bot.hook(
        "POST", "ci", "/signed", data=b"{}", headers={**headers, "X-Delivery-Id": "x" * 129}
    )
    assert (result.status, result.body) == (
        400,
        {"error": "x-delivery-id: expected 1 to 128 of A-Z a-z 0-9 . _ -"},
    )


async def test_a_signed_request_without_a_delivery_id_is_handled_once_within_its_window(bot):
    body = json.dumps({"text": "deployed"}).encode()
    now = int(START.timestamp())
    headers = sign_request(SECRET, "POST", "/hooks/ci/signed", body=body, timestamp=now)
    first = await bot.client.post("/hooks/ci/signed", data=body, headers=headers)
    replay = await bot.client.post("/hooks/ci/signed", data=body, headers=headers)
    assert first.status == 202
    assert (replay.status, (await replay.json())["status"]) == (200, "duplicate")
    await bot.settle()
    assert [m.text for m in bot.zoom.sent()] == ["deployed"]


async def test_a_delivery_whose_handling_failed_is_handled_when_sent_again(bot):
    failed = await bot.signed_hook(
        "POST", "ci", "/careless", secret=SECRET, json={"fail": True}, delivery_id="run-9"
    )
    assert failed.status == 500
    retried = await bot.signed_hook(
        "POST", "ci", "/careless", secret=SECRET, json={}, delivery_id="run-9"
    )
    assert (retried.status, retried.body) == (202, {"done": True})
    again = await bot.signed_hook(
        "POST", "ci", "/careless", secret=SECRET, json={}, delivery_id="run-9"
    )
    assert again.body["status"] == "duplicate"
