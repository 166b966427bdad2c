"""Plugin storage: a small async key-value interface, namespaced per plugin, JSON values.

:class:`Store` is what a plugin sees (``ctx.store``); it can only reach its own namespace.
Behind it sits a :class:`~chatopsbot.storage.Backend` (see :mod:`chatopsbot.storage`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from chatopsbot.clock import Clock
from chatopsbot.storage import Backend, StorageError, open_backend

__all__ = ["Backend", "StorageError", "Store", "open_backend"]


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

        ``change`` gets ``default`` when the key is absent and must not await: it runs inside
        the storage transaction (on the storage thread), so two updates arriving together both
        count; keep it a pure function of its argument. Returning ``None`` deletes the key.
        """

        def apply(old: str | None) -> str | None:
            new = change(default if old is None else json.loads(old))
            return None if new is None else _encode(new)

        text = await self._backend.update(
            self._ns, key, apply, self._clock.timestamp(), self._expiry(ttl)
        )
        return None if text is None else json.loads(text)
