"""Plugin storage: a small async key-value interface, namespaced per plugin, JSON values.

:class:`Store` is what a plugin sees (``ctx.store``); it can only reach its own namespace.
Behind it sits a :class:`~chatopsbot.storage.Backend` (see :mod:`chatopsbot.storage`).

Check-then-act is one step here, never a read, an ``await`` and a write: :meth:`Store.update`,
:meth:`Store.attempt`, :meth:`Store.compare_and_set` and :meth:`Store.update_many` run the
check and the write in one transaction that locks the keys, on SQLite (one writer connection)
and on PostgreSQL (row and advisory locks, so across replicas too). A change function refuses
by raising :class:`Refused`; nothing is written then.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from datetime import timedelta
from typing import Any

from attrs import frozen

from chatopsbot.clock import Clock
from chatopsbot.errors import ChatopsbotError
from chatopsbot.storage import Backend, StorageError, open_backend

__all__ = ["Backend", "Outcome", "Refused", "StorageError", "Store", "open_backend"]


class Refused(ChatopsbotError):
    """Raised by a change function to leave the stored values as they are.

    ``reason`` says why, for the caller to show or branch on; ``detail`` carries any data
    the refusal found (the override it clashes with, say). :meth:`Store.attempt` and
    :meth:`Store.update_many` return it as an :class:`Outcome`; :meth:`Store.update` lets it
    propagate.
    """

    def __init__(self, reason: str = "", detail: Any = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = detail


@frozen
class Outcome:
    """What one atomic step did.

    ``applied`` is False when the change raised :class:`Refused` (then ``reason`` and
    ``detail`` are the refusal's, and ``new == old``). ``old`` is the value the change saw,
    ``new`` the value stored afterwards: for :meth:`Store.update_many` both are ``{key:
    value}`` of the live keys.
    """

    applied: bool
    old: Any
    new: Any
    reason: str = ""
    detail: Any = None


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
        the storage transaction (with SQLite, on the loop's thread or the storage thread), so
        two updates arriving together both
        count; keep it a pure function of its argument. Returning ``None`` deletes the key.
        An exception from ``change`` (:class:`Refused` included) writes nothing and propagates;
        :meth:`attempt` returns a refusal instead.
        """

        def apply(old: str | None) -> str | None:
            new = change(default if old is None else json.loads(old))
            return None if new is None else _encode(new)

        text = await self._backend.update(
            self._ns, key, apply, self._clock.timestamp(), self._expiry(ttl)
        )
        return None if text is None else json.loads(text)

    async def attempt(
        self,
        key: str,
        change: Callable[[Any], Any],
        *,
        default: Any = None,
        ttl: float | timedelta | None = None,
    ) -> Outcome:
        """:meth:`update` that may refuse: ``change`` raises :class:`Refused` to write nothing.

        The check ``change`` makes and its write are one step: no other update, attempt or
        multi-key update of ``key`` (in this process or another sharing the storage) comes
        between them. Returns an :class:`Outcome`; other exceptions propagate (nothing is
        written either).
        """
        seen: list[Any] = []

        def apply(old: str | None) -> str | None:
            current = default if old is None else json.loads(old)
            seen.append(current)
            new = change(current)
            return None if new is None else _encode(new)

        try:
            text = await self._backend.update(
                self._ns, key, apply, self._clock.timestamp(), self._expiry(ttl)
            )
        except Refused as refusal:
            old = seen[-1] if seen else default
            return Outcome(False, old, old, refusal.reason, refusal.detail)
        return Outcome(True, seen[-1], None if text is None else json.loads(text))

    async def compare_and_set(
        self,
        key: str,
        expected: Any,
        new: Any,
        *,
        ttl: float | timedelta | None = None,
    ) -> Outcome:
        """Store ``new`` only if the value is ``expected`` (``None``: the key is absent);
        ``new=None`` deletes. ``applied`` says whether it did; ``old`` is the value found."""
        _encode(new)  # a value that is not JSON fails here, not as a refusal

        def swap(current: Any) -> Any:
            if current != expected:
                raise Refused("changed")
            return new

        return await self.attempt(key, swap, ttl=ttl)

    async def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        """The live keys among ``keys`` and their values, read as one snapshot: a
        :meth:`update_many` is seen whole or not at all."""
        texts = await self._backend.get_many(self._ns, list(keys), self._clock.timestamp())
        return {key: json.loads(text) for key, text in texts.items()}

    async def update_many(
        self,
        keys: Iterable[str],
        change: Callable[[dict[str, Any]], Mapping[str, Any]],
        *,
        ttl: float | timedelta | None = None,
    ) -> Outcome:
        """Atomically change several keys of this plugin: a transaction over them.

        ``change`` gets ``{key: value}`` for the live keys among ``keys`` (an absent key is
        missing from it) and returns ``{key: new value}`` for the keys to write (``None``
        deletes; keys it leaves out stay as they are; only keys among ``keys`` may be written).
        It runs inside the transaction with every key locked, so it must not await and should
        be a pure function of its argument; raising :class:`Refused` writes nothing. ``ttl``
        applies to every key written.

        Returns an :class:`Outcome` whose ``old`` and ``new`` are the ``{key: value}`` before and
        after. Atomic on both backends: on SQLite in the writer's transaction, on PostgreSQL in
        one transaction holding each key's lock (rows that do not exist yet included), so
        across replicas too.
        """
        wanted = list(dict.fromkeys(keys))
        seen: list[dict[str, Any]] = []

        def apply(texts: dict[str, str]) -> dict[str, str | None]:
            current = {key: json.loads(text) for key, text in texts.items()}
            seen.append(current)
            writes = change(dict(current))
            if not isinstance(writes, Mapping):
                # Unlike update's single value, None here would be ambiguous: say what is meant.
                raise TypeError(
                    "an update_many change returns {key: new value} (None deletes a key), "
                    f"not {type(writes).__name__}"
                )
            return {key: None if value is None else _encode(value) for key, value in writes.items()}

        try:
            texts = await self._backend.update_many(
                self._ns, wanted, apply, self._clock.timestamp(), self._expiry(ttl)
            )
        except Refused as refusal:
            old = seen[-1] if seen else {}
            return Outcome(False, old, old, refusal.reason, refusal.detail)
        return Outcome(True, seen[-1], {key: json.loads(text) for key, text in texts.items()})
