"""Spacing requests to a steady rate that never bursts, from the very first one.

Zoom counts an account's requests in one-second windows and answers 429 beyond the limit. A
pacer hands out send times ``interval`` apart (GCRA's "theoretical arrival time"): each
:meth:`Pacer.wait` reserves the next slot, ``max(now, previous slot + interval)``, and returns
when that time has come. Slots are absolute, so timer lateness does not accumulate; a slot is
never earlier than ``interval`` after the previous one, so nothing bursts after an idle spell.

The event loop's timers wake up to about a millisecond late; at 60 requests a second that would
cost several percent of the quota. The pacer therefore sleeps until just before its slot and
yields to the loop for the last stretch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

__all__ = ["Pacer"]

#: Below this much time to wait, yield instead of sleeping (timer granularity is ~1 ms).
_SPIN = 0.0015


class Pacer:
    """Hands out send times ``1 / (rate * headroom)`` apart; ``headroom`` absorbs network jitter."""

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

    def reserve(self) -> float:
        """Take the next slot and return its time (on the pacer's clock)."""
        now = self._clock()
        slot = max(now, self._next)
        self._next = slot + self.interval
        return slot

    def push_back(self, until: float) -> None:
        """No slot before ``until`` (after a 429, say)."""
        self._next = max(self._next, until)

    async def wait(self) -> None:
        """Reserve a slot and return at its time."""
        slot = self.reserve()
        while (left := slot - self._clock()) > 0:  # noqa: ASYNC110 - a deadline, not an event
            await asyncio.sleep(left - _SPIN if left > 2 * _SPIN else 0)
