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

With several replicas on one database only the replica that holds the sender lease sends
(:meth:`Outbox.lead`); the others (:meth:`Outbox.follow`) write their messages and notify it.
A replica waiting for a message's result (``ctx.send``) hears from the sender through storage.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import math
import random
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import attrs
from attrs import define, field, frozen

from chatopsbot.audit import AuditEntry
from chatopsbot.clock import Clock
from chatopsbot.errors import ChatopsbotError
from chatopsbot.logthrottle import RepeatedLog
from chatopsbot.metrics import Metrics
from chatopsbot.outbound.pacer import Pacer
from chatopsbot.outbound.policy import Rejected, RetryLater, RetryPolicy, Throttled
from chatopsbot.storage import (
    LAST_SENT,
    Backend,
    NewMessage,
    QueuedMessage,
    StorageError,
    Write,
)

__all__ = [
    "GONE",
    "GONE_PREFIX",
    "Deliverer",
    "Delivery",
    "MessageGone",
    "Outbox",
    "OutboxClosed",
    "SendFailed",
]

log = logging.getLogger("chatopsbot.outbound")

#: Notifications between processes sharing storage: a lane got messages; a waited-for
#: message is finished.
QUEUED_CHANNEL = "chatopsbot_outbox"
#: Zoom's rate-limit window (seconds).
_WINDOW = 1.0
#: How far past a send the last-sent record reaches (renewed when half of that is left).
_STAMP = 0.25
#: How late after its slot a send may go and still be covered by the record written for it.
_STAMP_MARGIN = 0.05
#: How many lanes' next messages an account keeps read ahead.
_MAX_HEADS = 1000
#: Sends in flight per account, by default: enough to use the whole quota while Zoom takes up
#: to _SLOW_ANSWER seconds to answer (at 60/s and 16 in flight, answers slower than 0.27 s held
#: the bot under its quota), within the HTTP session's pool of 100 connections.
_SLOW_ANSWER = 2.0
_IN_FLIGHT = (16, 100)
DONE_CHANNEL = "chatopsbot_sent"
#: ``[account, lane or null]``: those messages were deleted (the bot left a channel, an account
#: removed the app). The sender drops the next messages it keeps in memory for them.
FORGOTTEN_CHANNEL = "chatopsbot_forgotten"


class SendFailed(ChatopsbotError):
    """A message that became a dead letter; the log already holds the details."""


class OutboxClosed(SendFailed):
    """The bot stopped before the message went out; it stays queued for the next start."""


class MessageGone(SendFailed):
    """An edit or delete of a message that no longer exists in Zoom (deleted by a user)."""


#: The dead-letter reason, and how its error text starts, for a message that is gone.
GONE = "gone"
GONE_PREFIX = "the message no longer exists in Zoom"


@frozen
class Delivery:
    """A successful delivery: what the far side answered, and values to store with it.

    ``record`` is the result as text, kept for a waiter on another replica, which turns it back
    into a result with :meth:`Deliverer.restore`.
    """

    result: Any
    writes: tuple[Write, ...] = ()
    record: str = "null"


class Deliverer(Protocol):
    """Sends one queued message; raises an outcome of :mod:`chatopsbot.outbound.policy`."""

    async def prepare(self, message: QueuedMessage) -> None:
        """Get ready to send ``message`` (a token, say) while it waits for its slot, so what
        :meth:`deliver` does first does not delay it past the slot. Never raises."""
        ...

    async def deliver(self, message: QueuedMessage) -> Delivery:
        """Send ``message`` once; return the :class:`Delivery` or raise."""
        ...

    def describe(self, message: QueuedMessage) -> dict[str, Any]:
        """Log fields for ``message`` (its conversation, command, ...)."""
        ...

    def restore(self, record: str) -> Any:
        """The result a :attr:`Delivery.record` stands for."""
        ...


