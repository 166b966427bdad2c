"""chatopsbot side by side with its peers on one signed-webhook -> reply loop; prints figures.

    pip install -e '.[bench]'
    python benchmarks/peers.py [--repeat 3] [--commands 4000] [--senders 50] [--rate 400]
        [--quota 1000] [--high-quota 100000] [--peers chatopsbot bolt durable bare]

Each peer runs in a process of its own and answers a slash command ``ping`` with ``pong``:

- **chatopsbot**: built as ``chatopsbot run`` builds it (SQLite in a file, every webhook recorded
  before its 200, the reply written to the durable outbox and sent by the paced sender).
- **bolt**: Slack's Bolt for Python (``slack-bolt``), ``AsyncApp`` on aiohttp with request
  verification, the handler ``await ack()`` then ``chat_postMessage`` through its
  ``AsyncWebClient`` (one session, given to it). Slack's payload and signature, a fake Slack API.
- **bare**: the floor. A bare aiohttp app verifies Zoom's signature, answers 200 and posts the
  reply on one shared session from a task; nothing recorded, nothing retried, no limiter.
- **durable**: the floor of a bot that loses nothing: *bare*, plus the webhook's row in SQLite,
  fsynced before the 200 (group commit), and the reply's row written with the event's
  settlement before the post and deleted after it. No retries, no order, no limiter.

The fake APIs run in this process (as does the load generator: it shares the machine's cores
with the peer) and enforce a strict one-second sliding window of requests (429 beyond it, with
``Retry-After``). chatopsbot's ``[outbound] rate_limit`` is always set to that quota, as a
deployment would set it. Each round measures every peer in turn (interleaved), each on two
fresh processes:

1. Against a quota of ``--high-quota`` (default 100,000/s), far above any demand here, so no
   peer is ever throttled (the 429s column says so):

   - **Throughput**: ``--commands`` webhooks, closed loop, from ``--senders`` concurrent
     senders, each posting its next webhook as soon as its last is answered (after a warm-up).
     *max webhooks/s*: the webhooks over the time until the last was answered. *replies/s*:
     the replies delivered to the fake API over the time from the first webhook to the last
     delivery (the whole loop). Its *ack p50 / p99* is at saturation, so mostly queueing
     (Little's law: in flight / throughput), not the peer's latency.
   - **Ack latency at a fixed load**: ``--senders`` senders, each on a connection of its own,
     offering ``--rate`` webhooks/s together, open loop (paced, whatever the answers take),
     ``--commands`` webhooks. *ack p50 / p99 / max*: from sending a webhook to its answer at
     the client, plus any time a slow previous answer on the same connection held it back
     past when it was due. *reply p50 / p99*: from sending a webhook to its reply's arrival
     at the fake API (the n-th sent paired with the n-th delivered). *sender lag p99*: the
     generator's own timer lateness, left out of ack. *CPU/cmd*: the peer process's CPU time
     (user + system) from the first webhook until every reply was delivered, per webhook.
     ``--rate 50 --commands 1000`` shows the cost of a command when nothing is shared.
   - *RSS idle / after*: the peer process's resident memory after startup, and after both.

2. **Throttled burst** against a quota of ``--quota`` (default 1,000/s): the same closed-loop
   burst. *delivered replies/s*: replies delivered over the time from the first webhook to the
   last delivery; *s to last reply*; *429s*: the fake API's refusals; *lost*: replies never
   delivered (a peer without a limiter or retries drops what was refused).

A peer's round starts once the machine has been quiet for 2 s and is run again (up to 5 times)
if other processes used more than ``--busy-limit`` of a core meanwhile, as in ``bench.py``.
In every run, *non-2xx acks* counts webhooks not answered with a 2xx, and *lost* the replies
that never reached the fake API. The median of each figure over the rounds is printed, with
its ratio to the bare floor where a ratio means something.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import hashlib
import hmac
import json
import os
import re
import signal
import statistics
import sys
import tempfile
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from subprocess import DEVNULL, PIPE, STDOUT
from typing import Any
from urllib.parse import urlencode

import aiohttp
from aiohttp import web

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench

from chatopsbot.zoom.fake import FakeZoom
from chatopsbot.zoom.payloads import bot_notification, signed

SLACK_SECRET = "bench-slack-signing-secret"  # noqa: S105 - signs webhooks to a local peer
SLACK_TOKEN = "xoxb-bench"  # noqa: S105 - a fake API's token
Figures = dict[str, float]
PEERS = ("chatopsbot", "bolt", "durable", "bare")
SERVERS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "peer_servers.py")


# The fake Slack API.


class FakeSlack:
    """``POST /api/chat.postMessage`` with a strict one-second sliding window of ``quota``."""

    def __init__(self, quota: int) -> None:
        self.quota = quota
        self.window: deque[float] = deque()
        self.delivered: list[float] = []
        self.rate_limited = 0
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/api/chat.postMessage", self._post)
        # Bolt's single-workspace authorization asks once who the token is, then caches it.
        app.router.add_post("/api/auth.test", self._auth_test)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/api/"

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _auth_test(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {SLACK_TOKEN}":
            return web.json_response({"ok": False, "error": "invalid_auth"})
        return web.json_response(
            {
                "ok": True,
                "url": "https://bench.slack.com/",
                "team": "bench",
                "user": "opsbot",
                "team_id": "T1",
                "user_id": "UBOT",
                "bot_id": "BBOT",
            }
        )

    async def _post(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {SLACK_TOKEN}":
            return web.json_response({"ok": False, "error": "invalid_auth"})
        form = await request.post() if request.content_type != "application/json" else None
        data = dict(form) if form is not None else await request.json()
        if not data.get("channel") or not data.get("text"):
            return web.json_response({"ok": False, "error": "no_text"})
        now = time.monotonic()
        while self.window and self.window[0] <= now - 1.0:
            self.window.popleft()
        if len(self.window) >= self.quota:
            self.rate_limited += 1
            return web.json_response(
                {"ok": False, "error": "ratelimited"}, status=429, headers={"Retry-After": "1"}
            )
        self.window.append(now)
        self.delivered.append(now)
        return web.json_response({"ok": True, "channel": data["channel"], "ts": f"{now:.6f}"})


class ZoomCounter:
    """What a peer delivered to the fake Zoom, read (and then forgotten) as it arrives."""

    def __init__(self, zoom: FakeZoom) -> None:
        self.zoom = zoom
        self.delivered: list[float] = []

    async def on_request(self, request: Any) -> None:
        if request.method == "POST" and request.message_id is not None:
            self.delivered.append(time.monotonic())
        # The fake keeps every message; a long run would otherwise measure its memory.
        if len(self.zoom.requests) > 1000:
            self.zoom.requests.clear()
            self.zoom.messages.clear()


# The peers, each in a process of its own.


class Peer:
    """A peer's process (started with ``argv``), seen from the load generator."""

    def __init__(self, name: str, argv: Sequence[str], path: str, listening: str) -> None:
        self.name = name
        self.argv = list(argv)
        self.path = path
        self.listening = re.compile(listening)
        self.url = ""
        self.process: asyncio.subprocess.Process | None = None
        self.log: list[str] = []
        self._reader: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def start(self) -> None:
        """Start it and wait until it says on which port it listens."""
        self.process = await asyncio.create_subprocess_exec(
            *self.argv, stdout=PIPE, stderr=STDOUT, stdin=DEVNULL
        )
        assert self.process.stdout is not None
        async with asyncio.timeout(60):
            while True:
                line = (await self.process.stdout.readline()).decode()
                if not line:
                    raise RuntimeError(f"{self.name} did not start:\n" + "".join(self.log))
                self.log.append(line)
                if found := self.listening.search(line):
                    self.url = f"http://127.0.0.1:{found[1]}{self.path}"
                    break
        self._reader = asyncio.create_task(self._drain(self.process.stdout))

    async def _drain(self, stream: asyncio.StreamReader) -> None:
        # Its log must be read, or the pipe fills and the peer blocks on writing.
        while line := await stream.readline():
            self.log.append(line.decode())

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), 30)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        if self._reader is not None:
            await self._reader


