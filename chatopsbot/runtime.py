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
import logging
from collections.abc import Awaitable, Coroutine
from typing import Any, TypeVar

import aiohttp
from attrs import define, field

from chatopsbot.actions import ActionCodec
from chatopsbot.clock import Clock
from chatopsbot.config import Settings
from chatopsbot.context import PluginContext
from chatopsbot.dispatch import CORE, Dispatcher
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

#: How often expired values and forgotten inbox keys are deleted.
PURGE_SECONDS = 600.0


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

    @classmethod
    async def start(
        cls, settings: Settings, plugins: Plugins, *, clock: Clock, metrics: Metrics
    ) -> Runtime:
        """Open storage, connect, pick up unfinished work and start the jobs."""
        zoom, outbound = settings.zoom, settings.outbound
        backend = await open_backend(settings.storage.path)
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
        )
        messenger = Messenger(outbox, zoom.bot_jid, backend, clock)

        async def purge(ctx: PluginContext) -> None:
            gone = await backend.purge(ctx.clock.timestamp())
            if gone:
                log.debug("purged %d expired entries from storage", gone)

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
            hooks=plugins.manager.hook,
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
        )
        try:
            await outbox.start()
            await runtime._replay()
            await scheduler.start(dispatcher.context_for)
        except BaseException:
            await runtime._close()
            raise
        return runtime

    async def _replay(self) -> None:
        """Handle the events a past run acknowledged but did not finish."""
        pending = await self.inbox.pending()
        if pending:
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
            self.spawn(
                self.dispatcher.dispatch(event, self.inbox.settlement(key)),
                name=f"replay:{type(event).__name__}",
            )

    async def accept(self, event: Event, dedupe_key: str, body: bytes) -> bool:
        """Record ``event`` durably and handle it in the background; False for a duplicate.

        Raises :class:`~chatopsbot.storage.StorageError` when it cannot be recorded (then Zoom
        must hear an error, so that it sends the event again).
        """
        key = await self.inbox.accept(dedupe_key, body)
        if key is None:
            return False
        # Shutdown may have begun meanwhile: the event is recorded, the next start handles it.
        self.spawn(
            self.dispatcher.dispatch(event, self.inbox.settlement(key)),
            name=f"dispatch:{type(event).__name__}",
        )
        return True

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
        try:
            depth, oldest = await self.outbox.stats()
            details["queued"] = depth
            details["oldest_queued_seconds"] = None if oldest is None else round(oldest, 1)
        except StorageError as exc:
            problems.append(f"storage failing: {exc}")
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
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.outbound.drain_timeout
        try:
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
        finally:
            await self._close()

    async def _close(self) -> None:
        await self.session.close()
        await self.backend.close()
