"""Time as handlers and the runtime see it, behind a small interface so tests can control it."""

from __future__ import annotations

import asyncio
import heapq
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """Where the bot reads the time; the test kit substitutes a controllable one."""

    def now(self) -> datetime:
        """The current time, timezone-aware, in UTC."""
        ...

    def timestamp(self) -> float:
        """The current time as seconds since the epoch."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of this clock's time (a test clock waits until advanced)."""
        ...


class SystemClock:
    """The real wall clock."""

    def now(self) -> datetime:
        """The current time, timezone-aware, in UTC."""
        return datetime.now(UTC)

    def timestamp(self) -> float:
        """The current time as seconds since the epoch."""
        return time.time()

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of real time."""
        await asyncio.sleep(max(0.0, seconds))


class ManualClock:
    """A clock that moves only when told to: for tests of jobs, timers and deadlines.

    ``sleep`` waits until :meth:`advance` moves the time past its end, and sleepers wake in
    time order, each at its own moment, so a job sees the time it was scheduled for.
    """

    def __init__(self, start: datetime | None = None) -> None:
        self._now = (start or datetime.now(UTC)).timestamp()
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._count = 0

    def now(self) -> datetime:
        """The clock's current time, in UTC."""
        return datetime.fromtimestamp(self._now, UTC)

    def timestamp(self) -> float:
        """The clock's current time as epoch seconds."""
        return self._now

    async def sleep(self, seconds: float) -> None:
        """Wait until the clock has been advanced ``seconds`` past now."""
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future = asyncio.get_running_loop().create_future()
        self._count += 1
        heapq.heappush(self._sleepers, (self._now + seconds, self._count, future))
        try:
            await future
        finally:
            if not future.done():
                future.cancel()

    async def advance(self, seconds: float | timedelta) -> None:
        """Move the time forward, waking each sleeper at its own moment along the way."""
        delta = seconds.total_seconds() if isinstance(seconds, timedelta) else seconds
        target = self._now + delta
        while self._sleepers and self._sleepers[0][0] <= target:
            when, _, future = heapq.heappop(self._sleepers)
            if future.done():
                continue
            self._now = max(self._now, when)
            future.set_result(None)
            await _let_run()
        self._now = target
        await _let_run()


async def _let_run() -> None:
    # A few turns of the loop let woken tasks reach their next await.
    for _ in range(10):
        await asyncio.sleep(0)
