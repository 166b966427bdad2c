"""The outbound layer: the one place that sends to Zoom's chatbot API.

Every message goes through :class:`Outbox`. It keeps replies to one conversation in the order
they were produced (one queue and one worker per conversation), shares each Zoom account's
request quota fairly between conversations (one limiter per account), waits out 429s, retries
what may succeed later, and gives up loudly on what never will.

The limiter has a capacity of one request: aiolimiter's leaky bucket otherwise lets a full
second's worth of requests through at once on top of the steady rate, and Zoom counts requests
in one-second windows, so a burst allowance above the limit earns 429s. Requests are spaced a
little wider than ``1/rate`` (``headroom``) so network jitter cannot squeeze ``rate + 1`` of
them into one window on Zoom's side.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import deque
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import aiohttp
from aiolimiter import AsyncLimiter
from attrs import define

from chatopsbot.metrics import Metrics
from chatopsbot.zoom.auth import TokenError
from chatopsbot.zoom.cards import ApiCall
from chatopsbot.zoom.client import ApiResult, ZoomApiError

log = logging.getLogger("chatopsbot.outbound")


class ApiCaller(Protocol):
    """What the outbox sends through: :class:`chatopsbot.zoom.client.ZoomApi` in production."""

    async def call(self, call: ApiCall) -> ApiResult:
        """Make one request and return Zoom's 2xx answer, or raise."""
        ...


class SendFailed(Exception):
    """A message the outbox gave up on; the log already holds the details."""


class OutboxClosed(SendFailed):
    """The bot is shutting down and the message was not (or could not be) sent."""


@define
class _Item:
    call: ApiCall
    future: asyncio.Future[ApiResult]
    queued_at: float
    log_extra: Mapping[str, Any]


def _consume(future: asyncio.Future[ApiResult]) -> None:
    # Failures are logged where they happen; nobody has to await a fire-and-forget reply.
    if not future.cancelled():
        future.exception()


