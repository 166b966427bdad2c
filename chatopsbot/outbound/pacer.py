"""Spacing requests to a steady rate that never bursts, from the very first one.

Zoom counts an account's requests in one-second windows and answers 429 beyond the limit. The
pacer lets one request go at a time, each in its own slot ``interval`` after the previous
slot (GCRA with no burst allowance). A slot is taken at the moment of sending, so the spacing
holds between actual sends from the very first one (bookkeeping before a send, however long,
shortens the spacing no more than a late timer does, and a queue that was idle starts counting
afresh).

The event loop's timers wake up about a millisecond late. That lateness is carried forward,
up to ``slack``: the next slot counts from this one's planned time, not from the late send,
so the rate does not sag (at 60 requests a second a millisecond a request would cost several
percent of the quota), and no waiter spins on the loop to be on time. Two sends can then be
up to ``slack`` closer than ``interval``, but slots stay ``interval`` apart and each send is at
most ``slack`` after its slot, so a window of one second holds the slots of at most
``(1 s + slack) / interval`` + 1 = ``rate * headroom * (1 s + slack)`` + 1 sends, whole ones:
at most ``rate`` for any slack under ``1 / headroom - 1`` seconds (15 ms at the default headroom
of 0.985). A send later than ``slack`` (the loop stalled) moves the schedule: the next slot
counts from ``slack`` before it, which keeps that bound (every send is at most ``slack`` after
the slot it is counted from).

A request that found the queue idle is not late: the next slot counts from its send. One that
waited while another was let go is on the schedule even if its slot passed while the turn was
handed over to it (a busy loop runs the next waiter a turn later). Waiters go in the order they
came (a fair lock).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

__all__ = ["Pacer"]

#: Timer lateness forgiven per request. asyncio wakes sleepers up to ~1 ms late, more while the
#: loop runs other callbacks (a commit resolving many writes at once); at 2 ms the schedule was
#: reset often enough to cost 1.7% of the quota at 60/s. Well inside the 15 ms the default
#: headroom allows (see above).
SLACK = 0.005


class Pacer:
    """Lets requests go ``1 / (rate * headroom)`` apart; ``headroom`` absorbs network jitter.

    ``clock`` and ``sleep`` default to the running loop's; tests give a virtual pair.
    """

    def __init__(
        self,
        rate: float,
        *,
        headroom: float = 0.985,
        slack: float = SLACK,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.interval = 1.0 / (rate * headroom)
        self.slack = slack
        self._clock = clock or asyncio.get_running_loop().time
        self._sleep = sleep
        self._next = float("-inf")
        self._turn = asyncio.Lock()
        self._sends = 0  # requests let go so far

    def push_back(self, until: float) -> None:
        """No request before ``until`` (after a 429, say), the one waiting for its slot
        included."""
        self._next = max(self._next, until)

    async def wait(self, before: Callable[[float], Awaitable[None]] | None = None) -> None:
        """Return when a request may go; the next one may go ``interval`` later.

        ``before(ahead)`` runs first in this request's turn, ``ahead`` seconds before its slot
        (0 when the slot has come): bookkeeping that must precede the send (a record of it)
        then overlaps the wait instead of delaying the send. If it outlasts the wait, the send
        goes when it is done, and the next slot counts from at most ``slack`` before then: it
        shortens the spacing no more than a late timer does. If it raises, no slot is taken.
        """
        # Whether this request is on the schedule: a request was let go while it waited for
        # its turn, or its slot is still to come. Only one that found the queue idle (or
        # waited behind one that never went) and its slot gone starts afresh. (Not "its slot
        # is still to come" alone: a turn handed over while the loop is busy comes a loop turn
        # later, often after the slot, and counting from then lost the schedule. With turns of
        # 0.5 ms, 1,000 requests a second got 0.71 of the rate.)
        seen = self._sends
        async with self._turn:
            slot = self._next
            paced = self._sends != seen or slot > self._clock()
            if before is not None:
                await before(max(0.0, slot - self._clock()))
            # A push_back meanwhile (a 429 to a request in flight) holds this one too.
            while (left := (slot := max(slot, self._next)) - self._clock()) > 0:
                await self._sleep(left)
            now = self._clock()
            # Late by at most `slack` (a timer, a hand-over): keep to the planned schedule.
            # Later than that (a stall): keep `slack` of the lateness, no more, so the next
            # sends cannot crowd in. Found the queue idle: count from the send.
            start = max(slot, now - self.slack) if paced else now
            self._next = start + self.interval
            self._sends += 1