def chatopsbot_peer(zoom: FakeZoom, quota: int, workdir: str) -> Peer:
    """``chatopsbot run`` itself, on SQLite in a file, its rate limit the fake's quota."""
    config = os.path.join(workdir, "config.toml")
    table = zoom.zoom_table(bench.SECRET)
    with open(config, "w") as out:
        out.write("[zoom]\n")
        out.writelines(f"{key} = {json.dumps(value)}\n" for key, value in table.items())
        out.write('[server]\nhost = "127.0.0.1"\nport = 0\n')
        out.write(f"[storage]\npath = {json.dumps(os.path.join(workdir, 'bot.db'))}\n")
        out.write(f"[outbound]\nrate_limit = {quota}\n")
    return Peer(
        "chatopsbot",
        [sys.executable, "-m", "chatopsbot.cli", "run", "--config", config],
        "/zoom/webhook",
        r"listening on http://127\.0\.0\.1:(\d+)",
    )


def server_peer(name: str, options: dict[str, Any], path: str) -> Peer:
    """A peer from ``peer_servers.py``."""
    return Peer(
        name, [sys.executable, SERVERS, name, json.dumps(options)], path, r"listening on (\d+)"
    )


# The load.


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        rest = stat.read().rsplit(")", 1)[1].split()
    return (int(rest[11]) + int(rest[12])) / bench.TICK


