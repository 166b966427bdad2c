"""The aiohttp adapter end to end: signatures, bodies, events, health, metrics, shutdown,
and replies through the outbound layer to the fake Zoom on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import io
import json
import logging
import time
from typing import Any

import pytest

from chatopsbot import (
    Command,
    Context,
    Text,
    command,
    hookimpl,
)
from chatopsbot.app import _read_body
from chatopsbot.zoom.fake import Fault
from chatopsbot.zoom.payloads import bot_installed, bot_notification, signed
from chatopsbot.zoom.signature import sign
from tests.bot_process import wait_until
from tests.conftest import CHANNEL, SECRET
from tests.sample import Sample

ALICE = "u-alice"


@pytest.fixture
async def bot(start_bot: Any) -> Any:
    return await start_bot(extra={"sample": Sample()})


async def test_replies_to_one_conversation_arrive_in_order_within_the_rate_limit(start_bot, zoom):
    zoom.rate_limit = 10
    bot = await start_bot(extra={"sample": Sample()}, outbound={"rate_limit": 10})
    replies = await bot.command("many 25")
    assert [m.text for m in replies] == [f"reply {n}" for n in range(25)]
    assert zoom.rate_limited == 0


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"x-zm-request-timestamp": "1"},
        {"x-zm-signature": "v0=abc"},
    ],
    ids=["none", "no-signature", "no-timestamp"],
)
async def test_missing_signature_headers_are_refused(bot, headers):
    resp = await bot.client.post(bot.path, data=b"{}", headers=headers)
    assert resp.status == 401
    assert bot.zoom.requests == []


async def test_wrong_or_stale_signatures_are_refused(bot, caplog):
    event = bot_notification("ping", to_jid=CHANNEL)
    body, headers = signed("not-the-secret", event)
    with caplog.at_level(logging.WARNING, "chatopsbot.app"):
        resp = await bot.client.post(bot.path, data=body, headers=headers)
    assert resp.status == 401
    assert "signature does not match" in caplog.text
    resp = await bot.post(event, timestamp=1_000_000)
    assert resp.status == 401
    await bot.settle()
    assert bot.zoom.requests == []


async def test_url_validation_is_answered(bot):
    resp = await bot.post({"event": "endpoint.url_validation", "payload": {"plainToken": "abc"}})
    assert resp.status == 200
    expected = hmac.new(SECRET.encode(), b"abc", hashlib.sha256).hexdigest()
    assert await resp.json() == {"plainToken": "abc", "encryptedToken": expected}


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "malformed JSON"),
        (b"\xff\xfe{}", "not UTF-8"),
        (b"[]", "expected an object"),
        (b"[" * 200_000, "nested too deeply"),
        (b'{"event": "bot_notification"}', "payload: missing"),
        (
            json.dumps(
                {**bot_notification("x"), "payload": {**bot_notification("x")["payload"], "cmd": 5}}
            ).encode(),
            "cmd: expected a string, got a number",
        ),
    ],
    ids=["json", "utf8", "array", "deep", "no-payload", "wrong-type"],
)
async def test_malformed_bodies_get_400_with_the_reason(bot, body, reason):
    headers = {"x-zm-request-timestamp": str(int(time.time()))}
    headers["x-zm-signature"] = sign(SECRET, headers["x-zm-request-timestamp"], body)
    resp = await bot.client.post(bot.path, data=body, headers=headers)
    assert resp.status == 400
    assert reason in await resp.text()


async def test_bodies_over_one_mebibyte_are_refused(bot):
    body = io.BytesIO(b"x" * (1024 * 1024 + 1))
    resp = await bot.client.post(bot.path, data=body, headers={"x-zm-signature": "v0=a"})
    assert resp.status == 413


async def test_unknown_events_are_acknowledged_and_ignored(bot):
    resp = await bot.post({"event": "meeting.started", "payload": {"x": 1}})
    assert resp.status == 200
    await bot.settle()
    assert bot.zoom.requests == []


async def test_a_redelivered_event_is_dispatched_once(bot):
    event = bot_notification("ping", to_jid=CHANNEL)
    for _ in range(3):
        resp = await bot.post(event)
        assert resp.status == 200
    await bot.settle()
    assert [m.text for m in bot.zoom.sent()] == ["pong"]


async def test_bot_installed_welcomes_the_installer(bot):
    resp = await bot.post(bot_installed(user_jid="carol@xmpp.zoom.us"))
    assert resp.status == 200
    await bot.settle()
    [welcome] = bot.zoom.sent()
    assert welcome.to_jid == "carol@xmpp.zoom.us"
    assert "help" in welcome.text


async def test_an_expired_token_is_refreshed_once_and_the_reply_goes_out(bot):
    await bot.command("ping")
    bot.zoom.expire_tokens()
    [reply] = await bot.command("ping")
    assert reply.text == "pong"
    assert bot.zoom.token_requests == 2


async def test_zoom_errors_are_retried_or_given_up_on(start_bot, zoom):
    bot = await start_bot()
    zoom.inject(Fault(503))
    [reply] = await bot.command("ping")
    assert reply.text == "pong"
    zoom.inject(Fault(400, {"code": 7001, "message": "Invalid request body format."}))
    assert await bot.command("ping") == []
    statuses = [r.status for r in zoom.requests]
    assert statuses == [503, 201, 400]


async def test_metrics_and_health(bot):
    await bot.command("ping")
    await bot.command("pnig")
    await bot.client.post(bot.path, data=b"{}")
    resp = await bot.client.get("/healthz")
    assert resp.status == 200
    assert (await resp.json())["status"] == "ok"
    text = await (await bot.client.get("/metrics")).text()
    assert 'chatopsbot_webhooks_total{outcome="accepted"} 2.0' in text
    assert 'chatopsbot_webhooks_total{outcome="bad_signature"} 1.0' in text
    assert 'chatopsbot_commands_total{command="ping",outcome="ok"} 1.0' in text
    assert 'chatopsbot_commands_total{command="(unknown)",outcome="unknown"} 1.0' in text
    assert 'chatopsbot_outbound_requests_total{status="201"} 2.0' in text
    assert "chatopsbot_outbound_queue_depth 0.0" in text
    assert "chatopsbot_outbound_send_seconds_count 2.0" in text


async def test_metrics_can_require_a_bearer_token(start_bot):
    bot = await start_bot(server={"metrics_token": "s3cret"})
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic s3cret"}):
        resp = await bot.client.get("/metrics", headers=headers)
        assert resp.status == 401
        assert resp.headers["WWW-Authenticate"] == 'Bearer realm="metrics"'
    resp = await bot.client.get("/metrics", headers={"Authorization": "Bearer s3cret"})
    assert resp.status == 200
    assert "chatopsbot_webhooks_total" in await resp.text()
    # Health stays open: load balancers probe it without credentials.
    assert (await bot.client.get("/healthz")).status == 200


async def test_a_hook_body_is_cut_off_after_the_body_timeout(start_bot):
    bot = await start_bot(server={"body_timeout": 0.3})
    host, port = bot.client.host, bot.client.port
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(
        b"POST /hooks/deploy HTTP/1.1\r\nHost: bot\r\nContent-Type: application/json\r\n"
        b"Content-Length: 1000\r\n\r\n{"
    )
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(4096), 5)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert b"body not received within 0.3 s" in answer


class Napper:
    """A command that runs until the test lets it finish, and says when it started."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.wake = asyncio.Event()

    @hookimpl
    def chatops_commands(self) -> list[Command]:
        @command("nap", help="sleeps until woken")
        async def nap(ctx: Context) -> Text:
            self.started.set()
            await self.wake.wait()
            return Text("rested")

        return [nap]


