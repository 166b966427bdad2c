"""Benchmarks for the durable runtime; prints figures (machines are noisy: not a pass/fail test).

    python benchmarks/bench.py [quota|ack|memory|all] [--repeat N] [options]

- quota:  replies written to the durable outbox (SQLite in a temporary file) and sent through
          the Zoom sender, the token cache and the API client to a fake Zoom that enforces a
          strict one-second sliding window: achieved rate, 429s, lost, duplicated, order.
- ack:    webhook acknowledgement latency (p50/p99) and throughput with 50 concurrent senders;
          the bot runs in its own process (SQLite on disk, as ``chatopsbot run`` has it), so the
          load generator does not share its loop. Every webhook is recorded before its 200.
- memory: resident memory of the bot process idle and with 100,000 replies queued in the
          outbox (Zoom unreachable, so they stay queued); then the acknowledgement latency of a
          short burst with that backlog waiting, of 35 s of steady load (100/s, with a health
          probe every 5 s, spanning the outbox's rescan of storage), and of a burst while the
          backlog drains.

With ``--repeat N`` each benchmark runs N times and the median of every figure is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Coroutine
from multiprocessing.connection import Connection
from typing import Any

import aiohttp
from aiohttp import web

from chatopsbot.app import RUNTIME, create_app, freeze_startup_objects
from chatopsbot.config import Settings, parse_settings
from chatopsbot.outbound.sender import encode_call
from chatopsbot.runtime import Runtime
from chatopsbot.storage import NewMessage
from chatopsbot.zoom.cards import MESSAGES_PATH, ApiCall
from chatopsbot.zoom.fake import FakeZoom
from chatopsbot.zoom.payloads import bot_notification, signed

SECRET = "bench-secret"  # noqa: S105 - signs webhooks to a local fake
CHANNEL = "ops@conference.xmpp.zoom.us"
ACCOUNT = "acct-1"

Figures = dict[str, float]


def settings_for(
    zoom: FakeZoom,
    rate: float,
    *,
    port: int = 0,
    storage: str = ":memory:",
    retry_max_delay: float = 30.0,
    drain_timeout: float = 30.0,
) -> Settings:
    return parse_settings(
        {
            "zoom": {
                "client_id": zoom.client_id,
                "client_secret": zoom.client_secret,
                "bot_jid": zoom.robot_jid,
                "secret_token": SECRET,
                "api_base_url": zoom.api_base_url,
                "oauth_url": zoom.oauth_url,
            },
            "server": {"host": "127.0.0.1", "port": port},
            "storage": {"path": storage},
            "outbound": {
                "rate_limit": rate,
                "retry_max_delay": retry_max_delay,
                "drain_timeout": drain_timeout,
            },
        },
        source="<bench>",
        environ={},
    )


def conversation(n: int) -> str:
    return f"c{n}@conference.xmpp.zoom.us"


def queued_reply(robot_jid: str, to: str, text: str) -> NewMessage:
    """A reply as the messenger writes it to the outbox: the rendered call, JSON-encoded."""
    body = {
        "robot_jid": robot_jid,
        "to_jid": to,
        "account_id": ACCOUNT,
        "content": {"body": [{"type": "message", "text": text}]},
    }
    call = ApiCall("POST", MESSAGES_PATH, ACCOUNT, body)
    meta = json.dumps({"log": {"channel": to}}, separators=(",", ":"))
    return NewMessage(lane=to, account=ACCOUNT, payload=encode_call(call), meta=meta)


def rss_mib(pid: int | str = "self") -> tuple[float, float]:
    """Resident set size and its peak (VmHWM) of process ``pid``, in MiB."""
    found: dict[str, float] = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                found[key] = int(value.split()[0]) / 1024
    return found.get("VmRSS", float("nan")), found.get("VmHWM", float("nan"))


def percentile(sorted_values: list[float], share: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * share))]


# Quota.


async def quota(rate: int, replies: int, conversations: int = 8) -> Figures:
    """Send ``replies`` through the durable outbox at ``rate`` against a strict fake Zoom.

    The bot is built as ``chatopsbot run`` builds it (SQLite in a file: WAL, synchronous=FULL,
    group commit); the replies are written straight to its outbox, skipping the webhooks.
    """
    with tempfile.TemporaryDirectory(prefix="chatopsbot-bench-") as workdir:
        async with FakeZoom(rate_limit=rate) as zoom:
            db = os.path.join(workdir, "bench.db")
            app = create_app(settings_for(zoom, rate=rate, storage=db, drain_timeout=1.0))
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            try:
                runtime = app[RUNTIME]
                # One write per reply, as the dispatcher writes each event's replies; the
                # writes arrive together, so group commit puts them in a few transactions.
                adds = [
                    runtime.outbox.add(
                        [queued_reply(zoom.robot_jid, conversation(n % conversations), f"r {n}")],
                        wait=True,
                    )
                    for n in range(replies)
                ]
                futures = [f for fs in await asyncio.gather(*adds) for f in fs]
                results = await asyncio.gather(*futures, return_exceptions=True)
                still_queued, _ = await runtime.backend.outbox_stats()
                dead = len(await runtime.backend.outbox_list("dead"))
            finally:
                await runner.cleanup()
    ok = [r for r in zoom.requests if r.status == 201 and r.message_id]
    numbers: dict[str, list[int]] = defaultdict(list)
    for request in ok:
        assert request.message_id is not None
        message = zoom.messages[request.message_id]
        numbers[message.to_jid].append(int(message.text.split()[1]))
    delivered = Counter(n for ns in numbers.values() for n in ns)
    span = ok[-1].at - ok[0].at
    achieved = (len(ok) - 1) / span
    in_order = all(
        numbers[conversation(c)] == list(range(c, replies, conversations))
        for c in range(conversations)
    )
    return {
        "replies": replies,
        "rate": rate,
        "achieved": achieved,
        "share": achieved / rate,
        "span": span,
        "429s": zoom.rate_limited,
        "lost": replies - len(delivered),
        "duplicated": sum(c - 1 for c in delivered.values()),
        "failed": sum(isinstance(r, BaseException) for r in results),
        "left": still_queued + dead,
        "in_order": float(in_order),
    }


def show_quota(f: Figures) -> str:
    return (
        f"{f['replies']:.0f} replies at rate_limit={f['rate']:.0f}/s: achieved "
        f"{f['achieved']:.2f}/s = {f['share']:.3f} of the limit over {f['span']:.1f} s; "
        f"429s {f['429s']:.0f}, lost {f['lost']:.0f}, duplicated {f['duplicated']:.0f}, "
        f"futures failed {f['failed']:.0f}, left in storage {f['left']:.0f}, "
        f"order kept {bool(f['in_order'])}"
    )


# The bot in a process of its own.


def _serve(conn: Connection, rate: float, outage: bool) -> None:
    """The bot process: serve webhooks and obey ``(command, argument)`` pairs from ``conn``."""
    # Below ERROR the bot would log its (throttled) retry warnings during the outage.
    logging.basicConfig(level=logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="chatopsbot-bench-") as workdir:
        asyncio.run(_bot(conn, os.path.join(workdir, "bench.db"), rate, outage))


async def _bot(conn: Connection, db: str, rate: float, outage: bool) -> None:
    loop = asyncio.get_running_loop()
    zoom = FakeZoom()
    await zoom.start()
    zoom_port = int(zoom.url.rsplit(":", 1)[1])
    if outage:
        # Zoom unreachable (connections refused) until told otherwise: replies stay queued.
        await zoom.close()
    # A short retry cap, so that the outbox notices quickly when Zoom is back; a short drain
    # at shutdown, so that a backlog is left in storage instead of sent for 30 s.
    settings = settings_for(zoom, rate=rate, storage=db, retry_max_delay=0.5, drain_timeout=1.0)
    app = create_app(settings)
    app.on_startup.append(freeze_startup_objects)  # as `chatopsbot run` does
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    runtime = app[RUNTIME]
    forgetful = Forgetful(zoom)
    forget = loop.create_task(forgetful.run())
    conn.send(runner.addresses[0][1])
    try:
        while True:
            command, argument = await loop.run_in_executor(None, conn.recv)
            if command == "stop":
                break
            if command == "fill":
                conn.send(await _fill(runtime, zoom.robot_jid, *argument))
            elif command == "zoom_up":
                await zoom.start(port=zoom_port)
                conn.send(True)
            elif command == "depth":
                conn.send(runtime.outbox.depth)
            elif command == "delivered":
                conn.send(forgetful.delivered)
            else:
                raise ValueError(command)
    finally:
        forget.cancel()
        await runner.cleanup()
        await zoom.close()


class Forgetful:
    """Counts what the fake Zoom delivered, and empties its records.

    The fake records every request and message; in the bot's process those records would count
    as the bot's memory. Nothing here reads them but this count.
    """

    def __init__(self, zoom: FakeZoom) -> None:
        self.zoom = zoom
        self.counted = 0

    @property
    def delivered(self) -> int:
        return self.counted + sum(1 for r in self.zoom.requests if 200 <= r.status < 300)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            self.counted = self.delivered
            self.zoom.requests.clear()
            self.zoom.messages.clear()


async def _fill(runtime: Runtime, robot_jid: str, count: int, lanes: int) -> float:
    """Queue ``count`` replies over ``lanes`` conversations; return the seconds it took."""
    started = time.perf_counter()
    batch = 1000
    for first in range(0, count, batch):
        messages = [
            queued_reply(robot_jid, conversation(n % lanes), f"queued reply number {n}")
            for n in range(first, min(count, first + batch))
        ]
        await runtime.outbox.add(messages)
    elapsed = time.perf_counter() - started
    gc.collect()
    return elapsed


class Bot:
    """The bot process, seen from the load generator."""

    def __init__(self, rate: float, *, outage: bool = False) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_serve, args=(child, rate, outage), daemon=True)
        self.process.start()
        if not self._conn.poll(60):
            raise RuntimeError("the bot process did not start")
        self.port: int = self._conn.recv()
        self.base = f"http://127.0.0.1:{self.port}"
        self.url = f"{self.base}/zoom/webhook"

    @property
    def pid(self) -> int:
        assert self.process.pid is not None
        return self.process.pid

    async def ask(self, command: str, argument: Any = None) -> Any:
        self._conn.send((command, argument))
        return await asyncio.get_running_loop().run_in_executor(None, self._conn.recv)

    def stop(self) -> None:
        self._conn.send(("stop", None))
        self.process.join(60)


async def burst(url: str, senders: int, per_sender: int) -> Figures:
    """Post distinct signed webhooks from ``senders`` concurrent senders; latency at the client."""
    payloads = [
        signed(SECRET, bot_notification("ping", to_jid=CHANNEL))
        for _ in range(senders * per_sender + senders)
    ]
    latencies: list[float] = []
    statuses: Counter[int] = Counter()

    async def sender(index: int, session: aiohttp.ClientSession, warmup: bool) -> None:
        count = 1 if warmup else per_sender
        base = index if warmup else senders + index * per_sender
        for i in range(count):
            body, headers = payloads[base + i]
            started = time.perf_counter()
            async with session.post(url, data=body, headers=headers) as resp:
                await resp.read()
                if not warmup:
                    statuses[resp.status] += 1
            if not warmup:
                latencies.append(time.perf_counter() - started)

    connector = aiohttp.TCPConnector(limit=senders)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(sender(i, session, True) for i in range(senders)))
        # The load generator's own collector pauses would count against the bot: keep it off.
        gc.collect()
        gc.disable()
        started = time.perf_counter()
        try:
            await asyncio.gather(*(sender(i, session, False) for i in range(senders)))
        finally:
            elapsed = time.perf_counter() - started
            gc.enable()
    ms = sorted(x * 1000 for x in latencies)
    return {
        "webhooks": len(ms),
        "ok": statuses[200],
        "p50": statistics.median(ms),
        "p90": percentile(ms, 0.90),
        "p99": percentile(ms, 0.99),
        "max": ms[-1],
        "throughput": len(ms) / elapsed,
    }


def show_burst(f: Figures) -> str:
    return (
        f"{f['ok']:.0f}/{f['webhooks']:.0f} answered 200; p50 {f['p50']:.2f} ms, "
        f"p90 {f['p90']:.2f} ms, p99 {f['p99']:.2f} ms, max {f['max']:.2f} ms; "
        f"throughput {f['throughput']:.0f} webhooks/s"
    )


async def steady(base: str, rate: float, seconds: float, probe_every: float = 5.0) -> Figures:
    """Webhooks at a steady ``rate`` for ``seconds`` (each sent on time, whatever the earlier
    ones wait for), and ``GET /healthz`` every ``probe_every`` seconds, as a monitor would."""
    loop = asyncio.get_running_loop()
    count = int(rate * seconds)
    payloads = [signed(SECRET, bot_notification("ping", to_jid=CHANNEL)) for _ in range(count)]
    latencies: list[float] = []
    probes: list[float] = []
    statuses: Counter[int] = Counter()

    async def post(session: aiohttp.ClientSession, index: int) -> None:
        body, headers = payloads[index]
        started = time.perf_counter()
        async with session.post(base + "/zoom/webhook", data=body, headers=headers) as resp:
            await resp.read()
            statuses[resp.status] += 1
        latencies.append((time.perf_counter() - started) * 1000)

    async def probe(session: aiohttp.ClientSession) -> None:
        started = time.perf_counter()
        async with session.get(base + "/healthz") as resp:
            await resp.read()
        probes.append((time.perf_counter() - started) * 1000)

    tasks: list[asyncio.Task[None]] = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        start = loop.time()
        next_probe = 0.0
        for index in range(count):
            at = index / rate
            if (delay := start + at - loop.time()) > 0:
                await asyncio.sleep(delay)
            tasks.append(loop.create_task(post(session, index)))
            if at >= next_probe:
                tasks.append(loop.create_task(probe(session)))
                next_probe += probe_every
        await asyncio.gather(*tasks)
    ms = sorted(latencies)
    return {
        "webhooks": len(ms),
        "ok": statuses[200],
        "rate": rate,
        "seconds": seconds,
        "p50": statistics.median(ms),
        "p99": percentile(ms, 0.99),
        "max": ms[-1],
        "over_20ms": sum(x > 20 for x in ms),
        "healthz": statistics.median(probes),
    }


def show_steady(f: Figures) -> str:
    return (
        f"{f['ok']:.0f}/{f['webhooks']:.0f} answered 200 at {f['rate']:.0f}/s for "
        f"{f['seconds']:.0f} s; p50 {f['p50']:.2f} ms, p99 {f['p99']:.2f} ms, "
        f"max {f['max']:.1f} ms, {f['over_20ms']:.0f} over 20 ms; "
        f"GET /healthz {f['healthz']:.1f} ms (median)"
    )


# Acknowledgement.


async def ack(senders: int = 50, per_sender: int = 40) -> Figures:
    # The fake Zoom in the bot's process answers the replies ("pong"), without a quota.
    bot = Bot(rate=10_000)
    try:
        return await burst(bot.url, senders, per_sender)
    finally:
        bot.stop()


# Memory.


async def memory(
    queued: int = 100_000, lanes: int = 100, drain_rate: float = 10_000, hold: float = 35.0
) -> Figures:
    bot = Bot(rate=drain_rate, outage=True)
    try:
        await asyncio.sleep(1.0)
        idle, _ = rss_mib(bot.pid)
        fill_seconds = await bot.ask("fill", (queued, lanes))
        loaded, peak = rss_mib(bot.pid)
        depth = await bot.ask("depth")
        # The backlog waits (Zoom unreachable, one probe every half second at most).
        waiting = await burst(bot.url, 50, 20)
        # Long enough for the outbox's rescan of storage (every 30 s) to fall in.
        held = await steady(bot.base, 100, hold) if hold else {}
        await bot.ask("zoom_up")
        # Polls another process: there is no event to wait for.
        deadline = time.perf_counter() + 30
        while (sent := await bot.ask("delivered")) < 2:
            if time.perf_counter() > deadline:
                raise RuntimeError("the backlog did not start draining within 30 s")
            await asyncio.sleep(0.05)
        before = time.perf_counter()
        draining = await burst(bot.url, 50, 20)
        drained = (await bot.ask("delivered") - sent) / (time.perf_counter() - before)
        during, _ = rss_mib(bot.pid)
    finally:
        bot.stop()
    figures: Figures = {
        "queued": depth,
        "lanes": lanes,
        "fill_seconds": fill_seconds,
        "idle": idle,
        "loaded": loaded,
        "peak": peak,
        "per_reply_kib": (loaded - idle) * 1024 / max(1, depth),
        "draining_rss": during,
        "drain_rate": drained,
    }
    figures.update({f"waiting_{k}": v for k, v in waiting.items()})
    figures.update({f"draining_{k}": v for k, v in draining.items()})
    figures.update({f"held_{k}": v for k, v in held.items()})
    return figures


def show_memory(f: Figures) -> str:
    waiting = {k.removeprefix("waiting_"): v for k, v in f.items() if k.startswith("waiting_")}
    draining = {k.removeprefix("draining_"): v for k, v in f.items() if k.startswith("draining_")}
    held = {k.removeprefix("held_"): v for k, v in f.items() if k.startswith("held_")}
    return (
        f"RSS idle {f['idle']:.1f} MiB; {f['queued']:.0f} replies queued over {f['lanes']:.0f} "
        f"conversations (written in {f['fill_seconds']:.1f} s): {f['loaded']:.1f} MiB, peak "
        f"{f['peak']:.1f} MiB (+{f['per_reply_kib']:.3f} KiB per reply)\n"
        f"    burst, backlog waiting:  {show_burst(waiting)}\n"
        + (f"    steady, backlog waiting: {show_steady(held)}\n" if held else "")
        + f"    burst, backlog draining: {show_burst(draining)}\n"
        f"    drained {f['drain_rate']:.0f} replies/s during that burst; RSS then "
        f"{f['draining_rss']:.1f} MiB"
    )


# Running them.


def repeat(
    name: str, times: int, run: Callable[[], Coroutine[Any, Any, Figures]], show: Callable[..., str]
) -> Figures:
    runs = []
    for n in range(times):
        figures = asyncio.run(run())
        runs.append(figures)
        print(f"{name} run {n + 1}: {show(figures)}", flush=True)
    median = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
    if times > 1:
        print(f"{name} median of {times}: {show(median)}", flush=True)
    return median


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "which", nargs="?", default="all", choices=["quota", "ack", "memory", "all"]
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs of each benchmark")
    parser.add_argument("--rate", type=int, default=20, help="rate limit for the quota run")
    parser.add_argument(
        "--replies", type=int, default=0, help="replies in the quota run (20 s worth if 0)"
    )
    parser.add_argument("--per-sender", type=int, default=40, help="webhooks per ack sender")
    parser.add_argument("--queued", type=int, default=100_000, help="replies in the backlog")
    parser.add_argument("--lanes", type=int, default=100, help="conversations of the backlog")
    parser.add_argument(
        "--drain-rate", type=float, default=10_000, help="rate limit while the backlog drains"
    )
    parser.add_argument(
        "--hold", type=float, default=35.0, help="seconds of steady load on the backlog (0: none)"
    )
    options = parser.parse_args()
    which = options.which
    replies = options.replies or max(60, options.rate * 20)
    print(f"python {sys.version.split()[0]}, {multiprocessing.cpu_count()} cores", flush=True)
    if which in ("memory", "all"):
        repeat(
            "memory",
            options.repeat,
            lambda: memory(options.queued, options.lanes, options.drain_rate, options.hold),
            show_memory,
        )
    if which in ("ack", "all"):
        repeat("ack", options.repeat, lambda: ack(per_sender=options.per_sender), show_burst)
    if which in ("quota", "all"):
        repeat("quota", options.repeat, lambda: quota(options.rate, replies), show_quota)
    return 0


if __name__ == "__main__":
    sys.exit(main())
