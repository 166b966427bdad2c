"""SQLite's writes: committed on the loop, made durable by one fsync of the WAL on the storage
thread for all the commits before it; a deferred write is answered once committed; a file
another process writes to is waited for off the loop; a failed fsync fails the storage."""

from __future__ import annotations

import asyncio
import errno
import os
import sqlite3
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from chatopsbot.storage import Added, NewMessage, StorageError, open_backend
from chatopsbot.storage import sqlite as sqlite_module
from chatopsbot.storage.sqlite import SqliteBackend


@pytest.fixture
async def sqlite(tmp_path) -> AsyncIterator[SqliteBackend]:
    backend = await open_backend(str(tmp_path / "bot.db"))
    assert isinstance(backend, SqliteBackend)
    yield backend
    await backend.close()


class Fsyncs:
    """``os.fsync`` recorded, and held until released while ``hold`` is set."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        self.started = threading.Event()
        self.release = threading.Event()
        self.release.set()
        self.fail: OSError | None = None
        self._fsync = os.fsync

    def __call__(self, fd: int) -> None:
        self.started.set()
        self.release.wait(5)
        if self.fail is not None:
            raise self.fail
        self._fsync(fd)
        self.paths.append(os.readlink(f"/proc/self/fd/{fd}"))

    def hold(self) -> None:
        self.started.clear()
        self.release.clear()

    async def held(self) -> None:
        assert await asyncio.to_thread(self.started.wait, 5)


@pytest.fixture
def fsyncs(monkeypatch) -> Iterator[Fsyncs]:
    recorder = Fsyncs()
    monkeypatch.setattr(os, "fsync", recorder)
    yield recorder
    recorder.release.set()


def count_commits(backend: SqliteBackend, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The size of each transaction the storage thread commits from now on."""
    sizes: list[int] = []
    commit = backend._commit

    def counting(batch: list[Any]) -> list[tuple[bool, Any]]:
        sizes.append(len(batch))
        return commit(batch)

    monkeypatch.setattr(backend, "_commit", counting)
    return sizes


def add_reply(backend: SqliteBackend) -> asyncio.Future[Added]:
    """A reply's write as the outbox makes it: deferred."""
    return asyncio.ensure_future(
        backend.outbox_add([NewMessage("c1", "a1", "{}")], 1.0, defer=True)
    )


async def test_a_write_is_answered_only_after_the_wal_is_fsynced(sqlite, fsyncs):
    # Commits run with synchronous=NORMAL: the fsync that makes them durable is the backend's.
    fsyncs.hold()
    accept = asyncio.ensure_future(sqlite.inbox_accept("k1", b"{}", 1.0))
    await fsyncs.held()
    await asyncio.sleep(0.05)
    assert not accept.done()  # committed, not yet durable: the 200 must wait
    # Meanwhile the loop is free; a write committed now waits for the next fsync.
    second = asyncio.ensure_future(sqlite.inbox_accept("k2", b"{}", 1.0))
    await asyncio.sleep(0.01)
    assert not second.done()
    fsyncs.release.set()
    async with asyncio.timeout(5):
        assert await accept
        assert await second
    assert fsyncs.paths == [sqlite.path + "-wal"] * 2


async def test_writes_of_one_loop_turn_share_a_commit_and_an_fsync(sqlite, fsyncs, monkeypatch):
    sizes = count_commits(sqlite, monkeypatch)
    accepts = [sqlite.inbox_accept(f"k{n}", b"{}", 1.0) for n in range(30)]
    assert all(await asyncio.gather(*accepts))
    assert sizes == [30]
    assert len(fsyncs.paths) == 1


async def test_writes_committed_during_an_fsync_share_the_next(sqlite, fsyncs, monkeypatch):
    fsyncs.hold()
    first = asyncio.ensure_future(sqlite.inbox_accept("k0", b"{}", 1.0))
    await fsyncs.held()
    sizes = count_commits(sqlite, monkeypatch)
    more = asyncio.gather(*(sqlite.inbox_accept(f"k{n}", b"{}", 1.0) for n in range(1, 30)))
    await asyncio.sleep(0.01)
    assert sizes == [29]  # committed while the first fsync runs, not answered yet
    assert not more.done()
    fsyncs.release.set()
    assert await first
    assert all(await more)
    assert len(fsyncs.paths) == 2


