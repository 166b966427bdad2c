"""The embedded backend: SQLite in WAL mode; writes on the event loop, their fsync on a thread,
reads on another thread.

Every write is a small function run in a transaction on the loop's thread. The writes handed
over in one turn of the loop share a transaction, each under a savepoint of its own (one
failing does not undo the others). Without an fsync a commit takes microseconds, less than
handing it to a thread and hearing back: that cost the loop a wake-up per commit, and the
thread took the interpreter lock back after every SQLite call.

The connection commits with ``synchronous=NORMAL``, which in WAL mode leaves the WAL file
unsynced (but for its header, synced on the loop by the first commit after a checkpoint
emptied it, about once a second); the storage thread fsyncs it, once for all the commits made
before the fsync began (a group commit), and a write is answered only then, a refused one
too: durable against power loss as well as a crash of the process, as with
``synchronous=FULL``. A webhook's record is answered that way, before its 200. Readers see a
commit a moment before its fsync; only a power loss in that moment tells the difference.

Two writes are answered once committed, without waiting for an fsync: a command's replies with
the settlement of its event (``defer``), and the record of a sent message. A crash of the
process cannot lose them (the WAL is in the kernel's hands). A power loss before the next fsync
(the next durable write's, or one made for them within a second) can: the event is then
handled again, or the message sent again, a repeat but never a loss. The WAL keeps commits
in order, so a power loss takes only the newest commits, never one before a durable one.

A write that may touch any number of rows (a purge, an import) runs on the thread instead, and
so does every write while another process (the CLI) holds the write lock: the loop never waits
for it; the thread does, up to :data:`_BUSY_SECONDS`. Writes handed over meanwhile wait behind,
in order. A failed fsync or an I/O error fails the storage: every write after it is refused.

Reads run on a second connection and thread (WAL lets readers and the writer work at once), so
a slow read (counting a large backlog) never holds up the loop. Checkpoints (copying the WAL
back into the database) run there too, not inside a commit.

Why not aiosqlite: it sends every statement to its thread and back, the very cost this module
avoids, and offers no way to run a whole transaction as one function.
"""

from __future__ import annotations

import asyncio
import functools
import os
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeAlias, TypeVar

from chatopsbot.audit import AuditEntry, AuditQuery
from chatopsbot.storage import (
    AUDIT_COLUMNS,
    OUTBOX_COLUMNS,
    Added,
    Export,
    NewMessage,
    QueuedMessage,
    StorageError,
    Write,
    audit_from_row,
    audit_row,
    audit_where,
    checked_writes,
    message_from_row,
)
from chatopsbot.storage.worker import Outcome, Worker, resolve

T = TypeVar("T")

#: Bumped when the schema changes; ``PRAGMA user_version`` records what a file has.
SCHEMA_VERSION = 3

_MIGRATIONS: tuple[str, ...] = (
    # 0 -> 1: the durable pipeline (the kv table came first, unversioned).
    """
    CREATE TABLE IF NOT EXISTS kv (
        namespace TEXT NOT NULL,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        expires_at REAL,
        PRIMARY KEY (namespace, key)
    ) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS inbox (
        seq INTEGER PRIMARY KEY,
        key TEXT NOT NULL UNIQUE,
        body BLOB,
        received_at REAL NOT NULL,
        expires_at REAL
    );
    CREATE INDEX IF NOT EXISTS inbox_pending ON inbox (seq) WHERE expires_at IS NULL;
    CREATE INDEX IF NOT EXISTS inbox_expiry ON inbox (expires_at) WHERE expires_at IS NOT NULL;
    CREATE TABLE IF NOT EXISTS outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        lane TEXT NOT NULL,
        account TEXT NOT NULL,
        payload TEXT NOT NULL,
        meta TEXT NOT NULL,
        created_at REAL NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        state TEXT NOT NULL DEFAULT 'queued',
        reason TEXT NOT NULL DEFAULT '',
        error TEXT NOT NULL DEFAULT '',
        failed_at REAL,
        waited INTEGER NOT NULL DEFAULT 0,
        result TEXT,
        sent_at REAL
    );
    CREATE INDEX IF NOT EXISTS outbox_lane ON outbox (state, lane, account, id);
    CREATE INDEX IF NOT EXISTS outbox_queued ON outbox (created_at) WHERE state = 'queued';
    """,
    # 1 -> 2: the audit log. actor_fold is actor_name case-folded by Python, so a name
    # matches alike here and on PostgreSQL.
    """
    CREATE TABLE IF NOT EXISTS audit (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at REAL NOT NULL,
        kind TEXT NOT NULL,
        actor_id TEXT NOT NULL,
        actor_name TEXT NOT NULL,
        actor_jid TEXT NOT NULL,
        account_id TEXT NOT NULL,
        conversation TEXT NOT NULL,
        conversation_name TEXT NOT NULL,
        what TEXT NOT NULL,
        detail TEXT NOT NULL,
        result TEXT NOT NULL,
        ref TEXT NOT NULL,
        actor_fold TEXT NOT NULL
    );
    -- Written on every command, read rarely (the CLI, an admin in chat): two indexes, not
    -- five. A query by person reads the time range and filters it.
    CREATE INDEX IF NOT EXISTS audit_at ON audit (at);
    CREATE INDEX IF NOT EXISTS audit_what ON audit (what, at);
    """,
    # 2 -> 3: a lane's next message found through an index in its order. The lane index has
    # the account between lane and id, so "ORDER BY id LIMIT 1" sorted every queued message
    # of the lane: with 100,000 queued in one conversation, 8 ms per send on SQLite.
    """
    CREATE INDEX IF NOT EXISTS outbox_head ON outbox (lane, id) WHERE state = 'queued';
    """,
)

