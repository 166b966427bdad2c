"""Plugin storage: a small async key-value interface, namespaced per plugin, JSON values.

:class:`Store` is what a plugin sees (``ctx.store``); it can only reach its own namespace.
Behind it sits a :class:`Backend`: :class:`SqliteBackend` (the embedded default, WAL mode)
or :class:`MemoryBackend` (tests). A server backend for several replicas can follow by
implementing :class:`Backend`.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable
from datetime import timedelta
from typing import Any, Protocol

import aiosqlite

from chatopsbot.clock import Clock

__all__ = ["Backend", "MemoryBackend", "SqliteBackend", "StorageError", "Store", "open_backend"]


class StorageError(Exception):
    """The store cannot be opened or used; the message names the file and the cause."""


class Backend(Protocol):
    """Where namespaced JSON text lives. ``now`` is epoch seconds; expired entries are absent."""

    async def get(self, namespace: str, key: str, now: float) -> str | None:
        """The stored text, or ``None``."""
        ...

    async def put(self, namespace: str, key: str, value: str, expires_at: float | None) -> None:
        """Store ``value`` (replacing any), to expire at ``expires_at`` if given."""
        ...

    async def delete(self, namespace: str, key: str) -> bool:
        """Remove the key; True if it was there."""
        ...

    async def scan(self, namespace: str, prefix: str, now: float) -> list[tuple[str, str]]:
        """Every live ``(key, text)`` whose key starts with ``prefix``, in key order."""
        ...

    async def update(
        self,
        namespace: str,
        key: str,
        change: Callable[[str | None], str | None],
        now: float,
        expires_at: float | None,
    ) -> str | None:
        """Atomically replace the text with ``change(old)`` (``None`` deletes); return it."""
        ...

    async def purge(self, now: float) -> int:
        """Delete what expired by ``now``; return how many entries went."""
        ...

    async def close(self) -> None:
        """Release the backend."""
        ...


class MemoryBackend:
    """A dict, for tests and throwaway runs."""

    def __init__(self) -> None:
        self._data: dict[tuple[str, str], tuple[str, float | None]] = {}

    def _live(self, entry: tuple[str, float | None] | None, now: float) -> str | None:
        if entry is None or (entry[1] is not None and entry[1] <= now):
            return None
        return entry[0]

    async def get(self, namespace: str, key: str, now: float) -> str | None:
        """The stored text, or ``None``."""
        return self._live(self._data.get((namespace, key)), now)

    async def put(self, namespace: str, key: str, value: str, expires_at: float | None) -> None:
        """Store ``value``."""
        self._data[(namespace, key)] = (value, expires_at)

    async def delete(self, namespace: str, key: str) -> bool:
        """Remove the key."""
        return self._data.pop((namespace, key), None) is not None

    async def scan(self, namespace: str, prefix: str, now: float) -> list[tuple[str, str]]:
        """Live keys under ``prefix`` in key order."""
        found = []
        for (ns, key), entry in self._data.items():
            value = self._live(entry, now)
            if ns == namespace and key.startswith(prefix) and value is not None:
                found.append((key, value))
        return sorted(found)

    async def update(
        self,
        namespace: str,
        key: str,
        change: Callable[[str | None], str | None],
        now: float,
        expires_at: float | None,
    ) -> str | None:
        """No await between read and write: atomic on one loop."""
        new = change(self._live(self._data.get((namespace, key)), now))
        if new is None:
            self._data.pop((namespace, key), None)
        else:
            self._data[(namespace, key)] = (new, expires_at)
        return new

    async def purge(self, now: float) -> int:
        """Delete expired entries."""
        gone = [
            k for k, (_, expires) in self._data.items() if expires is not None and expires <= now
        ]
        for key in gone:
            del self._data[key]
        return len(gone)

    async def close(self) -> None:
        """Nothing to release."""


_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (
    namespace TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    expires_at REAL,
    PRIMARY KEY (namespace, key)
) WITHOUT ROWID
"""
_LIVE = "(expires_at IS NULL OR expires_at > ?)"


