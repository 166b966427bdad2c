"""Fixtures for end-to-end tests, built on the plugin authors' kit (``chatopsbot.testing``)."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest

from chatopsbot.clock import ManualClock
from chatopsbot.storage import Backend, open_backend
from chatopsbot.testing import SECRET, BotHarness
from chatopsbot.zoom.fake import FakeZoom

__all__ = ["CHANNEL", "POSTGRES_URL", "SECRET"]

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


#: The PostgreSQL server tests use; CI sets CHATOPSBOT_REQUIRE_POSTGRES=1 so they never skip.
POSTGRES_URL = os.environ.get(
    "CHATOPSBOT_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test"
)


async def _postgres_reachable() -> str | None:
    """``None`` if the test server answers, else why not."""
    import asyncpg

    try:
        conn = await asyncpg.connect(POSTGRES_URL, timeout=3)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        return f"{type(exc).__name__}: {exc}"
    await conn.close()
    return None


async def _fresh_schema() -> str:
    """A new schema name on the test server; skips (or fails where required) without one."""
    problem = await _postgres_reachable()
    if problem is not None:
        if os.environ.get("CHATOPSBOT_REQUIRE_POSTGRES"):
            pytest.fail(f"PostgreSQL at {POSTGRES_URL} is required here: {problem}")
        pytest.skip(f"no PostgreSQL at {POSTGRES_URL} ({problem})")
    return f"t_{secrets.token_hex(6)}"


async def _drop_schema(schema: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(POSTGRES_URL)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


@pytest.fixture
async def postgres_schema() -> AsyncIterator[str]:
    """A fresh, empty schema on the test server, dropped afterwards."""
    schema = await _fresh_schema()
    yield schema
    await _drop_schema(schema)


@pytest.fixture(params=["sqlite", "postgres"])
async def any_backend(request: pytest.FixtureRequest, tmp_path: Any) -> AsyncIterator[Backend]:
    """The same test on each backend: a SQLite file, and a schema of its own on PostgreSQL."""
    if request.param == "sqlite":
        backend = await open_backend(str(tmp_path / "bot.db"))
        yield backend
        await backend.close()
        return
    from chatopsbot.storage.postgres import PostgresBackend

    schema = await _fresh_schema()
    try:
        backend = await PostgresBackend.open(POSTGRES_URL, schema=schema)
        yield backend
        await backend.close()
    finally:
        await _drop_schema(schema)
