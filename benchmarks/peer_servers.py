"""The peers ``peers.py`` compares chatopsbot with, each run as a process of its own.

    python benchmarks/peer_servers.py bare '{"zoom": {...}, "secret": "..."}'
    python benchmarks/peer_servers.py durable '{"zoom": {...}, "secret": "...", "db": "..."}'
    python benchmarks/peer_servers.py bolt '{"api": "http://127.0.0.1:N/api/", ...}'

Prints ``listening on PORT`` once it serves, and stops on SIGTERM. This module imports nothing
of chatopsbot, so a peer's memory is its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import hmac
import json
import os
import signal
import sqlite3
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp import web


async def bare(options: dict[str, Any], durable: bool = False) -> None:
    """Verify Zoom's signature, answer 200, post the reply from a task on one session.

    ``durable``: the least a bot that loses nothing must do, and nothing more. The webhook's
    row is written to SQLite and fsynced before the 200 (one fsync on a thread for all the
    commits before it); the reply's row is written with the settlement of the event before it
    is posted, and deleted once Zoom has it. No retries, no order, no limiter.
    """
    zoom: dict[str, str] = options["zoom"]
    secret = options["secret"].encode()
    session = aiohttp.ClientSession()
    token: list[str] = []
    messages = zoom["api_base_url"] + "/im/chat/messages"
    tasks: set[asyncio.Task[None]] = set()

    async def bearer() -> str:
        # Fetched on the first reply, as the bot does; concurrent first replies may fetch twice.
        if not token:
            auth = aiohttp.BasicAuth(zoom["client_id"], zoom["client_secret"])
            async with session.post(
                zoom["oauth_url"], params={"grant_type": "client_credentials"}, auth=auth
            ) as resp:
                token.append((await resp.json())["access_token"])
        return token[0]

    async def reply(payload: dict[str, Any]) -> None:
        body = {
            "robot_jid": zoom["bot_jid"],
            "to_jid": payload["toJid"],
            "account_id": payload["accountId"],
            "content": {"head": {"text": "pong"}},
        }
        headers = {"Authorization": f"Bearer {await bearer()}"}
        if store is None:
            async with session.post(messages, json=body, headers=headers) as resp:
                await resp.read()
            return
        text = json.dumps(body)
        with store:
            store.execute("UPDATE inbox SET done = 1 WHERE id = ?", (payload["_id"],))
            row = store.execute("INSERT INTO outbox (body) VALUES (?)", (text,)).lastrowid
        async with session.post(messages, data=text, headers=headers) as resp:
            await resp.read()
        store.execute("DELETE FROM outbox WHERE id = ?", (row,))

    store: sqlite3.Connection | None = None
    unsynced: list[asyncio.Future[None]] = []
    syncing = False
    if durable:
        store = sqlite3.connect(options["db"], isolation_level=None)
        store.execute("PRAGMA journal_mode=WAL")
        store.execute("PRAGMA synchronous=NORMAL")
        store.execute("CREATE TABLE inbox (id INTEGER PRIMARY KEY, body BLOB, done INTEGER)")
        store.execute("CREATE TABLE outbox (id INTEGER PRIMARY KEY, body TEXT)")
        wal = os.open(options["db"] + "-wal", os.O_RDONLY)

    async def fsynced() -> None:
        future = asyncio.get_running_loop().create_future()
        unsynced.append(future)
        if not syncing:
            sync()
        await future

    def sync() -> None:
        nonlocal syncing
        batch = unsynced[:]
        unsynced.clear()
        syncing = True
        done = asyncio.get_running_loop().run_in_executor(None, os.fsync, wal)
        done.add_done_callback(lambda _: synced(batch))

    def synced(batch: list[asyncio.Future[None]]) -> None:
        nonlocal syncing
        syncing = False
        for future in batch:
            future.set_result(None)
        if unsynced:
            sync()

    async def webhook(request: web.Request) -> web.Response:
        body = await request.read()
        timestamp = request.headers.get("x-zm-request-timestamp", "")
        expected = (
            "v0="
            + hmac.new(
                secret, b"v0:" + timestamp.encode() + b":" + body, hashlib.sha256
            ).hexdigest()
        )
        if not hmac.compare_digest(expected, request.headers.get("x-zm-signature", "")):
            return web.json_response({"status": "bad_signature"}, status=401)
        payload = json.loads(body)["payload"]
        if store is not None:
            payload["_id"] = store.execute("INSERT INTO inbox (body) VALUES (?)", (body,)).lastrowid
            await fsynced()
        task = asyncio.create_task(reply(payload))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        return web.json_response({"status": "accepted"})

    app = web.Application()
    app.router.add_post("/zoom/webhook", webhook)
    await serve(app, session.close)


async def bolt(options: dict[str, Any]) -> None:
    """Slack's Bolt for Python: ``AsyncApp`` on aiohttp, ``ack()`` then ``say()``."""
    from slack_bolt.async_app import AsyncApp, AsyncSay
    from slack_sdk.web.async_client import AsyncWebClient

    session = aiohttp.ClientSession()
    client = AsyncWebClient(token=options["token"], base_url=options["api"], session=session)
    app = AsyncApp(signing_secret=options["secret"], client=client)

    async def ops(ack: Callable[[], Awaitable[None]], say: AsyncSay) -> None:
        await ack()
        await say("pong")

    # Registered by a call, not as a decorator: without the bench extra the type checker
    # knows nothing of Bolt, and an unknown decorator would leave `ops` untyped.
    app.command("/ops")(ops)

    await serve(app.web_app(path="/slack/events"), session.close)


async def serve(app: web.Application, cleanup: Callable[[], Awaitable[None]]) -> None:
    """Serve on a free loopback port until SIGTERM; print the port."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    gc.freeze()  # as `chatopsbot run` does after startup: the same for every peer
    print(f"listening on {runner.addresses[0][1]}", flush=True)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        with contextlib.suppress(Exception):
            await cleanup()


async def durable(options: dict[str, Any]) -> None:
    """The bare floor, recording what it must not lose: see :func:`bare`."""
    await bare(options, durable=True)


PEERS = {"bare": bare, "durable": durable, "bolt": bolt}

if __name__ == "__main__":
    asyncio.run(PEERS[sys.argv[1]](json.loads(sys.argv[2])))
