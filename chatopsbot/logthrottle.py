"""Repeated log lines, bounded: the first of a kind in full, then one count per interval.

During an outage or a flood every failure looks the same; logging each would bury the one line
an operator needs and fill the disk. :class:`RepeatedLog` lets the first occurrence of a *kind*
of line through and counts the rest, with one summary per interval while they keep coming, and
a last one from :meth:`RepeatedLog.flush` once they stop.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from attrs import define

__all__ = ["RepeatedLog", "one_line"]


@define
class _Run:
    """A kind of line being throttled: since when, at what level, how many not yet logged."""

    since: float
    level: int
    count: int = 0


class RepeatedLog:
    """Logs the first line of a kind, then at most one count per ``interval``.

    A *kind* is the line without what varies (the peer, say); :meth:`report` adds that detail
    to the first line only. While occurrences keep coming, one summary per interval says how
    many there were (``<kind>: 312 more times in the last 10 s``); :meth:`flush`, called
    periodically, writes it even when the flood has stopped. A kind quiet for a whole interval
    is forgotten, so its next occurrence is logged in full again. Loop thread only.
    """

    def __init__(
        self,
        logger: logging.Logger,
        interval: float = 10.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_kinds: int = 100,
    ) -> None:
        self._logger = logger
        self._interval = interval
        self._clock = clock
        self._max_kinds = max_kinds
        self._runs: dict[str, _Run] = {}

    def admit(self, kind: str, level: int = logging.WARNING) -> bool:
        """Count an occurrence of ``kind``; True when the caller should log it in full now."""
        now = self._clock()
        run = self._runs.get(kind)
        if run is None or (not run.count and now - run.since >= self._interval):
            if run is None and len(self._runs) >= self._max_kinds:
                # A flood of distinct kinds must not grow memory: settle the oldest one.
                oldest = next(iter(self._runs))
                self._summarize(oldest, self._runs.pop(oldest), now)
            self._runs.pop(kind, None)
            self._runs[kind] = _Run(now, level)
            return True
        run.count += 1
        if now - run.since >= self._interval:
            self._summarize(kind, run, now)
        return False

    def report(self, kind: str, detail: str = "", level: int = logging.WARNING) -> None:
        """Log ``kind`` (with ``detail`` in brackets) unless it is being throttled."""
        if self.admit(kind, level):
            if detail:
                self._logger.log(level, "%s (%s)", kind, one_line(detail))
            else:
                self._logger.log(level, "%s", kind)

    def flush(self, *, final: bool = False) -> None:
        """Write the summaries that are due (``final``: all of them, when stopping); forget
        kinds that stayed quiet for an interval."""
        now = self._clock()
        for kind, run in list(self._runs.items()):
            if now - run.since < self._interval and not (final and run.count):
                continue
            if run.count:
                self._summarize(kind, run, now)
            else:
                del self._runs[kind]

    def _summarize(self, kind: str, run: _Run, now: float) -> None:
        if run.count:
            self._logger.log(
                run.level,
                "%s: %d more time%s in the last %.0f s",
                kind,
                run.count,
                "" if run.count == 1 else "s",
                max(1.0, now - run.since),
            )
        run.since = now
        run.count = 0

    def forget(self, kind: str) -> int:
        """End a run of ``kind`` (the trouble is over); return how many went unlogged."""
        run = self._runs.pop(kind, None)
        return 0 if run is None else run.count


def one_line(text: str, limit: int = 300) -> str:
    """``text`` on one line and cut short: it may quote what a client sent."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
