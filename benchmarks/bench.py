"""Benchmarks for the durable runtime; prints figures (machines are noisy: not a pass/fail test).

    python benchmarks/bench.py
        [quota|pacer|ack|memory|scale|ack-replicas|reply-latency|failover|replicas|all]
        [--repeat N] [options]

- quota:  replies written to the durable outbox (SQLite in a temporary file) and sent through
          the Zoom sender, the token cache and the API client to a fake Zoom that enforces a
          strict one-second sliding window: achieved rate, 429s, lost, duplicated, order.
- ack:    webhook acknowledgement latency (p50/p99) and throughput with 50 concurrent senders;
          the bot runs in its own process (SQLite on disk, as ``chatopsbot run`` has it), so the
          load generator does not share its loop. Every webhook is recorded before its 200.
- pacer:  the pacer alone, 50 requests always waiting, on a loop that other tasks keep busy
          for a given time per turn (0 to 2 ms): the share of the rate the requests get, and
          the most requests in any one second. Shows what a busy loop costs the schedule.
- scale:  how memory and CPU per reply grow with the backlog: 100 to 100,000 replies queued
          while Zoom is unreachable, over 1 to 1,000 conversations, then drained with a
          quota far above what the bot sends; a table.
- memory: resident memory of the bot process idle and with 100,000 replies queued in the
          outbox (Zoom unreachable, so they stay queued); then the acknowledgement latency of a
          short burst with that backlog waiting, of 35 s of steady load (100/s, with a health
          probe every 5 s, spanning the outbox's rescan of storage), and of a burst while the
          backlog drains.

On PostgreSQL (``--postgres URL``; each run in a fresh schema, dropped afterwards), with every
replica a process of its own:

- ack-replicas: the ``ack`` burst side by side on SQLite, on one replica on PostgreSQL, and on
          two replicas with each sender's webhooks spread over both, as a load balancer would.
- reply-latency: the time from posting a signed webhook to its reply reaching the fake Zoom, at a
          steady rate well below saturation (open loop), side by side: SQLite, one replica on
          PostgreSQL, two replicas with the webhooks sent to the follower (the reply then goes
          out through the leader, which hears of it by NOTIFY), and for comparison two
          replicas with the webhooks sent to the leader. The fake runs in this process.
- failover: two replicas and a steady stream spread over both; SIGKILL the leader; the time
          until the other replica's ``/healthz`` says it leads and until the first reply it
          sends reaches the fake; the replies of the webhooks posted after the kill.
- replicas: ack-replicas, reply-latency and failover.

With ``--repeat N`` each benchmark runs N times and the median of every figure is printed (side
by side configurations take turns within each round). Each run starts once the machine has been
quiet for 2 s, and is run again if other processes used more than ``--busy-limit`` of a core on
average meanwhile (CPU time of the machine minus that of this process, its children and the
PostgreSQL server).
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import functools
import gc
import json
import logging
import math
import multiprocessing
import os
import random
import secrets
import signal
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from multiprocessing.connection import Connection
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg
from aiohttp import web
from attrs import frozen

from chatopsbot.app import RUNTIME, create_app, freeze_startup_objects
from chatopsbot.config import Settings, parse_settings
from chatopsbot.outbound.pacer import Pacer
from chatopsbot.outbound.sender import encode_call
from chatopsbot.runtime import LEASE_SECONDS, Runtime
from chatopsbot.storage import NewMessage
from chatopsbot.zoom.cards import MESSAGES_PATH, ApiCall
from chatopsbot.zoom.fake import FakeZoom
from chatopsbot.zoom.payloads import bot_notification, signed

SECRET = "bench-secret"  # noqa: S105 - signs webhooks to a local fake
CHANNEL = "ops@conference.xmpp.zoom.us"
ACCOUNT = "acct-1"
#: The PostgreSQL server of the replica benchmarks (``--postgres``).
POSTGRES = os.environ.get("CHATOPSBOT_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
#: What a request to a replica that is gone (or going) can fail with.
UNREACHABLE = (aiohttp.ClientError, OSError, TimeoutError)

Figures = dict[str, float]


@frozen
class Endpoints:
    """Where a bot process finds a fake Zoom that runs in another process (this one): its
    ``[zoom]`` table, which (unlike the fake) can be sent to a spawned process."""

    table: dict[str, str]

    @classmethod
    def of(cls, zoom: FakeZoom) -> Endpoints:
        return cls(zoom.zoom_table(SECRET))

    @property
    def robot_jid(self) -> str:
        return self.table["bot_jid"]

    def zoom_table(self, secret_token: str) -> dict[str, str]:
        return {**self.table, "secret_token": secret_token}


def settings_for(
    zoom: FakeZoom | Endpoints,
    rate: float,
    *,
    port: int = 0,
    storage: str = ":memory:",
    url: str = "",
    retry_max_delay: float = 30.0,
    drain_timeout: float = 30.0,
) -> Settings:
    return parse_settings(
        {
            "zoom": zoom.zoom_table(SECRET),
            "server": {"host": "127.0.0.1", "port": port},
            # A PostgreSQL url (replicas) or a SQLite file.
            "storage": {"url": url} if url else {"path": storage},
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


async def pacer(rate: int, turn_ms: float, seconds: float = 3.0) -> Figures:
    """50 requests always waiting for a pacer at ``rate``, while 10 other tasks keep the loop
    busy for ``turn_ms`` per turn in all (spinning, as handlers and parsing would)."""
    paced = Pacer(rate)
    sent: list[float] = []
    stop = asyncio.Event()

    async def requester() -> None:
        while not stop.is_set():
            await paced.wait()
            sent.append(time.perf_counter())
            await asyncio.sleep(0)  # the send itself

    async def busy() -> None:
        while not stop.is_set():
            until = time.perf_counter() + turn_ms / 10_000
            while time.perf_counter() < until:
                pass
            await asyncio.sleep(0)

    tasks = [asyncio.create_task(requester()) for _ in range(50)]
    tasks += [asyncio.create_task(busy()) for _ in range(10 if turn_ms else 0)]
    await asyncio.sleep(seconds)
    stop.set()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    span = sent[-1] - sent[0]
    times = sorted(sent)
    most = max(bisect.bisect_left(times, t + 1.0) - i for i, t in enumerate(times))
    return {
        "rate": rate,
        "turn_ms": turn_ms,
        "share": (len(sent) - 1) / span / rate,
        "most_in_a_second": most,
    }


def show_pacer(f: Figures) -> str:
    return (
        f"rate {f['rate']:.0f}/s, loop busy {f['turn_ms']:.1f} ms per turn: "
        f"{f['share']:.3f} of the rate, at most {f['most_in_a_second']:.0f} in any one second"
    )


def show_quota(f: Figures) -> str:
    return (
        f"{f['replies']:.0f} replies at rate_limit={f['rate']:.0f}/s: achieved "
        f"{f['achieved']:.2f}/s = {f['share']:.3f} of the limit over {f['span']:.1f} s; "
        f"429s {f['429s']:.0f}, lost {f['lost']:.0f}, duplicated {f['duplicated']:.0f}, "
        f"futures failed {f['failed']:.0f}, left in storage {f['left']:.0f}, "
        f"order kept {bool(f['in_order'])}"
    )


# The bot in a process of its own.


def _serve(
    conn: Connection, rate: float, outage: bool, url: str = "", zoom: Endpoints | None = None
) -> None:
    """The bot process: serve webhooks and obey ``(command, argument)`` pairs from ``conn``.

    Storage is a SQLite file of its own, or PostgreSQL at ``url`` (a replica). The fake Zoom
    runs in this process, unless ``zoom`` says where another process serves one.
    """
    # Below ERROR the bot would log its (throttled) retry warnings during the outage.
    logging.basicConfig(level=logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="chatopsbot-bench-") as workdir:
        asyncio.run(_bot(conn, os.path.join(workdir, "bench.db"), rate, outage, url, zoom))


async def _bot(
    conn: Connection, db: str, rate: float, outage: bool, url: str, remote: Endpoints | None
) -> None:
    loop = asyncio.get_running_loop()
    zoom: FakeZoom | None = None
    if remote is None:
        zoom = FakeZoom()
        await zoom.start()
        zoom_port = int(zoom.url.rsplit(":", 1)[1])
        if outage:
            # Zoom unreachable (connections refused) until told otherwise: replies stay queued.
            await zoom.close()
    endpoints = remote or zoom
    assert endpoints is not None
    # A short retry cap, so that the outbox notices quickly when Zoom is back; a short drain
    # at shutdown, so that a backlog is left in storage instead of sent for 30 s.
    settings = settings_for(
        endpoints, rate=rate, storage=db, url=url, retry_max_delay=0.5, drain_timeout=1.0
    )
    app = create_app(settings)
    app.on_startup.append(freeze_startup_objects)  # as `chatopsbot run` does
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    runtime = app[RUNTIME]
    forgetful = None if zoom is None else Forgetful(zoom)
    forget = None if forgetful is None else loop.create_task(forgetful.run())
    conn.send(runner.addresses[0][1])
    try:
        while True:
            command, argument = await loop.run_in_executor(None, conn.recv)
            if command == "stop":
                break
            if command == "fill":
                conn.send(await _fill(runtime, endpoints.robot_jid, *argument))
            elif command == "depth":
                conn.send(runtime.outbox.depth)
            elif command == "zoom_up" and zoom is not None:
                await zoom.start(port=zoom_port)
                conn.send(True)
            elif command == "delivered" and forgetful is not None:
                conn.send(forgetful.delivered)
            else:
                raise ValueError(command)
    finally:
        if forget is not None:
            forget.cancel()
        await runner.cleanup()
        if zoom is not None:
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
    """The bot process, seen from the load generator.

    On PostgreSQL (``url``) it is one replica; ``zoom`` points it at a fake Zoom in this process.
    """

    def __init__(
        self, rate: float, *, outage: bool = False, url: str = "", zoom: Endpoints | None = None
    ) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self.process = ctx.Process(
            target=_serve, args=(child, rate, outage, url, zoom), daemon=True
        )
        self.process.start()
        if not self._conn.poll(60):
            self.kill()
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
        """Stop as ``chatopsbot run`` does (drain included); SIGKILL if that takes a minute."""
        if self.process.is_alive():
            with contextlib.suppress(OSError):
                self._conn.send(("stop", None))
            self.process.join(60)
        self.kill()

    def kill(self) -> None:
        """SIGKILL (if still running), and wait until the process is gone."""
        if self.process.is_alive():
            self.process.kill()
        self.process.join(10)

    async def role(self, session: aiohttp.ClientSession) -> str:
        """What ``/healthz`` says of the replica's role ("" if it does not answer)."""
        try:
            async with session.get(
                self.base + "/healthz", timeout=aiohttp.ClientTimeout(total=5)
            ) as resp:
                body = await resp.json(content_type=None)
        except UNREACHABLE:
            return ""
        return str(body.get("role", ""))

    async def becomes(
        self, session: aiohttp.ClientSession, role: str, *, within: float, every: float = 0.02
    ) -> float:
        """Poll ``/healthz`` until it says ``role``; the time (``perf_counter``) it first did."""
        deadline = time.perf_counter() + within
        while await self.role(session) != role:
            if time.perf_counter() > deadline:
                raise RuntimeError(f"the replica at {self.base} was not {role} within {within} s")
            await asyncio.sleep(every)
        return time.perf_counter()


