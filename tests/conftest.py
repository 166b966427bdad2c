"""Fixtures for end-to-end tests, built on the plugin authors' kit (``chatopsbot.testing``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest

from chatopsbot.clock import ManualClock
from chatopsbot.testing import SECRET, BotHarness
from chatopsbot.zoom.fake import FakeZoom

__all__ = ["CHANNEL", "SECRET"]

CHANNEL = "ops@conference.xmpp.zoom.us"


@pytest.fixture
async def zoom() -> AsyncIterator[FakeZoom]:
    async with FakeZoom() as fake:
        yield fake


@pytest.fixture
async def start_bot(zoom: FakeZoom) -> AsyncIterator[Any]:
    """``await start_bot(extra={...}, clock=..., **sections)``: bots sharing one fake Zoom."""
    started: list[BotHarness] = []

    async def start(
        extra: Mapping[str, object] | None = None,
        clock: ManualClock | None = None,
        **sections: Mapping[str, Any],
    ) -> BotHarness:
        bot = BotHarness(extra, config=sections, clock=clock, zoom=zoom)
        await bot.start()
        started.append(bot)
        return bot

    yield start
    for bot in started:
        await bot.close()
