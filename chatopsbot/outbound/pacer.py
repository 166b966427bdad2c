"""Spacing requests to a steady rate that never bursts, from the very first one.

Zoom counts an account's requests in one-second windows and answers 429 beyond the limit. The
pacer lets one request go at a time, at least ``interval`` after the previous one actually
went (GCRA with no burst allowance: ``next = max(now, next) + interval``, taken at the moment
of sending). Measuring from the actual send, not from the planned slot, means a waiter that
woke late can never be followed by one that catches up: any two sends are ``interval`` apart.

The event loop's timers wake up to about a millisecond late; at 60 requests a second that would
cost several percent of the quota. The pacer therefore sleeps until just before the time and
yields to the loop for the last stretch. Waiters go in the order they came (a fair lock).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

__all__ = ["Pacer"]

#: Below this much time to wait, yield instead of sleeping (timer granularity is ~1 ms).
_SPIN = 0.0015


class Pacer:
    """Lets requests go ``1 / (rate * headroom)`` apart; ``headroom`` absorbs network jitter."""

    def __init__(
        self,
        rate: float,
        *,
        headroom: float = 0.98,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.interval = 1.0 / (rate * headroom)
        self._clock = clock or asyncio.get_running_loop().time
        self._next = float("-inf")
        self._turn = asyncio.Lock()

    def push_back(self, until: float) -> None:
        """No request before ``until`` (after a 429, say)."""
        self._next = max(self._next, until)

    async def wait(self, before: Callable[[], Awaitable[None]] | None = None) -> None:
        """Return when a request may go; the next one may go ``interval`` later.

        ``before`` runs once the time has come, still in this request's turn: the interval
        counts from when it is done, so bookkeeping before a send cannot shorten the spacing.
        """
        async with self._turn:
            while (left := self._next - self._clock()) > 0:  # noqa: ASYNC110 - a deadline
                await asyncio.sleep(left - _SPIN if left > 2 * _SPIN else 0)
            if before is not None:
                await before()
            self._next = self._clock() + self.interval
