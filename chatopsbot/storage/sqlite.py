"""The embedded backend: SQLite in WAL mode, a writer thread with group commit, a reader thread.

Every write is a small function run inside a transaction on the writer thread. Writes that
arrive while a transaction is being written are gathered into the next one, each under a
savepoint of its own (one failing does not undo the others): at a few thousand webhooks a second
the inbox costs one commit per batch instead of one per webhook. ``synchronous=FULL`` makes a
commit durable against power loss as well as a crash of the process, before the 200 goes out.

Reads run on a second connection and thread (WAL lets readers and the writer work at once), so
a slow read (counting a large backlog) never holds up the commit an acknowledgement waits for.
Checkpoints (copying the WAL back into the database) run there too, not inside a commit.

Why not aiosqlite: it runs one statement per thread hop and offers no way to run a whole
transaction as one function on its thread, which group commit and "insert, then settle, in one
transaction" need.
"""

from __future__ import annotations

import asyncio
import functools
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
#: How long a deferred write may wait for company (seconds).
_DEFER = 0.005
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


def _connect(path: str) -> sqlite3.Connection:
    db = sqlite3.connect(path, timeout=5.0, isolation_level=None, check_same_thread=True)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        # The reader thread checkpoints; a commit never has to.
        db.execute("PRAGMA wal_autocheckpoint=0")
        row = db.execute("PRAGMA quick_check").fetchone()
        if row is None or row[0] != "ok":
            raise sqlite3.DatabaseError(f"integrity check failed: {row[0] if row else '?'}")
        _migrate(db)
    except BaseException:
        db.close()
        raise
    return db


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
    ) -> None:
        self._worker = writer
        # Each connection is used on its own thread only.
        self._db = db
        # An in-memory database has one connection: it reads there too.
        self._reader = reader or (writer, db)
        self._path = path
        self._checkpointer: asyncio.Task[None] | None = None
        self._pending: list[_Op] = []
        # Done when the transaction on the writer thread is; and the timer of deferred writes.
        self._committing: asyncio.Future[None] | None = None
        self._deferred: asyncio.TimerHandle | None = None
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
            db = await writer.run(_connect, path)
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
            await writer.stop()
            raise StorageError(f"{path}: cannot open the storage file: {exc}") from exc
        backend = cls(writer, db, path, (reads, reader))
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
        if self._closed:
            raise StorageError(f"{self._path}: storage is closed")
        worker, db = self._reader
        try:
            return await worker.run(work, db)
        except sqlite3.Error as exc:
            raise StorageError(f"{self._path}: {exc}") from exc

    async def _checkpoints(self) -> None:
        """Copy the WAL back into the database now and then, off the commit path."""
        worker, db = self._reader
        while True:
            await asyncio.sleep(_CHECKPOINT_SECONDS)
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
    ) -> T:
        """Run ``work`` in the next transaction and return what it returns.

        ``single``: ``work`` runs one statement, atomic by itself, so it needs no savepoint.
        ``defer``: nobody waits for it but its caller; it may wait up to :data:`_DEFER` seconds
        for other writes to share its commit (and its fsync).
        """
        if self._closed:
            raise StorageError(f"{self._path}: storage is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._pending.append((work, future, single))
        if self._committing is None:
            if not defer:
                self._flush()
            elif self._deferred is None:
                self._deferred = loop.call_later(_DEFER, self._flush)
        return await future

    def _flush(self) -> None:
        """Hand everything pending to the writer thread as one transaction."""
        if self._deferred is not None:
            self._deferred.cancel()
            self._deferred = None
        if self._committing is not None or not self._pending:
            return
        batch, self._pending = self._pending, []
        try:
            # Straight back to _committed, which wakes the callers: one loop turn, not three
            # (the worker's future, its done callback, then the callers' futures).
            self._worker.call(self._commit, (batch,), functools.partial(self._committed, batch))
        except RuntimeError:
            # The writer thread is stopped (closed): these writes cannot happen.
            error = StorageError(f"{self._path}: storage is closed")
            for _, future, _ in batch:
                if not future.done():
                    future.set_exception(error)
            return
        self._committing = asyncio.get_running_loop().create_future()

    def _committed(self, batch: list[_Op], outcome: Outcome) -> None:
        if self._committing is not None:
            self._committing.set_result(None)
            self._committing = None
        committed, results = outcome
        if not committed:
            # The whole transaction is gone: every write in it failed.
            error = self._error(results)
            for _, future, _ in batch:
                if not future.done():
                    future.set_exception(error)
        else:
            for (_, future, _), result in zip(batch, results, strict=True):
                resolve(future, result)
        # What arrived meanwhile goes at once, deferred or not: it has waited a commit already.
        self._flush()

    def _commit(self, batch: list[_Op]) -> list[tuple[bool, Any]]:
        if len(batch) == 1:
            work, _, single = batch[0]
            return [self._alone(work, single)]
        db = self._db
        results: list[tuple[bool, Any]] = []
        db.execute("BEGIN IMMEDIATE")
        try:
            for work, _, single in batch:
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
        """A write with nothing to share its transaction: a single statement commits by itself,
        anything else in a transaction of its own, with no savepoint. Fewer statements matter
        under load: each one hands the interpreter lock back and waits to take it again."""
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
        except Exception as exc:
            return False, self._error(exc)

    def _error(self, exc: BaseException) -> BaseException:
        """What a caller sees of a failed write: SQLite's errors as :class:`StorageError`."""
        return StorageError(f"{self._path}: {exc}") if isinstance(exc, sqlite3.Error) else exc

    async def close(self) -> None:
        """Finish the writes in progress, then close the file."""
        if self._closed:
            return
        # A caller woken by a commit may hand over another write (a deferred one, say)
        # before this resumes: write until nothing is left, then close in the same step.
        while self._committing is not None or self._pending:
            self._flush()
            if self._committing is not None:
                await asyncio.wait([self._committing])
        self._closed = True
        if self._deferred is not None:
            self._deferred.cancel()
            self._deferred = None
        if self._checkpointer is not None:
            self._checkpointer.cancel()
            await asyncio.gather(self._checkpointer, return_exceptions=True)
        worker, reader = self._reader
        if reader is not self._db:
            await worker.run(_checkpoint, reader)
            await worker.run(reader.close)
            await worker.stop()
        await self._worker.run(self._db.close)
        await self._worker.stop()

    # Values.

    async def get(self, namespace: str, key: str, now: float) -> str | None:
        """The stored text, or ``None``."""
        sql = f"SELECT value FROM kv WHERE namespace = ? AND key = ? AND {_LIVE}"  # noqa: S608

        def work(db: sqlite3.Connection) -> str | None:
            row = db.execute(sql, (namespace, key, now)).fetchone()
            return None if row is None else str(row[0])

        return await self._read(work)

    async def put(self, namespace: str, key: str, value: str, expires_at: float | None) -> None:
        """Store ``value``."""
        await self._run(lambda db: _put(db, Write(namespace, key, value, expires_at)), single=True)

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

        return await self._run(work)

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

        return await self._run(work)

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

        return await self._run(work)

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
        return await self._run(lambda db: _by_ids(db, sql, (now,), ids))

    async def outbox_drop(self, ids: Sequence[int] | None) -> int:
        """Delete dead letters."""
        sql = "DELETE FROM outbox WHERE state = 'dead'"
        return await self._run(lambda db: _by_ids(db, sql, (), ids))

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
        return await self._run(lambda db: int(db.execute(sql, args).rowcount), single=True)

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
        return await self._run(lambda db: int(db.execute(sql, (before,)).rowcount), single=True)

    async def audit_forget(self, account: str) -> int:
        """Delete the account's entries."""
        sql = "DELETE FROM audit WHERE account_id = ?"
        return await self._run(lambda db: int(db.execute(sql, (account,)).rowcount), single=True)

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

        await self._run(work)

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


#: A write waiting for the next commit: the work, its future, whether it is one statement.
_Op: TypeAlias = "tuple[Callable[[sqlite3.Connection], Any], asyncio.Future[Any], bool]"


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