@define(eq=False)
class _Account:
    name: str
    pacer: Pacer
    wake: asyncio.Event = field(factory=asyncio.Event)
    lanes: set[str] = field(factory=set)
    ready: deque[str] = field(factory=deque)
    busy: set[str] = field(factory=set)
    # Bumped when a lane gets a message while it is busy (see _send).
    added: dict[str, int] = field(factory=dict)
    # The next message of a lane, read in the transaction that recorded the previous one.
    heads: dict[str, QueuedMessage] = field(factory=dict)
    # Bumped when some of the account's messages were deleted (see forget): a message read
    # before that is checked against storage before it is sent.
    forgets: int = 0
    # Until when (wall clock) the account's last-sent record covers this process's sends.
    stamped: float = 0.0
    # The renewal of that record in progress, if any.
    stamping: asyncio.Task[None] | None = None
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
        max_in_flight: int | None = None,
        rescan_every: float | None = None,
        request_grace: float = 15.0,
        lease: Callable[[], bool] | None = None,
        headroom: float = 0.985,
        rng: random.Random | None = None,
    ) -> None:
        self._backend = backend
        self._deliverer = deliverer
        self._rate = rate_limit
        self._clock = clock
        self._policy = policy or RetryPolicy()
        self._metrics = metrics or Metrics()
        fewest, most = _IN_FLIGHT
        self._max_in_flight = max_in_flight or min(
            most, max(fewest, math.ceil(rate_limit * _SLOW_ANSWER))
        )
        # Another process may queue messages at any time when storage is shared.
        self._rescan_every = rescan_every or (5.0 if backend.shared else 30.0)
        self._request_grace = request_grace
        # Checked right before each send: a lost lease stops sending at once, not at the next
        # lease round.
        self._lease = lease or (lambda: True)
        self._headroom = headroom
        self._rng = rng or random.Random()
        self._loop = asyncio.get_running_loop()
        self._accounts: dict[str, _Account] = {}
        # Accounts another process sent for within the last second: not before this loop time.
        self._hold: dict[str, float] = {}
        self._waiters: dict[int, asyncio.Future[Any]] = {}
        # (account, lane) -> adds being written, and which of those lanes the sender emptied
        # meanwhile: the message an add wrote may have been sent already, so it is not kept.
        self._adding: dict[tuple[str, str], int] = {}
        self._emptied: set[tuple[str, str]] = set()
        # Bumped whenever messages are deleted behind the sender's back (see forget).
        self._forgets = 0
        self._sends: set[asyncio.Task[None]] = set()
        self._writes = 0
        self._changes = 0
        self._depth = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._oldest: float | None = None
        self._repeated = RepeatedLog(log)
        self._rescanner: asyncio.Task[None] | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._collects: set[asyncio.Task[None]] = set()
        self._stopping = False
        self._leading = False

    # What the rest of the bot sees.

    @property
    def depth(self) -> int:
        """Messages queued or in flight (dead letters not counted)."""
        return self._depth

    @property
    def busy(self) -> bool:
        """Whether anything is queued, in flight or being written."""
        return bool(self._depth or self._writes)

    @property
    def leading(self) -> bool:
        """Whether this process sends (holds the sender lease)."""
        return self._leading

    async def start(self) -> None:
        """Listen for news from other processes sharing the storage."""
        await self._backend.listen(QUEUED_CHANNEL, self._heard_queued)
        await self._backend.listen(DONE_CHANNEL, self._heard_done)
        await self._backend.listen(FORGOTTEN_CHANNEL, self._heard_forgotten)
        self._sweeper = self._loop.create_task(self._sweep_loop(), name="outbox:sweep")

    async def lead(self) -> None:
        """Start sending: pick up what is queued (by an earlier run or another process)."""
        if self._leading or self._stopping:
            return
        # Zoom counts requests per second: if another process (or this one's previous run)
        # sent within the last second, wait for that second to pass before sending here.
        # Known before sending starts: a message written meanwhile is found by the rescan.
        now = time.time()
        # A record reaches at most a slot ahead (see _stamp) and _STAMP past it; a later one
        # comes from a clock that was wrong, and holding an account longer would not help.
        longest = _WINDOW + _STAMP + 1.0 / (self._rate * self._headroom)
        for account, text in await self._backend.scan(LAST_SENT, "", self._clock.timestamp()):
            try:
                wait = float(text) + _WINDOW - now
            except ValueError:
                continue
            if wait > 0:
                self._hold[account] = self._loop.time() + min(wait, longest)
        self._leading = True
        # Another process may have sent what adds in flight are writing.
        self._emptied.update(self._adding)
        await self._rescan()
        if self._depth:
            log.info(
                "outbox: sending %d queued message(s), the oldest decided %.0f s ago",
                self._depth,
                self._clock.timestamp() - (self._oldest or self._clock.timestamp()),
            )
        self._rescanner = self._loop.create_task(self._rescan_loop(), name="outbox:rescan")

    async def follow(self, within: float) -> None:
        """Stop sending (another process took the lease): requests in flight may finish."""
        self._hold.clear()
        if not self._leading:
            return
        self._leading = False
        await self._halt(within)
        self._accounts.clear()
        self._emptied.update(self._adding)
        self._set_depth(0)

    async def add(
        self,
        messages: Sequence[NewMessage],
        *,
        settle: tuple[str, float] | None = None,
        wait: bool = False,
        audit: Sequence[AuditEntry] = (),
    ) -> list[asyncio.Future[Any]]:
        """Write ``messages`` durably (settling the inbox key ``settle`` and recording the
        ``audit`` entries in the same transaction) and queue them.

        With ``wait``, returns one future per message, resolved with the deliverer's result
        (or failed with :class:`SendFailed`); awaiting them is optional.
        """
        if wait:
            messages = [attrs.evolve(m, waited=True) for m in messages]
        now = self._clock.timestamp()
        lanes = list(dict.fromkeys((m.account, m.lane) for m in messages))
        forgets = self._forgets
        for key in lanes:
            self._adding[key] = self._adding.get(key, 0) + 1
        self._writes += 1
        try:
            # The settled event is recorded durably: should a power loss take this write,
            # it takes the settlement too, and the event is handled again. So the write
            # need not wait for its own fsync.
            added = await self._backend.outbox_add(
                messages, now, settle=settle, audit=audit, defer=settle is not None
            )
        finally:
            self._writes -= 1
            emptied = self._emptied.intersection(lanes)
            for key in lanes:
                if adding := self._adding.pop(key) - 1:
                    self._adding[key] = adding
                else:
                    self._emptied.discard(key)
        ids = added.ids
        futures: list[asyncio.Future[Any]] = []
        for message_id in ids if wait else ():
            future = self._loop.create_future()
            future.add_done_callback(_consume)
            if self._stopping:
                # Written, so it goes out after the restart; nobody can wait for that.
                future.set_exception(OutboxClosed("the bot stopped; sent after the restart"))
            else:
                self._waiters[message_id] = future
            futures.append(future)
        if self._leading and not self._stopping:
            # A lane's head as written saves the sender reading it back, if nothing could
            # have changed the lane since: no forget, and no send of it in the meantime.
            heads = {
                (m.account, m.lane): (i, m)
                # No ids if the event was settled already: nothing was written.
                for i, m in zip(ids, messages, strict=False)
                if i in added.heads and (m.account, m.lane) not in emptied
            }
            for message in messages:
                key = (message.account, message.lane)
                if self._queued(*key) and key in heads and forgets == self._forgets:
                    self._keep_head(*heads[key], now)
            self._set_depth(self._depth + len(ids))
        elif messages and self._backend.shared:
            # The sender is another process: tell it where to look. The messages are written
            # already, so a failed notification must not fail the add (a retry would write them
            # twice); the sender's rescan finds them within seconds.
            try:
                for account, lane in lanes:
                    await self._backend.notify(QUEUED_CHANNEL, json.dumps([account, lane]))
            except StorageError as exc:
                self._repeated.report("outbox: could not notify the sender", str(exc))
        return futures

    async def forget(self, account: str, lane: str | None = None) -> int:
        """Delete ``account``'s messages (with ``lane``, only that lane's queued ones) and stop
        sending them: the account removed the app, or the bot left the channel. Returns how
        many went. A message already in flight may still reach Zoom."""
        gone = await self._backend.outbox_forget(account, lane)
        self._drop_heads(account, lane)
        if gone and self._backend.shared:
            # The sender may be another replica, holding the next message of a lane in memory.
            try:
                await self._backend.notify(FORGOTTEN_CHANNEL, json.dumps([account, lane]))
            except StorageError as exc:
                self._repeated.report("outbox: could not notify the sender", str(exc))
        if gone and self._leading and not self._stopping:
            await self._rescan()
        return gone

    def _keep_head(self, message_id: int, message: NewMessage, created_at: float) -> None:
        account = self._accounts[message.account]
        # Bounded: with many busy conversations, messages wait in storage, not in memory.
        if len(account.heads) < _MAX_HEADS:
            account.heads[message.lane] = QueuedMessage(
                message_id,
                message.lane,
                message.account,
                message.payload,
                message.meta,
                created_at,
                waited=message.waited,
            )

    def _drop_heads(self, account: str, lane: str | None) -> None:
        self._forgets += 1
        known = self._accounts.get(account)
        if known is not None:
            known.forgets += 1
            for name in list(known.heads):
                if lane is None or name.lower() == lane.lower():
                    known.heads.pop(name, None)

    async def _still_queued(self, message: QueuedMessage) -> bool:
        head = await self._backend.outbox_head(message.lane)
        return head is not None and head.id == message.id

    def _heard_forgotten(self, payload: str) -> None:
        try:
            account, lane = json.loads(payload)
        except (ValueError, TypeError):
            log.warning("outbox: ignored a malformed notification %r", payload[:100])
            return
        self._drop_heads(str(account), None if lane is None else str(lane))

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
        if self._depth and self._leading:
            try:
                async with asyncio.timeout(within):
                    await self._idle.wait()
            except TimeoutError:
                pass
        self._stopping = True
        await self._halt(self._request_grace)
        background = [*self._collects, *([self._sweeper] if self._sweeper else [])]
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
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

    async def _halt(self, within: float) -> None:
        """Hand out no more sends; let those in flight finish for up to ``within`` seconds.

        A request cut off mid-flight may have reached Zoom and would be sent again; letting
        it finish and recording it keeps a normal stop or handover free of repeats.
        """
        loops = [a.task for a in self._accounts.values() if a.task is not None]
        loops += [a.stamping for a in self._accounts.values() if a.stamping is not None]
        if self._rescanner is not None:
            loops.append(self._rescanner)
            self._rescanner = None
        for task in loops:
            task.cancel()
        await asyncio.gather(*loops, return_exceptions=True)
        if self._sends:
            _, late = await asyncio.wait(list(self._sends), timeout=within)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)

    # News from other processes.

    def _heard_queued(self, payload: str) -> None:
        if not self._leading:
            return
        try:
            account, lane = json.loads(payload)
        except (ValueError, TypeError):
            log.warning("outbox: ignored a malformed notification %r", payload[:100])
            return
        if self._queued(str(account), str(lane)):
            # Counted here; the exact figure comes with the next rescan.
            self._set_depth(self._depth + 1)

    def _heard_done(self, payload: str) -> None:
        try:
            message_id = int(payload)
        except ValueError:
            return
        if message_id in self._waiters:
            task = self._loop.create_task(self._collect(message_id), name="outbox:collect")
            self._collects.add(task)
            task.add_done_callback(self._collects.discard)

    async def _collect(self, message_id: int) -> None:
        """Resolve a local waiter from the result another process stored."""
        try:
            outcome = await self._backend.outbox_result(message_id)
        except StorageError:
            return  # the sweep tries again
        future = self._waiters.get(message_id)
        if outcome is None or future is None:
            return
        del self._waiters[message_id]
        if future.done():
            return
        state, text = outcome
        if state != "sent":
            gone = text.startswith(GONE_PREFIX)
            future.set_exception(MessageGone(text) if gone else SendFailed(text))
            return
        try:
            future.set_result(self._deliverer.restore(text))
        except Exception as exc:
            log.exception("outbox: the result of message %d cannot be read", message_id)
            future.set_exception(SendFailed(f"unreadable result: {exc}"))

    async def _sweep_loop(self) -> None:
        # Notifications can be missed (a dropped connection): look for results now and then.
        while True:
            await asyncio.sleep(2.0)
            self._repeated.flush()
            # Also while leading: a result another process stored before this one took over.
            for message_id in list(self._waiters):
                await self._collect(message_id)

    # Scheduling.

    def _account(self, name: str) -> _Account:
        account = self._accounts.get(name)
        if account is None:
            pacer = Pacer(self._rate, headroom=self._headroom, clock=self._loop.time)
            pacer.push_back(self._hold.pop(name, 0.0))
            account = self._accounts[name] = _Account(name, pacer)
            account.task = self._loop.create_task(self._run(account), name=f"outbox:{name}")
        return account

    def _queued(self, account_name: str, lane: str) -> bool:
        """Make sure ``lane`` gets its turn; True if it was not known to have messages."""
        if self._stopping or not self._leading:
            return False
        account = self._account(account_name)
        if lane in account.lanes:
            account.added[lane] = account.added.get(lane, 0) + 1
            return False
        account.lanes.add(lane)
        account.ready.append(lane)
        account.wake.set()
        return True

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

    async def _send(self, account: _Account, lane: str) -> None:
        again = True
        first = False
        try:
            generation = account.added.get(lane, 0)
            message = account.heads.pop(lane, None) or await self._backend.outbox_head(lane)
            if message is None:
                again = account.added.get(lane, 0) != generation
                return
            if self._policy.expired(message.created_at, self._clock.timestamp()):
                await self._dead(message, "expired", message.error or "never sent", attempted=False)
                return
            forgets = account.forgets
            await account.pacer.wait(before=functools.partial(self._before, account, message))
            if account.forgets != forgets and not await self._still_queued(message):
                # Deleted while it waited its turn (the bot left the channel, the account
                # removed the app), here or on another replica.
                return
            if self._loop.time() < account.paused_until or not self._lease():
                # A 429 came while this one waited its turn (keep its place until the pause
                # ends), or the sender lease was just lost (another process sends from now on).
                account.heads[lane] = message
                first = True
                return
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
                if not await self._sent(account, message, delivery):
                    # Nothing queued behind it when it was recorded: done, unless a message
                    # was added since (its write may have come after that read).
                    again = account.added.get(lane, 0) != generation
        except asyncio.CancelledError:
            raise
        except StorageError as exc:
            # The message stays where it is in storage; try the lane again in a moment. (If
            # Zoom had taken it, it goes out again: the at-least-once window.)
            first = True
            account.paused_until = max(account.paused_until, self._loop.time() + 1.0)
            self._repeated.report(
                "outbox: storage failing; sending waits for it", str(exc), logging.ERROR
            )
        except Exception:
            # A bug in the bookkeeping: logged, and the lane tried again in a moment.
            first = True
            account.paused_until = max(account.paused_until, self._loop.time() + 1.0)
            log.exception("outbox: sending on %s failed unexpectedly", lane)
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
                account.heads.pop(lane, None)
                if (account.name, lane) in self._adding:
                    self._emptied.add((account.name, lane))
            # A slot is free: the account's loop has something to do only if a lane waits.
            if account.ready:
                account.wake.set()

    async def _tell_done(self, message_id: int) -> None:
        # Recorded already: a lost notification only delays the waiter until its sweep.
        try:
            await self._backend.notify(DONE_CHANNEL, str(message_id))
        except StorageError as exc:
            self._repeated.report("outbox: could not notify a waiter", str(exc))

    async def _before(self, account: _Account, message: QueuedMessage, ahead: float) -> None:
        """What must happen before a send due in ``ahead`` seconds, while it waits its turn."""
        due = time.time() + ahead
        # First: a token fetched on the first send after a start (a round trip to Zoom) made
        # that request arrive late and the next two fall in one second with it (a 429 at 2/s).
        # Not while the account fails: probes go one at a time, far from the quota, and a
        # token endpoint that is down would be asked twice per probe.
        if not account.failures:
            await self._deliverer.prepare(message)
        # Then the record, which covers the send when it really goes.
        await self._stamp(account, max(due, time.time()))

    async def _stamp(self, account: _Account, due: float) -> None:
        """Make sure a record says this process sends for the account until a moment after a
        send due at ``due`` (wall clock), before that send.

        Whoever sends next for the account, after a restart or a failover, waits until a second
        after that: the record is never earlier than a send it stands for, even if the process
        dies between the send and its bookkeeping. While sends keep coming, the record is
        renewed in the background a little before it runs out, so a slow commit (an fsync
        behind others) does not hold a send past its slot; a send it does not cover waits.
        """
        # The send may go a little after its slot (a late timer): covered with room to spare.
        if due + _STAMP_MARGIN >= account.stamped:
            if account.stamping is not None:
                with contextlib.suppress(StorageError):  # written here instead, or raised
                    await asyncio.shield(account.stamping)
            # A write slower than the wait makes the send later than planned: cover it then.
            while max(due, time.time()) + _STAMP_MARGIN >= account.stamped:
                await self._write_stamp(account, max(due, time.time()))
        elif due + _STAMP / 2 >= account.stamped and account.stamping is None:
            task = self._loop.create_task(self._write_stamp(account, due), name="outbox:stamp")
            account.stamping = task
            task.add_done_callback(functools.partial(self._stamped, account))

    async def _write_stamp(self, account: _Account, due: float) -> None:
        until = due + _STAMP
        expires = self._clock.timestamp() + (until - time.time()) + 2 * _WINDOW
        # It guards the quota against a restart or a failover within the second: a crash of
        # the process cannot lose a commit, and after a power loss the restart comes later
        # than that. So it need not wait for the disk, which would hold sends back.
        await self._backend.put(LAST_SENT, account.name, repr(until), expires, defer=True)
        # Only once it is written does it cover sends.
        account.stamped = max(account.stamped, until)

    def _stamped(self, account: _Account, task: asyncio.Task[None]) -> None:
        if account.stamping is task:
            account.stamping = None
        if not task.cancelled() and (exc := task.exception()) is not None:
            # The next send not covered writes the record itself, and fails if it cannot.
            self._repeated.report("outbox: could not renew the last-sent record", str(exc))

    async def _sent(self, account: _Account, message: QueuedMessage, delivery: Delivery) -> bool:
        """Record the delivery; True if the lane has a message queued behind it."""
        remote = message.waited and message.id not in self._waiters
        following = await self._backend.outbox_sent(
            message.id,
            delivery.writes,
            result=delivery.record if remote else None,
            lane=message.lane,
        )
        # Bounded: with many busy conversations, messages wait in storage, not in memory.
        if following is not None and len(account.heads) < _MAX_HEADS:
            account.heads[message.lane] = following
        if remote:
            await self._tell_done(message.id)
        if account.failing_since is not None:
            down = self._loop.time() - account.failing_since
            self._repeated.forget(_failing(account))
            log.warning(
                "Zoom requests for account %s work again after %.0f s and %d failed attempt(s)",
                account.name,
                down,
                account.failures,
                extra={"account": account.name},
            )
        account.failures = 0
        account.failing_since = None
        account.last_error = ""
        self._metrics.send_latency.observe(max(0.0, self._clock.timestamp() - message.created_at))
        self._finish(message, delivery.result, None)
        return following is not None

    async def _retry_later(
        self, account: _Account, message: QueuedMessage, exc: RetryLater
    ) -> None:
        self._metrics.count(self._metrics.retries, exc.reason)
        now = self._loop.time()
        account.failures += 1
        if account.failing_since is None:
            account.failing_since = now
        account.last_error = exc.detail
        delay = self._policy.delay(account.failures, self._rng)
        account.probe_at = now + delay
        if self._repeated.admit(_failing(account)):
            log.warning(
                "sending message %d failed (%s); account %s waits %.1f s, then tries one message "
                "at a time until Zoom answers",
                message.id,
                exc.detail,
                account.name,
                delay,
                extra=self._fields(message),
            )
        await self._backend.outbox_attempted(message.id, exc.detail)

    def _throttled(self, account: _Account, message: QueuedMessage, exc: Throttled) -> None:
        now = self._loop.time()
        self._metrics.count(self._metrics.rate_limited, "daily" if exc.daily else "rate")
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
        if self._repeated.admit(f"Zoom answered 429 for account {account.name}"):
            log.warning(
                "Zoom answered 429 for account %s; pausing it for %.1f s",
                account.name,
                exc.wait,
                extra=self._fields(message),
            )

    async def _dead(
        self, message: QueuedMessage, reason: str, error: str, *, attempted: bool = True
    ) -> None:
        await self._backend.outbox_dead(
            message.id, reason, error, self._clock.timestamp(), attempted=attempted
        )
        if message.waited and message.id not in self._waiters:
            await self._tell_done(message.id)
        self._metrics.count(self._metrics.dead_letters, reason)
        age = self._clock.timestamp() - message.created_at
        if reason == GONE:
            # A user deleted the card the bot wanted to change: nothing anyone must act on.
            log.info(
                "message %d to %s not made: %s",
                message.id,
                message.lane,
                error,
                extra=self._fields(message),
            )
            self._finish(message, None, MessageGone(error))
            return
        log.error(
            "gave up on message %d to %s (%s after %d attempt(s), %.0f s after it was decided): "
            "%s; it is kept as a dead letter (chatopsbot outbox list)",
            message.id,
            message.lane,
            reason,
            message.attempts + (1 if attempted else 0),
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
            except StorageError as exc:
                self._repeated.report(
                    "outbox: storage failing; sending waits for it", str(exc), logging.ERROR
                )
            except Exception:
                log.exception("outbox: rescanning storage failed")


def _failing(account: _Account) -> str:
    """The kind of log line for an account's failed attempts (its summary line reads well)."""
    return f"sending for account {account.name} failed again"


def _consume(future: asyncio.Future[Any]) -> None:
    # Failures are logged where they happen; nobody has to await a reply.
    if not future.cancelled():
        future.exception()
