"""Scheduled work: recurring jobs (every N seconds, cron in a time zone) and stored one-shot timers.

Recurring jobs run in a loop of their own, so a slow run delays the next one instead of
overlapping it, and a failing run is logged while the job carries on. One-shot timers are kept
in storage: a restart neither loses nor repeats them, and one whose time passed while the bot
was down runs once at startup. A timer is removed after its run, so a crash in the middle of
one means it runs again after the restart (at least once, never silently dropped).
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeAlias
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from attrs import frozen

from chatopsbot.clock import Clock
from chatopsbot.storage import TIMERS, Backend

if TYPE_CHECKING:
    from croniter import croniter

    from chatopsbot.context import PluginContext
    from chatopsbot.responses import HandlerResult

__all__ = ["Job", "Scheduler", "TimerHandler", "Timers", "cron", "every", "timer"]

log = logging.getLogger("chatopsbot.scheduler")

JobHandler: TypeAlias = "Callable[[PluginContext], Awaitable[HandlerResult]]"
TimerFunction: TypeAlias = "Callable[[PluginContext, Any], Awaitable[HandlerResult]]"
#: Writes what a job or timer returned (``Post`` values) as one unit of work.
Deliver: TypeAlias = "Callable[[str, object, str], Awaitable[None]]"

#: Where timers are kept, beside (and out of reach of) the plugins' own namespaces.
TIMERS_NAMESPACE = TIMERS
#: Notification sent when a process that does not run the timers adds or cancels one.
TIMERS_CHANNEL = "chatopsbot_timers"


def _croniter() -> type[croniter]:
    # Imported on first use: croniter brings dateutil (and ctypes with it), ~1 MiB resident
    # in every bot process, most of which never declare a cron job.
    from croniter import croniter

    return croniter


@frozen
class Job:
    """A recurring job: ``interval`` seconds apart, or at the times a cron expression names."""

    name: str
    handler: JobHandler
    interval: float | None = None
    cron: str | None = None
    timezone: str = "UTC"
    plugin: str = ""

    def __attrs_post_init__(self) -> None:
        if (self.interval is None) == (self.cron is None):
            raise ValueError(f"job {self.name!r} needs exactly one of an interval or a cron")
        if self.interval is not None and self.interval <= 0:
            raise ValueError(f"job {self.name!r}: the interval must be positive")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"job {self.name!r}: unknown time zone {self.timezone!r}") from None
        if self.cron is not None and not _croniter().is_valid(self.cron):
            raise ValueError(f"job {self.name!r}: invalid cron expression {self.cron!r}")

    def next_after(self, moment: datetime) -> datetime:
        """The first run time strictly after ``moment`` (aware), in UTC."""
        if self.interval is not None:
            return moment + timedelta(seconds=self.interval)
        assert self.cron is not None  # noqa: S101 - guaranteed by __attrs_post_init__
        local = moment.astimezone(ZoneInfo(self.timezone))
        schedule = _croniter()(self.cron, local)
        nxt: datetime = schedule.get_next(datetime)
        # When clocks fall back an hour, croniter yields the repeated wall time twice; once is
        # what "every day at 02:30" means.
        if nxt.replace(tzinfo=None) == local.replace(tzinfo=None, second=0, microsecond=0):
            nxt = schedule.get_next(datetime)
        return nxt.astimezone(UTC)


@frozen
class TimerHandler:
    """What runs when a plugin's one-shot timer called ``name`` comes due; gets its payload."""

    name: str
    handler: TimerFunction
    plugin: str = ""


def every(seconds: float | timedelta, *, name: str | None = None) -> Callable[[JobHandler], Job]:
    """Declare a job that runs every ``seconds`` (the first run one interval after startup)."""
    interval = seconds.total_seconds() if isinstance(seconds, timedelta) else float(seconds)

    def decorate(handler: JobHandler) -> Job:
        return Job(name or handler.__name__, handler, interval=interval)

    return decorate


def cron(
    expression: str, *, timezone: str = "UTC", name: str | None = None
) -> Callable[[JobHandler], Job]:
    """Declare a job at the times of a cron expression, read in an IANA ``timezone``."""

    def decorate(handler: JobHandler) -> Job:
        return Job(name or handler.__name__, handler, cron=expression, timezone=timezone)

    return decorate


def timer(name: str) -> Callable[[TimerFunction], TimerHandler]:
    """Declare what runs when this plugin's timers called ``name`` come due."""

    def decorate(handler: TimerFunction) -> TimerHandler:
        return TimerHandler(name, handler)

    return decorate


@frozen
class _Timer:
    id: str
    plugin: str
    name: str
    due: float
    payload: Any