def zoom_webhooks(count: int) -> list[tuple[bytes, dict[str, str]]]:
    return [
        signed(bench.SECRET, bot_notification("ping", to_jid=bench.conversation(n % 50)))
        for n in range(count)
    ]


def slack_webhooks(count: int) -> list[tuple[bytes, dict[str, str]]]:
    made = []
    for n in range(count):
        body = urlencode(
            {
                "token": "legacy",
                "team_id": "T1",
                "team_domain": "bench",
                "channel_id": f"C{n % 50:04d}",
                "channel_name": "ops",
                "user_id": "U1",
                "user_name": "alice",
                "command": "/ops",
                "text": "ping",
                "api_app_id": "A1",
                "response_url": "http://127.0.0.1:9/unused",
                "trigger_id": f"trigger-{n}",
            }
        ).encode()
        timestamp = str(int(time.time()))
        signature = (
            "v0="
            + hmac.new(
                SLACK_SECRET.encode(), f"v0:{timestamp}:".encode() + body, hashlib.sha256
            ).hexdigest()
        )
        made.append(
            (
                body,
                {
                    "Content-Type": "application/x-www-form-urlencoded",
                    "X-Slack-Request-Timestamp": timestamp,
                    "X-Slack-Signature": signature,
                },
            )
        )
    return made


async def settled(delivered: list[float], count: int, quiet: float = 2.0) -> None:
    """Until ``count`` replies arrived, or none for ``quiet`` seconds (the rest were lost)."""
    # Waiting out a fixed timeout for replies a peer dropped on a 429 would cost a minute a run.
    deadline = time.monotonic() + 60
    seen, changed = len(delivered), time.monotonic()
    while len(delivered) < count:
        now = time.monotonic()
        if len(delivered) != seen:
            seen, changed = len(delivered), now
        elif now - changed > quiet or now > deadline:
            return
        await asyncio.sleep(0.01)


def delivery(delivered: list[float], count: int, started: float) -> Figures:
    """Replies delivered since ``started`` per second until the last of them, and the lost."""
    until = delivered[-1] - started if delivered else float("inf")
    return {"replies_s": len(delivered) / until, "lost": count - len(delivered), "until": until}


