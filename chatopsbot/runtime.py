"""The running bot: every loop-bound part, every background task, and the order they stop in.

:meth:`Runtime.start` opens storage, then the HTTP session and token cache, the outbox (which
picks up what an earlier run left queued), the dispatcher, handles the events an earlier run
accepted but did not finish, and starts the scheduler. :meth:`Runtime.stop` undoes it in
reverse: no new webhooks, jobs stopped, running handlers finished (or cancelled at the drain
deadline), the outbox sent for what is left of the drain time, then the session and storage
closed. What is still queued then stays in storage for the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
from collections.abc import Awaitable, Coroutine
from typing import Any, TypeVar

import aiohttp
from attrs import define, field

from chatopsbot.actions import ActionCodec
from chatopsbot.audit import AuditLog
from chatopsbot.clock import Clock
from chatopsbot.config import Settings
from chatopsbot.context import PluginContext
from chatopsbot.dispatch import CORE, Dispatcher
from chatopsbot.hookcaller import HookCaller
from chatopsbot.inbox import Inbox
from chatopsbot.messenger import Messenger
from chatopsbot.metrics import Metrics
from chatopsbot.outbound import Outbox, RetryPolicy, ZoomSender
from chatopsbot.plugins import Plugins
from chatopsbot.scheduler import Job, Scheduler
from chatopsbot.storage import Backend, StorageError, open_backend
from chatopsbot.zoom.auth import TokenCache
from chatopsbot.zoom.client import ZoomApi
from chatopsbot.zoom.events import Event, EventError, parse_event

__all__ = ["Runtime"]

log = logging.getLogger("chatopsbot.runtime")

T = TypeVar("T")

#: How often expired values, forgotten inbox keys and old audit entries are deleted.
PURGE_SECONDS = 600.0
#: The lease whose holder sends, runs jobs and timers, and takes over orphaned events.
LEADER = "chatopsbot:leader"
#: How often the lease is taken or confirmed; a dead holder's lease passes on within this.
LEASE_SECONDS = 0.5
#: How often the holder looks for events whose process died while handling them.
RECLAIM_SECONDS = 10.0
#: Notification from a stopping replica that left an event unfinished.
ORPHANS_CHANNEL = "chatopsbot_orphans"


@define(eq=False)
class Runtime:
    """The bot's live state; build it with :meth:`start` on the running loop."""

    settings: Settings
    backend: Backend
    session: aiohttp.ClientSession
    tokens: TokenCache
    outbox: Outbox
    messenger: Messenger
    inbox: Inbox
    dispatcher: Dispatcher
    scheduler: Scheduler
    metrics: Metrics
    clock: Clock
    tasks: set[asyncio.Future[Any]] = field(factory=set)
    stopping: bool = False
    stopped: bool = False
    leading: bool = False
    storage_error: str = ""
    _leadership: asyncio.Task[None] | None = None
    # Webhooks being recorded: storage stays open until they are (see stop()).
    _accepting: int = 0
    _accepted: asyncio.Event = field(factory=asyncio.Event)
    #: The plugins' hooks, for ``chatops_cleanup`` at the end.
    hooks: HookCaller | None = None

    @classmethod
    async def start(
        cls, settings: Settings, plugins: Plugins, *, clock: Clock, metrics: Metrics
    ) -> Runtime:
        """Open storage, connect, pick up unfinished work and start the jobs."""
        zoom, outbound = settings.zoom, settings.outbound
        backend = await open_backend(settings.storage.path, url=settings.storage.url.reveal())
        session = aiohttp.ClientSession()
        tokens = TokenCache(
            session,
            oauth_url=zoom.oauth_url,
            client_id=zoom.client_id,
            client_secret=zoom.client_secret.reveal(),
            timeout=outbound.request_timeout,
        )
        api = ZoomApi(
            session,
            base_url=zoom.api_base_url,
            tokens=tokens,
            timeout=outbound.request_timeout,
            clock=clock,
        )
        outbox = Outbox(
            backend,
            ZoomSender(api, clock, metrics),
            rate_limit=outbound.rate_limit,
            clock=clock,
            policy=RetryPolicy(give_up_after=outbound.give_up_after, cap=outbound.retry_max_delay),
            metrics=metrics,
            # A request in flight at shutdown ends within its timeout; then it is cut off.
            request_grace=outbound.request_timeout + 1.0,
            lease=functools.partial(backend.holds, LEADER),
        )
        messenger = Messenger(outbox, zoom.bot_jid, backend, clock, app_type=zoom.app_type)

        audit = AuditLog(backend)

        async def purge(ctx: PluginContext) -> None:
            now = ctx.clock.timestamp()
            gone = await backend.purge(now)
            if gone:
                log.debug("purged %d expired entries from storage", gone)
            # A job: it runs on the leader only, so replicas sharing storage purge it once.
            old = await audit.purge(now - settings.audit.keep)
            if old:
                log.debug("purged %d audit entries older than [audit] keep", old)

        # The runtime's own upkeep runs as a job like any plugin's.
        upkeep = Job("purge", purge, interval=PURGE_SECONDS, plugin=CORE)
        scheduler = Scheduler(
            jobs=(*plugins.jobs, upkeep),
            timer_handlers=plugins.timers,
            backend=backend,
            clock=clock,
        )
        dispatcher = Dispatcher(
            commands=plugins.commands,
            actions=plugins.actions,
            configs=plugins.configs,
            messenger=messenger,
            codec=ActionCodec(zoom.secret_token.reveal()),
            backend=backend,
            clock=clock,
            command_timeout=settings.commands.timeout,
            metrics=metrics,
            scheduler=scheduler,
            access=settings.access,
            hooks=HookCaller(plugins.manager),
            welcome=zoom.welcome,
            channel_welcome=zoom.channel_welcome,
            forget_tokens=tokens.clear,
        )
        runtime = cls(
            settings,
            backend,
            session,
            tokens,
            outbox,
            messenger,
            Inbox(backend, clock),
            dispatcher,
            scheduler,
            metrics,
            clock,
            hooks=HookCaller(plugins.manager),
        )
        try:
            await outbox.start()
            await scheduler.listen()
            await backend.listen(ORPHANS_CHANNEL, runtime._heard_orphan)
            if not backend.shared:
                # One process: whatever is pending was left by its own previous run.
                await runtime._replay(await runtime.inbox.pending())
            await runtime._contend()
        except BaseException:
            await runtime._close()
            raise
        runtime._leadership = asyncio.get_running_loop().create_task(
            runtime._lead(), name="leadership"
        )
        return runtime

    async def _contend(self) -> None:
        """Take or confirm the leader lease, and start or stop leading accordingly."""
        try:
            held = await self.backend.hold_lease(LEADER)
            self.storage_error = ""
        except StorageError as exc:
            held = False
            if not self.storage_error:
                log.error("storage failing: %s; not sending until it is back", exc)
            self.storage_error = str(exc)
        if held and not self.leading and not self.stopping:
            try:
                await self.outbox.lead()
                await self.scheduler.start(self.dispatcher.context_for, self.dispatcher.decide)
            except BaseException:
                # Half a leader would hold the lease and send nothing: undo, try next round.
                await self.scheduler.stop(0)
                await self.outbox.follow(0)
                raise
            self.leading = True
            self.metrics.leader.set(1)
            if self.backend.shared:
                log.info("took the leader lease: sending, running jobs and timers here")
        elif not held and self.leading:
            self.leading = False
            self.metrics.leader.set(0)
            log.warning("lost the leader lease: another replica sends and runs jobs now")
            await self.scheduler.stop(0)
            await self.outbox.follow(self.settings.outbound.request_timeout)

    async def _lead(self) -> None:
        """Keep contending for the lease; while leading, take over orphaned events."""
        loop = asyncio.get_running_loop()
        next_reclaim = loop.time() + RECLAIM_SECONDS
        while not self.stopping:
            await asyncio.sleep(LEASE_SECONDS)
            try:
                await self._contend()
                if self.leading and self.backend.shared and loop.time() >= next_reclaim:
                    next_reclaim = loop.time() + RECLAIM_SECONDS
                    await self._reclaim()
            except StorageError as exc:
                # Taking up the lead needs storage too; the next round tries again.
                self.storage_error = str(exc)
            except Exception:
                log.exception("leadership: unexpected failure; trying again")

    def _heard_orphan(self, key: str) -> None:
        if self.leading and not self.stopping:
            self.spawn(self._reclaim(), name="reclaim")

    async def _reclaim(self) -> None:
        # An event pending for longer than any handler may run was left by a process that
        # died while handling it (a live one would have settled it or hit its time limit).
        now = self.clock.timestamp()
        grace = self.settings.commands.timeout + 30.0
        try:
            orphans = await self.backend.inbox_reclaim(now - grace, now)
        except StorageError:
            return
        if orphans:
            log.warning(
                "taking over %d event(s) acknowledged by a replica that stopped handling them",
                len(orphans),
            )
            await self._replay(orphans)

    async def _replay(self, pending: list[tuple[str, bytes]]) -> None:
        """Handle events acknowledged but not finished (by a past run or a lost replica)."""
        if pending and not self.backend.shared:
            log.warning(
                "handling %d event(s) acknowledged before the restart but not finished",
                len(pending),
            )
        for key, body in pending:
            try:
                event = parse_event(body)
            except EventError as exc:
                log.error("an unfinished event can no longer be read (%s); dropped", exc)
                await self.inbox.settle(key)
                continue
            self.metrics.inbox.inc()
            self.spawn(self._handle(event, key), name=f"replay:{type(event).__name__}")

    async def accept(self, event: Event, dedupe_key: str, body: bytes) -> bool:
        """Record ``event`` durably and handle it in the background; False for a duplicate.

        Raises :class:`~chatopsbot.storage.StorageError` when it cannot be recorded (then Zoom
        must hear an error, so that it sends the event again).
        """
        self._accepting += 1
        try:
            key = await self.inbox.accept(dedupe_key, body)
        finally:
            self._accepting -= 1
            if not self._accepting:
                self._accepted.set()
        if key is None:
            return False
        if not self.spawn(self._handle(event, key), name=f"dispatch:{type(event).__name__}"):
            # Shutdown began while the event was being recorded: it is acknowledged, and
            # handled by the next start or, at once, by another replica.
            await self._hand_over(key)
        return True

    async def _handle(self, event: Event, key: str) -> None:
        try:
            await self.dispatcher.dispatch(event, self.inbox.settlement(key))
        except asyncio.CancelledError:
            # Stopped at the drain deadline before the handler finished.
            await asyncio.shield(self._hand_over(key))
            raise

    async def _hand_over(self, key: str) -> None:
        """Leave an unfinished event to whoever handles orphans next, and tell them now."""
        if not self.backend.shared:
            return  # the next start of this one process handles everything pending
        try:
            await self.backend.inbox_release(key)
            await self.backend.notify(ORPHANS_CHANNEL, key)
        except StorageError as exc:
            log.warning("could not hand an unfinished event over (%s); it is taken later", exc)

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> bool:
        """Run ``coro`` in a task that stop waits for; False (and not run) once stopping."""
        if self.stopping:
            coro.close()
            return False
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return True

    def run(self, work: Awaitable[T]) -> asyncio.Future[T]:
        """Run ``work`` (a plugin's HTTP hook) as work that stop waits for."""
        task = asyncio.ensure_future(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    @property
    def busy(self) -> bool:
        """Whether a handler, a job or the outbox has work in progress."""
        return bool(self.tasks) or self.outbox.busy or self.scheduler.busy

    async def health(self) -> tuple[str, dict[str, Any]]:
        """``("ok" | "degraded" | "stopping", details)`` for ``/healthz``."""
        if self.stopping:
            return "stopping", {}
        details: dict[str, Any] = {}
        problems = []
        if self.backend.shared:
            details["role"] = "leader" if self.leading else "follower"
        try:
            depth, oldest = await self.outbox.stats()
            details["queued"] = depth
            details["oldest_queued_seconds"] = None if oldest is None else round(oldest, 1)
        except StorageError as exc:
            problems.append(f"storage failing: {exc}")
        else:
            if self.storage_error:
                problems.append(f"storage failing: {self.storage_error}")
        failing, account, error = self.outbox.failing_for()
        self.metrics.failing.set(failing)
        if failing >= self.settings.outbound.degraded_after:
            problems.append(
                f"Zoom requests for account {account} failing for {failing:.0f} s: {error}"
            )
        if problems:
            details["reason"] = "; ".join(problems)
            return "degraded", details
        return "ok", details

    async def stop(self) -> None:
        """Stop in order, within ``[outbound] drain_timeout``; safe to call twice."""
        if self.stopped:
            return
        self.stopping = True
        self.stopped = True
        log.info(
            "stopping: new webhooks get 503; finishing what runs (at most %g s)",
            self.settings.outbound.drain_timeout,
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.outbound.drain_timeout
        try:
            if self._leadership is not None:
                self._leadership.cancel()
                await asyncio.gather(self._leadership, return_exceptions=True)
            if self._accepting:
                # Webhooks still being recorded get their answer, and their events a handler.
                self._accepted.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(max(0.0, deadline - loop.time())):
                        await self._accepted.wait()
            await self.scheduler.stop(max(0.0, deadline - loop.time()))
            if self.tasks:
                log.info("shutdown: waiting for %d running handler(s)", len(self.tasks))
                _, pending = await asyncio.wait(
                    list(self.tasks), timeout=max(0.0, deadline - loop.time())
                )
                for task in pending:
                    task.cancel()
                if pending:
                    log.error(
                        "shutdown: %d handler(s) did not finish in time and were cancelled; "
                        "their events are handled again at the next start",
                        len(pending),
                    )
                    await asyncio.gather(*pending, return_exceptions=True)
            await self.outbox.stop(max(0.0, deadline - loop.time()))
            if self.leading:
                # Hand over at once rather than when the connection closes.
                await self.backend.release_lease(LEADER)
        except StorageError as exc:
            log.error("shutdown: storage failing: %s", exc)
        finally:
            await self._close()

    async def _close(self) -> None:
        if self.hooks is not None:
            # One by one, each failure on its own: a broken plugin leaves the others' cleanup.
            for impl in reversed(self.hooks.chatops_cleanup.get_hookimpls()):
                try:
                    done = impl.function()
                    if inspect.isawaitable(done):
                        await done
                except Exception:
                    log.exception("shutdown: plugin %s: chatops_cleanup failed", impl.plugin_name)
        await self.session.close()
        await self.backend.close()
