"""End to end: signed webhooks into the app, handlers, outbound layer, fake Zoom on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import io
import json
import logging
import re
import time
from typing import Any

import pytest

from chatopsbot import (
    Arg,
    Card,
    Command,
    Context,
    Delete,
    Edit,
    Option,
    Paragraph,
    PluginConfigError,
    Text,
    command,
    hookimpl,
)
from chatopsbot.zoom.fake import Fault
from chatopsbot.zoom.payloads import bot_installed, bot_notification, signed
from chatopsbot.zoom.signature import sign
from tests.bot_process import wait_until
from tests.conftest import CHANNEL, SECRET

ALICE = "u-alice"


@command(
    "release status",
    help="Show what runs where",
    args=(Arg("service", help="a service"),),
    options=(Option("limit", type=int, default=5, help="how many"),),
)
async def deploy_status(ctx: Context) -> Text:
    return Text(f"{ctx.args['service']} limit={ctx.args['limit']}")


@command("echo", help="Say it back", args=(Arg("words", variadic=True),))
async def echo(ctx: Context) -> Text:
    return Text(" | ".join(ctx.args["words"]))


@command("boom", help="Always fails")
async def boom(ctx: Context) -> None:
    raise RuntimeError("kaboom")


@command("slow", help="Takes too long", timeout=0.2)
async def slow(ctx: Context) -> Text:
    await asyncio.sleep(10)
    return Text("never")


@command("progress", help="Sends, edits, deletes")
async def progress(ctx: Context) -> list[Any]:
    first = await ctx.send(Text("working..."))
    scratch = await ctx.send(Text("scratch"))
    assert first.message_id
    assert scratch.message_id
    return [
        Edit(first.message_id, Card(head="Done", body=[Paragraph("all good")])),
        Delete(scratch.message_id),
        Text("in thread", reply_to=first.message_id),
    ]


@command("whisper", help="Private reply")
async def whisper(ctx: Context) -> Text:
    return Text(f"only you, {ctx.caller.name}", private=True)


@command("fields", help="Context fields")
async def whoami(ctx: Context) -> Text:
    c = ctx.caller
    return Text(
        f"{c.id}|{c.jid}|{c.name}|{ctx.conversation.jid}|{ctx.conversation.name}|"
        f"{ctx.account_id}|{ctx.config}|{ctx.command.name}"
    )


@command("many", help="Many replies", args=(Arg("count", type=int),))
async def many(ctx: Context) -> list[Text]:
    return [Text(f"reply {n}") for n in range(ctx.args["count"])]


@command("wrongtype", help="Returns junk")
async def wrongtype(ctx: Context) -> Any:
    return 42


class Sample:
    """A plugin object like a third party would write."""

    @hookimpl
    def chatops_commands(self) -> list[Any]:
        return [deploy_status, echo, boom, slow, progress, whisper, whoami, many, wrongtype]

    @hookimpl
    def chatops_config(self, config: dict[str, Any]) -> str:
        greeting = config.get("greeting", "hi")
        if not isinstance(greeting, str):
            raise PluginConfigError("greeting", "expected a string")
        return greeting


@pytest.fixture
async def bot(start_bot: Any) -> Any:
    return await start_bot(extra={"sample": Sample()})


async def test_ping_answers_pong_in_the_channel(bot):
    [reply] = await bot.command("ping")
    assert reply.text == "pong"
    assert reply.to_jid == CHANNEL
    assert reply.account_id == "acct-1"
    assert reply.visible_to_user is None
    assert bot.zoom.token_requests == 1


async def test_help_is_private_and_lists_every_command(bot):
    [reply] = await bot.command("help")
    assert reply.visible_to_user == ALICE
    for name in ("help", "ping", "release status", "echo", "whisper"):
        assert re.search(rf"^{name} — ", reply.text, re.M), reply.text


async def test_help_for_one_command_shows_usage_and_options(bot):
    [reply] = await bot.command("help release status")
    assert "Usage: release status <service> [--limit N]" in reply.text
    assert "--limit" in reply.text
    assert reply.visible_to_user == ALICE


async def test_unknown_command_gets_a_private_suggestion(bot):
    [reply] = await bot.command("pnig")
    assert reply.visible_to_user == ALICE
    assert "Did you mean 'ping'?" in reply.text


async def test_bad_arguments_get_private_usage(bot):
    [reply] = await bot.command("release status api --limit many")
    assert reply.visible_to_user == ALICE
    assert reply.text.splitlines()[:2] == [
        "invalid limit 'many': expected an integer",
        "Usage: release status <service> [--limit N]",
    ]
    [reply] = await bot.command("release status")
    assert reply.text.startswith("missing <service>")


async def test_arguments_and_smart_quotes_reach_the_handler(bot):
    [reply] = await bot.command("release status api --limit 3")
    assert reply.text == "api limit=3"
    [reply] = await bot.command("echo “hello world” ‘a b’ plain")
    assert reply.text == "hello world | a b | plain"


async def test_unterminated_quote_is_a_private_usage_error(bot):
    [reply] = await bot.command('echo "oops')
    assert reply.visible_to_user == ALICE
    assert "unterminated" in reply.text


async def test_a_failing_handler_gives_a_private_reference_and_logs_it(bot, caplog):
    with caplog.at_level(logging.ERROR, "chatopsbot.dispatch"):
        [reply] = await bot.command("boom")
    assert reply.visible_to_user == ALICE
    ref = re.search(r"reference ([0-9a-f]{8})", reply.text)
    assert ref, reply.text
    record = next(r for r in caplog.records if getattr(r, "ref", None) == ref.group(1))
    assert record.exc_info
    assert "kaboom" in str(record.exc_info[1])
    assert record.command == "boom"
    # The bot keeps serving.
    [reply] = await bot.command("ping")
    assert reply.text == "pong"


async def test_a_handler_past_its_timeout_is_stopped(bot):
    [reply] = await bot.command("slow")
    assert "took longer than 0.2 s" in reply.text
    assert reply.visible_to_user == ALICE


async def test_a_handler_returning_junk_is_an_error(bot):
    [reply] = await bot.command("wrongtype")
    assert "failed (reference" in reply.text


async def test_send_edit_delete_and_thread_reply(bot):
    replies = await bot.command("progress")
    first, scratch, threaded = replies
    assert first.text == "Done\nall good"  # edited in place
    assert first.edits == 1
    assert scratch.deleted
    assert threaded.reply_to == first.message_id
    methods = [r.method for r in bot.zoom.requests]
    assert methods == ["POST", "POST", "PUT", "DELETE", "POST"]


async def test_private_reply_in_a_one_to_one_chat_is_plain(bot):
    [reply] = await bot.command("whisper", to_jid="alice@xmpp.zoom.us", channel_name="")
    assert reply.visible_to_user is None
    [reply] = await bot.command("whisper")
    assert reply.visible_to_user == ALICE
    assert reply.text == "only you, Alice"


async def test_context_carries_caller_channel_account_and_config(start_bot):
    bot = await start_bot(extra={"sample": Sample()}, plugins={"sample": {"greeting": "hey"}})
    [reply] = await bot.command("fields", account_id="acct-9")
    assert reply.text == (
        "u-alice|alice@xmpp.zoom.us|Alice|ops@conference.xmpp.zoom.us|ops|acct-9|hey|fields"
    )


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


@command("baddate", help="Returns a card Zoom could never take")
async def baddate(ctx: Context) -> Card:
    import datetime

    return Card(head="x", body=[Paragraph(datetime.date(2026, 1, 1))])  # type: ignore[arg-type]


async def test_a_response_that_cannot_be_sent_is_a_private_error_with_a_reference(start_bot):
    class Bad:
        @hookimpl
        def chatops_commands(self) -> list[Any]:
            return [baddate]

    bot = await start_bot(extra={"bad": Bad()})
    [reply] = await bot.command("baddate")
    assert reply.visible_to_user == ALICE
    assert "baddate failed (reference " in reply.text


async def test_absurdly_long_commands_are_refused_at_once(bot):
    [reply] = await bot.command("echo " + "w " * 30_000)
    assert reply.text == "That command is 60005 characters long; the limit is 4000."
    assert reply.visible_to_user == ALICE


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


async def test_the_slash_command_alone_shows_help_privately(bot):
    [reply] = await bot.command("   ")
    assert reply.visible_to_user == ALICE
    assert reply.text.startswith("Commands:\n")
    assert "ping — " in reply.text


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


async def test_a_client_that_disconnects_mid_body_is_not_an_error(bot, caplog):
    head = b"POST /zoom/webhook HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n{"
    _reader, writer = await asyncio.open_connection("127.0.0.1", bot.client.port)
    writer.write(head)
    await writer.drain()
    writer.close()
    await writer.wait_closed()
    await asyncio.sleep(0.1)
    [reply] = await bot.command("ping")
    assert reply.text == "pong"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


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


async def test_a_notification_without_cmd_gets_help_not_a_400(bot):
    event = bot_notification("ignored")
    del event["payload"]["cmd"]
    resp = await bot.post(event)
    assert resp.status == 200
    await bot.settle()
    assert bot.zoom.sent()[-1].text.startswith("Commands:")
