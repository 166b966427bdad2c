"""PostgreSQL through asyncpg: the backend for several replicas on one database.

The same contract as :mod:`chatopsbot.storage.sqlite`, with what replicas need on top:

- the inbox's unique key makes a redelivery that lands on another replica a duplicate;
- :meth:`PostgresBackend.hold_lease` takes a PostgreSQL session advisory lock on a connection
  of its own: held while that connection lives, released by the server the moment the holder's
  process dies (its socket closes), so another replica takes over at its next try;
- :meth:`PostgresBackend.notify` and :meth:`PostgresBackend.listen` are ``NOTIFY``/``LISTEN``,
  so the replica holding the sender lease hears of new messages at once.

Times in the tables are epoch seconds (``double precision``), as on SQLite. Any failure to reach
the server is a :class:`~chatopsbot.storage.StorageError`; the pool reconnects by itself.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeAlias, TypeVar, cast
from urllib.parse import parse_qs, urlsplit, urlunsplit

import asyncpg
from asyncpg.pool import PoolConnectionProxy

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

__all__ = ["PostgresBackend", "redact"]

log = logging.getLogger("chatopsbot.storage")

T = TypeVar("T")
#: A connection lent by the pool.
Conn: TypeAlias = "PoolConnectionProxy[asyncpg.Record]"

SCHEMA_VERSION = 3
#: Serialises migrations of replicas that start together (an arbitrary, fixed lock key).
_MIGRATION_LOCK = 0x63686F7073  # "chops"

_MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE IF NOT EXISTS kv (
        namespace TEXT NOT NULL,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        expires_at DOUBLE PRECISION,
        PRIMARY KEY (namespace, key)
    );
    CREATE INDEX IF NOT EXISTS kv_expiry ON kv (expires_at) WHERE expires_at IS NOT NULL;
    CREATE TABLE IF NOT EXISTS inbox (
        seq BIGSERIAL PRIMARY KEY,
        key TEXT NOT NULL UNIQUE,
        body BYTEA,
        received_at DOUBLE PRECISION NOT NULL,
        expires_at DOUBLE PRECISION
    );
    CREATE INDEX IF NOT EXISTS inbox_pending ON inbox (seq) WHERE expires_at IS NULL;
    CREATE INDEX IF NOT EXISTS inbox_expiry ON inbox (expires_at) WHERE expires_at IS NOT NULL;
    CREATE TABLE IF NOT EXISTS outbox (
        id BIGSERIAL PRIMARY KEY,
        lane TEXT NOT NULL,
        account TEXT NOT NULL,
        payload TEXT NOT NULL,
        meta TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        state TEXT NOT NULL DEFAULT 'queued',
        reason TEXT NOT NULL DEFAULT '',
        error TEXT NOT NULL DEFAULT '',
        failed_at DOUBLE PRECISION,
        waited BOOLEAN NOT NULL DEFAULT FALSE,
        result TEXT,
        sent_at DOUBLE PRECISION
    );
    CREATE INDEX IF NOT EXISTS outbox_lane ON outbox (state, lane, account, id);
    CREATE INDEX IF NOT EXISTS outbox_queued ON outbox (created_at) WHERE state = 'queued'
    """,
    # 2: the audit log. actor_fold is actor_name case-folded by Python, so a name matches
    # alike here and on SQLite.
    """
    CREATE TABLE IF NOT EXISTS audit (
        id BIGSERIAL PRIMARY KEY,
        at DOUBLE PRECISION NOT NULL,
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
    CREATE INDEX IF NOT EXISTS audit_what ON audit (what, at)
    """,
    # 2 -> 3: a lane's next message found through an index in its order. The lane index has
    # the account between lane and id, so "ORDER BY id LIMIT 1" sorted every queued message
    # of the lane: with 100,000 queued in one conversation, 8 ms per send on SQLite.
    """
    CREATE INDEX IF NOT EXISTS outbox_head ON outbox (lane, id) WHERE state = 'queued'
    """,
)

