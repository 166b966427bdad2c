"""Recognise redeliveries: Zoom resends an event it thinks failed, without marking it as a retry.

Keys are checked in memory, so the acknowledgement never waits for storage; the app also keeps
them in the store for the same hour, so a redelivery that arrives after a restart is known too.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable


class RecentEvents:
    """Remembers event keys for ``ttl`` seconds, holding at most ``max_entries`` of them.

    The bound keeps memory flat under a flood; past it the oldest keys are forgotten first, which
    only matters if more than ``max_entries`` distinct events arrive within one ``ttl``.
    """

    def __init__(
        self,
        ttl: float = 3600.0,
        max_entries: int = 100_000,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl = ttl
        self._max = max_entries
        self._monotonic = monotonic
        self._seen: OrderedDict[str, float] = OrderedDict()

    def seen(self, key: str) -> bool:
        """True if ``key`` was recorded within ``ttl``; otherwise record it and return False."""
        now = self._monotonic()
        while self._seen:
            oldest, at = next(iter(self._seen.items()))
            if now - at < self._ttl and len(self._seen) < self._max:
                break
            del self._seen[oldest]
        if key in self._seen:
            return True
        self._seen[key] = now
        return False

    def add(self, key: str) -> None:
        """Record ``key`` as seen now (used to reload the keys kept across a restart)."""
        self._seen[key] = self._monotonic()

    def __len__(self) -> int:
        return len(self._seen)


def fingerprint(key: str) -> str:
    """A short, fixed-length stand-in for a dedupe key (which may hold a 4000-character command)."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:32]