async def burst(
    peer: Peer,
    webhooks: Sequence[tuple[bytes, dict[str, str]]],
    senders: int,
    delivered: list[float],
) -> Figures:
    """Closed loop: ``senders`` senders, each posting its next webhook once its last is answered.

    The throughput at saturation; its ack latency is mostly queueing (in flight / throughput).
    """
    latencies: list[float] = []
    statuses: list[int] = []
    queue = iter(webhooks)

    async def sender(session: aiohttp.ClientSession) -> None:
        for body, headers in queue:
            started = time.perf_counter()
            async with session.post(peer.url, data=body, headers=headers) as resp:
                await resp.read()
            latencies.append(time.perf_counter() - started)
            statuses.append(resp.status)

    delivered.clear()
    connector = aiohttp.TCPConnector(limit=senders)
    async with aiohttp.ClientSession(connector=connector) as session:
        gc.collect()
        gc.disable()
        started = time.monotonic()
        try:
            await asyncio.gather(*(sender(session) for _ in range(senders)))
            answered = time.monotonic()
        finally:
            gc.enable()
    await settled(delivered, len(webhooks))
    ms = sorted(x * 1000 for x in latencies)
    return {
        "burst_p50": statistics.median(ms),
        "burst_p99": bench.percentile(ms, 0.99),
        "webhooks_s": len(ms) / (answered - started),
        "refused": sum(not 200 <= s < 300 for s in statuses),
    } | delivery(delivered, len(webhooks), started)


async def paced(
    peer: Peer,
    warm: Sequence[tuple[bytes, dict[str, str]]],
    webhooks: Sequence[tuple[bytes, dict[str, str]]],
    senders: int,
    rate: float,
    delivered: list[float],
) -> Figures:
    """Open loop: ``senders`` senders, each on a connection of its own, ``rate`` webhooks/s in all.

    Webhook ``n`` is due at ``n / rate`` (sender ``n % senders`` sends it), whatever the earlier
    answers took. Its ack latency counts from when it was sent, plus how long its sender's
    previous answer held it back past its time (that wait is the peer's, the open loop's
    correction for coordinated omission); the generator's own timer lateness is left out and
    reported as the sender lag. And the peer's CPU time until every reply was delivered, per
    command.
    """

    def own_session() -> aiohttp.ClientSession:
        # One connection each, kept alive: 50 clients, not one client's pool of 50.
        return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1))

    sessions = [own_session() for _ in range(senders)]
    latencies: list[float] = []
    # When each webhook went (the fake APIs' clock): reply latency pairs the n-th sent with
    # the n-th reply delivered, which is exact while replies keep the order of their webhooks
    # and close to it otherwise.
    sends: list[float] = []
    lags: list[float] = []
    statuses: list[int] = []

    async def post(session: aiohttp.ClientSession, body: bytes, headers: dict[str, str]) -> int:
        async with session.post(peer.url, data=body, headers=headers) as resp:
            await resp.read()
            return resp.status

    async def sender(index: int, session: aiohttp.ClientSession, start: float) -> None:
        answered = start
        for n in range(index, len(webhooks), senders):
            due = start + n / rate
            await asyncio.sleep(due - time.perf_counter())
            sent = time.perf_counter()
            sends.append(time.monotonic())
            # Held back past its time by the previous answer: that wait is the peer's. Woken
            # late by the timer (epoll counts in whole milliseconds): that is the generator's.
            ready = max(due, answered)
            lags.append(sent - ready)
            statuses.append(await post(session, *webhooks[n]))
            answered = time.perf_counter()
            latencies.append(answered - sent + (ready - due))

    try:
        # Open every connection first, so no measured webhook pays for a handshake.
        delivered.clear()
        await asyncio.gather(*(post(s, *w) for s, w in zip(sessions, warm, strict=True)))
        await settled(delivered, senders)
        delivered.clear()
        gc.collect()
        gc.disable()
        cpu_before = cpu_seconds(peer.pid)
        try:
            start = time.perf_counter() + 0.05
            await asyncio.gather(*(sender(i, s, start) for i, s in enumerate(sessions)))
        finally:
            gc.enable()
        await settled(delivered, len(webhooks))
        cpu = cpu_seconds(peer.pid) - cpu_before
    finally:
        await asyncio.gather(*(session.close() for session in sessions))
    ms = sorted(x * 1000 for x in latencies)
    replies = sorted(
        (got - went) * 1000 for went, got in zip(sorted(sends), sorted(delivered), strict=False)
    ) or [float("nan")]
    return {
        "ack_p50": statistics.median(ms),
        "ack_p99": bench.percentile(ms, 0.99),
        "ack_max": ms[-1],
        "reply_p50": statistics.median(replies),
        "reply_p99": bench.percentile(replies, 0.99),
        # The load generator's own lateness in sending (its loop is shared with the fake API).
        "lag_p99": bench.percentile(sorted(x * 1000 for x in lags), 0.99),
        "paced_refused": sum(not 200 <= s < 300 for s in statuses),
        "paced_lost": len(webhooks) - len(delivered),
        "cpu_ms": cpu * 1000 / len(webhooks),
    }


