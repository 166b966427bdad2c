"""One open page's feed: its events queued and written in order, never holding the sender up."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import aiohttp
from aiohttp import web

__all__ = ["PAGE_QUEUE", "PageFeed"]

#: Events queued for one page before it counts as too slow and is made to reconnect.
PAGE_QUEUE = 10_000


class PageFeed:
    """One open page: the events queued for it, written in order by its own task."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.queue: asyncio.Queue[Mapping[str, Any]] = asyncio.Queue(maxsize=PAGE_QUEUE)
        self.behind = False

    def offer(self, event: Mapping[str, Any]) -> None:
        """Queue ``event``; a page too far behind misses it and is made to start again."""
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.behind = True

    async def write(self) -> None:
        """Send queued events until the socket closes. A page that fell behind is closed once
        its queue is sent: it reconnects and starts from a fresh snapshot."""
        while not self.ws.closed:
            event = await self.queue.get()
            try:
                await self.ws.send_json(event)
            except (ConnectionError, RuntimeError):
                return
            if self.behind and self.queue.empty():
                await self.ws.close(code=aiohttp.WSCloseCode.TRY_AGAIN_LATER, message=b"behind")
                return
