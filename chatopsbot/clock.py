"""Time as handlers and the runtime see it, behind a small interface so tests can control it."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    """Where the bot reads the time; the test kit substitutes a controllable one."""

    def now(self) -> datetime:
        """The current time, timezone-aware, in UTC."""
        ...

    def timestamp(self) -> float:
        """The current time as seconds since the epoch."""
        ...


class SystemClock:
    """The real wall clock."""

    def now(self) -> datetime:
        """The current time, timezone-aware, in UTC."""
        return datetime.now(UTC)

    def timestamp(self) -> float:
        """The current time as seconds since the epoch."""
        return time.time()
