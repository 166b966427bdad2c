"""The aiohttp application: the webhook route, health and metrics, startup and graceful shutdown.

Everything that needs the running loop (HTTP session, token cache, outbox) is created in a
cleanup context and closed there. Shutdown stops taking webhooks (503), lets running handlers
finish and drains the outbox, all within ``[outbound] drain_timeout``.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import aiohttp
from aiohttp import web
from attrs import define, field

from chatopsbot.actions import ActionCodec
from chatopsbot.clock import Clock, SystemClock
from chatopsbot.config import Settings
from chatopsbot.context import PluginContext
from chatopsbot.dedupe import RecentEvents, fingerprint
from chatopsbot.dispatch import CORE, Dispatcher
from chatopsbot.messenger import Messenger
from chatopsbot.metrics import Metrics
from chatopsbot.outbound import Outbox
from chatopsbot.plugins import Plugins, load_plugins
from chatopsbot.routes import HookError, HookRequest, HookResponse, Route
from chatopsbot.scheduler import Job, Scheduler
from chatopsbot.store import Backend, open_backend
from chatopsbot.zoom.auth import TokenCache
from chatopsbot.zoom.client import ZoomApi
from chatopsbot.zoom.events import EventError, UnknownEvent, UrlValidation, parse_event
from chatopsbot.zoom.signature import SignatureError, url_validation_answer, verify

log = logging.getLogger("chatopsbot.app")

T = TypeVar("T")

#: Zoom's webhook bodies are small; anything bigger is refused before it is read.
MAX_BODY = 1024 * 1024
#: Where the keys of recent events are kept across restarts, and for how long.
SEEN = "chatopsbot:seen"
DEDUPE_SECONDS = 3600.0
PURGE_SECONDS = 600.0


@define
class Runtime:
    """The app's live state, created on the running loop by :func:`create_app`'s startup."""

    dispatcher: Dispatcher
    outbox: Outbox
    tokens: TokenCache
    session: aiohttp.ClientSession
    scheduler: Scheduler
    messenger: Messenger
    backend: Backend
    tasks: set[asyncio.Future[Any]] = field(factory=set)
    stopping: bool = False
    stopped: bool = False

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> bool:
        """Run ``coro`` in a task the app keeps and awaits on shutdown; False once stopping."""
        if self.stopping:
            coro.close()
            return False
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return True

    def run(self, work: Awaitable[T]) -> asyncio.Future[T]:
        """Run ``work`` (a plugin's HTTP hook) as work that shutdown waits for."""
        task = asyncio.ensure_future(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task


SETTINGS = web.AppKey("chatopsbot.settings", Settings)
PLUGINS = web.AppKey("chatopsbot.plugins", Plugins)
METRICS = web.AppKey("chatopsbot.metrics", Metrics)
CLOCK = web.AppKey("chatopsbot.clock", Clock)
RECENT = web.AppKey("chatopsbot.recent", RecentEvents)
RUNTIME = web.AppKey("chatopsbot.runtime", Runtime)


def create_app(
    settings: Settings,
    *,
    plugins: Plugins | None = None,
    clock: Clock | None = None,
) -> web.Application:
    """Build the application. Plugins load here, so a broken one fails before the port opens."""
    if plugins is None:
        plugins = load_plugins(settings.plugins, source=settings.source)
    app = web.Application(client_max_size=MAX_BODY)
    app[SETTINGS] = settings
    app[PLUGINS] = plugins
    app[METRICS] = Metrics()
    app[CLOCK] = clock or SystemClock()
    app[RECENT] = RecentEvents(ttl=DEDUPE_SECONDS)
    app.router.add_post(settings.server.webhook_path, webhook)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    for plugin, spec in plugins.routes:
        app.router.add_route(spec.method, f"/hooks/{plugin}{spec.path}", _hook(plugin, spec))
    app.cleanup_ctx.append(_runtime)
    app.on_shutdown.append(_shutdown)
    return app


async def _runtime(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    zoom = settings.zoom
    outbound = settings.outbound
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
        clock=app[CLOCK],
    )
    outbox = Outbox(
        api,
        rate_limit=outbound.rate_limit,
        max_attempts=outbound.max_attempts,
        metrics=app[METRICS],
    )
    messenger = Messenger(outbox, zoom.bot_jid, backend, app[CLOCK])

    async def purge(ctx: PluginContext) -> None:
        gone = await backend.purge(ctx.clock.timestamp())
        if gone:
            log.debug("purged %d expired entries from storage", gone)

    # The runtime's own upkeep runs as a job like any plugin's: expired entries (redelivery
    # keys, plugin values with a ttl) are deleted, not just skipped.
    upkeep = Job("purge", purge, interval=PURGE_SECONDS, plugin=CORE)
    scheduler = Scheduler(
        jobs=(*app[PLUGINS].jobs, upkeep),
        timer_handlers=app[PLUGINS].timers,
        backend=backend,
        clock=app[CLOCK],
    )
    dispatcher = Dispatcher(
        commands=app[PLUGINS].commands,
        actions=app[PLUGINS].actions,
        configs=app[PLUGINS].configs,
        messenger=messenger,
        codec=ActionCodec(zoom.secret_token.reveal()),
        backend=backend,
        clock=app[CLOCK],
        command_timeout=settings.commands.timeout,
        metrics=app[METRICS],
        scheduler=scheduler,
        access=settings.access,
        hooks=app[PLUGINS].manager.hook,
    )
    app[RUNTIME] = Runtime(dispatcher, outbox, tokens, session, scheduler, messenger, backend)
    # Events seen in the last hour, before a restart: their redeliveries are still duplicates.
    for key, _ in await backend.scan(SEEN, "", app[CLOCK].timestamp()):
        app[RECENT].add(key)
    await scheduler.start(dispatcher.context_for)
    log.info(
        "serving webhooks at %s with %d commands; sending at most %g requests/s per account",
        settings.server.webhook_path,
        len(app[PLUGINS].commands),
        outbound.rate_limit,
    )
    try:
        yield
    finally:
        await _shutdown(app)
        await session.close()
        await backend.close()


async def freeze_startup_objects(app: web.Application) -> None:
    """Move everything built at startup out of the garbage collector's full passes.

    Plugins, settings and modules live as long as the process; without this every full
    collection walks them again, a pause of ~25 ms that every webhook in flight then waits
    for (see docs/benchmarks.md). For ``chatopsbot run`` only: a process that builds many apps
    (a test run) would keep their garbage.
    """
    gc.collect()
    gc.freeze()


async def _shutdown(app: web.Application) -> None:
    """Stop taking webhooks, let handlers finish, drain the outbox, all within the drain time."""
    runtime = app.get(RUNTIME)
    if runtime is None or runtime.stopped:
        return
    runtime.stopping = True
    runtime.stopped = True
    budget = app[SETTINGS].outbound.drain_timeout
    loop = asyncio.get_running_loop()
    deadline = loop.time() + budget
    await runtime.scheduler.stop(budget)
    budget = max(0.0, deadline - loop.time())
    if runtime.tasks:
        log.info("shutdown: waiting for %d running handler(s)", len(runtime.tasks))
        _, pending = await asyncio.wait(list(runtime.tasks), timeout=budget)
        for task in pending:
            task.cancel()
        if pending:
            log.error(
                "shutdown: %d handler(s) did not finish in time and were cancelled", len(pending)
            )
            await asyncio.gather(*pending, return_exceptions=True)
    await runtime.outbox.drain(max(0.0, deadline - loop.time()))
    await runtime.messenger.flush()


def _answer(app: web.Application, outcome: str, status: int = 200, **kwargs: Any) -> web.Response:
    app[METRICS].webhooks.labels(outcome).inc()
    if "body" in kwargs or "text" in kwargs:
        return web.Response(status=status, **kwargs)
    return web.json_response({"status": outcome}, status=status, **kwargs)


async def webhook(request: web.Request) -> web.Response:
    """``POST /zoom/webhook``: verify, parse, drop duplicates, acknowledge, dispatch later."""
    app = request.app
    runtime = app[RUNTIME]
    peer = request.remote or "-"
    if runtime.stopping:
        return _answer(app, "shutting_down", 503, headers={"Retry-After": "5"})
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        log.warning("webhook from %s refused: body over %d bytes", peer, MAX_BODY)
        return _answer(app, "too_large", 413)
    try:
        verify(
            app[SETTINGS].zoom.secret_token.reveal(),
            request.headers.get("x-zm-request-timestamp"),
            request.headers.get("x-zm-signature"),
            body,
            app[CLOCK].timestamp(),
        )
    except SignatureError as exc:
        log.warning("webhook from %s refused: %s", peer, exc)
        return _answer(app, "bad_signature", 401)
    try:
        event = parse_event(body)
    except EventError as exc:
        log.warning("webhook from %s refused: %s", peer, exc)
        return _answer(app, "malformed", 400, text=f"malformed event: {exc}\n")
    if isinstance(event, UrlValidation):
        log.info("answered Zoom's endpoint URL validation")
        app[METRICS].webhooks.labels("url_validation").inc()
        return web.json_response(
            url_validation_answer(app[SETTINGS].zoom.secret_token.reveal(), event.plain_token)
        )
    if isinstance(event, UnknownEvent):
        log.info(
            "ignored a %r event: not one this bot handles", event.name, extra={"event": event.name}
        )
        return _answer(app, "ignored")
    key = fingerprint(event.dedupe_key)
    if app[RECENT].seen(key):
        log.info(
            "dropped a redelivered %s", type(event).__name__, extra={"event": type(event).__name__}
        )
        return _answer(app, "duplicate")
    # Shutdown may have begun while the body arrived: then Zoom must hear 503 and resend later.
    if not runtime.spawn(
        runtime.dispatcher.dispatch(event), name=f"dispatch:{type(event).__name__}"
    ):
        return _answer(app, "shutting_down", 503, headers={"Retry-After": "5"})
    expires = app[CLOCK].timestamp() + DEDUPE_SECONDS
    runtime.spawn(runtime.backend.put(SEEN, key, "", expires), name="dedupe:remember")
    return _answer(app, "accepted")


def _hook(plugin: str, spec: Route) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """Adapt a plugin route to aiohttp: size limit, timeout, errors as JSON, metrics."""

    async def handle(request: web.Request) -> web.StreamResponse:
        app = request.app
        runtime = app[RUNTIME]
        response = await _hook_response(app, runtime, plugin, spec, request)
        app[METRICS].hooks.labels(plugin, str(response.status)).inc()
        return response

    return handle


async def _hook_response(
    app: web.Application, runtime: Runtime, plugin: str, spec: Route, request: web.Request
) -> web.StreamResponse:
    peer = request.remote or "-"
    if runtime.stopping:
        return web.json_response({"error": "shutting down"}, status=503)
    too_large = web.json_response({"error": f"body over {spec.max_body} bytes"}, status=413)
    if (request.content_length or 0) > spec.max_body:
        return too_large
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        return too_large
    if len(body) > spec.max_body:
        return too_large
    hook_request = HookRequest(
        method=request.method,
        path=request.path,
        query=dict(request.query),
        headers={k.lower(): v for k, v in request.headers.items()},
        body=body,
        remote=peer,
    )
    extra = {"plugin": plugin, "event": f"{request.method} {request.path}"}
    ctx = runtime.dispatcher.context_for(plugin)
    try:
        async with asyncio.timeout(app[SETTINGS].commands.timeout):
            # Shutdown waits for the handler, so what it sends is drained, not refused.
            answer: object = await runtime.run(spec.handler(ctx, hook_request))
    except HookError as exc:
        log.warning(
            "%s %s from %s: %d %s",
            request.method,
            request.path,
            peer,
            exc.status,
            exc.message,
            extra=extra,
        )
        return web.json_response({"error": exc.message}, status=exc.status)
    except Exception:
        ref = secrets.token_hex(4)
        log.exception(
            "%s %s failed [ref %s]", request.method, request.path, ref, extra={**extra, "ref": ref}
        )
        return web.json_response({"error": "internal error", "ref": ref}, status=500)
    if not isinstance(answer, HookResponse):
        ref = secrets.token_hex(4)
        log.error(
            "%s %s returned a %s, not a HookResponse [ref %s]",
            request.method,
            request.path,
            type(answer).__name__,
            ref,
            extra={**extra, "ref": ref},
        )
        return web.json_response({"error": "internal error", "ref": ref}, status=500)
    if answer.body is None:
        return web.Response(status=answer.status, headers=answer.headers)
    return web.json_response(answer.body, status=answer.status, headers=answer.headers)


async def healthz(request: web.Request) -> web.Response:
    """``GET /healthz``: 200 while serving, 503 once shutdown has begun."""
    runtime = request.app.get(RUNTIME)
    if runtime is None or runtime.stopping:
        return web.json_response({"status": "stopping"}, status=503)
    return web.json_response({"status": "ok", "queued": runtime.outbox.depth})


async def metrics(request: web.Request) -> web.Response:
    """``GET /metrics``: Prometheus text exposition."""
    response = web.Response(body=request.app[METRICS].render())
    response.headers["Content-Type"] = "text/plain; version=0.0.4; charset=utf-8"
    return response