class SqliteBackend:
    """SQLite through aiosqlite: one connection, WAL journal, created on first start."""

    def __init__(self, connection: aiosqlite.Connection, path: str) -> None:
        self._db = connection
        self._path = path
        # One writer at a time within the process; BEGIN IMMEDIATE covers other processes.
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: str) -> SqliteBackend:
        """Open (creating if needed) the database at ``path``; raise :class:`StorageError`."""
        try:
            # Probe first: when aiosqlite's own connect fails, its worker thread answers a
            # future later on, possibly after the loop is gone.
            await asyncio.to_thread(_probe, path)
            db = await aiosqlite.connect(path, timeout=5.0, isolation_level=None)
        except (sqlite3.Error, OSError) as exc:
            raise StorageError(f"{path}: cannot open the storage file: {exc}") from exc
        try:
            await db.execute("PRAGMA journal_mode=WAL")
            await db.execute("PRAGMA synchronous=NORMAL")
            await db.execute(_SCHEMA)
            async with db.execute("PRAGMA quick_check") as cursor:
                row = await cursor.fetchone()
            if row is None or row[0] != "ok":
                raise sqlite3.DatabaseError(f"integrity check failed: {row[0] if row else '?'}")
        except (sqlite3.Error, OSError) as exc:
            await db.close()
            raise StorageError(f"{path}: cannot use the storage file: {exc}") from exc
        return cls(db, path)

    async def get(self, namespace: str, key: str, now: float) -> str | None:
        """The stored text, or ``None``."""
        sql = f"SELECT value FROM kv WHERE namespace = ? AND key = ? AND {_LIVE}"  # noqa: S608
        async with self._db.execute(sql, (namespace, key, now)) as cursor:
            row = await cursor.fetchone()
        return None if row is None else str(row[0])

    async def put(self, namespace: str, key: str, value: str, expires_at: float | None) -> None:
        """Store ``value``."""
        async with self._lock:
            await self._db.execute(
                "INSERT OR REPLACE INTO kv (namespace, key, value, expires_at) VALUES (?, ?, ?, ?)",
                (namespace, key, value, expires_at),
            )

    async def delete(self, namespace: str, key: str) -> bool:
        """Remove the key."""
        async with self._lock:
            cursor = await self._db.execute(
                "DELETE FROM kv WHERE namespace = ? AND key = ?", (namespace, key)
            )
            return cursor.rowcount > 0

    async def scan(self, namespace: str, prefix: str, now: float) -> list[tuple[str, str]]:
        """Live keys under ``prefix`` in key order."""
        # Range on the primary key instead of LIKE, so % and _ in a prefix mean themselves.
        sql = (
            "SELECT key, value FROM kv WHERE namespace = ? AND key >= ? "  # noqa: S608
            f"AND substr(key, 1, ?) = ? AND {_LIVE} ORDER BY key"
        )
        args = (namespace, prefix, len(prefix), prefix, now)
        async with self._db.execute(sql, args) as cursor:
            rows = await cursor.fetchall()
        return [(str(k), str(v)) for k, v in rows]

    async def update(
        self,
        namespace: str,
        key: str,
        change: Callable[[str | None], str | None],
        now: float,
        expires_at: float | None,
    ) -> str | None:
        """Read, change and write inside one immediate transaction."""
        async with self._lock:
            await self._db.execute("BEGIN IMMEDIATE")
            try:
                old = await self.get(namespace, key, now)
                new = change(old)
                if new is None:
                    await self._db.execute(
                        "DELETE FROM kv WHERE namespace = ? AND key = ?", (namespace, key)
                    )
                else:
                    await self._db.execute(
                        "INSERT OR REPLACE INTO kv (namespace, key, value, expires_at) "
                        "VALUES (?, ?, ?, ?)",
                        (namespace, key, new, expires_at),
                    )
            except BaseException:
                await self._db.execute("ROLLBACK")
                raise
            await self._db.execute("COMMIT")
            return new

    async def purge(self, now: float) -> int:
        """Delete expired rows (reads skip them already; this keeps the file small)."""
        async with self._lock:
            cursor = await self._db.execute(
                "DELETE FROM kv WHERE expires_at IS NOT NULL AND expires_at <= ?", (now,)
            )
            return cursor.rowcount

    async def close(self) -> None:
        """Close the connection."""
        await self._db.close()


def _probe(path: str) -> None:
    sqlite3.connect(path).close()


async def open_backend(path: str) -> Backend:
    """The backend for ``[storage] path``: ``:memory:`` gives a :class:`MemoryBackend`."""
    if path == ":memory:":
        return MemoryBackend()
    return await SqliteBackend.open(path)


def _encode(value: Any) -> str:
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"store values must be JSON data: {exc}") from None


def _seconds(ttl: float | timedelta | None) -> float | None:
    if ttl is None:
        return None
    seconds = ttl.total_seconds() if isinstance(ttl, timedelta) else float(ttl)
    if seconds <= 0:
        raise ValueError("ttl must be positive")
    return seconds


class Store:
    """One plugin's keys. Values are JSON data (dicts, lists, strings, numbers, bools, None)."""

    def __init__(self, backend: Backend, namespace: str, clock: Clock) -> None:
        self._backend = backend
        self._ns = namespace
        self._clock = clock

    def _expiry(self, ttl: float | timedelta | None) -> float | None:
        seconds = _seconds(ttl)
        return None if seconds is None else self._clock.timestamp() + seconds

    async def get(self, key: str, default: Any = None) -> Any:
        """The value under ``key``, or ``default``."""
        text = await self._backend.get(self._ns, key, self._clock.timestamp())
        return default if text is None else json.loads(text)

    async def set(self, key: str, value: Any, *, ttl: float | timedelta | None = None) -> None:
        """Store ``value`` under ``key``; with ``ttl`` (seconds) it disappears after that long."""
        await self._backend.put(self._ns, key, _encode(value), self._expiry(ttl))

    async def delete(self, key: str) -> bool:
        """Remove ``key``; True if it existed."""
        return await self._backend.delete(self._ns, key)

    async def exists(self, key: str) -> bool:
        """Whether ``key`` holds a live value."""
        return await self._backend.get(self._ns, key, self._clock.timestamp()) is not None

    async def list(self, prefix: str = "") -> list[tuple[str, Any]]:
        """Every ``(key, value)`` whose key starts with ``prefix``, in key order."""
        rows = await self._backend.scan(self._ns, prefix, self._clock.timestamp())
        return [(key, json.loads(text)) for key, text in rows]

    async def update(
        self,
        key: str,
        change: Callable[[Any], Any],
        *,
        default: Any = None,
        ttl: float | timedelta | None = None,
    ) -> Any:
        """Atomically replace the value with ``change(current)`` and return the new value.

        ``change`` gets ``default`` when the key is absent and must not await: it runs while
        the store is locked, so two updates arriving together both count. Returning ``None``
        deletes the key.
        """

        def apply(old: str | None) -> str | None:
            new = change(default if old is None else json.loads(old))
            return None if new is None else _encode(new)

        text = await self._backend.update(
            self._ns, key, apply, self._clock.timestamp(), self._expiry(ttl)
        )
        return None if text is None else json.loads(text)