async def burst(url: str | Sequence[str], senders: int, per_sender: int) -> Figures:
    """Post distinct signed webhooks from ``senders`` concurrent senders; latency at the client.

    With several ``url``, each sender sends to them in turn, as a load balancer would.
    """
    urls = [url] if isinstance(url, str) else list(url)
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
            target = urls[(base + i) % len(urls)]
            started = time.perf_counter()
            async with session.post(target, data=body, headers=headers) as resp:
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
        _, bots_before, postgres_before = cpu_split()
        started = time.perf_counter()
        try:
            await asyncio.gather(*(sender(i, session, False) for i in range(senders)))
        finally:
            elapsed = time.perf_counter() - started
            gc.enable()
        _, bots_after, postgres_after = cpu_split()
    ms = sorted(x * 1000 for x in latencies)
    return {
        "webhooks": len(ms),
        "ok": statuses[200],
        "p50": statistics.median(ms),
        "p90": percentile(ms, 0.90),
        "p99": percentile(ms, 0.99),
        "max": ms[-1],
        "throughput": len(ms) / elapsed,
        # CPU time per webhook (ms) during the burst (ticks of 10 ms: a rough figure on a short
        # burst): the bot processes, and PostgreSQL. Replies still being sent are not in it.
        "bot_cpu": (bots_after - bots_before) * 1000 / len(ms),
        "postgres_cpu": (postgres_after - postgres_before) * 1000 / len(ms),
    }


