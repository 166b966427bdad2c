"""SQLite's group commit: writes that arrive together share a transaction, a deferred write
waits a moment for company, close writes everything handed over, and a broken transaction
fails its writes instead of leaving them waiting."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from chatopsbot.storage import Added, NewMessage, StorageError, open_backend
from chatopsbot.storage.sqlite import _DEFER, SqliteBackend


@pytest.fixture
async def sqlite(tmp_path) -> AsyncIterator[SqliteBackend]:
    backend = await open_backend(str(tmp_path / "bot.db"))
    assert isinstance(backend, SqliteBackend)
    yield backend
    await backend.close()


def count_commits(backend: SqliteBackend, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The size of each transaction the writer thread runs from now on."""
    sizes: list[int] = []
    commit = backend._commit

    def counting(batch: list[Any]) -> list[tuple[bool, Any]]:
        sizes.append(len(batch))
        return commit(batch)

    monkeypatch.setattr(backend, "_commit", counting)
    return sizes


def add_reply(backend: SqliteBackend) -> asyncio.Future[Added]:
    """A reply's write as the outbox makes it: deferred, to share the next commit."""
    return asyncio.ensure_future(
        backend.outbox_add([NewMessage("c1", "a1", "{}")], 1.0, defer=True)
    )


async def test_a_deferred_write_shares_the_next_commit(sqlite, monkeypatch):
    sizes = count_commits(sqlite, monkeypatch)
    deferred = add_reply(sqlite)
    await asyncio.sleep(0)
    assert sizes == []  # waiting for company
    assert await sqlite.inbox_accept("k1", b"{}", 2.0)
    assert len((await deferred).ids) == 1
    assert sizes == [2]
    assert await sqlite.outbox_stats() == (1, 1.0)


async def test_a_deferred_write_alone_is_committed_after_the_short_wait(sqlite, monkeypatch):
    sizes = count_commits(sqlite, monkeypatch)
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert len((await add_reply(sqlite)).ids) == 1
    assert loop.time() - started >= _DEFER * 0.9
    assert sizes == [1]
    assert await sqlite.outbox_stats() == (1, 1.0)


async def test_writes_arriving_during_a_commit_go_together_in_the_next(sqlite, monkeypatch):
    sizes = count_commits(sqlite, monkeypatch)
    await asyncio.gather(*(sqlite.inbox_accept(f"k{n}", b"{}", 1.0) for n in range(30)))
    # The first starts a transaction at once; the other 29 arrive meanwhile and share one.
    assert sizes == [1, 29]


async def test_close_writes_a_deferred_write_before_closing(tmp_path):
    path = str(tmp_path / "bot.db")
    backend = await open_backend(path)
    assert isinstance(backend, SqliteBackend)
    deferred = add_reply(backend)
    await asyncio.sleep(0)
    await backend.close()
    assert deferred.done()
    assert deferred.exception() is None
    reopened = await open_backend(path)
    try:
        assert await reopened.outbox_stats() == (1, 1.0)
    finally:
        await reopened.close()


async def test_a_transaction_that_breaks_fails_its_writes_and_the_next_one_works(
    sqlite: SqliteBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    commit = sqlite._commit
    calls = 0

    def breaking(batch: list[Any]) -> list[tuple[bool, Any]]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("a bug in the writer")
        return commit(batch)

    monkeypatch.setattr(sqlite, "_commit", breaking)
    async with asyncio.timeout(5):
        with pytest.raises(RuntimeError, match="a bug in the writer"):
            await sqlite.put("ns", "k", "v", None)
        await sqlite.put("ns", "k", "w", None)
    assert await sqlite.get("ns", "k", 0.0) == "w"


async def test_a_closed_backend_refuses_writes(tmp_path):
    backend = await open_backend(str(tmp_path / "bot.db"))
    await backend.close()
    with pytest.raises(StorageError, match="closed"):
        await backend.put("ns", "k", "v", None)


async def test_close_writes_a_deferred_write_handed_over_by_a_caller_it_woke(tmp_path):
    # The last commit wakes a caller that hands over a deferred write before close resumes:
    # it is written too, not left to a timer on a stopped thread with its caller waiting.
    backend = await open_backend(str(tmp_path / "bot.db"))
    assert isinstance(backend, SqliteBackend)

    async def put_then_add() -> Added:
        await backend.put("ns", "k", "v", None)
        return await backend.outbox_add([NewMessage("c1", "a1", "{}")], 1.0, defer=True)

    caller = asyncio.ensure_future(put_then_add())
    await asyncio.sleep(0)
    await backend.close()
    async with asyncio.timeout(2):
        assert len((await caller).ids) == 1
