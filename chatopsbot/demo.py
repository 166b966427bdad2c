"""``chatopsbot demo``: the real bot against a fake Zoom on loopback, with a readable transcript.

Nothing is mocked inside the bot: each command goes out as a signed webhook over HTTP, through
verification, dispatch, the plugin's handler, the outbound layer and the token exchange, and
the transcript shows what the fake Zoom API received.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
import tempfile
from collections.abc import Sequence
from typing import TextIO

import aiohttp
from aiohttp import web

from chatopsbot.app import RUNTIME, create_app
from chatopsbot.config import parse_settings
from chatopsbot.zoom.fake import FakeZoom, Message
from chatopsbot.zoom.payloads import bot_notification, signed

TOUR = ("ping", "help", "help ping", "pnig", "ping “extra words”")
CHANNEL = "ops@conference.xmpp.zoom.us"


async def run_demo(commands: Sequence[str], out: TextIO | None = None) -> int:
    """Send ``commands`` (or a short tour) as Alice in #ops and print what the bot answered."""
    stream = out or sys.stdout
    secret = secrets.token_hex(16)
    with tempfile.TemporaryDirectory(prefix="chatopsbot-demo-") as workdir:
        return await _demo(commands, stream, secret, workdir)


async def _demo(commands: Sequence[str], stream: TextIO, secret: str, workdir: str) -> int:
    async with FakeZoom(rate_limit=20) as zoom:
        settings = parse_settings(
            {
                "zoom": zoom.zoom_table(secret),
                "server": {"host": "127.0.0.1", "port": 0},
                "storage": {"path": os.path.join(workdir, "demo.db")},
            },
            source="<demo>",
            environ={},
        )
        app = create_app(settings)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        url = f"http://{host}:{port}{settings.server.webhook_path}"
        print(f"chatopsbot demo: bot at {url}, fake Zoom at {zoom.url}\n", file=stream)
        unanswered = 0
        try:
            async with aiohttp.ClientSession() as client:
                for text in commands or TOUR:
                    seen = len(zoom.requests)
                    print(f"Alice in #ops> /opsbot {text}", file=stream)
                    body, headers = signed(secret, bot_notification(text, to_jid=CHANNEL))
                    async with client.post(url, data=body, headers=headers) as resp:
                        if resp.status != 200:
                            print(f"  (webhook answered {resp.status})", file=stream)
                    await _settle(app)
                    replies = [r.message_id for r in zoom.requests[seen:] if r.message_id]
                    for message_id in replies:
                        _show(zoom.messages[message_id], stream)
                    unanswered += not replies
                    print(file=stream)
        finally:
            await runner.cleanup()
        print(
            f"{len(zoom.sent())} message(s) accepted by the fake Zoom, "
            f"{zoom.rate_limited} rate-limited, {zoom.token_requests} token request(s), "
            f"{unanswered} command(s) without an answer.",
            file=stream,
        )
        return 1 if unanswered else 0


async def _settle(app: web.Application) -> None:
    """Wait until the handlers have run and the outbox is empty."""
    runtime = app[RUNTIME]
    for _ in range(500):
        if not runtime.busy:
            return
        await asyncio.sleep(0.01)


def _show(message: Message, stream: TextIO) -> None:
    who = f"bot (only {message.visible_to_user} sees this)" if message.visible_to_user else "bot"
    lines = message.text.splitlines() or [""]
    print(f"  {who}> {lines[0]}", file=stream)
    for line in lines[1:]:
        print(f"  {' ' * len(who)}  {line}".rstrip(), file=stream)
