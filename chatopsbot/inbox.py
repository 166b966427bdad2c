"""Accepted webhooks: recorded durably before Zoom hears 200, recognised when Zoom redelivers.

Zoom resends an event it thinks failed (after 5, 20 and 60 minutes) without marking it as a
retry. Every accepted event is written to storage under a fingerprint of its dedupe key before
the acknowledgement; the key then answers "duplicate" while the event is pending and for an
hour after it was handled. An event still pending at startup (the process died between the 200
and the end of its handling) is handled then: nothing acknowledged is lost.
"""

from __future__ import annotations

import hashlib

from chatopsbot.clock import Clock
from chatopsbot.storage import Backend

__all__ = ["REMEMBER_SECONDS", "Inbox", "fingerprint"]

#: How long a handled event's key is kept: longer than Zoom's last redelivery (~1 h).
REMEMBER_SECONDS = 3600.0 + 600.0


def fingerprint(key: str) -> str:
    """A short, fixed-length stand-in for a dedupe key (which may hold a 4000-character command)."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:32]


class Inbox:
    """The durable record of accepted events, with duplicate detection."""

    def __init__(self, backend: Backend, clock: Clock, remember: float = REMEMBER_SECONDS) -> None:
        self._backend = backend
        self._clock = clock
        self._remember = remember

    async def accept(self, dedupe_key: str, body: bytes) -> str | None:
        """Record the event's raw ``body``; its inbox key, or ``None`` for a duplicate."""
        key = fingerprint(dedupe_key)
        if await self._backend.inbox_accept(key, body, self._clock.timestamp()):
            return key
        return None

    async def pending(self) -> list[tuple[str, bytes]]:
        """Events accepted but not handled, oldest first."""
        return await self._backend.inbox_pending()

    def settlement(self, key: str) -> tuple[str, float]:
        """What to settle ``key`` with: the key and how long it is remembered."""
        return key, self._clock.timestamp() + self._remember

    async def settle(self, key: str) -> None:
        """Mark the event handled without writing anything else."""
        await self._backend.inbox_settle(*self.settlement(key))
