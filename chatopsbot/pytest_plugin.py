"""The pytest plugin chatopsbot installs (entry point ``pytest11``): the ``chatopsbot_bot`` fixture.

Kept apart from :mod:`chatopsbot.testing` so the test kit (and ``chatopsbot shell``, built on
it) does not need pytest at run time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest

from chatopsbot.testing import BotHarness

__all__ = ["chatopsbot_bot"]


@pytest.fixture
async def chatopsbot_bot() -> AsyncIterator[Any]:
    """``bot = await chatopsbot_bot(plugins={...}, config={...})``: started, closed after.

    A plugin given by the name of an installed one replaces it (see :class:`BotHarness`).
    """
    started: list[BotHarness] = []

    async def start(
        plugins: Mapping[str, object] | None = None,
        *,
        config: Mapping[str, Mapping[str, Any]] | None = None,
        installed: bool = True,
    ) -> BotHarness:
        harness = BotHarness(plugins, config=config, installed=installed)
        await harness.start()
        started.append(harness)
        return harness

    yield start
    for harness in started:
        await harness.close()