async def test_shutdown_finishes_handlers_drains_and_then_refuses(start_bot, zoom):
    napper = Napper()
    bot = await start_bot(extra={"napper": napper})
    resp = await bot.post(bot_notification("nap", to_jid=CHANNEL))
    assert resp.status == 200
    await asyncio.wait_for(napper.started.wait(), 5)
    app = bot.client.app
    shutdown = asyncio.ensure_future(app.shutdown())
    runtime = bot.runtime
    await wait_until(lambda: runtime.stopping, within=5, what="the shutdown has begun")
    resp = await bot.post(bot_notification("ping", to_jid=CHANNEL))
    assert resp.status == 503
    assert (await bot.client.get("/healthz")).status == 503
    assert not shutdown.done()  # it waits for the nap
    napper.wake.set()
    await shutdown
    assert [m.text for m in zoom.sent()] == ["rested"]


async def test_a_redelivery_after_a_restart_is_still_a_duplicate(start_bot, zoom, tmp_path):
    db = str(tmp_path / "bot.db")
    event = bot_notification("ping", to_jid=CHANNEL)
    first = await start_bot(storage={"path": db})
    assert (await first.post(event)).status == 200
    await first.settle()
    await first.stop()
    second = await start_bot(storage={"path": db})
    resp = await second.post(event)
    assert (await resp.json())["status"] == "duplicate"
    await second.settle()
    assert [m.text for m in zoom.sent()] == ["pong"]


