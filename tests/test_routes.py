"""Plugin HTTP hooks: mounting under /hooks/<plugin>, auth helpers, limits, errors as JSON."""

from __future__ import annotations

import hashlib
import hmac
import io
from typing import Any

import pytest

from chatopsbot import (
    Conversation,
    HookError,
    HookRequest,
    HookResponse,
    PluginContext,
    Post,
    Text,
    hookimpl,
    require_bearer,
    require_signature,
    route,
)
from tests.conftest import CHANNEL

TOKEN = "ci-token"


@route("POST")
async def announce(ctx: PluginContext, request: HookRequest) -> HookResponse:
    try:
        require_bearer(request, TOKEN)
    except HookError:
        require_signature(request, TOKEN)
    data = request.json()
    if not isinstance(data, dict) or not isinstance(data.get("text"), str):
        raise HookError(400, "text: required, a string")
    sent = await ctx.send_to(Conversation("acct-1", CHANNEL, "ops"), Text(data["text"]))
    await ctx.store.set("last", data["text"])
    return HookResponse(202, {"message_id": sent.message_id})


@route("GET", "/last", max_body=0)
async def last(ctx: PluginContext, request: HookRequest) -> HookResponse:
    value = await ctx.store.get("last")
    return HookResponse(200 if value else 404, {"last": value, "q": request.query.get("q")})


@route("POST", "/crash")
async def crash(ctx: PluginContext, request: HookRequest) -> HookResponse:
    raise RuntimeError("plugin bug")


@route("POST", "/sloppy")
async def sloppy(ctx: PluginContext, request: HookRequest) -> Any:
    return {"not": "a HookResponse"}


@route("POST", "/queue")
async def queue(ctx: PluginContext, request: HookRequest) -> HookResponse:
    require_bearer(request, TOKEN)
    text = request.json()["text"]
    ops = Conversation("acct-1", CHANNEL, "ops")
    return HookResponse(202, {"queued": True}, send=[Post(ops, Text(text))])


@route("POST", "/bare")
async def bare(ctx: PluginContext, request: HookRequest) -> HookResponse:
    return HookResponse(202, send=[Text("to whom?")])  # type: ignore[list-item]


class Notifier:
    @hookimpl
    def chatops_routes(self) -> list[Any]:
        return [announce, last, crash, sloppy, queue, bare]


@pytest.fixture
async def bot(start_bot: Any) -> Any:
    return await start_bot(extra={"notify": Notifier()})


def bearer(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_a_hook_posts_to_the_channel_through_the_outbound_layer(bot):
    resp = await bot.client.post(
        "/hooks/notify", json={"text": "deployed api 1.2"}, headers=bearer()
    )
    assert resp.status == 202
    await bot.settle()
    [message] = bot.zoom.sent()
    assert (message.text, message.to_jid) == ("deployed api 1.2", CHANNEL)
    assert (await resp.json()) == {"message_id": message.message_id}
    resp = await bot.client.get("/hooks/notify/last?q=1")
    assert resp.status == 200
    assert await resp.json() == {"last": "deployed api 1.2", "q": "1"}


async def test_hmac_signature_is_accepted_in_place_of_the_token(bot):
    body = b'{"text": "signed"}'
    sig = "sha256=" + hmac.new(TOKEN.encode(), body, hashlib.sha256).hexdigest()
    resp = await bot.client.post("/hooks/notify", data=body, headers={"X-Signature-256": sig})
    assert resp.status == 202
    resp = await bot.client.post(
        "/hooks/notify", data=body + b" ", headers={"X-Signature-256": sig}
    )
    assert resp.status == 401


@pytest.mark.parametrize(
    "headers",
    [{}, bearer("wrong"), {"Authorization": "Basic abc"}, {"Authorization": "Bearer"}],
    ids=["none", "wrong", "basic", "empty"],
)
async def test_wrong_credentials_get_401_and_send_nothing(bot, headers):
    resp = await bot.client.post("/hooks/notify", json={"text": "x"}, headers=headers)
    assert resp.status == 401
    assert (await resp.json())["error"] == "missing or wrong x-signature-256 signature"
    await bot.settle()
    assert bot.zoom.requests == []


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (
            b"{oops",
            "malformed JSON: Expecting property name enclosed in double quotes at line 1 column 2",
        ),
        (b"\xff", "body is not UTF-8 (byte 0)"),
        (b"[" * 50_000, "malformed JSON: nested too deeply"),
        (b'{"text": 5}', "text: required, a string"),
    ],
)
async def test_bad_bodies_get_400_with_the_reason(bot, body, error):
    resp = await bot.client.post("/hooks/notify", data=body, headers=bearer())
    assert resp.status == 400
    assert await resp.json() == {"error": error}