def show_burst(f: Figures) -> str:
    return (
        f"{f['ok']:.0f}/{f['webhooks']:.0f} answered 200; p50 {f['p50']:.2f} ms, "
        f"p90 {f['p90']:.2f} ms, p99 {f['p99']:.2f} ms, max {f['max']:.2f} ms; "
        f"throughput {f['throughput']:.0f} webhooks/s; CPU per webhook: bot processes "
        f"{f['bot_cpu']:.3f} ms"
        + (f", PostgreSQL {f['postgres_cpu']:.3f} ms" if f["postgres_cpu"] else "")
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


async def ack(
    senders: int = 50, per_sender: int = 40, *, replicas: int = 0, server: str = POSTGRES
) -> Figures:
    """The burst on one process with SQLite, or on ``replicas`` replicas on PostgreSQL."""
    # The fake Zoom in the bot's process answers the replies ("pong"), without a quota.
    if not replicas:
        bot = Bot(rate=10_000)
        try:
            return await burst(bot.url, senders, per_sender)
        finally:
            bot.stop()
    # Each replica has a fake in its process, as above; only the leader's is sent to, so the
    # leader's process answers every pong, as the one SQLite process does.
    async with fresh_schema(server) as url:
        bots = await start_replicas(url, 10_000, [None] * replicas)
        try:
            return await burst([bot.url for bot in bots], senders, per_sender)
        finally:
            await stop_bots(bots)


# Replicas on PostgreSQL.


@contextlib.asynccontextmanager
async def fresh_schema(server: str) -> AsyncIterator[str]:
    """A ``[storage] url`` on a new schema of ``server``; the schema is dropped afterwards."""
    schema = f"bench_{secrets.token_hex(6)}"
    parts = urlsplit(server)
    search = f"search_path={schema}"
    try:
        yield urlunsplit(parts._replace(query=f"{parts.query}&{search}" if parts.query else search))
    finally:
        conn = await asyncpg.connect(server)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()


async def start_replicas(url: str, rate: float, zooms: Sequence[Endpoints | None]) -> list[Bot]:
    """A replica on ``url`` for each of ``zooms`` (its fake Zoom; ``None``: one in its process),
    started one after the other: the first holds the leader lease, the others follow."""
    loop = asyncio.get_running_loop()
    bots: list[Bot] = []
    try:
        async with aiohttp.ClientSession() as session:
            for n, zoom in enumerate(zooms):
                # Off the loop: a fake Zoom in this process keeps answering meanwhile.
                start = functools.partial(Bot, rate, url=url, zoom=zoom)
                bots.append(await loop.run_in_executor(None, start))
                await bots[-1].becomes(session, "follower" if n else "leader", within=30)
    except BaseException:
        await stop_bots(bots)
        raise
    return bots


async def stop_bots(bots: Sequence[Bot]) -> None:
    """Stop the bots, followers first (no handover on the way), off the loop: the leader may
    drain its outbox to a fake Zoom that this loop serves."""
    loop = asyncio.get_running_loop()
    for bot in reversed(bots):
        await loop.run_in_executor(None, bot.stop)


def reply_channel(n: int) -> str:
    """The conversation of a stream's webhook ``n``: its reply tells which webhook it answers."""
    return f"r{n}@conference.xmpp.zoom.us"


class Stream:
    """``ping`` webhooks at a steady rate (open loop: each sent on time, whatever the earlier
    ones wait for), each in a conversation of its own, so that its reply can be told apart.

    They go to ``urls`` in turn; one that a replica does not take (refused, reset, 503) goes to
    the next, as a load balancer would resend it.
    """

    def __init__(self, urls: Sequence[str], count: int) -> None:
        self.urls = list(urls)
        self.payloads = [
            signed(SECRET, bot_notification("ping", to_jid=reply_channel(n))) for n in range(count)
        ]
        #: When each webhook was first posted (``perf_counter``).
        self.posted: dict[int, float] = {}
        #: From posting to the 200 (ms), for each webhook a replica took.
        self.acked: dict[int, float] = {}
        #: The ``status`` word of the 200s: "accepted", "duplicate".
        self.words: Counter[str] = Counter()
        #: Posts resent to another replica, and webhooks no replica took.
        self.resent = 0
        self.refused = 0

    async def run(
        self, session: aiohttp.ClientSession, rate: float, first: int, count: int
    ) -> None:
        """Post webhooks ``first`` to ``first + count - 1`` at ``rate``; return once answered."""
        loop = asyncio.get_running_loop()
        tasks: list[asyncio.Task[None]] = []
        start = loop.time()
        for k in range(count):
            if (delay := start + k / rate - loop.time()) > 0:
                await asyncio.sleep(delay)
            tasks.append(loop.create_task(self._post(session, first + k)))
        await asyncio.gather(*tasks)

    async def _post(self, session: aiohttp.ClientSession, index: int) -> None:
        body, headers = self.payloads[index]
        started = self.posted[index] = time.perf_counter()
        for attempt in range(2 * len(self.urls)):
            if attempt:
                self.resent += 1
            url = self.urls[(index + attempt) % len(self.urls)]
            try:
                async with session.post(
                    url, data=body, headers=headers, timeout=aiohttp.ClientTimeout(total=10)
                ) as resp:
                    answer = await resp.read()
            except UNREACHABLE:
                continue
            if resp.status == 200:
                self.acked[index] = (time.perf_counter() - started) * 1000
                self.words[str(json.loads(answer)["status"])] += 1
                return
        self.refused += 1


def arrivals(fakes: Sequence[FakeZoom]) -> tuple[list[dict[int, float]], int]:
    """When the first reply to each webhook of a :class:`Stream` reached each fake Zoom (its
    ``perf_counter`` clock), and how many replies were repeats."""
    found: list[dict[int, float]] = []
    seen: Counter[int] = Counter()
    for fake in fakes:
        first: dict[int, float] = {}
        for request in fake.requests:
            to = str((request.body or {}).get("to_jid", ""))
            if request.status != 201 or not to.startswith("r"):
                continue
            n = int(to[1:].partition("@")[0])
            seen[n] += 1
            first.setdefault(n, request.at)
        found.append(first)
    return found, sum(c - 1 for c in seen.values())


async def answered(
    stream: Stream, fakes: Sequence[FakeZoom], indexes: range, within: float
) -> dict[int, float]:
    """Wait (up to ``within`` s) for a reply to each webhook of ``indexes`` a replica took;
    the first arrival of each reply that came."""
    deadline = time.perf_counter() + within
    while True:
        found, _ = arrivals(fakes)
        first = {
            n: min(f[n] for f in found if n in f) for n in indexes if any(n in f for f in found)
        }
        if all(n in first for n in indexes if n in stream.acked) or time.perf_counter() > deadline:
            return first
        await asyncio.sleep(0.1)


def latency_figures(prefix: str, ms: list[float]) -> Figures:
    ms = sorted(ms)
    if not ms:
        return {f"{prefix}{key}": math.nan for key in ("p50", "p90", "p99", "max")}
    return {
        f"{prefix}p50": statistics.median(ms),
        f"{prefix}p90": percentile(ms, 0.90),
        f"{prefix}p99": percentile(ms, 0.99),
        f"{prefix}max": ms[-1],
    }


async def reply_latency(
    replicas: int = 0,
    rate: float = 100.0,
    seconds: float = 20.0,
    *,
    to_leader: bool = False,
    server: str = POSTGRES,
) -> Figures:
    """From posting a webhook to its reply reaching the fake Zoom, at a steady ``rate``.

    ``replicas`` 0: one process on SQLite; 1: one replica on PostgreSQL; 2: two replicas, the
    webhooks to the follower (the reply goes out through the leader, told by NOTIFY), or to
    the leader with ``to_leader``. The fake Zoom (one per replica, so that each reply tells who
    sent it) runs in this process, without a quota.
    """
    loop = asyncio.get_running_loop()
    warm = int(rate)
    count = int(rate * seconds)
    async with contextlib.AsyncExitStack() as stack:
        fakes = [
            await stack.enter_async_context(FakeZoom(clock=time.perf_counter))
            for _ in range(max(1, replicas))
        ]
        zooms = [Endpoints.of(fake) for fake in fakes]
        if replicas:
            url = await stack.enter_async_context(fresh_schema(server))
            bots = await start_replicas(url, 10_000, zooms)
        else:
            start = functools.partial(Bot, 10_000, zoom=zooms[0])
            bots = [await loop.run_in_executor(None, start)]
        stack.push_async_callback(stop_bots, bots)
        session = await stack.enter_async_context(
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        )
        stream = Stream([bots[0].url if to_leader else bots[-1].url], warm + count)
        # One second's worth first: connections, the OAuth token, the first of everything.
        await stream.run(session, rate, 0, warm)
        await answered(stream, fakes, range(warm), within=30)
        # This process serves the fake: its collector's pauses would count against the bot.
        gc.collect()
        gc.disable()
        try:
            await stream.run(session, rate, warm, count)
            first = await answered(stream, fakes, range(warm, warm + count), within=30)
        finally:
            gc.enable()
        _, repeated = arrivals(fakes)
    timed = range(warm, warm + count)
    return {
        "webhooks": count,
        "ok": sum(n in stream.acked for n in timed),
        "rate": rate,
        "seconds": seconds,
        "replies": sum(n in first for n in timed),
        "missing": sum(n in stream.acked and n not in first for n in timed),
        "repeated": repeated,
        **latency_figures("", [(first[n] - stream.posted[n]) * 1000 for n in timed if n in first]),
        **latency_figures("ack_", [stream.acked[n] for n in timed if n in stream.acked]),
    }


def show_reply_latency(f: Figures) -> str:
    return (
        f"{f['ok']:.0f}/{f['webhooks']:.0f} answered 200 at {f['rate']:.0f}/s for "
        f"{f['seconds']:.0f} s; reply p50 {f['p50']:.2f} ms, p90 {f['p90']:.2f} ms, "
        f"p99 {f['p99']:.2f} ms, max {f['max']:.1f} ms; {f['missing']:.0f} missing, "
        f"{f['repeated']:.0f} repeated; ack p50 {f['ack_p50']:.2f} ms, p99 {f['ack_p99']:.2f} ms"
    )


async def failover(
    rate: float = 50.0, before: float = 5.0, after: float = 10.0, *, server: str = POSTGRES
) -> Figures:
    """Two replicas, a steady stream spread over both; SIGKILL the leader ``before`` s in (plus
    up to two lease rounds, at random).

    How long until the follower's ``/healthz`` says it leads (polled every 10 ms) and until the
    first reply it sends reaches the fake Zoom; the replies to the webhooks posted after the kill.
    """
    loop = asyncio.get_running_loop()
    warm = int(rate)
    count = int(rate * (before + after))
    async with contextlib.AsyncExitStack() as stack:
        # A fake Zoom per replica (both in this process): each reply tells who sent it.
        fakes = [await stack.enter_async_context(FakeZoom(clock=time.perf_counter)) for _ in "ab"]
        url = await stack.enter_async_context(fresh_schema(server))
        bots = await start_replicas(url, 10_000, [Endpoints.of(fake) for fake in fakes])
        stack.push_async_callback(stop_bots, bots)
        leader, follower = bots
        session = await stack.enter_async_context(
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        )
        stream = Stream([leader.url, follower.url], warm + count)
        await stream.run(session, rate, 0, warm)
        await answered(stream, fakes, range(warm), within=30)
        sending = loop.create_task(stream.run(session, rate, warm, count))
        # At a random point of the replicas' lease rounds (every LEASE_SECONDS): the start of
        # the run is so regular that a fixed delay would always kill at the same point.
        await asyncio.sleep(before + random.uniform(0, 2 * LEASE_SECONDS))
        killed = time.perf_counter()
        os.kill(leader.pid, signal.SIGKILL)
        leading = await follower.becomes(session, "leader", within=30, every=0.01)
        await sending
        first = await answered(stream, fakes, range(warm, warm + count), within=10)
        (old, new), repeated = arrivals(fakes)
    timed = range(warm, warm + count)
    first_new = min(new.values())
    late = [n for n in timed if stream.posted[n] >= killed and n in first]
    return {
        "rate": rate,
        "lease": leading - killed,
        "first_reply": first_new - killed,
        # From the old leader's last reply (one in flight at the kill may land after it).
        "gap": first_new - max(old.values()),
        "after": len(late),
        **latency_figures("", [(first[n] - stream.posted[n]) * 1000 for n in late]),
        "resent": stream.resent,
        "duplicates": stream.words["duplicate"],
        "refused": stream.refused,
        "unanswered": sum(n in stream.acked and n not in first for n in timed),
        "repeated": repeated,
    }


def show_failover(f: Figures) -> str:
    return (
        f"at {f['rate']:.0f}/s: lease taken {f['lease'] * 1000:.0f} ms after the SIGKILL, first "
        f"reply from the new leader {f['first_reply'] * 1000:.0f} ms after (no reply for "
        f"{f['gap'] * 1000:.0f} ms); replies to the {f['after']:.0f} webhooks posted after the "
        f"kill: p50 {f['p50']:.1f} ms, p99 {f['p99']:.1f} ms, max {f['max']:.0f} ms; "
        f"{f['resent']:.0f} posts resent to the other replica ({f['duplicates']:.0f} were "
        f"duplicates), {f['refused']:.0f} refused by both; {f['unanswered']:.0f} acknowledged "
        f"but unanswered at the end, {f['repeated']:.0f} replies repeated"
    )


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


#: ``(queued replies, conversations)`` of the scale table: the backlog grows, then spreads.
SCALE = (
    (100, 1),
    (1_000, 1),
    (10_000, 1),
    (100_000, 1),
    (10_000, 10),
    (10_000, 100),
    (10_000, 1_000),
    (100_000, 1_000),
)


async def scale(queued: int, lanes: int, drain_rate: float) -> Figures:
    """A backlog of ``queued`` replies over ``lanes`` conversations, written while Zoom is
    unreachable, then drained with a quota far above what the bot can send: memory with the
    backlog, and CPU time per reply (the bot process, with its in-process fake Zoom) to drain it."""
    bot = Bot(rate=drain_rate, outage=True)
    try:
        await asyncio.sleep(1.0)
        idle, _ = rss_mib(bot.pid)
        fill_seconds = await bot.ask("fill", (queued, lanes))
        loaded, _ = rss_mib(bot.pid)
        _, cpu_before, _ = cpu_split()
        started = time.perf_counter()
        await bot.ask("zoom_up")
        deadline = started + 900
        # Polls another process: there is no event to wait for.
        while (delivered := await bot.ask("delivered")) < queued:
            if time.perf_counter() > deadline:
                raise RuntimeError(f"{delivered} of {queued} replies drained in 900 s")
            await asyncio.sleep(0.2)
        elapsed = time.perf_counter() - started
        _, cpu_after, _ = cpu_split()
        drained, peak = rss_mib(bot.pid)
    finally:
        bot.stop()
    return {
        "queued": queued,
        "lanes": lanes,
        "fill_seconds": fill_seconds,
        "idle": idle,
        "loaded": loaded,
        "drained": drained,
        "peak": peak,
        "drain_rate": queued / elapsed,
        "cpu_ms": (cpu_after - cpu_before) * 1000 / queued,
    }


def show_scale(f: Figures) -> str:
    return (
        f"| {f['queued']:,.0f} | {f['lanes']:,.0f} | {f['fill_seconds']:.1f} s | "
        f"{f['idle']:.1f} | {f['loaded']:.1f} | {f['peak']:.1f} | {f['drained']:.1f} | "
        f"{f['drain_rate']:,.0f}/s | {f['cpu_ms']:.3f} ms |"
    )


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

Run = Callable[[], Coroutine[Any, Any, Figures]]
#: Clock ticks per second of the CPU times in /proc.
TICK = os.sysconf("SC_CLK_TCK")


def machine_cpu() -> float:
    """CPU seconds the machine's processes have used since it booted, all cores together, and
    those the hypervisor gave to others (steal). Interrupts are left out: most of them are this
    benchmark's own loopback traffic, which no process is charged for."""
    with open("/proc/stat") as stat:
        fields = [int(x) for x in stat.readline().split()[1:9]]
    user, nice, system, _idle, _iowait, _irq, _softirq, steal = fields
    return (user + nice + system + steal) / TICK


def cpu_split() -> tuple[float, float, float]:
    """CPU seconds of this process (with the children it has reaped), of its running children
    (the bot processes) and of the PostgreSQL server's processes (which work for replicas)."""
    me = os.getpid()
    ticks = [0, 0, 0]
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                line = stat.read()
        except OSError:
            continue  # gone meanwhile
        # The command name is in parentheses and may hold spaces: split after it.
        comm = line[line.index("(") + 1 : line.rindex(")")]
        rest = line[line.rindex(")") + 2 :].split()
        # utime, stime, and those of the children it has reaped.
        used = sum(int(x) for x in rest[11:15])
        if int(entry) == me:
            ticks[0] += used
        elif int(rest[1]) == me:
            ticks[1] += used
        elif comm == "postgres":
            ticks[2] += used
    return ticks[0] / TICK, ticks[1] / TICK, ticks[2] / TICK


def own_cpu() -> float:
    """CPU seconds of this process, its children (running or reaped) and PostgreSQL."""
    return sum(cpu_split())


def add_busy_limit(parser: argparse.ArgumentParser, during: str) -> None:
    """``--busy-limit``, the share of a core others may use ``during`` a measurement: what
    :class:`Quiet` is built from."""
    parser.add_argument(
        "--busy-limit",
        type=float,
        default=0.15,
        help=f"share of a core other processes may use during {during} (0: no quiet checks)",
    )


class Quiet:
    """Runs a benchmark on a quiet machine: it starts once the other processes have used less
    than ``limit`` of a core over ``window`` seconds, and runs again if they used more than that
    on average while it ran (at most ``tries`` times; then the last run is kept, marked busy).
    A ``limit`` of 0 turns the checks off."""

    def __init__(self, limit: float, window: float = 2.0, tries: int = 5) -> None:
        self.limit = limit
        self.window = window
        self.tries = tries

    def wait(self) -> None:
        """Until the machine has been quiet for ``window`` seconds."""
        step = 0.25
        samples: list[tuple[float, float]] = []
        began = told = time.perf_counter()
        while True:
            samples.append((time.perf_counter(), machine_cpu() - own_cpu()))
            samples = [s for s in samples if s[0] >= samples[-1][0] - self.window - step / 2]
            (t0, c0), (t1, c1) = samples[0], samples[-1]
            if t1 - t0 >= self.window and (c1 - c0) / (t1 - t0) <= self.limit:
                return
            if time.perf_counter() - told >= 30:
                told = time.perf_counter()
                print(
                    f"    waiting for a quiet machine ({told - began:.0f} s so far; others "
                    f"use {(c1 - c0) / (t1 - t0):.2f} of a core)",
                    flush=True,
                )
            time.sleep(step)

    def measure(self, name: str, run: Run) -> tuple[Figures, str]:
        """The run's figures, and a note on the load of the other processes meanwhile."""
        for _ in range(self.tries):
            if self.limit:
                self.wait()
            machine, own, started = machine_cpu(), own_cpu(), time.perf_counter()
            figures = asyncio.run(run())
            others = ((machine_cpu() - machine) - (own_cpu() - own)) / (
                time.perf_counter() - started
            )
            note = f"[others {others:.2f} core]"
            if not self.limit or others <= self.limit:
                return figures, note
            print(f"{name}: run discarded, {note}", flush=True)
        return figures, f"{note} BUSY: kept after {self.tries} tries"


def compare(
    entries: Sequence[tuple[str, Run, Callable[..., str]]], times: int, quiet: Quiet
) -> list[Figures]:
    """Run each entry ``times`` times, the entries taking turns; the medians of each."""
    runs: list[list[Figures]] = [[] for _ in entries]
    for n in range(times):
        for (name, run, show), kept in zip(entries, runs, strict=True):
            figures, note = quiet.measure(name, run)
            kept.append(figures)
            print(f"{name} run {n + 1}: {show(figures)} {note}", flush=True)
    medians = [{key: statistics.median(r[key] for r in kept) for key in kept[0]} for kept in runs]
    if times > 1:
        for (name, _, show), median in zip(entries, medians, strict=True):
            print(f"{name} median of {times}: {show(median)}", flush=True)
    return medians


def repeat(
    name: str,
    times: int,
    run: Run,
    show: Callable[..., str],
    quiet: Quiet | None = None,
) -> Figures:
    return compare([(name, run, show)], times, quiet or Quiet(0))[0]


BENCHMARKS = (
    "quota",
    "pacer",
    "ack",
    "memory",
    "scale",
    "ack-replicas",
    "reply-latency",
    "failover",
    "replicas",
)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("which", nargs="?", default="all", choices=[*BENCHMARKS, "all"])
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
    parser.add_argument(
        "--postgres", default=POSTGRES, help="PostgreSQL server of the replica benchmarks"
    )
    parser.add_argument(
        "--reply-rate", type=float, default=100.0, help="webhooks/s of the reply-latency run"
    )
    parser.add_argument(
        "--reply-seconds", type=float, default=20.0, help="length of the reply-latency run"
    )
    parser.add_argument(
        "--failover-rate", type=float, default=50.0, help="webhooks/s of the failover run"
    )
    add_busy_limit(parser, "a run")
    options = parser.parse_args()
    which = options.which
    server = options.postgres
    replies = options.replies or max(60, options.rate * 20)
    quiet = Quiet(options.busy_limit)
    print(f"python {sys.version.split()[0]}, {multiprocessing.cpu_count()} cores", flush=True)
    if which in ("memory", "all"):
        repeat(
            "memory",
            options.repeat,
            lambda: memory(options.queued, options.lanes, options.drain_rate, options.hold),
            show_memory,
            quiet,
        )
    if which in ("scale", "all"):
        print(
            "| queued | conversations | written in | RSS idle MiB | with backlog | peak | drained "
            "| drain rate | CPU per reply |\n|---|---|---|---|---|---|---|---|---|",
            flush=True,
        )
        for queued, lanes in SCALE:
            repeat(
                f"scale {queued} over {lanes}",
                options.repeat,
                functools.partial(scale, queued, lanes, options.drain_rate),
                show_scale,
                quiet,
            )
    if which in ("ack", "all"):
        repeat("ack", options.repeat, lambda: ack(per_sender=options.per_sender), show_burst, quiet)
    if which in ("ack-replicas", "replicas", "all"):
        compare(
            [
                (
                    f"ack {what}",
                    functools.partial(
                        ack, per_sender=options.per_sender, replicas=replicas, server=server
                    ),
                    show_burst,
                )
                for what, replicas in (("sqlite", 0), ("postgres x1", 1), ("postgres x2", 2))
            ],
            options.repeat,
            quiet,
        )
    if which in ("reply-latency", "replicas", "all"):
        compare(
            [
                (
                    f"reply latency {what}",
                    functools.partial(
                        reply_latency,
                        replicas,
                        options.reply_rate,
                        options.reply_seconds,
                        to_leader=to_leader,
                        server=server,
                    ),
                    show_reply_latency,
                )
                for what, replicas, to_leader in (
                    ("sqlite", 0, False),
                    ("postgres x1", 1, False),
                    ("postgres x2 via follower", 2, False),
                    ("postgres x2 via leader", 2, True),
                )
            ],
            options.repeat,
            quiet,
        )
    if which in ("failover", "replicas", "all"):
        repeat(
            "failover",
            options.repeat,
            lambda: failover(options.failover_rate, server=server),
            show_failover,
            quiet,
        )
    if which in ("quota", "all"):
        repeat("quota", options.repeat, lambda: quota(options.rate, replies), show_quota, quiet)
    if which in ("pacer", "all"):
        for rate in (60, 1000):
            for turn_ms in (0.0, 0.2, 0.5, 1.0, 2.0):
                repeat(
                    "pacer",
                    options.repeat,
                    functools.partial(pacer, rate, turn_ms),
                    show_pacer,
                    quiet,
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