async def _raw_request(port: int, head: bytes, body_parts: list[bytes], pause: float) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head)
        for part in body_parts:
            await writer.drain()
            await asyncio.sleep(pause)
            writer.write(part)
        return await asyncio.wait_for(reader.read(), 10)
    except ConnectionError:
        return b""
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def test_slow_bodies_are_cut_off_and_logged_in_bounded_lines(start_bot, zoom, caplog):
    bot = await start_bot(server={"body_timeout": 0.3})
    port = bot.client.port
    head = (
        b"POST /zoom/webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 500\r\n\r\n{"
    )
    loop = asyncio.get_running_loop()
    started = loop.time()
    # Each sends part of its body, then stalls (writing on would only earn a reset).
    answers = await asyncio.gather(*(_raw_request(port, head, [b" "], 0.1) for _ in range(20)))
    assert loop.time() - started < 2.0  # not the 2 s the slowest body would take
    assert all(a.startswith(b"HTTP/1.1 408") for a in answers), answers[:1]
    slow = [r for r in caplog.records if "body not received within 0.3 s (from" in r.message]
    assert len(slow) == 1  # then counted, not repeated
    assert not [r for r in caplog.records if r.exc_info]
    # Real webhooks are still served.
    [reply] = await bot.command("ping")
    assert reply.text == "pong"


@pytest.mark.parametrize("path", ["/zoom/webhook", "/hooks/deploy"])
async def test_a_client_that_disconnects_mid_body_is_not_an_error(bot, caplog, path):
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n{{".encode()
    _reader, writer = await asyncio.open_connection("127.0.0.1", bot.client.port)
    writer.write(head)
    await writer.drain()
    writer.close()
    await writer.wait_closed()
    await asyncio.sleep(0.1)
    [reply] = await bot.command("ping")
    assert reply.text == "pong"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


class _Transport:
    def __init__(self, closing: bool) -> None:
        self.closing = closing

    def is_closing(self) -> bool:
        return self.closing


class _Request:
    """What ``_read_body`` uses of a request whose ``read()`` fails as aiohttp's does."""

    def __init__(self, transport: _Transport | None, error: Exception) -> None:
        self.transport = transport
        self.error = error

    async def read(self) -> bytes:
        raise self.error


@pytest.mark.parametrize("transport", [None, _Transport(closing=True)])
async def test_a_connection_closed_between_two_chunks_reads_as_a_reset(transport):
    # aiohttp raises a bare RuntimeError when the connection went away before the handler
    # waited for the next chunk (the connection guard closing the oldest connection does that);
    # the handlers treat it as the reset it is, not as a server error.
    request = _Request(transport, RuntimeError("Connection closed."))
    with pytest.raises(ConnectionResetError):
        await _read_body(request)  # type: ignore[arg-type]


async def test_other_runtime_errors_while_reading_are_not_hidden():
    request = _Request(_Transport(closing=False), RuntimeError("something else"))
    with pytest.raises(RuntimeError, match="something else"):
        await _read_body(request)  # type: ignore[arg-type]


async def test_too_many_unverified_requests_get_503_without_being_read(bot):
    from chatopsbot.app import GATE

    assert bot.client.app is not None
    gate = bot.client.app[GATE]
    gate.limit = 2
    head = (
        b"POST /zoom/webhook HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 6\r\n\r\n{"
    )
    holders = [
        asyncio.create_task(_raw_request(bot.client.port, head, [b" "] * 5, 0.2)) for _ in range(2)
    ]
    await asyncio.sleep(0.2)
    resp = await bot.post(bot_notification("ping", to_jid=CHANNEL))
    assert resp.status == 503
    assert (await resp.json())["status"] == "busy"
    await asyncio.gather(*holders)
    gate.limit = 256
    resp = await bot.post(bot_notification("ping", to_jid=CHANNEL, user_id="u-bob"))
    assert (await resp.json())["status"] == "accepted"


async def test_health_is_degraded_while_zoom_fails_and_ok_again_after(start_bot, zoom):
    bot = await start_bot(outbound={"degraded_after": 1, "retry_max_delay": 0.1})
    zoom.inject(*[Fault(503, {"code": 503, "message": "unavailable"})] * 60)
    assert (await bot.post(bot_notification("ping", to_jid=CHANNEL))).status == 200
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    health: dict[str, Any] = {}
    while loop.time() < deadline:
        resp = await bot.client.get("/healthz")
        assert resp.status == 200
        health = await resp.json()
        if health["status"] == "degraded":
            break
        await asyncio.sleep(0.05)
    assert health["status"] == "degraded", health
    assert "Zoom requests for account acct-1 failing for" in health["reason"]
    assert "Zoom answered 503" in health["reason"]
    assert health["queued"] == 1
    assert health["oldest_queued_seconds"] is not None
    metrics_text = await (await bot.client.get("/metrics")).text()
    assert 'chatopsbot_outbound_retries_total{reason="5xx"}' in metrics_text
    assert "chatopsbot_outbound_queue_depth 1.0" in metrics_text
    await bot.settle(within=30)
    assert [m.text for m in zoom.sent()] == ["pong"]
    health = await (await bot.client.get("/healthz")).json()
    assert health == {"status": "ok", "queued": 0, "oldest_queued_seconds": None}