async def test_a_deferred_write_is_answered_once_committed(sqlite, fsyncs):
    fsyncs.hold()
    accept = asyncio.ensure_future(sqlite.inbox_accept("k1", b"{}", 1.0))
    await fsyncs.held()
    async with asyncio.timeout(1):
        assert len((await add_reply(sqlite)).ids) == 1
    assert await sqlite.outbox_stats() == (1, 1.0)  # committed: readers see it
    assert not accept.done()
    fsyncs.release.set()
    assert await accept
    assert len(fsyncs.paths) == 1  # the reply's write asked for no fsync of its own


async def test_close_waits_for_the_fsync_and_keeps_a_deferred_write(tmp_path, fsyncs):
    path = str(tmp_path / "bot.db")
    backend = await open_backend(path)
    assert isinstance(backend, SqliteBackend)
    fsyncs.hold()
    accept = asyncio.ensure_future(backend.inbox_accept("k1", b"{}", 1.0))
    await fsyncs.held()
    deferred = add_reply(backend)
    closing = asyncio.ensure_future(backend.close())
    await asyncio.sleep(0.05)
    assert not closing.done()
    fsyncs.release.set()
    await closing
    assert await accept
    assert len((await deferred).ids) == 1
    reopened = await open_backend(path)
    try:
        assert await reopened.outbox_stats() == (1, 1.0)
        assert await reopened.inbox_pending() == [("k1", b"{}")]
    finally:
        await reopened.close()


async def test_close_keeps_a_write_made_by_a_caller_the_last_fsync_woke(tmp_path):
    # The last fsync wakes a caller that writes again before close resumes: that write is
    # made durable too, not left to a stopped thread with its caller waiting.
    backend = await open_backend(str(tmp_path / "bot.db"))
    assert isinstance(backend, SqliteBackend)

    async def put_then_put() -> str | None:
        await backend.put("ns", "k", "v", None)
        await backend.put("ns", "k", "w", None)
        return "done"

    caller = asyncio.ensure_future(put_then_put())
    await asyncio.sleep(0)
    await backend.close()
    async with asyncio.timeout(2):
        assert await caller == "done"