_LIVE = "(expires_at IS NULL OR expires_at > $3)"
_COLUMNS = OUTBOX_COLUMNS
_AUDIT_INSERT = (
    f"INSERT INTO audit ({AUDIT_COLUMNS}, actor_fold) "  # noqa: S608
    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
)
_HEAD = (
    f"SELECT {_COLUMNS} FROM outbox "  # noqa: S608
    "WHERE state = 'queued' AND lane = $1 ORDER BY id LIMIT 1"
)
#: How long the result of a message someone waited for is kept (seconds).
_KEEP_SENT = 3600.0
#: What "the server cannot be reached or answered an error" looks like from asyncpg.
_FAILURES = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)


def redact(url: str) -> str:
    """``url`` with its password replaced by ``***``, for logs and messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def _lock_key(name: str) -> int:
    # Advisory locks take a signed 64-bit key.
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


class PostgresBackend:
    """PostgreSQL storage; open with :meth:`open`."""

    def __init__(self, pool: asyncpg.Pool, url: str, connect: dict[str, Any]) -> None:
        self._pool = pool
        self._url = url
        self._connect = connect
        # The connection that holds advisory locks and listens: its life is the leases' life.
        self._session: asyncpg.Connection[asyncpg.Record] | None = None
        self._session_lock = asyncio.Lock()
        self._held: set[str] = set()
        self._listeners: dict[str, list[Callable[[str], None]]] = {}
        # Leases and channels belong to one bot's tables: a database may hold several bots,
        # each in a schema of its own.
        self._scope = ""

    @classmethod
    async def open(
        cls, url: str, *, schema: str | None = None, connect_timeout: float = 5.0
    ) -> PostgresBackend:
        """Connect, create or migrate the schema, and return the backend.

        ``schema``, or ``?search_path=NAME`` in the URL, puts the tables in a schema of their
        own (created if needed).
        """
        if schema is None:
            schema = parse_qs(urlsplit(url).query).get("search_path", [None])[0]
        connect: dict[str, Any] = {"timeout": connect_timeout, "command_timeout": connect_timeout}
        if schema is not None:
            connect["server_settings"] = {"search_path": schema}
        try:
            # min_size=0: no floor of idle connections to restore (and log about) while the
            # server is away; connections are opened as work needs them.
            pool = await asyncpg.create_pool(
                url, min_size=0, max_size=10, reset=_keep_session, **connect
            )
        except (*_FAILURES, ValueError) as exc:
            raise StorageError(f"{redact(url)}: cannot connect: {_describe(exc)}") from exc
        backend = cls(pool, url, connect)
        try:
            await backend._migrate(schema)
            backend._scope = await backend._run(
                lambda c: c.fetchval("SELECT current_database() || '.' || current_schema()")
            )
        except StorageError as exc:
            await pool.close()
            cause = exc.__cause__
            # The pool connects lazily: the first query is where an unreachable server shows.
            if isinstance(cause, OSError | TimeoutError | asyncpg.PostgresConnectionError):
                raise StorageError(f"{redact(url)}: cannot connect: {_describe(cause)}") from exc
            raise
        except BaseException:
            await pool.close()
            raise
        return backend

    @property
    def path(self) -> str:
        """The database URL, password hidden."""
        return redact(self._url)

    @property
    def shared(self) -> bool:
        """Several replicas share one database."""
        return True

    async def _migrate(self, schema: str | None) -> None:
        async def work(conn: Conn) -> None:
            async with conn.transaction():
                # Replicas starting together: one migrates, the others wait, then see it done.
                await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
                if schema is not None:
                    await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
                await conn.execute(
                    "CREATE TABLE IF NOT EXISTS chatopsbot_schema (version INTEGER NOT NULL)"
                )
                version = await conn.fetchval("SELECT max(version) FROM chatopsbot_schema") or 0
                if version > SCHEMA_VERSION:
                    raise StorageError(
                        f"{self.path}: schema version {version} is newer than this chatopsbot "
                        f"knows ({SCHEMA_VERSION})"
                    )
                for number, script in enumerate(_MIGRATIONS[version:], start=version + 1):
                    await conn.execute(script)
                    await conn.execute("INSERT INTO chatopsbot_schema VALUES ($1)", number)
                    log.info("storage: migrated %s to schema version %d", self.path, number)

        await self._run(work)

    async def _run(self, work: Callable[[Conn], Awaitable[T]]) -> T:
        try:
            async with self._pool.acquire() as conn:
                return await work(conn)
        except StorageError:
            raise
        except _FAILURES as exc:
            raise StorageError(f"{self.path}: {_describe(exc)}") from exc

    async def close(self) -> None:
        """Release leases (by closing their connection) and the pool."""
        if self._session is not None and not self._session.is_closed():
            await self._session.close()
        self._held.clear()
        await self._pool.close()

    # Values.

    async def get(self, namespace: str, key: str, now: float) -> str | None:
        """The stored text, or ``None``."""
        sql = f"SELECT value FROM kv WHERE namespace = $1 AND key = $2 AND {_LIVE}"  # noqa: S608
        value = await self._run(lambda c: c.fetchval(sql, namespace, key, now))
        return None if value is None else str(value)

    async def put(
        self,
        namespace: str,
        key: str,
        value: str,
        expires_at: float | None,
        *,
        defer: bool = False,
    ) -> None:
        """Store ``value``; ``defer`` changes nothing (every commit is durable on return)."""
        await self._run(lambda c: _put(c, Write(namespace, key, value, expires_at)))

    async def delete(self, namespace: str, key: str) -> bool:
        """Remove the key."""
        sql = "DELETE FROM kv WHERE namespace = $1 AND key = $2"
        status = await self._run(lambda c: c.execute(sql, namespace, key))
        return _count(status) > 0

    async def scan(self, namespace: str, prefix: str, now: float) -> list[tuple[str, str]]:
        """Live keys under ``prefix`` in key order."""
        # left() instead of LIKE, so % and _ in a prefix mean themselves; COLLATE "C" orders
        # keys by code point, as SQLite does.
        sql = (
            "SELECT key, value FROM kv WHERE namespace = $1 "  # noqa: S608
            f'AND left(key, $2) = $4 AND {_LIVE} ORDER BY key COLLATE "C"'
        )
        rows = await self._run(lambda c: c.fetch(sql, namespace, len(prefix), now, prefix))
        return [(str(r["key"]), str(r["value"])) for r in rows]

    async def update(
        self,
        namespace: str,
        key: str,
        change: Callable[[str | None], str | None],
        now: float,
        expires_at: float | None,
    ) -> str | None:
        """Read, change and write under a lock on the key, in one transaction."""
        sql = f"SELECT value FROM kv WHERE namespace = $1 AND key = $2 AND {_LIVE}"  # noqa: S608

        async def work(conn: Conn) -> str | None:
            async with conn.transaction():
                # A row lock cannot cover a key that does not exist yet; this lock can.
                await conn.execute(
                    "SELECT pg_advisory_xact_lock($1)", self._key(f"kv\0{namespace}\0{key}")
                )
                # FOR UPDATE: a plain put of the same key waits for this step too.
                old = await conn.fetchval(sql + " FOR UPDATE", namespace, key, now)
                new = change(None if old is None else str(old))
                if new is None:
                    await conn.execute(
                        "DELETE FROM kv WHERE namespace = $1 AND key = $2", namespace, key
                    )
                else:
                    await _put(conn, Write(namespace, key, new, expires_at))
                return new

        return await self._run(work)

    async def get_many(self, namespace: str, keys: Sequence[str], now: float) -> dict[str, str]:
        """The live keys among ``keys``, in one statement (one snapshot)."""
        wanted = list(dict.fromkeys(keys))
        if not wanted:
            return {}
        sql = (
            "SELECT key, value FROM kv WHERE namespace = $1 AND key = ANY($2::text[]) "
            "AND (expires_at IS NULL OR expires_at > $3)"
        )
        rows = await self._run(lambda c: c.fetch(sql, namespace, wanted, now))
        return {str(r["key"]): str(r["value"]) for r in rows}

    async def update_many(
        self,
        namespace: str,
        keys: Sequence[str],
        change: Callable[[dict[str, str]], Mapping[str, str | None]],
        now: float,
        expires_at: float | None,
    ) -> dict[str, str]:
        """Read, change and write several keys in one transaction, every key locked."""
        # One order for every caller: two steps over overlapping keys cannot deadlock.
        wanted = sorted(set(keys))
        sql = (
            "SELECT key, value FROM kv WHERE namespace = $1 AND key = ANY($2::text[]) "
            'AND (expires_at IS NULL OR expires_at > $3) ORDER BY key COLLATE "C" FOR UPDATE'
        )

        async def work(conn: Conn) -> dict[str, str]:
            async with conn.transaction():
                # The same per-key locks as update(), so the two serialise; they also cover
                # keys that have no row yet, which FOR UPDATE cannot.
                for key in wanted:
                    await conn.execute(
                        "SELECT pg_advisory_xact_lock($1)", self._key(f"kv\0{namespace}\0{key}")
                    )
                rows = await conn.fetch(sql, namespace, wanted, now)
                current = {str(r["key"]): str(r["value"]) for r in rows}
                writes = checked_writes(wanted, change(dict(current)))
                for key, text in writes.items():
                    if text is None:
                        await conn.execute(
                            "DELETE FROM kv WHERE namespace = $1 AND key = $2", namespace, key
                        )
                        current.pop(key, None)
                    else:
                        await _put(conn, Write(namespace, key, text, expires_at))
                        current[key] = text
                return current

        return await self._run(work)

    async def purge(self, now: float) -> int:
        """Delete expired values and inbox keys past their time."""

        async def work(conn: Conn) -> int:
            gone = _count(
                await conn.execute(
                    "DELETE FROM kv WHERE expires_at IS NOT NULL AND expires_at <= $1", now
                )
            )
            gone += _count(
                await conn.execute(
                    "DELETE FROM inbox WHERE expires_at IS NOT NULL AND expires_at <= $1", now
                )
            )
            gone += _count(
                await conn.execute(
                    "DELETE FROM outbox WHERE state = 'sent' AND sent_at <= $1", now - _KEEP_SENT
                )
            )
            return gone

        return await self._run(work)

    # Inbox.

    async def inbox_accept(self, key: str, body: bytes, now: float) -> bool:
        """Record the event unless its key is known (on any replica)."""
        sql = (
            "INSERT INTO inbox (key, body, received_at) VALUES ($1, $2, $3) "
            "ON CONFLICT (key) DO UPDATE SET body = excluded.body, "
            "received_at = excluded.received_at, expires_at = NULL "
            "WHERE inbox.expires_at IS NOT NULL AND inbox.expires_at <= excluded.received_at "
            "RETURNING seq"
        )
        return await self._run(lambda c: c.fetchval(sql, key, body, now)) is not None

    async def inbox_pending(self) -> list[tuple[str, bytes]]:
        """Events not settled, oldest first."""
        sql = "SELECT key, body FROM inbox WHERE expires_at IS NULL ORDER BY seq"
        rows = await self._run(lambda c: c.fetch(sql))
        return [(str(r["key"]), bytes(r["body"])) for r in rows]

    async def inbox_settle(self, key: str, expires_at: float) -> None:
        """Mark handled; drop the body."""
        await self._run(lambda c: _settle(c, key, expires_at))

    async def inbox_release(self, key: str) -> None:
        """Make a pending event the oldest there is."""
        sql = "UPDATE inbox SET received_at = 0 WHERE key = $1 AND expires_at IS NULL"
        await self._run(lambda c: c.execute(sql, key))

    async def inbox_reclaim(self, before: float, now: float) -> list[tuple[str, bytes]]:
        """Take over events pending since before ``before``; two replicas never take one."""
        # SKIP LOCKED: a row another replica is taking over right now is left to it.
        sql = (
            "UPDATE inbox SET received_at = $2 WHERE seq IN (SELECT seq FROM inbox "
            "WHERE expires_at IS NULL AND received_at < $1 ORDER BY seq FOR UPDATE SKIP LOCKED) "
            "RETURNING seq, key, body"
        )
        rows = await self._run(lambda c: c.fetch(sql, before, now))
        return [(str(r["key"]), bytes(r["body"])) for r in sorted(rows, key=lambda r: r["seq"])]

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
        """Queue the messages, settle the inbox key and record the audit entries, atomically.

        ``defer`` changes nothing here: every commit is durable when it returns, and
        PostgreSQL groups the commits of the pool's connections itself.
        """
        # RETURNING's subquery sees the table as it was before this INSERT (the earlier
        # messages of this transaction included): nothing older queued in the lane means
        # this one is its head.
        sql = (
            "INSERT INTO outbox (lane, account, payload, meta, created_at, waited) "
            "VALUES ($1, $2, $3, $4, $5, $6) RETURNING id, NOT EXISTS "
            "(SELECT 1 FROM outbox o WHERE o.state = 'queued' AND o.lane = $1) AS head"
        )

        async def work(conn: Conn) -> Added:
            async with conn.transaction():
                # Settled already (an earlier try committed, its answer was lost): write
                # nothing twice, audit entries included.
                if settle is not None and not await _settle(conn, *settle):
                    return Added()
                if audit:
                    await conn.executemany(_AUDIT_INSERT, [audit_row(e) for e in audit])
                # Ids come from a sequence when inserted, not when committed: without this, a
                # writer on another replica could commit a later id of the same lane first,
                # and the sender would take it before the earlier one became visible.
                for lane in sorted({m.lane for m in messages}):
                    await conn.execute(
                        "SELECT pg_advisory_xact_lock($1)", self._key(f"lane {lane}")
                    )
                rows = [
                    await conn.fetchrow(sql, m.lane, m.account, m.payload, m.meta, now, m.waited)
                    for m in messages
                ]
                ids = tuple(int(row["id"]) for row in rows if row is not None)
                heads = frozenset(int(r["id"]) for r in rows if r is not None and r["head"])
                return Added(ids, heads)

        return await self._run(work)

    async def outbox_head(self, lane: str) -> QueuedMessage | None:
        """The oldest queued message of ``lane``."""
        row = await self._run(lambda c: c.fetchrow(_HEAD, lane))
        return None if row is None else message_from_row(tuple(row.values()))

    async def outbox_lanes(self) -> list[tuple[str, str]]:
        """Lanes with queued messages, the one with the oldest message first."""
        sql = (
            "SELECT lane, account, MIN(id) AS first FROM outbox WHERE state = 'queued' "
            "GROUP BY lane, account ORDER BY first"
        )
        rows = await self._run(lambda c: c.fetch(sql))
        return [(str(r["lane"]), str(r["account"])) for r in rows]

    async def outbox_sent(
        self,
        message_id: int,
        writes: Sequence[Write] = (),
        *,
        result: str | None = None,
        lane: str | None = None,
    ) -> QueuedMessage | None:
        """Forget the message (or keep its ``result`` for a while); store ``writes`` with it."""

        async def work(conn: Conn) -> QueuedMessage | None:
            async with conn.transaction():
                if result is None:
                    await conn.execute("DELETE FROM outbox WHERE id = $1", message_id)
                else:
                    await conn.execute(
                        "UPDATE outbox SET state = 'sent', result = $1, sent_at = $2 WHERE id = $3",
                        result,
                        time.time(),
                        message_id,
                    )
                for write in writes:
                    await _put(conn, write)
                if lane is None:
                    return None
                row = await conn.fetchrow(_HEAD, lane)
                return None if row is None else message_from_row(tuple(row.values()))

        return await self._run(work)

    async def outbox_result(self, message_id: int) -> tuple[str, str] | None:
        """The outcome of a finished message that was waited for."""
        sql = "SELECT state, result, error FROM outbox WHERE id = $1 AND state != 'queued'"
        row = await self._run(lambda c: c.fetchrow(sql, message_id))
        if row is None:
            return None
        return (
            ("sent", str(row["result"])) if row["state"] == "sent" else ("dead", str(row["error"]))
        )

    async def outbox_attempted(self, message_id: int, error: str) -> None:
        """Count a failed attempt."""
        sql = "UPDATE outbox SET attempts = attempts + 1, error = $1 WHERE id = $2"
        await self._run(lambda c: c.execute(sql, error, message_id))

    async def outbox_dead(
        self, message_id: int, reason: str, error: str, now: float, *, attempted: bool = True
    ) -> None:
        """Move the message to the dead letters."""
        sql = (
            "UPDATE outbox SET state = 'dead', attempts = attempts + $5, reason = $1, error = $2, "
            "failed_at = $3 WHERE id = $4"
        )
        await self._run(lambda c: c.execute(sql, reason, error, now, message_id, int(attempted)))

    async def outbox_stats(self) -> tuple[int, float | None]:
        """Queued count and the oldest decision time."""
        sql = "SELECT COUNT(*), MIN(created_at) FROM outbox WHERE state = 'queued'"
        row = await self._run(lambda c: c.fetchrow(sql))
        assert row is not None  # noqa: S101 - an aggregate always has a row
        return int(row[0]), None if row[1] is None else float(row[1])

    async def outbox_list(self, state: str, limit: int = 1000) -> list[QueuedMessage]:
        """Messages in ``state``, oldest first."""
        sql = f"SELECT {_COLUMNS} FROM outbox WHERE state = $1 ORDER BY id LIMIT $2"  # noqa: S608
        rows = await self._run(lambda c: c.fetch(sql, state, limit))
        return [message_from_row(tuple(r.values())) for r in rows]

    async def outbox_requeue(self, ids: Sequence[int] | None, now: float) -> int:
        """Dead letters back in the queue, in their original place in their lane."""
        sql = (
            "UPDATE outbox SET state = 'queued', attempts = 0, reason = '', error = '', "
            "failed_at = NULL, created_at = $1 WHERE state = 'dead'"
        )
        if ids is None:
            return _count(await self._run(lambda c: c.execute(sql, now)))
        chosen = list(ids)
        sql += " AND id = ANY($2::bigint[])"
        return _count(await self._run(lambda c: c.execute(sql, now, chosen)))

    async def outbox_drop(self, ids: Sequence[int] | None) -> int:
        """Delete dead letters."""
        sql = "DELETE FROM outbox WHERE state = 'dead'"
        if ids is None:
            return _count(await self._run(lambda c: c.execute(sql)))
        chosen = list(ids)
        sql += " AND id = ANY($1::bigint[])"
        return _count(await self._run(lambda c: c.execute(sql, chosen)))

    async def outbox_forget(self, account: str, lane: str | None = None) -> int:
        """Delete the account's messages (or a lane's queued ones)."""
        if lane is None:
            sql = "DELETE FROM outbox WHERE account = $1"
            return _count(await self._run(lambda c: c.execute(sql, account)))
        # JIDs compare without case (XMPP folds the local part).
        sql = (
            "DELETE FROM outbox WHERE account = $1 AND lower(lane) = lower($2) AND state = 'queued'"
        )
        return _count(await self._run(lambda c: c.execute(sql, account, lane)))

    # Audit log.

    async def audit_add(self, entries: Sequence[AuditEntry]) -> None:
        """Record the entries in one transaction."""
        rows = [audit_row(e) for e in entries]

        async def work(conn: Conn) -> None:
            async with conn.transaction():
                await conn.executemany(_AUDIT_INSERT, rows)

        if rows:
            await self._run(work)

    async def audit_query(self, query: AuditQuery) -> list[AuditEntry]:
        """Matching entries, newest first."""
        where, args = audit_where(query, lambda n: f"${n}")
        sql = (
            f"SELECT {AUDIT_COLUMNS} FROM audit WHERE {where} "  # noqa: S608
            f"ORDER BY at DESC, id DESC LIMIT ${len(args) + 1}"
        )
        rows = await self._run(lambda c: c.fetch(sql, *args, query.limit))
        return [audit_from_row(tuple(r.values())) for r in rows]

    async def audit_purge(self, before: float) -> int:
        """Delete entries older than ``before``."""
        sql = "DELETE FROM audit WHERE at < $1"
        return _count(await self._run(lambda c: c.execute(sql, before)))

    async def audit_forget(self, account: str) -> int:
        """Delete the account's entries."""
        sql = "DELETE FROM audit WHERE account_id = $1"
        return _count(await self._run(lambda c: c.execute(sql, account)))

    async def export(self) -> Export:
        """Values, unfinished events, queued and dead messages, the audit log."""

        async def work(conn: Conn) -> Export:
            values = await conn.fetch("SELECT namespace, key, value, expires_at FROM kv")
            events = await conn.fetch(
                "SELECT key, body, received_at FROM inbox WHERE expires_at IS NULL ORDER BY seq"
            )
            messages = await conn.fetch(
                f"SELECT {_COLUMNS} FROM outbox WHERE state != 'sent' ORDER BY id"  # noqa: S608
            )
            audit = await conn.fetch(
                f"SELECT {AUDIT_COLUMNS} FROM audit ORDER BY id"  # noqa: S608
            )
            return Export(
                tuple((r[0], r[1], r[2], r[3]) for r in values),
                tuple((r[0], bytes(r[1]), float(r[2])) for r in events),
                tuple(message_from_row(tuple(r.values())) for r in messages),
                tuple(audit_from_row(tuple(r.values())) for r in audit),
            )

        return await self._run(work)

    async def load(self, data: Export) -> None:
        """Add the data in one transaction."""

        async def work(conn: Conn) -> None:
            async with conn.transaction():
                await conn.executemany(
                    "INSERT INTO kv (namespace, key, value, expires_at) VALUES ($1, $2, $3, $4) "
                    "ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value, "
                    "expires_at = excluded.expires_at",
                    data.values,
                )
                await conn.executemany(
                    "INSERT INTO inbox (key, body, received_at) VALUES ($1, $2, $3) "
                    "ON CONFLICT (key) DO NOTHING",
                    data.events,
                )
                await conn.executemany(
                    "INSERT INTO outbox (lane, account, payload, meta, created_at, attempts, "
                    "state, reason, error, failed_at) "
                    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                    [
                        (
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
                        for m in data.messages
                    ],
                )
                await conn.executemany(_AUDIT_INSERT, [audit_row(e) for e in data.audit])

        await self._run(work)

    # Leases and notifications, on a connection of their own.

    async def _session_connection(self) -> asyncpg.Connection[asyncpg.Record]:
        """The connection that holds the leases and listens; a new one if it was lost."""
        async with self._session_lock:
            conn = self._session
            if conn is not None and not conn.is_closed():
                return conn
            if self._held:
                log.warning(
                    "storage: lost the connection holding lease(s) %s",
                    ", ".join(sorted(self._held)),
                )
            self._held.clear()
            try:
                conn = cast(
                    "asyncpg.Connection[asyncpg.Record]",
                    await asyncpg.connect(self._url, **self._connect),
                )
            except _FAILURES as exc:
                raise StorageError(f"{self.path}: {_describe(exc)}") from exc
            conn.add_termination_listener(self._session_lost)
            for channel, callbacks in self._listeners.items():
                for callback in callbacks:
                    await conn.add_listener(channel, _relay(callback))
            self._session = conn
            return conn

    def _session_lost(self, conn: object) -> None:
        # The server has released every lock this connection held.
        self._held.clear()

    async def hold_lease(self, name: str) -> bool:
        """A session advisory lock named ``name``; confirmed alive on every call."""
        try:
            conn = await self._session_connection()
            if name in self._held:
                # The lock lives as long as the connection; a round trip proves it does.
                await conn.fetchval("SELECT 1")
                return name in self._held
            if await conn.fetchval("SELECT pg_try_advisory_lock($1)", self._key(name)):
                self._held.add(name)
                return True
            return False
        except _FAILURES as exc:
            self._held.discard(name)
            await self._drop_session()
            raise StorageError(f"{self.path}: {_describe(exc)}") from exc

    def holds(self, name: str) -> bool:
        """Held, unless the connection holding it has been lost since it was last confirmed."""
        return name in self._held

    async def release_lease(self, name: str) -> None:
        """Unlock, so another replica takes the lease at its next try."""
        if name not in self._held or self._session is None:
            return
        self._held.discard(name)
        try:
            await self._session.fetchval("SELECT pg_advisory_unlock($1)", self._key(name))
        except _FAILURES:
            await self._drop_session()

    async def _drop_session(self) -> None:
        conn, self._session = self._session, None
        self._held.clear()
        if conn is not None and not conn.is_closed():
            conn.terminate()

    def _key(self, name: str) -> int:
        return _lock_key(f"{self._scope}\0{name}")

    def _channel(self, channel: str) -> str:
        # Channels are database-wide; the scope's digest keeps each bot's to itself.
        return f"{channel}_{hashlib.sha256(self._scope.encode()).hexdigest()[:12]}"

    async def notify(self, channel: str, payload: str) -> None:
        """``NOTIFY`` every replica (this one too)."""
        name = self._channel(channel)
        await self._run(lambda c: c.execute("SELECT pg_notify($1, $2)", name, payload))

    async def listen(self, channel: str, callback: Callable[[str], None]) -> None:
        """``LISTEN`` on the session connection (again after it is replaced)."""
        channel = self._channel(channel)
        self._listeners.setdefault(channel, []).append(callback)
        conn = self._session
        if conn is not None and not conn.is_closed():
            await conn.add_listener(channel, _relay(callback))
        else:
            await self._session_connection()


async def _keep_session(conn: object) -> None:
    """No reset when a connection goes back to the pool: a round trip saved per operation.

    The default reset undoes session state; these connections keep none (every transaction
    ends in its ``async with``, locks are transaction-scoped, nobody listens on them).
    """


def _relay(callback: Callable[[str], None]) -> Callable[..., None]:
    def relay(conn: object, pid: int, channel: str, payload: str) -> None:
        callback(payload)

    return relay


async def _put(conn: Conn, write: Write) -> None:
    await conn.execute(
        "INSERT INTO kv (namespace, key, value, expires_at) VALUES ($1, $2, $3, $4) "
        "ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value, "
        "expires_at = excluded.expires_at",
        write.namespace,
        write.key,
        write.value,
        write.expires_at,
    )


async def _settle(conn: Conn, key: str, expires_at: float) -> bool:
    """Mark the event handled; False if it was not pending (handled already)."""
    status = await conn.execute(
        "UPDATE inbox SET body = NULL, expires_at = $1 WHERE key = $2 AND expires_at IS NULL",
        expires_at,
        key,
    )
    return _count(status) > 0


def _count(status: str) -> int:
    # asyncpg returns the command tag: "DELETE 3", "UPDATE 1", "INSERT 0 1".
    try:
        return int(status.rsplit(" ", 1)[-1])
    except (ValueError, AttributeError):
        return 0


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text != type(exc).__name__ else text