async def test_body_limits(bot):
    big = io.BytesIO(b"x" * (64 * 1024 + 1))
    resp = await bot.client.post("/hooks/notify", data=big, headers=bearer())
    assert resp.status == 413


async def test_a_crashing_hook_gives_500_with_a_reference(bot, caplog):
    resp = await bot.client.post("/hooks/notify/crash")
    assert resp.status == 500
    data = await resp.json()
    assert data["error"] == "internal error"
    assert f"[ref {data['ref']}]" in caplog.text
    resp = await bot.client.post("/hooks/notify/sloppy")
    assert resp.status == 500


async def test_unknown_hook_paths_are_404_and_metrics_count_hooks(bot):
    assert (await bot.client.post("/hooks/nobody")).status == 404
    await bot.client.post("/hooks/notify", json={"text": "x"})
    text = await (await bot.client.get("/metrics")).text()
    assert 'chatopsbot_hook_requests_total{plugin="notify",status="401"} 1.0' in text


def test_route_paths_must_start_with_a_slash():
    with pytest.raises(ValueError, match="must be empty or start with /"):
        route("GET", "lock")(last.handler)


async def test_shutdown_waits_for_a_hook_in_flight_and_sends_what_it_sends(start_bot, zoom):
    import asyncio

    @route("POST", "/slow")
    async def slow(ctx: PluginContext, request: HookRequest) -> HookResponse:
        await asyncio.sleep(0.3)
        await ctx.send_to(Conversation("acct-1", CHANNEL, "ops"), Text("late but sent"))
        return HookResponse(202, {"ok": True})

    class Slow:
        @hookimpl
        def chatops_routes(self) -> list[Any]:
            return [slow]

    bot = await start_bot(extra={"slow": Slow()})
    request = asyncio.ensure_future(bot.client.post("/hooks/slow/slow"))
    await asyncio.sleep(0.1)
    await bot.client.app.shutdown()
    resp = await request
    assert resp.status == 202
    assert [m.text for m in zoom.sent()] == ["late but sent"]


async def test_a_stopping_runtime_refuses_new_work(bot):
    async def never() -> None:
        raise AssertionError("must not run")

    bot.runtime.stopping = True
    assert bot.runtime.spawn(never(), name="late") is False
    resp = await bot.post({"event": "meeting.started", "payload": {}})
    assert resp.status == 503


async def test_a_hook_returns_posts_queued_before_its_answer_even_while_zoom_is_down(bot):
    bot.zoom.outage(503)
    resp = await bot.client.post(
        "/hooks/notify/queue", json={"text": "build 42 is green"}, headers=bearer()
    )
    # Answered at once: the message is in the outbox, not waiting for Zoom.
    assert resp.status == 202
    assert await resp.json() == {"queued": True}
    assert bot.zoom.sent() == []
    bot.zoom.restore()
    await bot.advance(60)
    assert [m.text for m in bot.zoom.sent()] == ["build 42 is green"]


async def test_a_hook_returning_a_bare_response_is_a_500_with_a_reference(bot, caplog):
    resp = await bot.client.post("/hooks/notify/bare", json={})
    assert resp.status == 500
    ref = (await resp.json())["ref"]
    assert f"its messages could not be queued [ref {ref}]" in caplog.text
    assert "returned a Text with no conversation" in caplog.text