class Outbox:
    """Queues, orders, rate-limits and retries API calls. Create it on the running loop."""

    def __init__(
        self,
        api: ApiCaller,
        *,
        rate_limit: float,
        max_attempts: int,
        metrics: Metrics | None = None,
        headroom: float = 0.98,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        rng: random.Random | None = None,
    ) -> None:
        self._api = api
        self._loop = asyncio.get_running_loop()
        self._interval = 1.0 / (rate_limit * headroom)
        self._max_attempts = max_attempts
        self._metrics = metrics or Metrics()
        self._backoff_base = backoff_base
        self._backoff_cap = backoff_cap
        self._rng = rng or random.Random()
        self._queues: dict[str, deque[_Item]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._limiters: dict[str, AsyncLimiter] = {}
        self._paused_until: dict[str, float] = {}
        self._depth = 0
        self._closed = False

    @property
    def depth(self) -> int:
        """Messages queued or in flight."""
        return self._depth

    def submit(
        self, call: ApiCall, *, key: str, log_extra: Mapping[str, Any] | None = None
    ) -> asyncio.Future[ApiResult]:
        """Queue ``call`` behind everything else queued under ``key`` (a conversation JID).

        The future resolves to Zoom's answer, or fails with :class:`SendFailed`. It need not be
        awaited: failures are logged here, with ``log_extra`` (command, caller, ...).
        """
        if self._closed:
            raise OutboxClosed("the bot is shutting down; nothing more can be sent")
        future: asyncio.Future[ApiResult] = self._loop.create_future()
        future.add_done_callback(_consume)
        queue = self._queues.setdefault(key, deque())
        queue.append(_Item(call, future, self._loop.time(), log_extra or {}))
        self._set_depth(self._depth + 1)
        if key not in self._workers:
            self._workers[key] = self._loop.create_task(self._work(key), name=f"outbox:{key}")
        return future

    async def drain(self, within: float) -> int:
        """Refuse new messages, send what is queued within ``within`` seconds, drop the rest.

        Returns how many messages could not be sent (also logged and counted).
        """
        self._closed = True
        if self._workers:
            await asyncio.wait(list(self._workers.values()), timeout=within)
        workers = list(self._workers.values())
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        unsent = 0
        for queue in self._queues.values():
            for item in queue:
                unsent += 1
                if not item.future.done():
                    item.future.set_exception(OutboxClosed("not sent before shutdown"))
        self._queues.clear()
        self._set_depth(0)
        if unsent:
            self._metrics.dropped.labels("shutdown").inc(unsent)
            log.error(
                "shutdown: %d message(s) could not be sent within %.0f s and are lost",
                unsent,
                within,
            )
        else:
            log.info("shutdown: nothing left to send")
        return unsent

    async def _work(self, key: str) -> None:
        queue = self._queues[key]
        try:
            while queue:
                # The item stays queued while in flight, so a drain that times out counts it.
                await self._deliver(queue[0])
                queue.popleft()
                self._set_depth(self._depth - 1)
        finally:
            if not queue:
                self._queues.pop(key, None)
            self._workers.pop(key, None)

    async def _deliver(self, item: _Item) -> None:
        call = item.call
        account = call.account_id
        failures = 0
        while True:
            await self._wait_for_account(account)
            await self._limiter(account).acquire()
            try:
                result = await self._api.call(call)
            except ZoomApiError as exc:
                self._metrics.outbound.labels(str(exc.status)).inc()
                if exc.status == 429:
                    self._rate_limited(item, exc)
                    continue
                if exc.status < 500:
                    return self._fail(item, "rejected", exc)
                error: Exception = exc
            except TokenError as exc:
                self._metrics.outbound.labels("token_error").inc()
                if not exc.retryable:
                    return self._fail(item, "token", exc)
                error = exc
            except TimeoutError as exc:
                self._metrics.outbound.labels("timeout").inc()
                error = exc
            except aiohttp.ClientError as exc:
                self._metrics.outbound.labels("connection_error").inc()
                error = exc
            except Exception as exc:
                # Anything else (a body that cannot be encoded, a bug) cannot improve with a
                # retry; failing this message keeps the conversation's queue moving.
                self._metrics.outbound.labels("error").inc()
                log.exception(
                    "%s %s could not be sent", call.method, call.path, extra=dict(item.log_extra)
                )
                return self._fail(item, "error", exc)
            else:
                self._metrics.outbound.labels(str(result.status)).inc()
                self._metrics.send_latency.observe(self._loop.time() - item.queued_at)
                if not item.future.done():
                    item.future.set_result(result)
                return
            failures += 1
            if failures >= self._max_attempts:
                return self._fail(item, "gave_up", error, attempts=failures)
            delay = self._backoff(failures)
            log.warning(
                "%s %s failed (%s); attempt %d of %d in %.1f s",
                call.method,
                call.path,
                _describe(error),
                failures + 1,
                self._max_attempts,
                delay,
                extra={**item.log_extra, **_error_fields(error)},
            )
            await asyncio.sleep(delay)

    def _rate_limited(self, item: _Item, exc: ZoomApiError) -> None:
        """Pause the account as Zoom asks; the message waits and is sent after the pause."""
        account = item.call.account_id
        now = self._loop.time()
        if exc.daily_limit:
            self._metrics.rate_limited.labels("daily").inc()
            wait = exc.retry_after if exc.retry_after is not None else _seconds_to_utc_midnight()
            self._paused_until[account] = max(self._paused_until.get(account, 0.0), now + wait)
            resume = datetime.now(UTC) + timedelta(seconds=wait)
            log.error(
                "ZOOM DAILY RATE LIMIT reached for account %s: holding every message for it "
                "until %s (%d queued in total)",
                account,
                resume.isoformat(timespec="seconds"),
                self._depth,
                extra={**item.log_extra, **_error_fields(exc)},
            )
            # The daily limit is waited out however long it takes: the message is not lost.
            return
        self._metrics.rate_limited.labels("rate").inc()
        wait = exc.retry_after if exc.retry_after is not None else 1.0
        self._paused_until[account] = max(self._paused_until.get(account, 0.0), now + wait)
        log.warning(
            "Zoom answered 429 for account %s; pausing it for %.1f s",
            account,
            wait,
            extra={**item.log_extra, **_error_fields(exc)},
        )

    async def _wait_for_account(self, account: str) -> None:
        # A loop, not an Event: another 429 may push the pause further while we sleep.
        while (delay := self._paused_until.get(account, 0.0) - self._loop.time()) > 0:  # noqa: ASYNC110
            await asyncio.sleep(delay)

    def _limiter(self, account: str) -> AsyncLimiter:
        limiter = self._limiters.get(account)
        if limiter is None:
            limiter = self._limiters[account] = AsyncLimiter(1, self._interval)
        return limiter

    def _backoff(self, failures: int) -> float:
        ceiling = min(self._backoff_cap, self._backoff_base * 2 ** (failures - 1))
        return float(ceiling * self._rng.uniform(0.5, 1.0))

    def _fail(self, item: _Item, reason: str, error: Exception, *, attempts: int = 1) -> None:
        self._metrics.dropped.labels(reason).inc()
        call = item.call
        log.error(
            "gave up on %s %s after %d attempt(s): %s",
            call.method,
            call.path,
            attempts,
            _describe(error),
            extra={**item.log_extra, **_error_fields(error)},
        )
        if not item.future.done():
            item.future.set_exception(SendFailed(_describe(error)))

    def _set_depth(self, depth: int) -> None:
        self._depth = depth
        self._metrics.queue_depth.set(depth)


def _describe(error: Exception) -> str:
    if isinstance(error, ZoomApiError):
        return f"Zoom answered {error.status}, code {error.code}: {error.message}"
    if isinstance(error, TimeoutError):
        return "timed out"
    return str(error) or type(error).__name__


def _error_fields(error: Exception) -> dict[str, Any]:
    if isinstance(error, ZoomApiError):
        return {"status": error.status, "code": error.code, "tracking_id": error.tracking_id}
    return {}


def _seconds_to_utc_midnight() -> float:
    # Zoom resets daily quotas at 00:00 UTC; used only if the 429 lacks a Retry-After.
    now = datetime.now(UTC)
    midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return (midnight - now).total_seconds()