_LIVE = "(expires_at IS NULL OR expires_at > ?)"
#: How long the result of a message someone waited for is kept (seconds).
_KEEP_SENT = 3600.0
#: How long a write waits for another process's write lock before it fails (seconds).
_BUSY_SECONDS = 5.0
#: How often the WAL is checkpointed into the database file.
_CHECKPOINT_SECONDS = 1.0
_COLUMNS = OUTBOX_COLUMNS
_AUDIT_INSERT = (
    f"INSERT INTO audit ({AUDIT_COLUMNS}, actor_fold) "  # noqa: S608
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_OF_LANE = "FROM outbox WHERE state = 'queued' AND lane = ? ORDER BY id LIMIT 1"
_HEAD = f"SELECT {_COLUMNS} {_OF_LANE}"
_HEAD_ID = f"SELECT id {_OF_LANE}"


def _connect(path: str) -> tuple[sqlite3.Connection, int | None]:
    """The writer connection, and a descriptor of its WAL file to fsync (``None`` in memory)."""
    # Used on the loop and, while the loop waits for it, on the storage thread.
    db = sqlite3.connect(path, timeout=_BUSY_SECONDS, isolation_level=None, check_same_thread=False)
    try:
        mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        # The storage thread fsyncs the WAL after each commit: see the module docstring.
        db.execute("PRAGMA synchronous=NORMAL")
        # The reader thread checkpoints; a commit never has to.
        db.execute("PRAGMA wal_autocheckpoint=0")
        row = db.execute("PRAGMA quick_check").fetchone()
        if row is None or row[0] != "ok":
            raise sqlite3.DatabaseError(f"integrity check failed: {row[0] if row else '?'}")
        _migrate(db)
        # Statements on the loop never wait for a lock: a busy file sends the batch to the
        # thread (see SqliteBackend._flush).
        db.execute("PRAGMA busy_timeout=0")
        # The file as SQLite names it (a symlink resolved); empty in memory. Its WAL exists
        # after the migration's commit and lives while a connection is open, as this one is.
        file = str(db.execute("PRAGMA database_list").fetchone()[2])
        if file and mode.lower() != "wal":
            raise sqlite3.DatabaseError(f"cannot use WAL mode (the journal mode is {mode})")
        wal = os.open(file + "-wal", os.O_RDONLY) if file else None
    except BaseException:
        db.close()
        raise
    return db, wal


def _migrate(db: sqlite3.Connection) -> None:
    # BEGIN IMMEDIATE: two processes opening one file at once migrate it once.
    db.execute("BEGIN IMMEDIATE")
    try:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise sqlite3.DatabaseError(
                f"schema version {version} is newer than this chatopsbot knows ({SCHEMA_VERSION})"
            )
        for script in _MIGRATIONS[version:]:
            for statement in script.split(";"):
                if statement.strip():
                    db.execute(statement)
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


class SqliteBackend:
    """SQLite on one thread; see the module docstring. Open with :meth:`open`."""

    def __init__(
        self,
        writer: Worker,
        db: sqlite3.Connection,
        path: str,
        reader: tuple[Worker, sqlite3.Connection] | None = None,
        wal: int | None = None,
    ) -> None:
        self._worker = writer
        # Used on the loop, or on the writer's thread while a batch waits there for the lock:
        # never on both at once (one batch at a time, see _waiting).
        self._db = db
        self._wal = wal
        # An in-memory database has one connection: it reads there too.
        self._reader = reader or (writer, db)
        self._path = path
        self._checkpointer: asyncio.Task[None] | None = None
        # Writes waiting behind a batch the thread commits for them (another process held the
        # lock), and that batch's end.
        self._pending: list[_Op] = []
        self._waiting: asyncio.Future[None] | None = None
        self._flushing = False
        # Whether a deferred write was committed since the last fsync began.
        self._lazy = False
        # Committed writes waiting for the next fsync; the end of the running one.
        self._unsynced: list[_Done] = []
        self._syncing: asyncio.Future[None] | None = None
        self._failed: StorageError | None = None
        self._closed = False
        self._listeners: dict[str, list[Callable[[str], None]]] = {}

    @property
    def shared(self) -> bool:
        """SQLite serves one process."""
        return False

    @classmethod
    async def open(cls, path: str) -> SqliteBackend:
        """Open (creating and migrating if needed) the database; raise :class:`StorageError`."""
        writer = Worker("chatopsbot-storage")
        try:
            db, wal = await writer.run(_connect, path)
        except (sqlite3.Error, OSError) as exc:
            await writer.stop()
            verb = "open" if isinstance(exc, OSError) or "unable to open" in str(exc) else "use"
            raise StorageError(f"{path}: cannot {verb} the storage file: {exc}") from exc
        if path == ":memory:":
            return cls(writer, db, path)
        reads = Worker("chatopsbot-storage-read")
        try:
            reader = await reads.run(_open_reader, path)
        except (sqlite3.Error, OSError) as exc:
            await reads.stop()
            await writer.run(db.close)
            if wal is not None:
                os.close(wal)
            await writer.stop()
            raise StorageError(f"{path}: cannot open the storage file: {exc}") from exc
        backend = cls(writer, db, path, (reads, reader), wal)
        backend._checkpointer = asyncio.get_running_loop().create_task(
            backend._checkpoints(), name="storage:checkpoint"
        )
        return backend

    @property
    def path(self) -> str:
        """The file (or ``:memory:``)."""
        return self._path

    async def _read(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run the read-only ``work`` on the reader connection."""
        self._check_open()
        worker, db = self._reader
        try:
            if db is self._db:
                # In memory, one connection: the loop uses it, never the thread as well.
                return work(db)
            return await worker.run(work, db)
        except sqlite3.Error as exc:
            raise StorageError(f"{self._path}: {exc}") from exc

    async def _checkpoints(self) -> None:
        """Copy the WAL back into the database now and then, off the commit path."""
        worker, db = self._reader
        while True:
            await asyncio.sleep(_CHECKPOINT_SECONDS)
            # Deferred writes no durable one followed: durable within a second all the same.
            if self._lazy and self._syncing is None and self._failed is None:
                self._sync()
            try:
                await worker.run(_checkpoint, db)
            except sqlite3.Error:
                continue  # busy now; the next round catches up

    async def _run(
        self,
        work: Callable[[sqlite3.Connection], T],
        *,
        single: bool = False,
        defer: bool = False,
        bulk: bool = False,
    ) -> T:
        """Run ``work`` in the next transaction and return what it returns, once durable.

        ``single``: ``work`` runs one statement, atomic by itself, so it needs no savepoint.
        ``defer``: answered once committed, durable with the next fsync (see the module
        docstring).
        ``bulk``: it may touch any number of rows: it runs on the thread, not the loop.
        """
        self._check_open()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        # In memory there is no lock to wait for, and the loop reads on the connection too.
        bulk = bulk and self._wal is not None
        if bulk and self._waiting is None:
            self._flush()  # what was handed over before goes first
        self._pending.append((work, future, single, defer))
        if self._waiting is None:
            if bulk:
                self._to_thread()
            elif not self._flushing:
                # Writes handed over in this turn of the loop share the transaction.
                self._flushing = True
                loop.call_soon(self._flush)
        return await future

    def _check_open(self) -> None:
        if self._failed is not None:
            raise self._failed
        if self._closed:
            raise StorageError(f"{self._path}: storage is closed")

    def _flush(self) -> None:
        """Commit what is pending, on the loop; then answer it, or have it fsynced first."""
        self._flushing = False
        if self._waiting is not None or not self._pending:
            return
        batch, self._pending = self._pending, []
        if self._failed is not None:
            _refuse(batch, self._failed)
            return
        try:
            results = self._commit(batch)
        except sqlite3.OperationalError as exc:
            if _busy(exc):
                # Another process writes: the thread waits for its lock, not the loop.
                self._pending = batch
                self._to_thread()
                return
            self._check_disk(exc)
            results = [(False, self._error(exc))] * len(batch)
        except BaseException as exc:
            # Handed to the callers, as the storage thread would: the loop goes on.
            results = [(False, exc)] * len(batch)
        durable = self._wal is not None
        for (_, future, _, defer), result in zip(batch, results, strict=True):
            if defer and result[0]:
                self._lazy = True
                resolve(future, result)
            elif durable:
                # A refusal too: it may rest on a commit not yet durable (a poll closed).
                self._unsynced.append((future, result))
            else:
                resolve(future, result)
        if self._unsynced and self._syncing is None:
            self._sync()

    def _check_disk(self, exc: sqlite3.Error) -> None:
        """Fail the storage on an I/O error: what reached the disk is unknown."""
        if _result(exc) == sqlite3.SQLITE_IOERR:
            self._fail(exc)

    def _fail(self, error: BaseException) -> None:
        if self._failed is None:
            # What reached the disk is unknown, and a later fsync may succeed without having
            # written it (Linux forgets the failed pages): refuse every write from now on.
            self._failed = StorageError(f"{self._path}: cannot make writes durable: {error}")

    def _sync(self) -> None:
        """Fsync the WAL on the thread for the commits waiting for one."""
        assert self._wal is not None  # noqa: S101 - only files are fsynced
        batch, self._unsynced = self._unsynced, []
        self._lazy = False
        self._syncing = asyncio.get_running_loop().create_future()
        try:
            self._worker.call(os.fsync, (self._wal,), functools.partial(self._fsynced, batch))
        except RuntimeError:
            self._fsynced(batch, (False, RuntimeError("the storage thread is stopped")))

    def _fsynced(self, batch: list[_Done], outcome: Outcome) -> None:
        if self._syncing is not None:
            self._syncing.set_result(None)
            self._syncing = None
        ok, error = outcome
        if not ok:
            self._fail(error)
        if self._failed is not None:
            batch, self._unsynced = [*batch, *self._unsynced], []
        for future, result in batch:
            resolve(future, result if self._failed is None else (False, self._failed))
        if self._unsynced:
            self._sync()

    def _to_thread(self) -> None:
        """Hand what is pending to the thread: it commits, waiting for another process's
        lock if need be, and fsyncs. Writes handed over meanwhile wait behind it."""
        batch, self._pending = self._pending, []
        self._waiting = asyncio.get_running_loop().create_future()
        try:
            self._worker.call(
                self._commit_on_thread, (batch,), functools.partial(self._committed, batch)
            )
        except RuntimeError:
            self._committed(batch, (False, StorageError(f"{self._path}: storage is closed")))

    def _commit_on_thread(self, batch: list[_Op]) -> list[tuple[bool, Any]]:
        """:meth:`_commit` on the thread, waiting for the write lock; then the fsync."""
        db = self._db
        db.execute(f"PRAGMA busy_timeout={int(_BUSY_SECONDS * 1000)}")
        try:
            results = self._commit(batch)
        finally:
            db.execute("PRAGMA busy_timeout=0")
        if self._wal is not None:
            try:
                os.fsync(self._wal)
            except OSError as exc:
                raise _FsyncFailed(exc) from exc
        return results

    def _committed(self, batch: list[_Op], outcome: Outcome) -> None:
        assert self._waiting is not None  # noqa: S101 - only after _to_thread
        self._waiting.set_result(None)
        self._waiting = None
        committed, results = outcome
        if not committed:
            if isinstance(results, _FsyncFailed):
                self._fail(results.__cause__ or results)
            elif isinstance(results, sqlite3.Error):
                self._check_disk(results)
        if self._failed is not None:
            # Committed or not, nothing after a failed fsync can be trusted to be on disk.
            _refuse([*batch, *self._pending], self._failed)
            self._pending = []
            return
        if not committed:
            # The whole transaction is gone: every write in it failed.
            _refuse(batch, self._error(results))
        else:
            for (_, future, _, _), result in zip(batch, results, strict=True):
                resolve(future, result)
        # What arrived meanwhile waited behind this batch: it goes the same way, in order.
        if self._pending:
            self._to_thread()

    def _commit(self, batch: list[_Op]) -> list[tuple[bool, Any]]:
        """Run the writes in one transaction, each under a savepoint of its own."""
        if len(batch) == 1:
            work, _, single, _ = batch[0]
            return [self._alone(work, single)]
        db = self._db
        results: list[tuple[bool, Any]] = []
        db.execute("BEGIN IMMEDIATE")
        try:
            for work, _, single, _ in batch:
                if not single:
                    db.execute("SAVEPOINT op")
                try:
                    value = work(db)
                except Exception as exc:
                    if not single:
                        db.execute("ROLLBACK TO op")
                        db.execute("RELEASE op")
                    results.append((False, self._error(exc)))
                else:
                    if not single:
                        db.execute("RELEASE op")
                    results.append((True, value))
            db.execute("COMMIT")
        except BaseException:
            # A failed COMMIT (busy) leaves the transaction open: close it, or every later
            # BEGIN fails.
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        return results

    def _alone(self, work: Callable[[sqlite3.Connection], Any], single: bool) -> tuple[bool, Any]:
        """One write in a transaction of its own (a single statement commits by itself).

        Raises the busy error of a file another process writes to (nothing was written).
        """
        db = self._db
        try:
            if single:
                return True, work(db)
            db.execute("BEGIN IMMEDIATE")
            try:
                value = work(db)
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
            return True, value
        except sqlite3.OperationalError as exc:
            if _busy(exc):
                raise
            return False, self._error(exc)
        except Exception as exc:
            return False, self._error(exc)

    def _error(self, exc: BaseException) -> BaseException:
        """What a caller sees of a failed write: SQLite's errors as :class:`StorageError`."""
        return StorageError(f"{self._path}: {exc}") if isinstance(exc, sqlite3.Error) else exc

    async def close(self) -> None:
        """Finish the writes in progress, then close the file."""
        if self._closed:
            return
        # A caller woken by an fsync may write again (a deferred write, say) before this
        # resumes: wait until nothing is left, then close in the same step.
        while (running := self._waiting or self._syncing) is not None or self._pending:
            if running is None:
                self._flush()
            else:
                await asyncio.wait([running])
        self._closed = True
        if self._checkpointer is not None:
            self._checkpointer.cancel()
            await asyncio.gather(self._checkpointer, return_exceptions=True)
        worker, reader = self._reader
        if reader is not self._db:
            await worker.run(_checkpoint, reader)
            await worker.run(reader.close)
            await worker.stop()
        await self._worker.run(self._db.close)
        if self._wal is not None:
            os.close(self._wal)
        await self._worker.stop()

    # Values.

    async def get(self, namespace: str, key: str, now: float) -> str | None:
        """The stored text, or ``None``."""
        sql = f"SELECT value FROM kv WHERE namespace = ? AND key = ? AND {_LIVE}"  # noqa: S608

        def work(db: sqlite3.Connection) -> str | None:
            row = db.execute(sql, (namespace, key, now)).fetchone()
            return None if row is None else str(row[0])

        return await self._read(work)

    async def put(
        self,
        namespace: str,
        key: str,
        value: str,
        expires_at: float | None,
        *,
        defer: bool = False,
    ) -> None:
        """Store ``value``."""
        write = Write(namespace, key, value, expires_at)
        await self._run(lambda db: _put(db, write), single=True, defer=defer)

    async def delete(self, namespace: str, key: str) -> bool:
        """Remove the key."""

        def work(db: sqlite3.Connection) -> bool:
            sql = "DELETE FROM kv WHERE namespace = ? AND key = ?"
            return db.execute(sql, (namespace, key)).rowcount > 0

        return await self._run(work)

    async def scan(self, namespace: str, prefix: str, now: float) -> list[tuple[str, str]]:
        """Live keys under ``prefix`` in key order."""
        # Range on the primary key instead of LIKE, so % and _ in a prefix mean themselves.
        sql = (
            "SELECT key, value FROM kv WHERE namespace = ? AND key >= ? "  # noqa: S608
            f"AND substr(key, 1, ?) = ? AND {_LIVE} ORDER BY key"
        )
        args = (namespace, prefix, len(prefix), prefix, now)
        return await self._read(
            lambda db: [(str(k), str(v)) for k, v in db.execute(sql, args).fetchall()]
        )

    async def update(
        self,
        namespace: str,
        key: str,
        change: Callable[[str | None], str | None],
        now: float,
        expires_at: float | None,
    ) -> str | None:
        """Read, change and write in one transaction."""
        sql = f"SELECT value FROM kv WHERE namespace = ? AND key = ? AND {_LIVE}"  # noqa: S608

        def work(db: sqlite3.Connection) -> str | None:
            row = db.execute(sql, (namespace, key, now)).fetchone()
            new = change(None if row is None else str(row[0]))
            if new is None:
                db.execute("DELETE FROM kv WHERE namespace = ? AND key = ?", (namespace, key))
            else:
                _put(db, Write(namespace, key, new, expires_at))
            return new

        return await self._run(work)

    async def get_many(self, namespace: str, keys: Sequence[str], now: float) -> dict[str, str]:
        """The live keys among ``keys``, in one statement (one snapshot)."""
        wanted = list(dict.fromkeys(keys))
        if not wanted:
            return {}
        return await self._read(lambda db: _select(db, namespace, wanted, now))

    async def update_many(
        self,
        namespace: str,
        keys: Sequence[str],
        change: Callable[[dict[str, str]], Mapping[str, str | None]],
        now: float,
        expires_at: float | None,
    ) -> dict[str, str]:
        """Read, change and write several keys in one transaction (the one writer's)."""
        wanted = list(dict.fromkeys(keys))

        def work(db: sqlite3.Connection) -> dict[str, str]:
            current = _select(db, namespace, wanted, now)
            writes = checked_writes(wanted, change(dict(current)))
            for key, text in writes.items():
                if text is None:
                    db.execute("DELETE FROM kv WHERE namespace = ? AND key = ?", (namespace, key))
                    current.pop(key, None)
                else:
                    _put(db, Write(namespace, key, text, expires_at))
                    current[key] = text
            return current

        return await self._run(work)

    async def purge(self, now: float) -> int:
        """Delete expired values and inbox keys past their hour."""

        def work(db: sqlite3.Connection) -> int:
            gone = db.execute(
                "DELETE FROM kv WHERE expires_at IS NOT NULL AND expires_at <= ?", (now,)
            ).rowcount
            gone += db.execute(
                "DELETE FROM inbox WHERE expires_at IS NOT NULL AND expires_at <= ?", (now,)
            ).rowcount
            gone += db.execute(
                "DELETE FROM outbox WHERE state = 'sent' AND sent_at <= ?", (now - _KEEP_SENT,)
            ).rowcount
            return int(gone)

        return await self._run(work, bulk=True)

    # Inbox.

    async def inbox_accept(self, key: str, body: bytes, now: float) -> bool:
        """Record the event unless its key is known (pending, or settled and not expired)."""

        def work(db: sqlite3.Connection) -> bool:
            # A settled key past its expiry (not purged yet) is forgotten: take the row over.
            cursor = db.execute(
                "INSERT INTO inbox (key, body, received_at) VALUES (?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET body = excluded.body, "
                "received_at = excluded.received_at, expires_at = NULL "
                "WHERE inbox.expires_at IS NOT NULL AND inbox.expires_at <= excluded.received_at",
                (key, body, now),
            )
            return cursor.rowcount > 0

        return await self._run(work, single=True)

    async def inbox_pending(self) -> list[tuple[str, bytes]]:
        """Events not settled, oldest first."""
        sql = "SELECT key, body FROM inbox WHERE expires_at IS NULL ORDER BY seq"
        return await self._read(
            lambda db: [(str(k), bytes(b)) for k, b in db.execute(sql).fetchall()]
        )

    async def inbox_settle(self, key: str, expires_at: float) -> None:
        """Mark handled; drop the body (only its key is needed from now on)."""
        await self._run(lambda db: _settle(db, key, expires_at), single=True)

    async def inbox_release(self, key: str) -> None:
        """Make a pending event the oldest there is."""
        sql = "UPDATE inbox SET received_at = 0 WHERE key = ? AND expires_at IS NULL"
        await self._run(lambda db: db.execute(sql, (key,)), single=True)

    async def inbox_reclaim(self, before: float, now: float) -> list[tuple[str, bytes]]:
        """Take over events pending since before ``before``."""

        def work(db: sqlite3.Connection) -> list[tuple[str, bytes]]:
            rows = db.execute(
                "SELECT key, body FROM inbox WHERE expires_at IS NULL AND received_at < ? "
                "ORDER BY seq",
                (before,),
            ).fetchall()
            db.executemany(
                "UPDATE inbox SET received_at = ? WHERE key = ?", [(now, k) for k, _ in rows]
            )
            return [(str(k), bytes(b)) for k, b in rows]

        return await self._run(work, bulk=True)

    # Outbox.

    async def outbox_add(
        self,
        messages: Sequence[NewMessage],
        now: float,
        *,
        settle: tuple[str, float] | None = None,
        audit: Sequence[AuditEntry] = (),
        defer: bool = False,
    ) -> Added:
        """Queue the messages, settle the inbox key and record the audit entries, atomically."""

        def work(db: sqlite3.Connection) -> Added:
            # Settled already (an earlier try committed, its answer was lost): write nothing
            # twice, audit entries included.
            if settle is not None and not _settle(db, *settle):
                return Added()
            db.executemany(_AUDIT_INSERT, [audit_row(e) for e in audit])
            ids = []
            for m in messages:
                cursor = db.execute(
                    "INSERT INTO outbox (lane, account, payload, meta, created_at, waited) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (m.lane, m.account, m.payload, m.meta, now, int(m.waited)),
                )
                assert cursor.lastrowid is not None  # noqa: S101 - an INSERT always has one
                ids.append(cursor.lastrowid)
            lanes = {m.lane for m in messages}
            heads = {db.execute(_HEAD_ID, (lane,)).fetchone()[0] for lane in lanes}
            return Added(tuple(ids), frozenset(heads.intersection(ids)))

        return await self._run(work, defer=defer)

    async def outbox_head(self, lane: str) -> QueuedMessage | None:
        """The oldest queued message of ``lane``."""

        def work(db: sqlite3.Connection) -> QueuedMessage | None:
            row = db.execute(_HEAD, (lane,)).fetchone()
            return None if row is None else message_from_row(row)

        return await self._read(work)

    async def outbox_lanes(self) -> list[tuple[str, str]]:
        """Lanes with queued messages, the one with the oldest message first."""
        sql = (
            "SELECT lane, account, MIN(id) AS first FROM outbox WHERE state = 'queued' "
            "GROUP BY lane, account ORDER BY first"
        )
        return await self._read(
            lambda db: [(str(lane), str(acct)) for lane, acct, _ in db.execute(sql).fetchall()]
        )

    async def outbox_sent(
        self,
        message_id: int,
        writes: Sequence[Write] = (),
        *,
        result: str | None = None,
        lane: str | None = None,
    ) -> QueuedMessage | None:
        """Forget the message (or keep its ``result`` for a while); store ``writes`` with it."""

        def work(db: sqlite3.Connection) -> QueuedMessage | None:
            if result is None:
                db.execute("DELETE FROM outbox WHERE id = ?", (message_id,))
            else:
                db.execute(
                    "UPDATE outbox SET state = 'sent', result = ?, sent_at = ? WHERE id = ?",
                    (result, time.time(), message_id),
                )
            for write in writes:
                _put(db, write)
            if lane is None:
                return None
            row = db.execute(_HEAD, (lane,)).fetchone()
            return None if row is None else message_from_row(row)

        # Lost to a power loss, it would make the message go again: a repeat, never a loss.
        return await self._run(work, defer=True)

    async def outbox_result(self, message_id: int) -> tuple[str, str] | None:
        """The outcome of a finished message that was waited for."""

        def work(db: sqlite3.Connection) -> tuple[str, str] | None:
            row = db.execute(
                "SELECT state, result, error FROM outbox WHERE id = ? AND state != 'queued'",
                (message_id,),
            ).fetchone()
            if row is None:
                return None
            return ("sent", str(row[1])) if row[0] == "sent" else ("dead", str(row[2]))

        return await self._read(work)

    async def outbox_attempted(self, message_id: int, error: str) -> None:
        """Count a failed attempt."""
        sql = "UPDATE outbox SET attempts = attempts + 1, error = ? WHERE id = ?"
        await self._run(lambda db: db.execute(sql, (error, message_id)), single=True)

    async def outbox_dead(
        self, message_id: int, reason: str, error: str, now: float, *, attempted: bool = True
    ) -> None:
        """Move the message to the dead letters."""
        sql = (
            "UPDATE outbox SET state = 'dead', attempts = attempts + ?, reason = ?, error = ?, "
            "failed_at = ? WHERE id = ?"
        )
        args = (int(attempted), reason, error, now, message_id)
        await self._run(lambda db: db.execute(sql, args), single=True)

    async def outbox_stats(self) -> tuple[int, float | None]:
        """Queued count and the oldest decision time."""
        sql = "SELECT COUNT(*), MIN(created_at) FROM outbox WHERE state = 'queued'"

        def work(db: sqlite3.Connection) -> tuple[int, float | None]:
            count, oldest = db.execute(sql).fetchone()
            return int(count), None if oldest is None else float(oldest)

        return await self._read(work)

    async def outbox_list(self, state: str, limit: int = 1000) -> list[QueuedMessage]:
        """Messages in ``state``, oldest first."""
        sql = f"SELECT {_COLUMNS} FROM outbox WHERE state = ? ORDER BY id LIMIT ?"  # noqa: S608
        return await self._read(
            lambda db: [message_from_row(row) for row in db.execute(sql, (state, limit)).fetchall()]
        )

    async def outbox_requeue(self, ids: Sequence[int] | None, now: float) -> int:
        """Dead letters back in the queue, in their original place in their lane."""
        sql = (
            "UPDATE outbox SET state = 'queued', attempts = 0, reason = '', error = '', "
            "failed_at = NULL, created_at = ? WHERE state = 'dead'"
        )
        return await self._run(lambda db: _by_ids(db, sql, (now,), ids), bulk=True)

    async def outbox_drop(self, ids: Sequence[int] | None) -> int:
        """Delete dead letters."""
        sql = "DELETE FROM outbox WHERE state = 'dead'"
        return await self._run(lambda db: _by_ids(db, sql, (), ids), bulk=True)

    async def outbox_forget(self, account: str, lane: str | None = None) -> int:
        """Delete the account's messages (or a lane's queued ones)."""
        args: tuple[str, ...]
        if lane is None:
            sql, args = "DELETE FROM outbox WHERE account = ?", (account,)
        else:
            # JIDs compare without case (XMPP folds the local part).
            sql = (
                "DELETE FROM outbox WHERE account = ? AND lower(lane) = lower(?) "
                "AND state = 'queued'"
            )
            args = (account, lane)
        return await self._run(
            lambda db: int(db.execute(sql, args).rowcount), single=True, bulk=True
        )

    # Audit log.

    async def audit_add(self, entries: Sequence[AuditEntry]) -> None:
        """Record the entries in one transaction."""
        rows = [audit_row(e) for e in entries]
        # Not single: several rows, all or none (a savepoint of their own).
        if rows:
            await self._run(lambda db: db.executemany(_AUDIT_INSERT, rows))

    async def audit_query(self, query: AuditQuery) -> list[AuditEntry]:
        """Matching entries, newest first."""
        where, args = audit_where(query, lambda n: "?")
        sql = (
            f"SELECT {AUDIT_COLUMNS} FROM audit WHERE {where} "  # noqa: S608
            "ORDER BY at DESC, id DESC LIMIT ?"
        )
        return await self._read(
            lambda db: [audit_from_row(r) for r in db.execute(sql, (*args, query.limit))]
        )

    async def audit_purge(self, before: float) -> int:
        """Delete entries older than ``before``."""
        sql = "DELETE FROM audit WHERE at < ?"
        return await self._run(
            lambda db: int(db.execute(sql, (before,)).rowcount), single=True, bulk=True
        )

    async def audit_forget(self, account: str) -> int:
        """Delete the account's entries."""
        sql = "DELETE FROM audit WHERE account_id = ?"
        return await self._run(
            lambda db: int(db.execute(sql, (account,)).rowcount), single=True, bulk=True
        )

    async def export(self) -> Export:
        """Values, unfinished events, queued and dead messages, the audit log."""

        def work(db: sqlite3.Connection) -> Export:
            values = db.execute("SELECT namespace, key, value, expires_at FROM kv").fetchall()
            events = db.execute(
                "SELECT key, body, received_at FROM inbox WHERE expires_at IS NULL ORDER BY seq"
            ).fetchall()
            messages = db.execute(
                f"SELECT {_COLUMNS} FROM outbox WHERE state != 'sent' ORDER BY id"  # noqa: S608
            ).fetchall()
            audit = db.execute(
                f"SELECT {AUDIT_COLUMNS} FROM audit ORDER BY id"  # noqa: S608
            ).fetchall()
            return Export(
                tuple((str(n), str(k), str(v), e) for n, k, v, e in values),
                tuple((str(k), bytes(b), float(r)) for k, b, r in events),
                tuple(message_from_row(m) for m in messages),
                tuple(audit_from_row(a) for a in audit),
            )

        return await self._read(work)

    async def load(self, data: Export) -> None:
        """Add the data in one transaction."""

        def work(db: sqlite3.Connection) -> None:
            db.executemany(
                "INSERT OR REPLACE INTO kv (namespace, key, value, expires_at) VALUES (?, ?, ?, ?)",
                data.values,
            )
            db.executemany(
                "INSERT OR IGNORE INTO inbox (key, body, received_at) VALUES (?, ?, ?)",
                data.events,
            )
            db.executemany(
                "INSERT INTO outbox (lane, account, payload, meta, created_at, attempts, state, "
                "reason, error, failed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [_load_row(m) for m in data.messages],
            )
            db.executemany(_AUDIT_INSERT, [audit_row(e) for e in data.audit])

        await self._run(work, bulk=True)

    # One process: it always holds every lease, and notifications stay in it.

    async def hold_lease(self, name: str) -> bool:
        """Always held: SQLite serves one process."""
        return True

    async def release_lease(self, name: str) -> None:
        """Nothing to release."""

    def holds(self, name: str) -> bool:
        """Always held."""
        return True

    async def notify(self, channel: str, payload: str) -> None:
        """Call this process's listeners on ``channel``."""
        loop = asyncio.get_running_loop()
        for callback in self._listeners.get(channel, ()):
            loop.call_soon(callback, payload)

    async def listen(self, channel: str, callback: Callable[[str], None]) -> None:
        """Register ``callback`` for ``channel``."""
        self._listeners.setdefault(channel, []).append(callback)


def _load_row(m: QueuedMessage) -> tuple[Any, ...]:
    return (
        m.lane,
        m.account,
        m.payload,
        m.meta,
        m.created_at,
        m.attempts,
        m.state,
        m.reason,
        m.error,
        m.failed_at,
    )


#: A write waiting for the next commit: the work, its future, whether it is one statement,
#: whether it is deferred.
_Op: TypeAlias = "tuple[Callable[[sqlite3.Connection], Any], asyncio.Future[Any], bool, bool]"
#: A committed write waiting for an fsync: its future and its outcome.
_Done: TypeAlias = "tuple[asyncio.Future[Any], tuple[bool, Any]]"


class _FsyncFailed(Exception):
    """The storage thread's fsync of the WAL failed (its ``OSError`` is the cause)."""


def _refuse(ops: Sequence[_Op], error: BaseException) -> None:
    """Answer each of ``ops`` with ``error``."""
    for _, future, _, _ in ops:
        resolve(future, (False, error))


def _result(exc: sqlite3.Error) -> int:
    """SQLite's primary result code of ``exc`` (0 for one raised by hand)."""
    return getattr(exc, "sqlite_errorcode", 0) & 0xFF


def _busy(exc: sqlite3.Error) -> bool:
    """Whether SQLite said another connection holds the lock."""
    return _result(exc) == sqlite3.SQLITE_BUSY


def _open_reader(path: str) -> sqlite3.Connection:
    db = sqlite3.connect(path, timeout=5.0, isolation_level=None, check_same_thread=True)
    db.execute("PRAGMA query_only=1")
    return db


def _checkpoint(db: sqlite3.Connection) -> None:
    # PASSIVE: copies what it can without waiting for (or blocking) the writer.
    db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()


def _put(db: sqlite3.Connection, write: Write) -> None:
    db.execute(
        "INSERT OR REPLACE INTO kv (namespace, key, value, expires_at) VALUES (?, ?, ?, ?)",
        (write.namespace, write.key, write.value, write.expires_at),
    )


def _select(db: sqlite3.Connection, namespace: str, keys: list[str], now: float) -> dict[str, str]:
    marks = ", ".join("?" for _ in keys)
    sql = (
        f"SELECT key, value FROM kv WHERE namespace = ? AND key IN ({marks}) "  # noqa: S608
        f"AND {_LIVE}"
    )
    return {str(k): str(v) for k, v in db.execute(sql, (namespace, *keys, now)).fetchall()}


def _settle(db: sqlite3.Connection, key: str, expires_at: float) -> bool:
    """Mark the event handled; False if it was not pending (handled already)."""
    cursor = db.execute(
        "UPDATE inbox SET body = NULL, expires_at = ? WHERE key = ? AND expires_at IS NULL",
        (expires_at, key),
    )
    return cursor.rowcount > 0


def _by_ids(
    db: sqlite3.Connection, sql: str, args: tuple[Any, ...], ids: Sequence[int] | None
) -> int:
    if ids is None:
        return int(db.execute(sql, args).rowcount)
    return sum(int(db.execute(sql + " AND id = ?", (*args, i)).rowcount) for i in ids)
