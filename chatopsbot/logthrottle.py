"""Repeated identical log lines, bounded: the first one, then a count per interval.

During an outage every message fails the same way; logging each failure would bury the one line
an operator needs (and fill the disk). :class:`LogThrottle` lets the first occurrence of a
*kind* of line through and counts the rest, reporting the count with the next line it lets
through, at most once per ``interval``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["LogThrottle"]


class LogThrottle:
    """Decides which occurrences of a repeated line to log; ``kind`` groups the lines."""

    def __init__(
        self,
        interval: float = 10.0,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        max_kinds: int = 1000,
    ) -> None:
        self._interval = interval
        self._monotonic = monotonic
        self._max_kinds = max_kinds
        # kind -> (when last logged, occurrences suppressed since)
        self._kinds: dict[str, tuple[float, int]] = {}

    def admit(self, kind: str) -> int | None:
        """``None`` to suppress this occurrence; else how many were suppressed before it."""
        now = self._monotonic()
        last = self._kinds.get(kind)
        if last is not None and now - last[0] < self._interval:
            self._kinds[kind] = (last[0], last[1] + 1)
            return None
        if last is None and len(self._kinds) >= self._max_kinds:
            # A flood of distinct kinds must not grow memory: forget the oldest.
            del self._kinds[next(iter(self._kinds))]
        self._kinds[kind] = (now, 0)
        return 0 if last is None else last[1]

    def forget(self, kind: str) -> int:
        """End a run of ``kind`` (the failure stopped); return how many went unlogged."""
        last = self._kinds.pop(kind, None)
        return 0 if last is None else last[1]


def suffix(suppressed: int, interval: float) -> str:
    """`` (and 12 more like it in the last 10 s)`` for a line that reports suppressed ones."""
    if not suppressed:
        return ""
    return f" (and {suppressed} more like it in the last {interval:g} s)"
