"""The aiohttp adapter: the webhook route, plugin hooks, health and metrics, and the wiring.

Everything that needs the running loop lives in the :class:`~chatopsbot.runtime.Runtime`, built
in a cleanup context and stopped there. The handlers here only translate HTTP: read (within a
time limit), verify, parse, hand over, answer.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import hmac
import json
import logging
import secrets
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import web

from chatopsbot.audit import AuditEntry, AuditLog
from chatopsbot.clock import Clock, SystemClock
from chatopsbot.config import Settings
from chatopsbot.logthrottle import RepeatedLog
from chatopsbot.metrics import Metrics
from chatopsbot.plugins import Plugins, check_rules, load_plugins
from chatopsbot.routes import HOOK_CLAIMS, HookError, HookRequest, HookResponse, Route
from chatopsbot.runtime import Runtime
from chatopsbot.storage import StorageError
from chatopsbot.store import Store
from chatopsbot.zoom.events import EventError, UnknownEvent, UrlValidation, parse_event
from chatopsbot.zoom.signature import SignatureError, url_validation_answer, verify

__all__ = ["RUNTIME", "create_app", "freeze_startup_objects", "handler_options"]

log = logging.getLogger("chatopsbot.app")

#: Zoom's webhook bodies are small; anything bigger is refused before it is read.
MAX_BODY = 1024 * 1024
#: Webhook requests read or verified at once; more are answered 503 without reading them,
#: so unauthenticated clients cannot take every connection the process can hold.
MAX_UNVERIFIED = 256

SETTINGS = web.AppKey("chatopsbot.settings", Settings)
PLUGINS = web.AppKey("chatopsbot.plugins", Plugins)
METRICS = web.AppKey("chatopsbot.metrics", Metrics)
CLOCK = web.AppKey("chatopsbot.clock", Clock)
RUNTIME = web.AppKey("chatopsbot.runtime", Runtime)


class Gate:
    """Counts webhook requests not yet verified, and throttles the log lines about bad ones."""

    def __init__(self, limit: int = MAX_UNVERIFIED) -> None:
        self.limit = limit
        self.open = 0
        self.repeated = RepeatedLog(log)

    def warn(self, kind: str, detail: str) -> None:
        """Log ``kind`` (with ``detail`` the first time), then only counts, per 10 s."""
        self.repeated.report(kind, detail)


GATE = web.AppKey("chatopsbot.gate", Gate)


def handler_options() -> dict[str, Any]:
    """Options for aiohttp's connection handler (``web.AppRunner(app, **handler_options())``).

    ``lingering_time=0``: after answering a request whose body was not read to the end (too
    large, too slow), close the connection at once; aiohttp's default keeps reading for 10 s,
    which lets a slow client hold the connection that long again.
    """
    return {"lingering_time": 0.0, "access_log": None}


def create_app(
    settings: Settings,
    *,
    plugins: Plugins | None = None,
    clock: Clock | None = None,
) -> web.Application:
    """Build the application. Plugins load here, so a broken one fails before the port opens."""
    if plugins is None:
        plugins = load_plugins(settings.plugins, source=settings.source)
    check_rules(settings, plugins)
    app = web.Application(client_max_size=MAX_BODY)
    app[SETTINGS] = settings
    app[PLUGINS] = plugins
    app[METRICS] = Metrics()
    app[CLOCK] = clock or SystemClock()
    app[GATE] = Gate()
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
    runtime = await Runtime.start(settings, app[PLUGINS], clock=app[CLOCK], metrics=app[METRICS])
    app[RUNTIME] = runtime
    # Counts of throttled lines are written even once a flood has stopped.
    flusher = asyncio.get_running_loop().create_task(_flush(app[GATE]), name="log:flush")
    log.info(
        "serving webhooks at %s with %d commands; sending at most %g requests/s per account",
        settings.server.webhook_path,
        len(app[PLUGINS].commands),
        settings.outbound.rate_limit,
    )
    try:
        yield
    finally:
        flusher.cancel()
        await asyncio.gather(flusher, return_exceptions=True)
        app[GATE].repeated.flush(final=True)
        await runtime.stop()


async def _flush(gate: Gate) -> None:
    while True:
        await asyncio.sleep(5)
        gate.repeated.flush()


async def _shutdown(app: web.Application) -> None:
    # on_shutdown runs before cleanup: stop while the server can still answer (503s).
    runtime = app.get(RUNTIME)
    if runtime is not None:
        await runtime.stop()


async def freeze_startup_objects(app: web.Application) -> None:
    """Move everything built at startup out of the garbage collector's full passes.

    Plugins, settings and modules live as long as the process; without this every full
    collection walks them again, a pause of ~25 ms that every webhook in flight then waits
    for (see docs/benchmarks.md). For ``chatopsbot run`` only: a process that builds many apps
    (a test run) would keep their garbage.
    """
    gc.collect()
    gc.freeze()
    _release_free_heap()


def _release_free_heap() -> None:
    """Give the C heap's free pages back to the system (glibc only; elsewhere nothing).

    Startup compiles modules and builds plugins; what it frees is left as holes in the heap
    that glibc does not return by itself, ~1.5 MiB that would stay resident for the life of
    the process (issue #18). Once, here: the heap only grows back as far as work needs.
    """
    if not sys.platform.startswith("linux"):
        return
    # Imported here: only a process that serves needs it, once.
    import ctypes

    try:
        malloc_trim = ctypes.CDLL(None).malloc_trim
    except (AttributeError, OSError):  # not glibc (musl has no malloc_trim)
        return
    malloc_trim(0)


def _answer(app: web.Application, outcome: str, status: int = 200, **kwargs: Any) -> web.Response:
    metrics = app[METRICS]
    metrics.count(metrics.webhooks, outcome)
    if "body" in kwargs or "text" in kwargs:
        return web.Response(status=status, **kwargs)
    return web.Response(
        body=_status_body(outcome),
        status=status,
        content_type="application/json",
        charset="utf-8",
        **kwargs,
    )


@functools.cache
def _status_body(outcome: str) -> bytes:
    """``{"status": outcome}`` (outcomes are a few fixed words, so each is encoded once)."""
    return json.dumps({"status": outcome}).encode()


async def webhook(request: web.Request) -> web.Response:
    """``POST /zoom/webhook``: read, verify, parse, record, acknowledge; handled later."""
    app = request.app
    runtime = app[RUNTIME]
    gate = app[GATE]
    peer = request.remote or "-"
    if runtime.stopping:
        return _answer(app, "shutting_down", 503, headers={"Retry-After": "5"})
    if gate.open >= gate.limit:
        gate.warn(f"webhook refused: {gate.limit} requests are being read already", f"from {peer}")
        return _answer(app, "busy", 503, headers={"Retry-After": "1", "Connection": "close"})
    gate.open += 1
    try:
        body = await _read(request, gate, peer)
        if isinstance(body, web.Response):
            return body
        verify(
            app[SETTINGS].zoom.secret_token.reveal(),
            request.headers.get("x-zm-request-timestamp"),
            request.headers.get("x-zm-signature"),
            body,
            app[CLOCK].timestamp(),
        )
    except SignatureError as exc:
        gate.warn("webhook refused: bad signature", f"from {peer}: {exc}")
        return _answer(app, "bad_signature", 401)
    finally:
        gate.open -= 1
    try:
        event = parse_event(body)
    except EventError as exc:
        log.warning("webhook from %s refused: %s", peer, exc)
        return _answer(app, "malformed", 400, text=f"malformed event: {exc}\n")
    if isinstance(event, UrlValidation):
        log.info("answered Zoom's endpoint URL validation")
        app[METRICS].count(app[METRICS].webhooks, "url_validation")
        return web.json_response(
            url_validation_answer(app[SETTINGS].zoom.secret_token.reveal(), event.plain_token)
        )
    if isinstance(event, UnknownEvent):
        log.info(
            "ignored a %r event: not one this bot handles", event.name, extra={"event": event.name}
        )
        return _answer(app, "ignored")
    try:
        accepted = await runtime.accept(event, event.dedupe_key, body)
    except StorageError as exc:
        # Not recorded: Zoom must hear an error so that it sends the event again.
        gate.warn("webhook not recorded (storage failing), answered 503", str(exc))
        return _answer(app, "storage_error", 503, headers={"Retry-After": "5"})
    if not accepted:
        log.info(
            "dropped a redelivered %s", type(event).__name__, extra={"event": type(event).__name__}
        )
        return _answer(app, "duplicate")
    return _answer(app, "accepted")


async def _read_body(request: web.Request) -> bytes:
    """``request.read()``, with a connection closed mid-body always a ``ConnectionResetError``.

    aiohttp raises ``ConnectionResetError`` when the peer goes away while the body is awaited,
    but a bare ``RuntimeError("Connection closed.")`` when it went away between two chunks
    (the stream checks the protocol before it waits); both mean the same to a handler.
    """
    try:
        return await request.read()
    except RuntimeError as exc:
        transport = request.transport
        if transport is None or transport.is_closing():
            raise ConnectionResetError("connection closed before the body arrived") from exc
        raise


async def _read(request: web.Request, gate: Gate, peer: str) -> bytes | web.Response:
    """The body, or the answer for a body that is too large or too slow."""
    app = request.app
    # Zoom sends a few kB at once; only a slow (or hostile) client takes longer, holding a
    # connection and a file descriptor while it does.
    limit = app[SETTINGS].server.body_timeout
    try:
        if request.content.is_eof():
            # All of it came with the headers (as a webhook's few kB mostly do): no timer.
            return await _read_body(request)
        async with asyncio.timeout(limit):
            return await _read_body(request)
    except web.HTTPRequestEntityTooLarge:
        gate.warn(f"webhook refused: body over {MAX_BODY} bytes", f"from {peer}")
        return _answer(app, "too_large", 413, headers={"Connection": "close"})
    except TimeoutError:
        gate.warn(f"webhook refused: body not received within {limit:g} s", f"from {peer}")
        return _answer(app, "too_slow", 408, headers={"Connection": "close"})
    except ConnectionResetError:
        # The client went away mid-body (or the connection guard closed it to make room):
        # nothing to answer, nothing lost (Zoom sends an unanswered event again).
        gate.warn("webhook dropped: connection closed before the body arrived", f"from {peer}")
        return _answer(app, "closed", 400, headers={"Connection": "close"})


def _hook(plugin: str, spec: Route) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """Adapt a plugin route to aiohttp: size limit, timeout, errors as JSON, metrics."""

    async def handle(request: web.Request) -> web.StreamResponse:
        app = request.app
        runtime = app[RUNTIME]
        claims: list[tuple[Store, str]] = []
        token = HOOK_CLAIMS.set(claims)
        try:
            response = await _hook_response(app, runtime, plugin, spec, request)
        finally:
            HOOK_CLAIMS.reset(token)
        if not 200 <= response.status < 300:
            await _give_back(claims)
        app[METRICS].count(app[METRICS].hooks, plugin, str(response.status))
        if request.method != "GET" and response.status not in (401, 403):
            # GET hooks only read (the lock check); everything else may change state. Refused
            # credentials are a log line, not a row: anyone can send those, as often as they like.
            await _audit_hook(runtime, request, response.status, app[CLOCK].timestamp())
        return response

    return handle


async def _give_back(claims: list[tuple[Store, str]]) -> None:
    """Forget the delivery ids of a request that was not done, so its retry is handled."""
    for store, key in claims:
        try:
            await store.delete(key)
        except StorageError as exc:
            log.warning("could not forget delivery %s (%s); its retry may be a duplicate", key, exc)


async def _audit_hook(runtime: Runtime, request: web.Request, status: int, now: float) -> None:
    """Record a hook call in the audit log; if storage fails, the log line keeps it."""
    headers = request.headers
    ref = headers.get("X-Delivery-Id") or headers.get("X-GitHub-Delivery") or ""
    entry = AuditEntry(
        at=now,
        kind="hook",
        actor_id=request.remote or "-",
        actor_name=headers.get("User-Agent", "")[:100],
        actor_jid="",
        account_id="",
        conversation="",
        conversation_name="",
        what=f"{request.method} {request.path}",
        # Never the query string: senders put tokens there.
        detail=f"{request.content_length or 0} bytes",
        result=str(status),
        ref=ref[:100],
    )
    try:
        await AuditLog(runtime.backend).record([entry])
    except StorageError as exc:
        log.error("could not record a hook call in the audit log (%s): %s", exc, entry.to_json())


async def _hook_response(
    app: web.Application, runtime: Runtime, plugin: str, spec: Route, request: web.Request
) -> web.StreamResponse:
    peer = request.remote or "-"
    if runtime.stopping:
        return web.json_response({"error": "shutting down"}, status=503)
    too_large = web.json_response({"error": f"body over {spec.max_body} bytes"}, status=413)
    if (request.content_length or 0) > spec.max_body:
        return too_large
    limit = app[SETTINGS].server.body_timeout
    try:
        # The same limit as for webhooks: a hook is as reachable by a slow client.
        async with asyncio.timeout(limit):
            body = await _read_body(request)
    except web.HTTPRequestEntityTooLarge:
        return too_large
    except TimeoutError:
        log.warning(
            "%s %s from %s: body not received within %g s",
            request.method,
            request.path,
            peer,
            limit,
        )
        return web.json_response(
            {"error": f"body not received within {limit:g} s"},
            status=408,
            headers={"Connection": "close"},
        )
    except ConnectionResetError:
        log.info(
            "%s %s from %s: connection closed before the body arrived",
            request.method,
            request.path,
            peer,
        )
        return web.json_response({"error": "connection closed"}, status=400)
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
    if answer.send:
        try:
            await runtime.dispatcher.decide(
                plugin, list(answer.send), f"{request.method} {request.path}"
            )
        except StorageError as exc:
            log.error(
                "%s %s: its messages could not be queued (%s); answered 503",
                request.method,
                request.path,
                exc,
                extra=extra,
            )
            return web.json_response(
                {"error": "storage unavailable: send again later"},
                status=503,
                headers={"Retry-After": "5"},
            )
        except Exception:
            ref = secrets.token_hex(4)
            log.exception(
                "%s %s: its messages could not be queued [ref %s]",
                request.method,
                request.path,
                ref,
                extra={**extra, "ref": ref},
            )
            return web.json_response({"error": "internal error", "ref": ref}, status=500)
    if answer.body is None:
        return web.Response(status=answer.status, headers=answer.headers)
    return web.json_response(answer.body, status=answer.status, headers=answer.headers)


async def healthz(request: web.Request) -> web.Response:
    """``GET /healthz``: 200 while serving (``ok`` or ``degraded`` with the reason, the queue
    depth and the age of the oldest queued message), 503 once shutdown has begun."""
    runtime = request.app.get(RUNTIME)
    if runtime is None:
        return web.json_response({"status": "stopping"}, status=503)
    status, details = await runtime.health()
    code = 503 if status == "stopping" else 200
    return web.json_response({"status": status, **details}, status=code)


async def metrics(request: web.Request) -> web.Response:
    """``GET /metrics``: Prometheus text exposition (behind ``[server] metrics_token`` if set)."""
    token = request.app[SETTINGS].server.metrics_token.reveal()
    if token:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode("utf-8", "replace"), token.encode()
        ):
            return web.Response(
                status=401,
                text="a bearer token is required ([server] metrics_token)\n",
                headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
            )
    runtime = request.app.get(RUNTIME)
    if runtime is not None and not runtime.stopping:
        # Refreshes the queue depth, oldest-message and failing gauges.
        await runtime.health()
    response = web.Response(body=request.app[METRICS].render())
    response.headers["Content-Type"] = "text/plain; version=0.0.4; charset=utf-8"
    return response