def rss_mib(pid: int) -> float:
    return bench.rss_mib(pid)[0]


Measure = Callable[
    [Peer, Callable[[int], list[tuple[bytes, dict[str, str]]]], list[float]], Awaitable[Figures]
]


async def with_peer(name: str, quota: int, measure: Measure) -> Figures:
    """Start ``name`` against its fake API at ``quota`` requests/s, ``measure`` it, stop it.

    chatopsbot's ``[outbound] rate_limit`` is the same ``quota``, as a deployment would set it.
    """
    rate_limited: Callable[[], int]
    options: dict[str, Any]
    with tempfile.TemporaryDirectory(prefix="chatopsbot-peers-") as workdir:
        if name == "bolt":
            slack = FakeSlack(quota)
            await slack.start()
            options = {"api": slack.url, "token": SLACK_TOKEN, "secret": SLACK_SECRET}
            peer = server_peer("bolt", options, "/slack/events")
            delivered, make, closing = slack.delivered, slack_webhooks, slack.close
            rate_limited = lambda: slack.rate_limited  # noqa: E731
        else:
            zoom = FakeZoom(rate_limit=quota)
            counter = ZoomCounter(zoom)
            zoom.on_request = counter.on_request
            await zoom.start()
            if name in ("bare", "durable"):
                options = {"zoom": zoom.zoom_table(bench.SECRET), "secret": bench.SECRET}
                options["db"] = os.path.join(workdir, "floor.db")
                peer = server_peer(name, options, "/zoom/webhook")
            else:
                peer = chatopsbot_peer(zoom, quota, workdir)
            delivered, make, closing = counter.delivered, zoom_webhooks, zoom.close
            rate_limited = lambda: zoom.rate_limited  # noqa: E731
        try:
            await peer.start()
            await asyncio.sleep(1.0)  # let it settle (late imports, first collections)
            figures = await measure(peer, make, delivered)
            figures["429s"] = rate_limited()
        finally:
            await peer.stop()
            await closing()
    return figures


async def round_for(name: str, args: argparse.Namespace) -> Figures:
    """One peer's figures: unthrottled and paced on one process, then throttled on a fresh one."""

    async def unthrottled(
        peer: Peer,
        make: Callable[[int], list[tuple[bytes, dict[str, str]]]],
        delivered: list[float],
    ) -> Figures:
        idle = rss_mib(peer.pid)
        # Warm-up: connections, the token, caches.
        await burst(peer, make(args.senders), args.senders, delivered)
        figures = await burst(peer, make(args.commands), args.senders, delivered)
        figures |= await paced(
            peer, make(args.senders), make(args.commands), args.senders, args.rate, delivered
        )
        return figures | {"rss_idle": idle, "rss_after": rss_mib(peer.pid)}

    async def throttled(
        peer: Peer,
        make: Callable[[int], list[tuple[bytes, dict[str, str]]]],
        delivered: list[float],
    ) -> Figures:
        await burst(peer, make(args.senders), args.senders, delivered)
        await asyncio.sleep(1.1)  # the warm-up's requests out of the fake's one-second window
        figures = await burst(peer, make(args.commands), args.senders, delivered)
        return {f"q_{key}": figures[key] for key in ("replies_s", "until", "refused", "lost")}

    figures = await with_peer(name, args.high_quota, unthrottled)
    figures["high_429s"] = figures.pop("429s")
    return figures | await with_peer(name, args.quota, throttled)