async def test_a_write_that_breaks_fails_alone_and_the_next_one_works(
    sqlite: SqliteBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    alone = sqlite._alone
    calls = 0

    def breaking(*args: Any) -> tuple[bool, Any]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("a bug in the writer")
        return alone(*args)

    monkeypatch.setattr(sqlite, "_alone", breaking)
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


async def test_a_failed_fsync_fails_its_writes_and_every_write_after(sqlite, fsyncs):
    fsyncs.fail = OSError(errno.EIO, "Input/output error")
    with pytest.raises(StorageError, match=r"cannot make writes durable: .*Input/output error"):
        await sqlite.inbox_accept("k1", b"{}", 1.0)
    fsyncs.fail = None
    # Linux may report the lost pages once only: a later fsync proves nothing.
    with pytest.raises(StorageError, match="cannot make writes durable"):
        await sqlite.put("ns", "k", "v", None)


async def test_a_file_another_process_writes_to_is_waited_for_off_the_loop(sqlite, monkeypatch):
    # The CLI (chatopsbot outbox retry, say) holds the write lock for a moment.
    holder = sqlite3.connect(sqlite.path, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        holder.execute("INSERT INTO kv (namespace, key, value) VALUES ('ns', 'cli', 'x')")
        sizes = count_commits(sqlite, monkeypatch)
        put = asyncio.ensure_future(sqlite.put("ns", "k", "v", None))
        loop = asyncio.get_running_loop()
        started = loop.time()
        for _ in range(20):
            await asyncio.sleep(0.01)
        # The loop kept running: waiting on it would have held it for the 5-s busy timeout.
        assert loop.time() - started < 2.5
        assert not put.done()
        later = asyncio.ensure_future(sqlite.inbox_accept("k1", b"{}", 1.0))
        await asyncio.sleep(0.01)
        assert not later.done()  # in order: behind the write that waits
        holder.execute("COMMIT")
        async with asyncio.timeout(5):
            await put
            assert await later
        # Tried on the loop, then both on the thread one after the other.
        assert sizes == [1, 1, 1]
        await sqlite.put("ns", "k", "w", None)
        assert sizes == [1, 1, 1, 1]  # on the loop again
        assert await sqlite.get_many("ns", ["k", "cli"], 0.0) == {"k": "w", "cli": "x"}
    finally:
        holder.close()


async def test_a_lock_held_too_long_fails_the_write_and_the_next_one_works(sqlite, monkeypatch):
    monkeypatch.setattr(sqlite_module, "_BUSY_SECONDS", 0.2)
    holder = sqlite3.connect(sqlite.path, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        with pytest.raises(StorageError, match="locked"):
            await asyncio.wait_for(sqlite.put("ns", "k", "v", None), 5)
    finally:
        holder.close()
    await sqlite.put("ns", "k", "w", None)
    assert await sqlite.get("ns", "k", 0.0) == "w"


async def test_bulk_writes_run_on_the_thread_and_keep_their_order(
    sqlite: SqliteBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A purge may delete a day of rows: not on the loop. What follows waits behind it.
    threads: list[str] = []
    commit = sqlite._commit

    def recording(batch: list[Any]) -> list[tuple[bool, Any]]:
        threads.append(threading.current_thread().name)
        return commit(batch)

    monkeypatch.setattr(sqlite, "_commit", recording)
    await sqlite.put("ns", "old", "v", 5.0)
    threads.clear()
    before = asyncio.ensure_future(sqlite.put("ns", "k", "1", None))
    purge = asyncio.ensure_future(sqlite.purge(10.0))
    after = asyncio.ensure_future(sqlite.put("ns", "k", "2", None))
    assert await purge == 1
    await asyncio.gather(before, after)
    assert threads == ["MainThread", "chatopsbot-storage", "chatopsbot-storage"]
    assert await sqlite.get("ns", "k", 0.0) == "2"
    await sqlite.put("ns", "k", "3", None)
    assert threads[-1] == "MainThread"


async def test_a_failed_fsync_on_the_thread_fails_the_storage_too(sqlite, fsyncs):
    fsyncs.fail = OSError(errno.EIO, "Input/output error")
    with pytest.raises(StorageError, match="cannot make writes durable"):
        await sqlite.purge(10.0)  # a bulk write: committed and fsynced on the thread
    fsyncs.fail = None
    with pytest.raises(StorageError, match="cannot make writes durable"):
        await sqlite.put("ns", "k", "v", None)


async def test_a_deferred_write_alone_is_fsynced_within_a_second_or_so(sqlite, fsyncs):
    assert len((await add_reply(sqlite)).ids) == 1
    assert fsyncs.paths == []
    async with asyncio.timeout(3 * sqlite_module._CHECKPOINT_SECONDS + 1):
        while not fsyncs.paths:  # noqa: ASYNC110 - the storage thread records it
            await asyncio.sleep(0.05)
    assert fsyncs.paths == [sqlite.path + "-wal"]  # tmp_path has no symlink in it


async def test_a_refusal_waits_for_the_fsync_it_may_rest_on(sqlite, fsyncs):
    # A closes a poll; B's vote, refused because it is closed, must not be answered before
    # the close is durable.
    fsyncs.hold()
    close = asyncio.ensure_future(sqlite.put("ns", "poll", "closed", None))
    await fsyncs.held()

    def vote(current: str | None) -> str:
        raise ValueError(f"refused: the poll is {current}")

    refused = asyncio.ensure_future(sqlite.update("ns", "poll", vote, 0.0, None))
    await asyncio.sleep(0.05)
    assert not refused.done()
    fsyncs.release.set()
    await close
    with pytest.raises(ValueError, match="the poll is closed"):
        await refused


async def test_a_database_reached_through_a_symlink_fsyncs_the_wal_sqlite_writes(tmp_path, fsyncs):
    (tmp_path / "data").mkdir()
    link = tmp_path / "bot.db"
    link.symlink_to(tmp_path / "data" / "bot.db")
    backend = await open_backend(str(link))
    try:
        assert await backend.inbox_accept("k1", b"{}", 1.0)
    finally:
        await backend.close()
    assert fsyncs.paths == [str(tmp_path / "data" / "bot.db-wal")]
