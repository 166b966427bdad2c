"""The pacer: a steady schedule that never exceeds the quota, on a virtual clock."""

from __future__ import annotations

import asyncio
import bisect
import itertools
from collections.abc import Awaitable, Callable

from hypothesis import given, settings
from hypothesis import strategies as st

from chatopsbot.outbound.pacer import SLACK, Pacer


class VirtualTime:
    """A clock that moves only when a sleeper sleeps, waking it ``late`` seconds late."""

    def __init__(self, late: list[float] | None = None) -> None:
        self.now = 1000.0
        self.late = list(late or [])

    def clock(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        self.now += delay + (self.late.pop(0) if self.late else 0.0)
        await asyncio.sleep(0)


async def send_times(pacer: Pacer, time: VirtualTime, arrivals: list[float]) -> list[float]:
    """Each request arrives at its time (virtual), waits for the pacer, then is sent."""
    sent: list[float] = []

    async def request(at: float) -> None:
        await pacer.wait()
        sent.append(time.now)

    for at in arrivals:
        if at > time.now:
            time.now = at
        # Queue the request, then let it take its turn as far as it can.
        task = asyncio.create_task(request(at))
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        del task
    while len(sent) < len(arrivals):  # noqa: ASYNC110 - virtual time: nothing to wait on
        await asyncio.sleep(0)
    return sent


def most_in_one_second(times: list[float]) -> int:
    return max(bisect.bisect_left(times, t + 1.0) - i for i, t in enumerate(times))


async def test_late_wakeups_within_the_slack_do_not_slow_the_rate():
    time = VirtualTime(late=[0.001] * 200)
    pacer = Pacer(60, clock=time.clock, sleep=time.sleep)
    sent = await send_times(pacer, time, [time.now] * 120)
    # On the planned schedule: 119 intervals after the first, plus the last wake-up's lateness.
    assert abs((sent[-1] - sent[0]) - (119 * pacer.interval + 0.001)) < 1e-9
    assert most_in_one_second(sent) <= 60


async def test_lateness_beyond_the_slack_is_kept_only_up_to_the_slack():
    # A stall of 8 ms moves the schedule by 3: the next slot counts from 5 ms (the slack)
    # before the late send, not from the send (which lost the whole 8 ms every time).
    late = SLACK + 0.003
    time = VirtualTime(late=[late] * 10)
    pacer = Pacer(20, clock=time.clock, sleep=time.sleep)
    sent = await send_times(pacer, time, [time.now] * 4)
    gaps = [b - a for a, b in itertools.pairwise(sent)]
    # The first slot counts from the first send, which had no schedule to be late for.
    assert abs(gaps[0] - (pacer.interval + late)) < 1e-9
    assert all(abs(gap - (pacer.interval + late - SLACK)) < 1e-9 for gap in gaps[1:]), gaps


async def test_the_first_two_sends_are_a_full_interval_apart():
    # A request that did not wait is not late: nothing of the slack is given to the next one.
    time = VirtualTime()
    pacer = Pacer(10, clock=time.clock, sleep=time.sleep)
    sent = await send_times(pacer, time, [time.now, time.now])
    assert sent[1] - sent[0] >= pacer.interval - 1e-9 > 0.1


async def test_an_idle_queue_starts_afresh_without_a_burst():
    time = VirtualTime()
    pacer = Pacer(10, clock=time.clock, sleep=time.sleep)
    start = time.now
    sent = await send_times(pacer, time, [start, start + 5.0, start + 5.0])
    assert sent[1] == start + 5.0
    assert sent[2] - sent[1] >= pacer.interval - 1e-9


async def test_push_back_holds_every_request_until_then():
    time = VirtualTime()
    pacer = Pacer(10, clock=time.clock, sleep=time.sleep)
    pacer.push_back(time.now + 3.0)
    sent = await send_times(pacer, time, [time.now])
    assert sent[0] >= 1003.0


@settings(max_examples=150, deadline=None)
@given(
    rate=st.sampled_from([2, 10, 20, 60, 1000]),
    gaps=st.lists(st.floats(min_value=0, max_value=0.3), min_size=5, max_size=150),
    late=st.lists(st.floats(min_value=0, max_value=0.05), max_size=150),
)
def test_no_second_ever_holds_more_than_the_rate(rate, gaps, late):
    # Whatever the arrivals and however late the timer wakes (up to 50 ms, far past the
    # slack), Zoom's strict one-second sliding window never sees more than `rate` requests.
    async def scenario() -> list[float]:
        time = VirtualTime(late=late)
        pacer = Pacer(rate, clock=time.clock, sleep=time.sleep)
        arrivals, at = [], time.now
        for gap in gaps:
            at += gap
            arrivals.append(at)
        return await send_times(pacer, time, arrivals)

    sent = asyncio.run(scenario())
    assert sent == sorted(sent)
    assert most_in_one_second(sent) <= rate


async def test_bookkeeping_before_a_send_overlaps_its_wait():
    # A record written before each send (a 4 ms commit) is done while the request waits for
    # its slot: the sends keep to the schedule, and each record knows how far ahead it is.
    time = VirtualTime()
    pacer = Pacer(20, clock=time.clock, sleep=time.sleep)
    aheads: list[float] = []
    sent: list[float] = []

    async def record(ahead: float) -> None:
        aheads.append(ahead)
        await time.sleep(0.004)

    async def request() -> None:
        await pacer.wait(before=record)
        sent.append(time.now)

    await asyncio.gather(*(request() for _ in range(5)))
    gaps = [b - a for a, b in itertools.pairwise(sent)]
    assert all(abs(gap - pacer.interval) < 1e-9 for gap in gaps), gaps
    assert aheads[0] == 0.0  # the first had nothing to wait for
    assert all(abs(ahead - pacer.interval) < 1e-9 for ahead in aheads[1:]), aheads


async def test_bookkeeping_that_outlasts_the_wait_delays_the_send_not_the_next_much():
    # Every other record is stuck for 30 ms past its slot: the send after a stuck one comes
    # at most the slack sooner than a full interval, as after a late timer.
    time = VirtualTime()
    pacer = Pacer(20, clock=time.clock, sleep=time.sleep)
    sent: list[float] = []

    async def record(ahead: float) -> None:
        if len(sent) % 2:
            await time.sleep(ahead + 0.030)

    async def request() -> None:
        await pacer.wait(before=record)
        sent.append(time.now)

    await asyncio.gather(*(request() for _ in range(8)))
    gaps = [b - a for a, b in itertools.pairwise(sent)]
    assert all(gap >= pacer.interval - SLACK - 1e-9 for gap in gaps), gaps
    assert min(gaps) < pacer.interval  # the stalled ones kept the slack, no more
    assert most_in_one_second(sent) <= 20


async def test_a_turn_handed_over_late_keeps_the_schedule():
    # A busy loop runs the next waiter a turn after the lock is handed over to it, now and
    # then past its slot (here every other hand-over, by 2 ms). That waiter queued behind
    # another, so it is on the schedule, not a request to an idle queue: the rate holds.
    time = VirtualTime()
    pacer = Pacer(60, clock=time.clock, sleep=time.sleep)
    sent: list[float] = []

    async def request() -> None:
        await pacer.wait()
        sent.append(time.now)
        if len(sent) % 2:
            time.now += pacer.interval + 0.002  # before the next waiter gets to run

    await asyncio.gather(*(request() for _ in range(20)))
    # (The second found the first done, the queue idle: it starts the schedule.) The sends
    # that slept to their slots are exactly on it: each late hand-over cost nothing.
    assert abs((sent[18] - sent[2]) - 16 * pacer.interval) < 1e-9
    assert most_in_one_second(sent) <= 60


async def test_a_request_behind_one_that_never_went_starts_afresh():
    # The first request's bookkeeping fails (a token that cannot be fetched): it takes no slot,
    # and the one behind it found, in effect, an idle queue. The next is a full interval later.
    time = VirtualTime()
    pacer = Pacer(10, clock=time.clock, sleep=time.sleep)
    sent: list[float] = []

    async def failing(ahead: float) -> None:
        await time.sleep(0.2)
        raise OSError("no token")

    async def request(before: Callable[[float], Awaitable[None]] | None = None) -> None:
        await pacer.wait(before=before)
        sent.append(time.now)

    results = await asyncio.gather(request(failing), request(), request(), return_exceptions=True)
    assert isinstance(results[0], OSError)
    assert sent[1] - sent[0] >= pacer.interval - 1e-9


async def test_push_back_holds_the_request_already_waiting_for_its_slot():
    # A 429 to the request in flight pushes back every later one, the one already sleeping
    # towards its slot included.
    time = VirtualTime()
    pacer = Pacer(10, clock=time.clock, sleep=time.sleep)
    sent: list[float] = []

    async def request() -> None:
        await pacer.wait()
        sent.append(time.now)

    first = asyncio.create_task(request())
    second = asyncio.create_task(request())
    await asyncio.sleep(0)  # the first went; the second sleeps towards its slot
    until = time.now + 5.0
    pacer.push_back(until)
    await asyncio.gather(first, second)
    assert sent[1] >= until
