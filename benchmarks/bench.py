"""Benchmarks for the core runtime; prints figures (machines are noisy: not a pass/fail test).

    python benchmarks/bench.py [quota|ack|memory|all]

- quota:  400 replies through the outbox against a fake Zoom that enforces a strict one-second
          sliding window at the configured rate: achieved rate, 429s, lost, duplicated.
- ack:    webhook acknowledgement latency (p50/p99) and throughput with 50 concurrent senders;
          the bot runs in its own process so the load generator does not share its loop.
- memory: resident memory of the bot process idle and with 10,000 replies queued.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from typing import Any

import aiohttp
from aiohttp import web

from chatopsbot.app import RUNTIME, create_app, freeze_startup_objects
from chatopsbot.config import Settings, parse_settings
from chatopsbot.outbound import Outbox
from chatopsbot.zoom.auth import TokenCache
from chatopsbot.zoom.cards import MESSAGES_PATH, ApiCall
from chatopsbot.zoom.client import ZoomApi
from chatopsbot.zoom.fake import FakeZoom
from chatopsbot.zoom.payloads import bot_notification, signed

SECRET = "bench-secret"  # noqa: S105 - signs webhooks to a local fake
CHANNEL = "ops@conference.xmpp.zoom.us"


def settings_for(zoom: FakeZoom, rate: float, port: int = 0, storage: str = ":memory:") -> Settings:
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
            "outbound": {"rate_limit": rate},
        },
        source="<bench>",
        environ={},
    )


def reply(zoom: FakeZoom, to: str, text: str) -> ApiCall:
    body = {
        "robot_jid": zoom.robot_jid,
        "to_jid": to,
        "account_id": "acct-1",
        "content": {"body": [{"type": "message", "text": text}]},
    }
    return ApiCall("POST", MESSAGES_PATH, "acct-1", body)


def rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


async def quota(rate: int = 20, replies: int = 400, conversations: int = 8) -> None:
    async with FakeZoom(rate_limit=rate) as zoom, aiohttp.ClientSession() as session:
        tokens = TokenCache(
            session,
            oauth_url=zoom.oauth_url,
            client_id=zoom.client_id,
            client_secret=zoom.client_secret,
        )
        api = ZoomApi(session, base_url=zoom.api_base_url, tokens=tokens)
        outbox = Outbox(api, rate_limit=rate, max_attempts=5)
        futures = []
        for n in range(replies):
            to = f"c{n % conversations}@conference.xmpp.zoom.us"
            futures.append(outbox.submit(reply(zoom, to, f"reply {n}"), key=to))
        results = await asyncio.gather(*futures, return_exceptions=True)
        await outbox.drain(1)
    ok = [r for r in zoom.requests if r.status == 201]
    texts = Counter(zoom.messages[r.message_id].text for r in ok if r.message_id)
    span = ok[-1].at - ok[0].at
    achieved = (len(ok) - 1) / span
    in_order = all(
        [int(t.split()[1]) for t in _texts_for(zoom, c)]
        == sorted(int(t.split()[1]) for t in _texts_for(zoom, c))
        for c in range(conversations)
    )
    print(f"quota: {replies} replies at rate_limit={rate}/s over {conversations} conversations")
    print(f"  achieved {achieved:.2f}/s = {achieved / rate:.3f} of the limit over {span:.1f} s")
    print(f"  429s: {zoom.rate_limited}")
    print(f"  lost: {sum(isinstance(r, BaseException) for r in results)}")
    print(f"  duplicated: {sum(c - 1 for c in texts.values())}")
    print(f"  order kept in every conversation: {in_order}")


def _texts_for(zoom: FakeZoom, conversation: int) -> list[str]:
    to = f"c{conversation}@conference.xmpp.zoom.us"
    return [m.text for m in zoom.sent() if m.to_jid == to]


def _serve(port_queue: Any, stop: Any) -> None:
    async def main(workdir: str) -> None:
        # SQLite on disk, as `chatopsbot run` has it: each accepted webhook's key is stored.
        db = os.path.join(workdir, "bench.db")
        async with FakeZoom() as zoom:
            app = create_app(settings_for(zoom, rate=10_000, storage=db))
            app.on_startup.append(freeze_startup_objects)  # as `chatopsbot run` does
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port_queue.put(runner.addresses[0][1])
            # A multiprocessing Event cannot be awaited; poll it.
            while not stop.is_set():  # noqa: ASYNC110
                await asyncio.sleep(0.1)
            await runner.cleanup()

    with tempfile.TemporaryDirectory(prefix="chatopsbot-bench-") as workdir:
        asyncio.run(main(workdir))


async def ack(senders: int = 50, per_sender: int = 40) -> None:
    ctx = multiprocessing.get_context("spawn")
    port_queue = ctx.Queue()
    stop = ctx.Event()
    server = ctx.Process(target=_serve, args=(port_queue, stop), daemon=True)
    server.start()
    port = port_queue.get(timeout=30)
    url = f"http://127.0.0.1:{port}/zoom/webhook"
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
    stop.set()
    server.join(30)
    latencies.sort()
    ms = [x * 1000 for x in latencies]
    print(f"ack: {len(ms)} signed webhooks from {senders} concurrent senders (bot in own process)")
    print(f"  statuses: {dict(statuses)}")
    print(
        f"  p50 {statistics.median(ms):.2f} ms, p90 {ms[int(len(ms) * 0.90)]:.2f} ms, "
        f"p99 {ms[int(len(ms) * 0.99)]:.2f} ms, max {ms[-1]:.2f} ms"
    )
    print(f"  throughput {len(ms) / elapsed:.0f} webhooks/s")


async def memory(queued: int = 10_000) -> None:
    async with FakeZoom(rate_limit=1) as zoom:
        app = create_app(settings_for(zoom, rate=1))
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        gc.collect()
        idle = rss_mib()
        outbox = app[RUNTIME].outbox
        for n in range(queued):
            to = f"c{n % 100}@conference.xmpp.zoom.us"
            outbox.submit(reply(zoom, to, f"queued reply number {n}"), key=to)
        await asyncio.sleep(0.5)
        gc.collect()
        loaded = rss_mib()
        depth = outbox.depth
        await outbox.drain(0)
        await runner.cleanup()
    print(
        f"memory: RSS idle {idle:.1f} MiB; with {depth} replies queued {loaded:.1f} MiB "
        f"(+{(loaded - idle) * 1024 / depth:.2f} KiB per reply)"
    )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "which", nargs="?", default="all", choices=["quota", "ack", "memory", "all"]
    )
    parser.add_argument("--rate", type=int, default=20, help="rate limit for the quota run")
    parser.add_argument("--replies", type=int, default=400, help="replies in the quota run")
    options = parser.parse_args()
    which = options.which
    print(f"python {sys.version.split()[0]}, {multiprocessing.cpu_count()} cores")
    if which in ("memory", "all"):
        asyncio.run(memory())
    if which in ("ack", "all"):
        asyncio.run(ack())
    if which in ("quota", "all"):
        asyncio.run(quota(options.rate, options.replies))
    return 0


if __name__ == "__main__":
    sys.exit(main())
