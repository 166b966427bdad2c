"""Durability end to end: crashes, outages and dead letters, through the real path.

Signed webhooks go over HTTP into the bot; the fake Zoom on loopback records what it receives.
The crash and outage tests run the bot in a child process (``tests/durability_bot.py``) with
SQLite on disk, so that it can be killed with SIGKILL and started again on the same file.

Guarantees checked:

- an acknowledged event is never lost: recorded before the 200, handled after a crash, and a
  redelivery of it is answered "duplicate" and not run twice;
- a decided reply is never lost: after a restart the queue goes out in order per conversation,
  repeating at most the one message per conversation that was in flight at the crash;
- outages (503s, refused connections, the token endpoint down) are waited out with one probe at
  a time, with ``/healthz`` saying "degraded" meanwhile and a bounded number of log lines;
- a message Zoom rejects, or one retried past ``give_up_after``, becomes a dead letter and its
  conversation moves on.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from chatopsbot.clock import ManualClock
from chatopsbot.testing import BotHarness
from chatopsbot.zoom.fake import FakeZoom, Fault, Request
from chatopsbot.zoom.payloads import bot_notification
from chatopsbot.zoom.signature import sign
from tests.bot_process import (
    ACCOUNT,
    BotProcess,
    command_body,
    texts_in,
    wait_until,
)
from tests.durability_bot import DurabilityPlugin

SECRET = "durability-secret-token"
#: A permanent rejection of one message, shaped like Zoom's answer to a send to a JID the bot
#: cannot post to (the bot treats every 4xx but a token 401 and 429 as final, whatever the code).
INVALID_JID = Fault(400, {"code": 7001, "message": "Invalid to_jid."})


def collapse(texts: list[str]) -> tuple[list[str], int]:
    """``texts`` with each immediate repeat removed, and how many repeats there were."""
    kept: list[str] = []
    repeats = 0
    for text in texts:
        if kept and kept[-1] == text:
            repeats += 1
        else:
            kept.append(text)
    return kept, repeats


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text as ``{'name{labels}': value}``."""
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


class Bot(BotProcess):
    """The bot process, with checks on how it answers: every answer here must be a 200."""

    async def stop(self) -> None:
        """SIGTERM (the bot drains and stops); SIGKILL if it takes more than 20 s."""
        if self.alive:
            await self.terminate(20.0)

    @property
    def webhook_url(self) -> str:
        return self.url + "/zoom/webhook"

    # Talking to it.

    async def post(self, session: aiohttp.ClientSession, body: bytes) -> str:
        """Post ``body`` signed as Zoom would sign it now; the bot's ``status`` word.

        Fails unless the bot answered 200 (a redelivery is signed afresh, as Zoom does).
        """
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "x-zm-request-timestamp": timestamp,
            "x-zm-signature": sign(SECRET, timestamp, body),
        }
        async with session.post(self.webhook_url, data=body, headers=headers) as resp:
            text = await resp.text()
            assert resp.status == 200, f"the webhook answered {resp.status}: {text}"
            outcome: str = json.loads(text)["status"]
            return outcome

    async def health(self, session: aiohttp.ClientSession) -> dict[str, Any]:
        """``/healthz``, which must answer 200 while the bot serves."""
        async with session.get(self.url + "/healthz") as resp:
            body: dict[str, Any] = await resp.json()
            assert resp.status == 200, f"/healthz answered {resp.status}: {body}"
            return body

    async def metrics(self, session: aiohttp.ClientSession) -> dict[str, float]:
        async with session.get(self.url + "/metrics") as resp:
            assert resp.status == 200
            return parse_metrics(await resp.text())


@pytest.fixture
def processes() -> Iterator[list[Bot]]:
    """Bots started by a test; any still running at the end (a failed test) are killed."""
    started: list[Bot] = []
    yield started
    for bot in started:
        bot.reap()


def bot_config(zoom: FakeZoom, workdir: Path, **outbound: float) -> dict[str, Any]:
    """The config for a bot in ``workdir`` talking to ``zoom``, with ``[outbound]`` overrides."""
    return {
        "zoom": zoom.zoom_table(SECRET),
        "server": {"host": "127.0.0.1", "port": 0},
        "storage": {"path": str(workdir / "bot.db")},
        "outbound": {"drain_timeout": 5, **outbound},
        "commands": {"timeout": 120},
        "logging": {"format": "plain", "level": "INFO"},
        "plugins": {"durability": {"control": str(workdir / "control")}},
    }


# 1. SIGKILL with a queue.

