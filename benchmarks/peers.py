"""chatopsbot side by side with its peers on one signed-webhook -> reply loop; prints figures.

    pip install -e '.[bench]'
    python benchmarks/peers.py [--repeat 3] [--commands 2000] [--senders 50] [--rate 400]

Each peer runs in a process of its own and answers a slash command ``ping`` with ``pong``:

- **chatopsbot**: built as ``chatopsbot run`` builds it (SQLite in a file, every webhook recorded
  before its 200, the reply written to the durable outbox and sent by the paced sender), with
  ``rate_limit`` set to the fake API's quota.
- **bolt**: Slack's Bolt for Python (``slack-bolt``), ``AsyncApp`` on aiohttp with request
  verification, the handler ``await ack()`` then ``chat_postMessage`` through its
  ``AsyncWebClient`` (one session, given to it). Slack's payload and signature, a fake Slack API.
- **bare**: the floor. A bare aiohttp app verifies Zoom's signature, answers 200 and posts the
  reply on one shared session from a task; nothing recorded, nothing retried, no limiter.

The fake APIs run in this process and enforce a strict one-second sliding window of ``--quota``
requests (429 beyond it, with ``Retry-After``). Every round runs the peers in turn (interleaved),
and the median of each figure over the rounds is printed, with the ratio to the bare floor:

- ack p50 / p99: the webhook's answer at the client, ``--senders`` concurrent senders posting
  ``--commands`` webhooks as fast as they are answered;
- webhooks/s: those webhooks over the time until the last was answered;
- replies/s: replies delivered to the fake API over the time from the first webhook to the
  last delivery (the whole loop);
- CPU/cmd: CPU time of the peer's process per command at a steady ``--rate`` commands/s (open
  loop), counted until every reply was delivered;
- RSS idle and after: resident memory of the peer's process before and after the runs;
- 429s and lost replies.
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
from collections.abc import Callable, Sequence
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
PEERS = ("chatopsbot", "bolt", "bare")
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


async def wait_delivered(delivered: list[float], count: int, within: float) -> float:
    """The time of the ``count``-th delivery since the list was last cleared (or NaN)."""
    deadline = time.monotonic() + within
    while len(delivered) < count and time.monotonic() < deadline:  # noqa: ASYNC110 - polls a count
        await asyncio.sleep(0.01)
    return delivered[count - 1] if len(delivered) >= count else float("nan")


async def burst(
    peer: Peer,
    webhooks: Sequence[tuple[bytes, dict[str, str]]],
    senders: int,
    delivered: list[float],
) -> Figures:
    """As fast as answered from ``senders`` concurrent senders: ack latency, both throughputs."""
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
    last = await wait_delivered(delivered, len(webhooks), within=60)
    ms = sorted(x * 1000 for x in latencies)
    return {
        "ok": sum(200 <= s < 300 for s in statuses),
        "ack_p50": statistics.median(ms),
        "ack_p99": bench.percentile(ms, 0.99),
        "webhooks_s": len(ms) / (answered - started),
        "replies_s": len(webhooks) / (last - started),
        "lost": len(webhooks) - len(delivered),
    }


async def steady(
    peer: Peer,
    webhooks: Sequence[tuple[bytes, dict[str, str]]],
    rate: float,
    delivered: list[float],
) -> Figures:
    """``rate`` webhooks a second, open loop; the peer's CPU per command until all replied."""
    delivered.clear()
    pending: set[asyncio.Task[None]] = set()
    connector = aiohttp.TCPConnector(limit=200)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def post(body: bytes, headers: dict[str, str]) -> None:
            async with session.post(peer.url, data=body, headers=headers) as resp:
                await resp.read()

        cpu_before = cpu_seconds(peer.pid)
        started = time.monotonic()
        for n, (body, headers) in enumerate(webhooks):
            await asyncio.sleep(max(0.0, started + n / rate - time.monotonic()))
            task = asyncio.create_task(post(body, headers))
            pending.add(task)
            task.add_done_callback(pending.discard)
        await asyncio.gather(*pending)
        await wait_delivered(delivered, len(webhooks), within=60)
        cpu = cpu_seconds(peer.pid) - cpu_before
    return {"cpu_ms": cpu * 1000 / len(webhooks)}


def rss_mib(pid: int) -> float:
    return bench.rss_mib(pid)[0]