Column = tuple[str, str, str]
THROUGHPUT: Sequence[Column] = (
    ("webhooks_s", "max webhooks/s", "{:.0f}"),
    ("replies_s", "replies/s", "{:.0f}"),
    ("burst_p50", "ack p50 ms", "{:.1f}"),
    ("burst_p99", "ack p99 ms", "{:.1f}"),
    ("refused", "non-2xx acks", "{:.0f}"),
    ("lost", "lost", "{:.0f}"),
    ("high_429s", "429s", "{:.0f}"),
)
PACED: Sequence[Column] = (
    ("ack_p50", "ack p50 ms", "{:.2f}"),
    ("ack_p99", "ack p99 ms", "{:.2f}"),
    ("ack_max", "ack max ms", "{:.1f}"),
    ("reply_p50", "reply p50 ms", "{:.1f}"),
    ("reply_p99", "reply p99 ms", "{:.1f}"),
    ("cpu_ms", "CPU/cmd ms", "{:.3f}"),
    ("lag_p99", "sender lag p99 ms", "{:.2f}"),
    ("paced_refused", "non-2xx acks", "{:.0f}"),
    ("paced_lost", "lost", "{:.0f}"),
)
MEMORY: Sequence[Column] = (
    ("rss_idle", "RSS idle MiB", "{:.1f}"),
    ("rss_after", "RSS after MiB", "{:.1f}"),
)
THROTTLED: Sequence[Column] = (
    ("q_replies_s", "delivered replies/s", "{:.0f}"),
    ("q_until", "s to last reply", "{:.2f}"),
    ("429s", "429s", "{:.0f}"),
    ("q_refused", "non-2xx acks", "{:.0f}"),
    ("q_lost", "lost", "{:.0f}"),
)
# The figures a ratio to the bare floor says something of (not counts, not the generator's lag).
RATIOS = {
    "webhooks_s",
    "replies_s",
    "burst_p50",
    "burst_p99",
    "ack_p50",
    "ack_p99",
    "ack_max",
    "reply_p50",
    "reply_p99",
    "cpu_ms",
    "rss_idle",
    "rss_after",
}


def table(medians: dict[str, Figures], columns: Sequence[Column]) -> str:
    head = "| peer | " + " | ".join(title for _, title, _ in columns) + " |"
    lines = [head, "|---" * (len(columns) + 1) + "|"]
    for name, figures in medians.items():
        lines.append(
            f"| {name} | " + " | ".join(fmt.format(figures[key]) for key, _, fmt in columns) + " |"
        )
    if not any(key in RATIOS for key, _, _ in columns):
        return "\n".join(lines)
    # Each peer against the floor; chatopsbot against the floor of a bot that loses nothing too.
    pairs = [(name, "bare") for name in medians if name != "bare"]
    pairs.append(("chatopsbot", "durable"))
    for name, base in pairs:
        if name not in medians or base not in medians:
            continue
        figures, floor = medians[name], medians[base]
        ratios = [
            f"{figures[key] / floor[key]:.2f}x" if key in RATIOS and floor[key] else ""
            for key, _, _ in columns
        ]
        lines.append(f"| {name} / {base} | " + " | ".join(ratios) + " |")
    return "\n".join(lines)


