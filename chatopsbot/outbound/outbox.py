"""The durable outbox: decided messages kept in storage, sent in order per lane, paced per account.

A message is decided once :meth:`Outbox.add` has written it (with the event it answers marked
handled, in the same transaction). From then on only the sender moves it: sent (row deleted),
or a dead letter (rejected for good, or retried past ``give_up_after``). A restart finds what
was queued and carries on, in the original order of each lane.

Lanes are conversations: a lane has at most one message in flight, and a failed message stays
at its head, so order holds across retries and restarts. A crash between Zoom's answer and the
row's deletion repeats that one message: at most one repeat per lane per crash.

Accounts share a quota: one :class:`~chatopsbot.outbound.pacer.Pacer` and one loop per account
hand out send slots across its lanes, round robin. While an account's requests fail, it sends
one probe at a time with capped exponential backoff; the rest wait their turn in storage.

Only lane names live in memory; messages are read from storage when their turn comes, so a
backlog of any size costs memory per conversation, not per message.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import deque
from collections.abc import Sequence
from typing import Any, Protocol

from attrs import define, field, frozen

from chatopsbot.clock import Clock
from chatopsbot.logthrottle import LogThrottle, suffix
from chatopsbot.metrics import Metrics
from chatopsbot.outbound.pacer import Pacer
from chatopsbot.outbound.policy import Rejected, RetryLater, RetryPolicy, Throttled
from chatopsbot.storage import Backend, NewMessage, QueuedMessage, Write

__all__ = ["Deliverer", "Delivery", "Outbox", "OutboxClosed", "SendFailed"]

log = logging.getLogger("chatopsbot.outbound")


class SendFailed(Exception):
    """A message that became a dead letter; the log already holds the details."""


class OutboxClosed(SendFailed):
    """The bot stopped before the message went out; it stays queued for the next start."""


@frozen
class Delivery:
    """A successful delivery: what the far side answered, and values to store with it."""

    result: Any
    writes: tuple[Write, ...] = ()


class Deliverer(Protocol):
    """Sends one queued message; raises an outcome of :mod:`chatopsbot.outbound.policy`."""

    async def deliver(self, message: QueuedMessage) -> Delivery:
        """Send ``message`` once; return the :class:`Delivery` or raise."""
        ...

    def describe(self, message: QueuedMessage) -> dict[str, Any]:
        """Log fields for ``message`` (its conversation, command, ...)."""
        ...


@define(eq=False)
class _Account:
    name: str
    pacer: Pacer
    wake: asyncio.Event = field(factory=asyncio.Event)
    lanes: set[str] = field(factory=set)
    ready: deque[str] = field(factory=deque)
    busy: set[str] = field(factory=set)
    # Bumped when a lane gets a message while it is busy (see _lane_done).
    added: dict[str, int] = field(factory=dict)
    paused_until: float = 0.0
    failures: int = 0
    failing_since: float | None = None
    last_error: str = ""
    probe_at: float = 0.0
    task: asyncio.Task[None] | None = None


class Outbox:
    """Queues, orders, paces and retries messages durably. Create it on the running loop."""

    def __init__(
        self,
        backend: Backend,
        deliverer: Deliverer,
        *,
        rate_limit: float,
        clock: Clock,
        policy: RetryPolicy | None = None,
        metrics: Metrics | None = None,
        max_in_flight: int = 16,
        rescan_every: float = 30.0,
        headroom: float = 0.98,
        rng: random.Random | None = None,
    ) -> None:
        self._backend = backend
        self._deliverer = deliverer
        self._rate = rate_limit
        self._clock = clock
        self._policy = policy or RetryPolicy()
        self._metrics = metrics or Metrics()
        self._max_in_flight = max_in_flight
        self._rescan_every = rescan_every
        self._headroom = headroom
        self._rng = rng or random.Random()
        self._loop = asyncio.get_running_loop()
        self._accounts: dict[str, _Account] = {}
        self._waiters: dict[int, asyncio.Future[Any]] = {}
        self._sends: set[asyncio.Task[None]] = set()
        self._writes = 0
        self._changes = 0
        self._depth = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._oldest: float | None = None
        self._throttle = LogThrottle()
        self._rescanner: asyncio.Task[None] | None = None
        self._stopping = False

    # What the rest of the bot sees.

    @property
    def depth(self) -> int:
        """Messages queued or in flight (dead letters not counted)."""
        return self._depth

    @property
    def busy(self) -> bool:
        """Whether anything is queued, in flight or being written."""
        return bool(self._depth or self._writes)

    async def start(self) -> None:
        """Pick up what an earlier run left queued, and watch for messages queued elsewhere."""
        await self._rescan()
        if self._depth:
            log.info(
                "outbox: %d message(s) queued before the restart will be sent, oldest %.0f s old",
                self._depth,
                self._clock.timestamp() - (self._oldest or self._clock.timestamp()),
            )
        self._rescanner = self._loop.create_task(self._rescan_loop(), name="outbox:rescan")

    async def add(
        self,
        messages: Sequence[NewMessage],
        *,
        settle: tuple[str, float] | None = None,
        wait: bool = False,
    ) -> list[asyncio.Future[Any]]:
        """Write ``messages`` durably (settling the inbox key ``settle``) and queue them.

        With ``wait``, returns one future per message, resolved with the deliverer's result
        (or failed with :class:`SendFailed`); awaiting them is optional.
        """
        self._writes += 1
        try:
            ids = await self._backend.outbox_add(messages, self._clock.timestamp(), settle=settle)
        finally:
            self._writes -= 1
        futures: list[asyncio.Future[Any]] = []
        for message, message_id in zip(messages, ids, strict=True):
            if wait:
                future = self._loop.create_future()
                future.add_done_callback(_consume)
                if self._stopping:
                    # Written, so it goes out after the restart; nobody can wait for that.
                    future.set_exception(OutboxClosed("the bot stopped; sent after the restart"))
                else:
                    self._waiters[message_id] = future
                futures.append(future)
            self._queued(message.account, message.lane)
        self._set_depth(self._depth + len(ids))
        return futures

    def failing_for(self) -> tuple[float, str, str]:
        """``(seconds, account, last error)`` for the account whose requests fail longest."""
        now = self._loop.time()
        worst = (0.0, "", "")
        for account in self._accounts.values():
            since = account.failing_since
            paused = account.paused_until - now
            if since is not None and now - since > worst[0]:
                worst = (now - since, account.name, account.last_error)
            elif paused > 0 and account.last_error and paused > worst[0]:
                # A daily-limit pause is a failure too, counted by how long it still lasts.
                worst = (paused, account.name, account.last_error)
        return worst

    async def stats(self) -> tuple[int, float | None]:
        """Queued messages and the age in seconds of the oldest, read from storage."""
        depth, oldest = await self._backend.outbox_stats()
        self._oldest = oldest
        age = None if oldest is None else max(0.0, self._clock.timestamp() - oldest)
        self._metrics.oldest_age.set(age or 0.0)
        return depth, age

    async def stop(self, within: float) -> int:
        """Send what is queued for up to ``within`` seconds, then stop; return what is left.

        What is left stays in storage and goes out after the next start.
        """
        if self._rescanner is not None:
            self._rescanner.cancel()
        if self._depth:
            try:
                async with asyncio.timeout(within):
                    await self._idle.wait()
            except TimeoutError:
                pass
        self._stopping = True
        tasks = [a.task for a in self._accounts.values() if a.task is not None]
        tasks += list(self._sends)
        if self._rescanner is not None:
            tasks.append(self._rescanner)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        left = self._depth
        for future in self._waiters.values():
            if not future.done():
                future.set_exception(OutboxClosed("the bot stopped; sent after the restart"))
        self._waiters.clear()
        if left:
            log.warning(
                "shutdown: %d message(s) not sent within %.0f s stay queued and go out after "
                "the restart",
                left,
                within,
            )
        else:
            log.info("shutdown: nothing left to send")
        return left

    # Scheduling.

    def _account(self, name: str) -> _Account:
        account = self._accounts.get(name)
        if account is None:
            pacer = Pacer(self._rate, headroom=self._headroom, clock=self._loop.time)
            account = self._accounts[name] = _Account(name, pacer)
            account.task = self._loop.create_task(self._run(account), name=f"outbox:{name}")
        return account

    def _queued(self, account_name: str, lane: str) -> None:
        if self._stopping:
            return
        account = self._account(account_name)
        if lane in account.lanes:
            account.added[lane] = account.added.get(lane, 0) + 1
            return
        account.lanes.add(lane)
        account.ready.append(lane)
        account.wake.set()

    async def _run(self, account: _Account) -> None:
        """Hand out the account's send slots to its ready lanes, one lane at a time each."""
        while True:
            blocked = (
                not account.ready
                or len(account.busy) >= self._max_in_flight
                # While failing, one probe at a time.
                or (account.failures and account.busy)
            )
            hold = (
                max(
                    account.paused_until,
                    account.probe_at if account.failures else 0.0,
                )
                - self._loop.time()
            )
            if blocked or hold > 0:
                account.wake.clear()
                try:
                    async with asyncio.timeout(hold if not blocked else None):
                        await account.wake.wait()
                except TimeoutError:
                    pass
                continue
            lane = account.ready.popleft()
            account.busy.add(lane)
            task = self._loop.create_task(self._send(account, lane), name=f"outbox:{lane}")
            self._sends.add(task)
            task.add_done_callback(self._sends.discard)
            # Let the send reserve its slot before the next lane is considered.
            await asyncio.sleep(0)

    async def _send(self, account: _Account, lane: str) -> None:
        again = True
        first = False
        try:
            generation = account.added.get(lane, 0)
            message = await self._backend.outbox_head(lane)
            if message is None:
                again = account.added.get(lane, 0) != generation
                return
            if self._policy.expired(message.created_at, self._clock.timestamp()):
                await self._dead(message, "expired", message.error or "never sent", retries=False)
                return
            await account.pacer.wait()
            try:
                delivery = await self._deliverer.deliver(message)
            except Throttled as exc:
                first = True
                self._throttled(account, message, exc)
            except RetryLater as exc:
                first = True
                await self._retry_later(account, message, exc)
            except Rejected as exc:
                await self._dead(message, exc.reason, exc.detail)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # A bug or a body that cannot be encoded: no retry will help this message,
                # and failing it keeps the lane moving.
                log.exception(
                    "message %d could not be sent", message.id, extra=self._fields(message)
                )
                await self._dead(message, "error", f"{type(exc).__name__}: {exc}")
            else:
                await self._sent(account, message, delivery)
        finally:
            account.busy.discard(lane)
            if again and not self._stopping:
                if first:
                    account.ready.appendleft(lane)
                else:
                    account.ready.append(lane)
            else:
                account.lanes.discard(lane)
                account.added.pop(lane, None)
            account.wake.set()

    async def _sent(self, account: _Account, message: QueuedMessage, delivery: Delivery) -> None:
        await self._backend.outbox_sent(message.id, delivery.writes)
        if account.failing_since is not None:
            down = self._loop.time() - account.failing_since
            missed = self._throttle.forget(f"fail:{account.name}")
            log.warning(
                "Zoom requests for account %s work again after %.0f s of failures "
                "(%d failed attempt(s) not logged one by one)",
                account.name,
                down,
                missed,
                extra={"account": account.name},
            )
        account.failures = 0
        account.failing_since = None
        account.last_error = ""
        self._metrics.send_latency.observe(max(0.0, self._clock.timestamp() - message.created_at))
        self._finish(message, delivery.result, None)

    async def _retry_later(
        self, account: _Account, message: QueuedMessage, exc: RetryLater
    ) -> None:
        self._metrics.retries.labels(exc.reason).inc()
        now = self._loop.time()
        account.failures += 1
        if account.failing_since is None:
            account.failing_since = now
        account.last_error = exc.detail
        delay = self._policy.delay(account.failures, self._rng)
        account.probe_at = now + delay
        suppressed = self._throttle.admit(f"fail:{account.name}")
        if suppressed is not None:
            log.warning(
                "sending message %d failed (%s); account %s waits %.1f s, then tries one message "
                "at a time until Zoom answers%s",
                message.id,
                exc.detail,
                account.name,
                delay,
                suffix(suppressed, 10),
                extra=self._fields(message),
            )
        await self._backend.outbox_attempted(message.id, exc.detail)

    def _throttled(self, account: _Account, message: QueuedMessage, exc: Throttled) -> None:
        now = self._loop.time()
        self._metrics.rate_limited.labels("daily" if exc.daily else "rate").inc()
        account.paused_until = max(account.paused_until, now + exc.wait)
        account.pacer.push_back(account.paused_until)
        if exc.daily:
            account.last_error = exc.detail
            log.error(
                "ZOOM DAILY RATE LIMIT reached for account %s: holding its messages for %.0f s "
                "(%d queued in total)",
                account.name,
                exc.wait,
                self._depth,
                extra=self._fields(message),
            )
            return
        suppressed = self._throttle.admit(f"429:{account.name}")
        if suppressed is not None:
            log.warning(
                "Zoom answered 429 for account %s; pausing it for %.1f s%s",
                account.name,
                exc.wait,
                suffix(suppressed, 10),
                extra=self._fields(message),
            )

    async def _dead(
        self, message: QueuedMessage, reason: str, error: str, *, retries: bool = True
    ) -> None:
        await self._backend.outbox_dead(message.id, reason, error, self._clock.timestamp())
        self._metrics.dead_letters.labels(reason).inc()
        age = self._clock.timestamp() - message.created_at
        log.error(
            "gave up on message %d to %s (%s after %d attempt(s), %.0f s after it was decided): "
            "%s; it is kept as a dead letter (chatopsbot outbox list)",
            message.id,
            message.lane,
            reason,
            message.attempts + (1 if retries else 0),
            age,
            error,
            extra=self._fields(message),
        )
        self._finish(message, None, SendFailed(f"{reason}: {error}"))

    def _finish(self, message: QueuedMessage, result: Any, error: Exception | None) -> None:
        self._set_depth(self._depth - 1)
        future = self._waiters.pop(message.id, None)
        if future is None or future.done():
            return
        if error is None:
            future.set_result(result)
        else:
            future.set_exception(error)

    def _fields(self, message: QueuedMessage) -> dict[str, Any]:
        try:
            return self._deliverer.describe(message)
        except Exception:  # a log line must never fail the send
            return {}

    def _set_depth(self, depth: int) -> None:
        self._changes += 1
        self._depth = max(0, depth)
        self._metrics.queue_depth.set(self._depth)
        if self._depth:
            self._idle.clear()
        else:
            self._idle.set()

    async def _rescan(self) -> None:
        """Find lanes queued by another process (``chatopsbot outbox retry``) or a past run."""
        changes = self._changes
        lanes = await self._backend.outbox_lanes()
        depth, _ = await self.stats()
        for lane, account in lanes:
            self._queued(account, lane)
        # The count read is exact only if nothing was added or finished meanwhile.
        if changes == self._changes and not self._writes and not self._sends:
            self._set_depth(depth)

    async def _rescan_loop(self) -> None:
        while True:
            await asyncio.sleep(self._rescan_every)
            try:
                await self._rescan()
            except Exception:
                log.exception("outbox: rescanning storage failed")


def _consume(future: asyncio.Future[Any]) -> None:
    # Failures are logged where they happen; nobody has to await a reply.
    if not future.cancelled():
        future.exception()