class Timers:
    """One plugin's view of the one-shot timers: schedule, cancel, list."""

    def __init__(self, scheduler: Scheduler, plugin: str) -> None:
        self._scheduler = scheduler
        self._plugin = plugin

    async def schedule(self, name: str, at: datetime, payload: Any = None) -> str:
        """Run this plugin's timer handler ``name`` at ``at`` (aware) with ``payload``; its id."""
        return await self._scheduler.add_timer(self._plugin, name, at, payload)

    async def cancel(self, timer_id: str) -> bool:
        """Forget a timer; True if it was pending."""
        return await self._scheduler.cancel_timer(self._plugin, timer_id)

    async def pending(self) -> list[tuple[str, str, datetime, Any]]:
        """This plugin's pending timers: ``(id, name, due, payload)``, soonest first."""
        return [
            (t.id, t.name, datetime.fromtimestamp(t.due, UTC), t.payload)
            for t in await self._scheduler.timers_of(self._plugin)
        ]


class Scheduler:
    """Runs the plugins' jobs and timers. Start it on the running loop; stop it on shutdown."""

    def __init__(
        self,
        *,
        jobs: Iterable[Job],
        timer_handlers: Mapping[tuple[str, str], TimerHandler],
        backend: Backend,
        clock: Clock,
    ) -> None:
        self._jobs = tuple(jobs)
        self._handlers = timer_handlers
        self._backend = backend
        self._clock = clock
        self._context_for: Callable[[str], PluginContext] | None = None
        self._deliver: Deliver | None = None
        self._timers: dict[str, _Timer] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._runs: set[asyncio.Task[None]] = set()
        self._runs_bookkeeping: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()

    @property
    def running(self) -> bool:
        """Whether this process runs the jobs and timers (it holds the scheduler lease)."""
        return bool(self._tasks)

    async def listen(self) -> None:
        """Hear of timers scheduled or cancelled by other processes sharing the storage."""
        await self._backend.listen(TIMERS_CHANNEL, self._heard)

    def _heard(self, payload: str) -> None:
        if self.running:
            task = asyncio.get_running_loop().create_task(self._load(), name="timers:reload")
            self._runs_bookkeeping.add(task)
            task.add_done_callback(self._runs_bookkeeping.discard)

    async def _load(self, *, report: bool = False) -> None:
        """Read the stored timers (the storage is the truth; memory is a cache for the loop)."""
        timers: dict[str, _Timer] = {}
        orphans = 0
        for key, text in await self._backend.scan(TIMERS_NAMESPACE, "", self._clock.timestamp()):
            data = json.loads(text)
            if (data["plugin"], data["name"]) not in self._handlers:
                # Its plugin is disabled or gone: keep it stored for when it comes back.
                orphans += 1
                continue
            timers[key] = _Timer(key, data["plugin"], data["name"], data["due"], data["payload"])
        self._timers = timers
        self._wake.set()
        if report and orphans:
            log.warning("%d stored timer(s) belong to plugins not loaded; kept, not run", orphans)
        if report and timers:
            overdue = sum(t.due <= self._clock.timestamp() for t in timers.values())
            log.info("loaded %d timer(s), %d overdue", len(timers), overdue)

    async def start(
        self, context_for: Callable[[str], PluginContext], deliver: Deliver | None = None
    ) -> None:
        """Load stored timers and start every job's loop; ``context_for`` builds contexts,
        ``deliver`` writes what a run returned (without it, a run may return nothing)."""
        if self.running:
            return
        self._context_for = context_for
        self._deliver = deliver
        await self._load(report=True)
        loop = asyncio.get_running_loop()
        for job in self._jobs:
            self._tasks.append(
                loop.create_task(self._job_loop(job), name=f"job:{job.plugin}:{job.name}")
            )
        self._tasks.append(loop.create_task(self._timer_loop(), name="timers"))

    async def stop(self, within: float) -> None:
        """Stop scheduling; give runs in progress ``within`` seconds to finish."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._runs:
            _, pending = await asyncio.wait(list(self._runs), timeout=within)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    @property
    def busy(self) -> bool:
        """Whether a job or timer is running right now."""
        return bool(self._runs)

    def for_plugin(self, plugin: str) -> Timers:
        """The timers API a plugin's context carries."""
        return Timers(self, plugin)

    async def timers_of(self, plugin: str) -> list[_Timer]:
        """A plugin's pending timers, soonest first (from storage: any process may add one)."""
        found = []
        for key, text in await self._backend.scan(TIMERS_NAMESPACE, "", self._clock.timestamp()):
            data = json.loads(text)
            if data["plugin"] == plugin:
                found.append(_Timer(key, plugin, data["name"], data["due"], data["payload"]))
        return sorted(found, key=lambda t: t.due)

    async def add_timer(self, plugin: str, name: str, at: datetime, payload: Any) -> str:
        """Store a timer and wake the timer loop."""
        if at.tzinfo is None:
            raise ValueError("timers need an aware datetime (with a time zone)")
        if (plugin, name) not in self._handlers:
            raise ValueError(f"plugin {plugin!r} has no timer handler {name!r}")
        timer_id = secrets.token_hex(8)
        entry = _Timer(timer_id, plugin, name, at.timestamp(), payload)
        text = json.dumps({"plugin": plugin, "name": name, "due": entry.due, "payload": payload})
        await self._backend.put(TIMERS_NAMESPACE, timer_id, text, None)
        if self.running:
            self._timers[timer_id] = entry
            self._wake.set()
        elif self._backend.shared:
            await self._backend.notify(TIMERS_CHANNEL, timer_id)
        return timer_id

    async def cancel_timer(self, plugin: str, timer_id: str) -> bool:
        """Remove a pending timer of ``plugin``."""
        text = await self._backend.get(TIMERS_NAMESPACE, timer_id, self._clock.timestamp())
        if text is None or json.loads(text)["plugin"] != plugin:
            return False
        if not await self._backend.delete(TIMERS_NAMESPACE, timer_id):
            return False
        self._timers.pop(timer_id, None)
        self._wake.set()
        if not self.running and self._backend.shared:
            await self._backend.notify(TIMERS_CHANNEL, timer_id)
        return True

    async def _run(self, what: str, call: Callable[[], Awaitable[None]]) -> None:
        # Shielded from the loop's cancellation so stop() can let a run finish.
        task = asyncio.get_running_loop().create_task(self._guarded(what, call), name=what)
        self._runs.add(task)
        task.add_done_callback(self._runs.discard)
        await asyncio.shield(task)

    async def _guarded(self, what: str, call: Callable[[], Awaitable[None]]) -> None:
        try:
            await call()
        except Exception:
            log.exception("%s failed; it stays scheduled", what)

    async def _returned(self, plugin: str, what: str, run: Awaitable[HandlerResult]) -> None:
        result = await run
        if result is None:
            return
        if self._deliver is None:
            raise TypeError(f"{what} returned {type(result).__name__}; nothing delivers it here")
        await self._deliver(plugin, result, what)

    def _context(self, plugin: str) -> PluginContext:
        assert self._context_for is not None  # noqa: S101 - set by start() before any loop runs
        return self._context_for(plugin)

    async def _job_loop(self, job: Job) -> None:
        ctx = self._context(job.plugin)
        what = f"job {job.plugin}:{job.name}"
        next_run = job.next_after(self._clock.now())
        while True:
            await self._clock.sleep((next_run - self._clock.now()).total_seconds())
            await self._run(what, lambda: self._returned(job.plugin, what, job.handler(ctx)))
            now = self._clock.now()
            if job.interval is not None:
                # A run longer than the interval delays the next one; runs never stack up.
                next_run = max(next_run + timedelta(seconds=job.interval), now)
            else:
                next_run = job.next_after(max(now, next_run))

    async def _timer_loop(self) -> None:
        while True:
            self._wake.clear()
            now = self._clock.timestamp()
            due = sorted((t for t in self._timers.values() if t.due <= now), key=lambda t: t.due)
            for entry in due:
                await self._fire(entry)
            upcoming = [t.due for t in self._timers.values()]
            wait = (min(upcoming) - self._clock.timestamp()) if upcoming else 3600.0
            if wait <= 0:
                continue
            sleeper = asyncio.ensure_future(self._clock.sleep(wait))
            woken = asyncio.ensure_future(self._wake.wait())
            try:
                await asyncio.wait({sleeper, woken}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for f in (sleeper, woken):
                    f.cancel()

    async def _fire(self, entry: _Timer) -> None:
        # start() loads only timers whose handler is there, so one is found.
        handler = self._handlers[(entry.plugin, entry.name)]
        ctx = self._context(entry.plugin)
        what = f"timer {entry.plugin}:{entry.name}"

        async def run_then_forget() -> None:
            # Another process may have cancelled it since this one last read the timers.
            if await self._backend.get(TIMERS_NAMESPACE, entry.id, self._clock.timestamp()) is None:
                self._timers.pop(entry.id, None)
                return
            # Forgetting is part of the run, so a shutdown waits for it: a timer that ran is
            # never left stored to run again after the restart.
            try:
                await self._returned(entry.plugin, what, handler.handler(ctx, entry.payload))
            finally:
                self._timers.pop(entry.id, None)
                await self._backend.delete(TIMERS_NAMESPACE, entry.id)

        await self._run(what, run_then_forget)