def report(medians: dict[str, Figures], args: argparse.Namespace) -> str:
    return "\n\n".join(
        (
            f"Throughput, unthrottled: fake APIs' quota and chatopsbot's rate_limit "
            f"{args.high_quota}/s. {args.commands} webhooks, closed loop from {args.senders} "
            f"senders as fast as answered. max webhooks/s = webhooks / time until the last was "
            f"answered; replies/s = replies delivered / time from the first webhook to the last "
            f"delivery; ack p50/p99 = under that saturation (mostly queueing).\n"
            + table(medians, THROUGHPUT),
            f"Ack latency at a fixed load: {args.senders} senders, one connection each, "
            f"{args.rate:g} webhooks/s in all (open loop, {args.commands} webhooks), same process "
            f"and quota as above. ack = from sending the webhook to its answer at the client, "
            f"plus any time a slow previous answer on its connection held it back past when it "
            f"was due; reply = from sending the webhook to its reply at the fake API; "
            f"CPU/cmd = the peer's CPU time until every reply was delivered / webhooks; "
            f"sender lag = the load generator's own timer lateness (left out of ack).\n"
            + table(medians, PACED),
            "Memory of the peer's process: after startup, and after the two runs above.\n"
            + table(medians, MEMORY),
            f"Throttled burst: a fresh process, fake APIs' quota and chatopsbot's rate_limit "
            f"{args.quota}/s. {args.commands} webhooks, closed loop from {args.senders} senders. "
            f"delivered replies/s = replies delivered / time from the first webhook to the last "
            f"delivery; 429s = the fake API's refusals; lost = replies never delivered.\n"
            + table(medians, THROTTLED),
        )
    )


async def quietly(quiet: bench.Quiet, name: str, args: argparse.Namespace) -> tuple[Figures, str]:
    """``round_for`` on a quiet machine, as ``bench.Quiet.measure`` runs bench.py's benchmarks.

    The peer and the load generator take both cores of a small machine between them: another
    process's work shows up as this peer's latency and throughput.
    """
    for _ in range(quiet.tries):
        if quiet.limit:
            await asyncio.to_thread(quiet.wait)
        machine, own, started = bench.machine_cpu(), bench.own_cpu(), time.perf_counter()
        figures = await round_for(name, args)
        others = ((bench.machine_cpu() - machine) - (bench.own_cpu() - own)) / (
            time.perf_counter() - started
        )
        note = f"[others {others:.2f} core]"
        if not quiet.limit or others <= quiet.limit:
            return figures, note
        print(f"{name}: round discarded, {note}", flush=True)
    return figures, f"{note} BUSY: kept after {quiet.tries} tries"


async def main(args: argparse.Namespace) -> None:
    runs: dict[str, list[Figures]] = {name: [] for name in args.peers}
    columns = [*THROUGHPUT, *PACED, *MEMORY, *THROTTLED]
    quiet = bench.Quiet(args.busy_limit)
    for number in range(1, args.repeat + 1):
        for name in args.peers:
            figures, note = await quietly(quiet, name, args)
            runs[name].append(figures)
            shown = ", ".join(f"{key} " + fmt.format(figures[key]) for key, _, fmt in columns)
            print(f"round {number} {name}: {shown} {note}", flush=True)
    medians = {
        name: {key: statistics.median(f[key] for f in figures) for key in figures[0]}
        for name, figures in runs.items()
    }
    print(f"\nmedians of {args.repeat} interleaved round(s):\n")
    print(report(medians, args))


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument(
        "--commands", type=int, default=4000, help="webhooks per measurement (default 4000)"
    )
    parser.add_argument("--senders", type=int, default=50, help="concurrent senders (default 50)")
    parser.add_argument(
        "--rate", type=float, default=400, help="webhooks/s of the paced run (default 400)"
    )
    parser.add_argument(
        "--quota",
        type=int,
        default=1000,
        help="requests/s of the fake APIs (and chatopsbot's rate_limit) in the throttled burst",
    )
    parser.add_argument(
        "--high-quota",
        type=int,
        default=100_000,
        help="the same for the unthrottled and paced runs: far above demand (default 100000)",
    )
    parser.add_argument("--peers", nargs="+", choices=PEERS, default=list(PEERS))
    bench.add_busy_limit(parser, "a peer's round")
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse()))