async def round_for(name: str, args: argparse.Namespace) -> Figures:
    """Start one peer with its fake API, measure, stop it."""
    rate_limited: Callable[[], int]
    options: dict[str, Any]
    with tempfile.TemporaryDirectory(prefix="chatopsbot-peers-") as workdir:
        if name == "bolt":
            slack = FakeSlack(args.quota)
            await slack.start()
            options = {"api": slack.url, "token": SLACK_TOKEN, "secret": SLACK_SECRET}
            peer = server_peer("bolt", options, "/slack/events")
            delivered, make, closing = slack.delivered, slack_webhooks, slack.close
            rate_limited = lambda: slack.rate_limited  # noqa: E731
        else:
            zoom = FakeZoom(rate_limit=args.quota)
            counter = ZoomCounter(zoom)
            zoom.on_request = counter.on_request
            await zoom.start()
            if name == "bare":
                options = {"zoom": zoom.zoom_table(bench.SECRET), "secret": bench.SECRET}
                peer = server_peer("bare", options, "/zoom/webhook")
            else:
                peer = chatopsbot_peer(zoom, args.quota, workdir)
            delivered, make, closing = counter.delivered, zoom_webhooks, zoom.close
            rate_limited = lambda: zoom.rate_limited  # noqa: E731
        try:
            await peer.start()
            await asyncio.sleep(1.0)  # let it settle (late imports, first collections)
            idle = rss_mib(peer.pid)
            # Warm-up: connections, the token, caches.
            await burst(peer, make(args.senders), args.senders, delivered)
            figures = await burst(peer, make(args.commands), args.senders, delivered)
            figures |= await steady(peer, make(args.commands), args.rate, delivered)
            figures |= {"rss_idle": idle, "rss_after": rss_mib(peer.pid), "429s": rate_limited()}
        finally:
            await peer.stop()
            await closing()
    return figures


COLUMNS = (
    ("ack_p50", "ack p50 ms", "{:.2f}"),
    ("ack_p99", "ack p99 ms", "{:.2f}"),
    ("webhooks_s", "webhooks/s", "{:.0f}"),
    ("replies_s", "replies/s", "{:.0f}"),
    ("cpu_ms", "CPU/cmd ms", "{:.3f}"),
    ("rss_idle", "RSS idle MiB", "{:.1f}"),
    ("rss_after", "RSS after MiB", "{:.1f}"),
    ("429s", "429s", "{:.0f}"),
    ("lost", "lost", "{:.0f}"),
)


def table(medians: dict[str, Figures]) -> str:
    head = "| peer | " + " | ".join(title for _, title, _ in COLUMNS) + " |"
    lines = [head, "|---" * (len(COLUMNS) + 1) + "|"]
    for name, figures in medians.items():
        lines.append(
            f"| {name} | " + " | ".join(fmt.format(figures[key]) for key, _, fmt in COLUMNS) + " |"
        )
    floor = medians.get("bare")
    if floor is not None:
        for name, figures in medians.items():
            if name == "bare":
                continue
            ratios = [
                f"{figures[key] / floor[key]:.2f}x" if floor[key] else "-"
                for key, _, _ in COLUMNS[:5]
            ]
            lines.append(f"| {name} / bare | " + " | ".join(ratios) + " | | | | |")
    return "\n".join(lines)


async def main(args: argparse.Namespace) -> None:
    runs: dict[str, list[Figures]] = {name: [] for name in args.peers}
    for number in range(1, args.repeat + 1):
        for name in args.peers:
            figures = await round_for(name, args)
            runs[name].append(figures)
            shown = ", ".join(f"{title} " + fmt.format(figures[key]) for key, title, fmt in COLUMNS)
            print(f"round {number} {name}: {shown}", flush=True)
    medians = {
        name: {key: statistics.median(f[key] for f in figures) for key in figures[0]}
        for name, figures in runs.items()
    }
    print(f"\nmedians of {args.repeat} interleaved rounds (quota {args.quota}/s):")
    print(table(medians))


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--commands", type=int, default=2000, help="webhooks per measurement")
    parser.add_argument("--senders", type=int, default=50, help="concurrent senders (burst)")
    parser.add_argument("--rate", type=float, default=400, help="commands/s for CPU per command")
    parser.add_argument("--quota", type=int, default=1000, help="fake APIs' requests/s")
    parser.add_argument("--peers", nargs="+", choices=PEERS, default=list(PEERS))
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse()))