CHANNELS = 3
PER_CHANNEL = 30


@pytest.mark.timeout(240)
async def test_sigkill_mid_queue_loses_no_reply_and_repeats_at_most_one_per_channel(
    tmp_path: Path, processes: list[Bot]
) -> None:
    async with FakeZoom(rate_limit=2) as zoom, aiohttp.ClientSession() as session:
        bot = Bot(tmp_path, bot_config(zoom, tmp_path, rate_limit=2))
        processes.append(bot)
        await bot.start()
        expected: dict[int, list[str]] = {c: [] for c in range(CHANNELS)}
        bodies: dict[int, list[bytes]] = {c: [] for c in range(CHANNELS)}

        async def command(c: int, n: int) -> str:
            text = f"c{c}-{n:02d}"
            body = command_body(f"echo {text}", c)
            expected[c].append(text)
            bodies[c].append(body)
            return await bot.post(session, body)

        # One command per channel at a time, so each channel's order is the order typed.
        for n in range(PER_CHANNEL):
            outcomes = await asyncio.gather(*(command(c, n) for c in range(CHANNELS)))
            assert outcomes == ["accepted"] * CHANNELS

        # Crash 1: SIGKILL while Zoom holds the 10th reply's answer. Zoom has the message;
        # the bot never hears so, so it sends that message again after the restart.
        in_flight: list[Request] = []

        async def crash(request: Request) -> None:
            if not in_flight and request.status == 201 and len(zoom.sent()) == 10:
                in_flight.append(request)
                await bot.kill()

        zoom.on_request = crash
        await wait_until(
            lambda: bool(in_flight) and not bot.alive, within=60, what="the 10th reply is sent"
        )
        zoom.on_request = None
        assert in_flight[0].message_id is not None
        crashed = zoom.messages[in_flight[0].message_id]
        kills = [zoom.clock()]
        restart_1 = await bot.start()

        # Crash 2: at whatever moment the 40th reply has arrived.
        await wait_until(lambda: len(zoom.sent()) >= 40, within=60, what="40 replies arrived")
        await bot.kill()
        kills.append(zoom.clock())
        restart_2 = await bot.start()

        await wait_until(
            lambda: all(set(texts_in(zoom, c)) >= set(expected[c]) for c in range(CHANNELS)),
            within=120,
            what="every reply arrived",
        )

        # Zoom redelivers some of the original webhooks: each is a duplicate, and runs nothing.
        for c in range(CHANNELS):
            for body in (bodies[c][0], bodies[c][PER_CHANNEL // 2], bodies[c][-1]):
                assert await bot.post(session, body) == "duplicate"
        # A last command per channel: once its reply is there, anything queued before it is too.
        for c in range(CHANNELS):
            assert await bot.post(session, command_body(f"echo c{c}-last", c)) == "accepted"
        await wait_until(
            lambda: all(f"c{c}-last" in texts_in(zoom, c) for c in range(CHANNELS)),
            within=30,
            what="the last replies arrived",
        )
        health = await bot.health(session)
        await bot.stop()

    repeats = {}
    for c in range(CHANNELS):
        received = texts_in(zoom, c)
        kept, repeats[c] = collapse(received)
        # Every reply, in the order the commands were typed, each repeat right after itself.
        assert kept == [*expected[c], f"c{c}-last"], f"channel {c} received {received}"
        assert repeats[c] <= 2, f"channel {c}: {repeats[c]} repeats after 2 crashes: {received}"
    # The message Zoom had taken when the bot died went out once more, straight after.
    channel = int(crashed.to_jid.removeprefix("room").split("@")[0])
    assert texts_in(zoom, channel).count(crashed.text) == 2
    # Within the rate limit throughout, the first second after each restart included: the
    # restarted bot knows when the killed one last sent.
    assert zoom.rate_limited == 0, f"429s: {timeline(zoom, kills)}"
    assert health["status"] == "ok"
    print(
        f"\nSIGKILL: restarts took {restart_1:.2f} s and {restart_2:.2f} s to listen; "
        f"repeats per channel {repeats}"
    )


def timeline(zoom: FakeZoom, kills: list[float]) -> str:
    """The requests around each kill: seconds from the kill and Zoom's status."""
    lines = []
    for n, kill in enumerate(kills, 1):
        near = [f"{r.at - kill:+.3f}s {r.status}" for r in zoom.requests if abs(r.at - kill) < 3]
        lines.append(f"kill {n}: " + ", ".join(near))
    return "\n".join(lines)


# 2. Acknowledged, not yet handled.


@pytest.mark.timeout(120)
async def test_an_event_acknowledged_but_unhandled_at_a_crash_is_handled_once_after_it(
    tmp_path: Path, processes: list[Bot]
) -> None:
    async with FakeZoom() as zoom, aiohttp.ClientSession() as session:
        bot = Bot(tmp_path, bot_config(zoom, tmp_path, rate_limit=20))
        processes.append(bot)
        runs = bot.control / "runs"
        await bot.start()
        body = command_body("block job1", 0)
        assert await bot.post(session, body) == "accepted"
        await wait_until(runs.exists, within=30, what="the handler runs")
        # Zoom resends the event while its handler runs: recognised, not run a second time.
        assert await bot.post(session, body) == "duplicate"
        # The bot works meanwhile.
        assert await bot.post(session, command_body("echo alive", 1)) == "accepted"
        await wait_until(lambda: texts_in(zoom, 1) == ["alive"], within=30, what="echo answers")
        assert runs.read_text(encoding="utf-8").split() == ["job1"]

        await bot.kill()
        assert texts_in(zoom, 0) == []
        (bot.control / "release").touch()
        await bot.start()
        await wait_until(
            lambda: "released job1" in texts_in(zoom, 0), within=30, what="the event is handled"
        )
        assert await bot.post(session, body) == "duplicate"
        assert await bot.post(session, command_body("echo after", 0)) == "accepted"
        await wait_until(lambda: "after" in texts_in(zoom, 0), within=30, what="echo answers")
        metrics = await bot.metrics(session)
        await bot.stop()

    assert texts_in(zoom, 0) == ["released job1", "after"]
    # Run twice: cut short by the crash, then to the end after the restart.
    assert runs.read_text(encoding="utf-8").split() == ["job1", "job1"]
    assert metrics["chatopsbot_inbox_replayed_total"] == 1


# 3. Outages.

OUTAGE = 60.0
DEGRADED_AFTER = 5.0
OUTAGE_CHANNELS = 5
OUTAGE_COMMANDS = 25
OUTAGE_RATE = 5
#: How long a failing request takes to fail (API and token endpoint): a slow gateway, so that
#: two probes at once would overlap at the fake.
FAIL_DELAY = 0.3
#: The outbox's log lines worth an operator's attention.
OUTBOUND_LINE = re.compile(r" (WARNING|ERROR) chatopsbot\.outbound: ")
#: The first failure of an outage, logged in full.
FAILURE_LINE = re.compile(r"sending message \d+ failed")


async def outage_scenario(
    kind: str, workdir: Path, session: aiohttp.ClientSession, processes: list[Bot]
) -> str:
    """A 60 s outage of ``kind`` with commands in 5 channels arriving during it; a summary."""
    zoom = FakeZoom(rate_limit=OUTAGE_RATE)
    await zoom.start()
    bot = Bot(
        workdir,
        bot_config(
            zoom,
            workdir,
            rate_limit=OUTAGE_RATE,
            retry_max_delay=2,
            degraded_after=DEGRADED_AFTER,
            request_timeout=5,
        ),
    )
    processes.append(bot)
    try:
        return await _outage(kind, zoom, bot, session)
    finally:
        try:
            await bot.stop()
        finally:
            bot.reap()
            await zoom.close()


async def _outage(kind: str, zoom: FakeZoom, bot: Bot, session: aiohttp.ClientSession) -> str:
    loop = asyncio.get_running_loop()
    await bot.start()
    # A token and a connection first, so that the outage is what fails.
    assert await bot.post(session, command_body("echo warm", 0)) == "accepted"
    await wait_until(lambda: texts_in(zoom, 0) == ["warm"], within=30, what=f"{kind}: warm-up")
    assert (await bot.health(session))["status"] == "ok"
    before = len(zoom.requests)
    tokens_before = zoom.token_requests

    if kind == "503":
        zoom.outage(503, delay=FAIL_DELAY)
    elif kind == "refused":
        await zoom.stop_listening()
    else:
        zoom.expire_tokens()
        zoom.outage(503, api=False, token=True, delay=FAIL_DELAY)
    zoom.reset_peak()
    started = loop.time()

    expected: dict[int, list[str]] = {c: [] for c in range(OUTAGE_CHANNELS)}
    samples: list[tuple[float, dict[str, Any]]] = []
    during: dict[str, float] = {}
    sent = 0
    while (elapsed := loop.time() - started) < OUTAGE:
        if sent < OUTAGE_COMMANDS and elapsed >= sent * (OUTAGE - 5) / OUTAGE_COMMANDS:
            channel = sent % OUTAGE_CHANNELS
            text = f"{kind}-{sent:02d}"
            assert await bot.post(session, command_body(f"echo {text}", channel)) == "accepted"
            expected[channel].append(text)
            sent += 1
        samples.append((loop.time() - started, await bot.health(session)))
        if not during and elapsed > OUTAGE / 2:
            during = await bot.metrics(session)
        await asyncio.sleep(0.5)

    peak = zoom.peak_in_flight
    outage_requests = zoom.requests[before:]
    back_at = zoom.clock()
    token_failures = zoom.token_requests - tokens_before
    # Nothing got through while Zoom was down.
    assert [m.text for m in zoom.sent()] == ["warm"], kind
    if kind == "refused":
        await zoom.listen_again()
    else:
        zoom.restore()
    restored = loop.time()

    recovery = await wait_until(
        lambda: all(
            texts_in(zoom, c) == (["warm"] if c == 0 else []) + expected[c]
            for c in range(OUTAGE_CHANNELS)
        ),
        within=60,
        what=f"{kind}: every reply arrived after the outage",
    )

    async def healthy() -> dict[str, Any]:
        while True:
            health = await bot.health(session)
            if health["status"] == "ok" or loop.time() - restored > 60:
                return health
            await asyncio.sleep(0.2)

    first_reply = min(r.at for r in zoom.requests if r.status == 201 and r.at > back_at) - back_at
    health_after = await healthy()
    after = await bot.metrics(session)
    # The stop drains the queue: a reply queued twice would arrive before it ends.
    await bot.stop()
    log = bot.log()

    # Every reply once, in order per channel, within the rate limit.
    for c in range(OUTAGE_CHANNELS):
        assert texts_in(zoom, c) == (["warm"] if c == 0 else []) + expected[c], kind
    assert zoom.rate_limited == 0, kind

    # /healthz: ok until degraded_after, degraded (still 200) from a little after it until
    # the end of the outage, with the reason and a queue that grows old; ok again after.
    assert all(h["status"] == "ok" for t, h in samples if t < DEGRADED_AFTER - 1), (kind, samples)
    late = [h for t, h in samples if t > DEGRADED_AFTER + 3]
    assert late, kind
    for h in late:
        assert h["status"] == "degraded", (kind, h)
        assert f"Zoom requests for account {ACCOUNT} failing for" in h["reason"], (kind, h)
        assert h["queued"] >= 1, (kind, h)
    last = samples[-1][1]
    assert last["queued"] >= OUTAGE_COMMANDS - 1, (kind, last)
    assert last["oldest_queued_seconds"] >= OUTAGE - 10, (kind, last)
    assert health_after["status"] == "ok", (kind, health_after)
    assert health_after["queued"] == 0, (kind, health_after)
    assert health_after["oldest_queued_seconds"] is None, (kind, health_after)

    # One probe at a time, backing off to retry_max_delay: a few dozen attempts in 60 s.
    reason = {"503": "5xx", "refused": "connection", "token": "token"}[kind]
    retries_during = during.get(f'chatopsbot_outbound_retries_total{{reason="{reason}"}}', 0)
    retries = after.get(f'chatopsbot_outbound_retries_total{{reason="{reason}"}}', 0)
    assert retries_during >= 5, (kind, during)
    assert 15 <= retries <= 75, (kind, retries)
    if kind == "503":
        failed = [r for r in outage_requests if r.status == 503]
        assert abs(len(failed) - retries) <= 1, (kind, len(failed), retries)
    if kind == "token":
        assert abs(token_failures - retries) <= 1, (kind, token_failures, retries)
        # The API saw only the request whose token had expired (401), until the end.
        assert [r.status for r in outage_requests] == [401], kind
    if kind != "refused":
        assert peak == 1, f"{kind}: {peak} requests at once during the outage"
    assert during["chatopsbot_outbound_queue_depth"] >= 1, (kind, during)
    assert during["chatopsbot_outbound_oldest_age_seconds"] >= OUTAGE / 2 - 5, (kind, during)
    assert after["chatopsbot_outbound_queue_depth"] == 0, kind
    assert after["chatopsbot_outbound_oldest_age_seconds"] == 0, kind

    # The log: the first failure in full, then at most a line per 10 s for ~40 failed
    # attempts, then one line for the end of the outage.
    outbound_lines = [line for line in log.splitlines() if OUTBOUND_LINE.search(line)]
    assert 2 <= len(outbound_lines) <= OUTAGE / 10 + 3, (kind, outbound_lines)
    assert FAILURE_LINE.search(outbound_lines[0]), (kind, outbound_lines)
    assert "work again after" in outbound_lines[-1], (kind, outbound_lines)
    noisy = [line for line in log.splitlines() if re.search(r" (WARNING|ERROR) ", line)]
    assert len(noisy) <= 15, (kind, noisy)

    return (
        f"{kind}: first reply {first_reply:.1f} s and all {OUTAGE_COMMANDS} {recovery:.1f} s "
        f"after Zoom came back; {retries:.0f} retries, "
        f"{len(outbound_lines)} outbox log lines, peak {peak} request(s) in flight"
    )


@pytest.mark.timeout(300)
async def test_outages_are_waited_out_one_probe_at_a_time(
    tmp_path: Path, processes: list[Bot]
) -> None:
    # Three bots and three fake Zooms at once: a minute of outage each, not three.
    async with aiohttp.ClientSession() as session, asyncio.TaskGroup() as group:
        tasks = [
            group.create_task(outage_scenario(kind, tmp_path / kind, session, processes))
            for kind in ("503", "refused", "token")
        ]
    print("\n" + "\n".join(task.result() for task in tasks))


# 4. Dead letters.


async def test_a_rejected_message_is_a_dead_letter_and_its_channel_moves_on(
    tmp_path: Path,
) -> None:
    plugin = {"durability": DurabilityPlugin()}
    config = {"plugins": {"durability": {"control": str(tmp_path)}}}
    async with BotHarness(plugin, config=config) as bot:
        bot.zoom.inject(INVALID_JID)
        for text in ("first", "second", "third"):
            resp = await bot.post(bot_notification(f"echo {text}", account_id=ACCOUNT))
            assert resp.status == 200
        await bot.settle()
        [dead] = await bot.runtime.backend.outbox_list("dead")
        assert await bot.runtime.backend.outbox_list("queued") == []
        metrics = parse_metrics(await (await bot.client.get("/metrics")).text())

    assert [r.status for r in bot.zoom.requests] == [400, 201, 201]
    assert [m.text for m in bot.zoom.sent()] == ["second", "third"]
    assert dead.reason == "rejected"
    assert "Zoom answered 400, code 7001: Invalid to_jid." in dead.error
    assert json.loads(dead.payload)["body"]["content"]["body"][0]["text"] == "first"
    assert metrics['chatopsbot_outbound_dead_letters_total{reason="rejected"}'] == 1


async def test_messages_retried_past_give_up_after_are_dead_letters(tmp_path: Path) -> None:
    plugin = {"durability": DurabilityPlugin()}
    config: dict[str, dict[str, Any]] = {
        "plugins": {"durability": {"control": str(tmp_path)}},
        "outbound": {"give_up_after": 3600, "retry_max_delay": 0.1, "degraded_after": 1},
    }
    clock = ManualClock()
    async with BotHarness(plugin, config=config, clock=clock) as bot:
        backend = bot.runtime.backend
        bot.zoom.outage(503)
        for text, channel in (("old-1", "ops"), ("old-2", "ops"), ("old-3", "dev")):
            event = bot_notification(
                f"echo {text}",
                account_id=ACCOUNT,
                to_jid=f"{channel}@conference.xmpp.zoom.us",
                channel_name=channel,
            )
            assert (await bot.post(event)).status == 200
        await wait_until(
            lambda: sum(r.status == 503 for r in bot.zoom.requests) >= 5,
            within=10,
            what="the outbox retries",
        )
        # Still retried a minute later: only give_up_after ends it.
        await clock.advance(60)
        queued = await backend.outbox_list("queued")
        assert len(queued) == 3
        # An hour after they were decided, they are given up on at their next attempt,
        # without being sent.
        await clock.advance(3540)
        await bot.settle()
        dead = await backend.outbox_list("dead")
        assert await backend.outbox_list("queued") == []
        tried = len(bot.zoom.requests)
        # Zoom is back; the conversations carry on with what is decided now.
        bot.zoom.restore()
        [reply] = await bot.command("echo new", channel="ops")
        health = await (await bot.client.get("/healthz")).json()

    assert [m.text for m in bot.zoom.sent()] == ["new"]
    assert len(bot.zoom.requests) == tried + 1
    assert [json.loads(d.payload)["body"]["content"]["body"][0]["text"] for d in dead] == [
        "old-1",
        "old-2",
        "old-3",
    ]
    assert {d.reason for d in dead} == {"expired"}
    # Each keeps its last error; old-2 waited behind old-1 and was never tried. (old-3 may or
    # may not have been the probe: one lane at a time is tried while the account fails.)
    assert "Zoom answered 503" in dead[0].error
    assert dead[1].error == "never sent"
    assert dead[2].error == "never sent" or "Zoom answered 503" in dead[2].error
    # The probes went to one of the two conversations tried first, whichever failed last.
    assert dead[0].attempts + dead[2].attempts >= 5
    assert reply.text == "new"
    assert health["status"] == "ok"


async def test_an_expired_dead_letter_counts_only_the_attempts_made(tmp_path: Path) -> None:
    plugin = {"durability": DurabilityPlugin()}
    config: dict[str, dict[str, Any]] = {
        "plugins": {"durability": {"control": str(tmp_path)}},
        "outbound": {"give_up_after": 3600, "retry_max_delay": 0.1},
    }
    clock = ManualClock()
    async with BotHarness(plugin, config=config, clock=clock) as bot:
        bot.zoom.outage(503)
        for text in ("tried", "waited"):
            assert (await bot.post(bot_notification(f"echo {text}"))).status == 200
        await wait_until(lambda: len(bot.zoom.requests) >= 3, within=10, what="the outbox retries")
        await clock.advance(3600)
        await bot.settle()
        dead = await bot.runtime.backend.outbox_list("dead")

    def text_of(body: Any) -> str:
        return str(body["content"]["body"][0]["text"])

    made = {"tried": 0, "waited": 0}
    for request in bot.zoom.requests:
        made[text_of(request.body)] += 1
    assert made["tried"] >= 3
    assert made["waited"] == 0
    listed = {text_of(json.loads(d.payload)["body"]): d.attempts for d in dead}
    assert listed == made


async def test_a_prompt_restart_keeps_to_zoom_rate_limit(tmp_path: Path) -> None:
    config: dict[str, dict[str, Any]] = {
        "plugins": {"durability": {"control": str(tmp_path)}},
        "storage": {"path": str(tmp_path / "bot.db")},
        # Nothing is drained at the stop: the queue is left for the next start, as by a crash.
        "outbound": {"rate_limit": 2, "drain_timeout": 0},
    }
    async with FakeZoom(rate_limit=2) as zoom:
        bot = BotHarness({"durability": DurabilityPlugin()}, config=config, zoom=zoom)
        await bot.start()
        try:
            for n in range(4):
                assert (await bot.post(bot_notification(f"echo m{n}"))).status == 200
            await wait_until(lambda: len(zoom.sent()) >= 2, within=10, what="2 sent", every=0.005)
            await bot.restart()
            await bot.settle(30)
        finally:
            await bot.close()
    assert [m.text for m in zoom.sent()] == ["m0", "m1", "m2", "m3"]
    assert zoom.rate_limited == 0


async def test_a_429_holds_every_conversation_of_the_account_for_retry_after(
    tmp_path: Path,
) -> None:
    # Five conversations are ready at once, so five sends wait for the pacer when the 429
    # comes: none of them may go before Retry-After has passed.
    config: dict[str, dict[str, Any]] = {
        "plugins": {"durability": {"control": str(tmp_path)}},
        "outbound": {"rate_limit": 2},
    }
    async with BotHarness({"durability": DurabilityPlugin()}, config=config) as bot:
        zoom = bot.zoom
        slow_down = Fault(429, {"code": 429, "message": "Too many requests"}, {"Retry-After": "3"})

        async def throttle_after_first(request: Request) -> None:
            if request.status == 201 and len(zoom.requests) == 1:
                zoom.inject(slow_down)

        zoom.on_request = throttle_after_first
        events = [
            bot_notification(
                f"echo m{c}", to_jid=f"r{c}@conference.xmpp.zoom.us", channel_name=f"r{c}"
            )
            for c in range(5)
        ]
        responses = await asyncio.gather(*(bot.post(e) for e in events))
        assert [r.status for r in responses] == [200] * 5
        await bot.settle(30)

    assert sorted(m.text for m in zoom.sent()) == [f"m{c}" for c in range(5)]
    [throttled] = [r for r in zoom.requests if r.status == 429]
    during = [round(r.at - throttled.at, 2) for r in zoom.requests if 0 < r.at - throttled.at < 2.9]
    assert during == [], f"requests {during} s after a 429 with Retry-After: 3"
