"""Serving the app for ``chatopsbot run``, with guards against hostile connections.

``web.run_app`` keeps a connection open for as long as its client keeps sending, one byte every
few seconds if it likes. With the common limit of 1,024 open files, a thousand such connections
leave no descriptor for Zoom's webhooks, for the connections to Zoom or for storage, and asyncio
then logs a traceback for every ``accept()`` that fails, hundreds a second. :func:`serve` runs
the same app (an :class:`aiohttp.web.AppRunner`) with:

- a :class:`ConnectionGuard` between the listening socket and aiohttp's protocol: a request's
  headers must arrive within ``header_timeout`` and its body within ``body_timeout`` (a backstop
  for handlers that do not limit their own reads), and at most ``max_connections`` connections
  are open, derived from the open-files limit. At the cap the oldest connection still sending a
  request (else the oldest idle one) is closed to make room; only if every one is busy with a
  request whose body has arrived is the new one refused;
- a loop exception handler and a filter on aiohttp's server logger that turn floods (``accept()``
  out of descriptors, clients that disconnect or send garbage) into one line and then one count
  per interval, never a traceback (:class:`RepeatedLog`);
- SIGTERM and SIGINT: stop listening, then ``runner.cleanup()`` runs the app's shutdown and
  cleanup (the drain), then exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import errno
import logging
import os
import signal
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from typing import Any, cast

from aiohttp import StreamReader, web
from aiohttp.http import HttpProcessingError
from aiohttp.typedefs import Handler
from attrs import define, field, frozen, validators

from chatopsbot.logthrottle import RepeatedLog, one_line

__all__ = [
    "ClientErrorFilter",
    "ConnectionGuard",
    "ConnectionLimits",
    "LoopErrorHandler",
    "open_files_limit",
    "run",
    "serve",
]

log = logging.getLogger("chatopsbot.serve")

#: Descriptors left for everything but inbound connections: storage (the SQLite file with its
#: journal and WAL, or a PostgreSQL pool of up to 10), the pool of connections to Zoom (a handful
#: at Zoom's rate limits), log files, the loop's own (epoll, self-pipe), the listening sockets,
#: and whatever a plugin opens.
RESERVED_FILES = 128
#: How many connections asyncio accepts per wake-up. They hold descriptors before the guard
#: sees them (for two or three loop iterations), so about three times as many must be spare.
DEFAULT_BACKLOG = 128
#: However high the open-files limit, each connection costs memory (its buffers, a protocol and
#: a task); a webhook endpoint needs nowhere near this many.
MAX_CONNECTIONS = 10_000
#: Whatever the limit, a few connections are always allowed (a tiny limit is a misconfiguration
#: better reported by ``accept()`` failing than by refusing everything).
MIN_CONNECTIONS = 8
#: The errnos with which ``accept()`` fails when the process or the system runs out of resources.
RESOURCE_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
#: What is logged (at INFO, throttled) when a client goes away mid-request: not an error of ours.
CLIENT_GONE = "a client disconnected before its request was complete"

_positive = validators.gt(0.0)


def open_files_limit() -> int | None:
    """This process's soft ``RLIMIT_NOFILE``; ``None`` if unlimited or unknown (Windows)."""
    try:
        import resource  # POSIX only: imported where it is needed
    except ImportError:  # pragma: no cover - Windows
        return None
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY else soft


@frozen
class ConnectionLimits:
    """Limits on inbound connections. :meth:`for_open_files` sizes them for the process.

    The defaults are what :meth:`for_open_files` gives for 1,024 open files.
    ``max_connections`` plus three times ``backlog`` must fit in the open-files limit with room
    to spare, or ``accept()`` fails (which is survived: see :class:`LoopErrorHandler`).
    """

    #: Seconds a connection has to deliver a request's complete headers: counted from when it
    #: was accepted, or on a kept-alive connection from the first byte of the next request.
    header_timeout: float = field(default=10.0, validator=_positive)
    #: Seconds from a request's headers to the end of its body. A backstop for handlers that
    #: read without a time limit of their own (plugin hooks); the webhook handler has a shorter
    #: one (``[server] body_timeout``) and answers 408 itself. It also cuts short aiohttp's
    #: lingering read of a body nobody wanted.
    body_timeout: float = field(default=12.0, validator=_positive)
    #: Seconds an idle kept-alive connection stays open (aiohttp's ``keepalive_timeout``).
    idle_timeout: float = field(default=30.0, validator=_positive)
    #: Inbound connections open at most.
    max_connections: int = field(default=704, validator=validators.ge(1))
    #: How many connections asyncio accepts per wake-up (it passes this to ``listen()`` too).
    backlog: int = field(default=64, validator=validators.ge(1))
    #: The kernel's queue of connections not yet accepted (capped by ``net.core.somaxconn``).
    #: Queued connections hold no descriptor of ours; a long queue keeps a real webhook in line
    #: during a flood instead of having its SYN dropped and retried a second or more later.
    listen_queue: int = field(default=1024, validator=validators.ge(1))
    #: Seconds between checks of the deadlines: a slow connection is closed up to this late.
    check_interval: float = field(default=0.5, validator=_positive)
    #: A repeated log line is summarised at most once per this many seconds.
    log_interval: float = field(default=10.0, validator=_positive)
    #: aiohttp's parser limits (its own defaults): the request line and each header.
    max_line_size: int = field(default=8190, validator=validators.ge(1024))
    max_field_size: int = field(default=8190, validator=validators.ge(1024))

    @classmethod
    def for_open_files(cls, open_files: int | None = None) -> ConnectionLimits:
        """The defaults, with ``max_connections`` and ``backlog`` sized for ``open_files``.

        ``open_files`` defaults to this process's soft ``RLIMIT_NOFILE``. A quarter of the
        descriptors, at most :data:`RESERVED_FILES`, stay free for storage, the connections to
        Zoom and logs; three times the backlog stays free for connections accepted in a burst
        before the guard sees them and for those being closed (a closed socket's descriptor is
        released an iteration later). What is left is for connections: 704 of 1,024, 144 of 256.
        """
        if open_files is None:
            open_files = open_files_limit()
        if open_files is None:
            return cls(max_connections=MAX_CONNECTIONS, backlog=DEFAULT_BACKLOG)
        backlog = max(8, min(DEFAULT_BACKLOG, open_files // 16))
        reserve = min(RESERVED_FILES, open_files // 4)
        room = open_files - reserve - 3 * backlog
        return cls(
            max_connections=max(MIN_CONNECTIONS, min(MAX_CONNECTIONS, room)), backlog=backlog
        )


class LoopErrorHandler:
    """The loop's exception handler while serving: resource floods as throttled single lines.

    When descriptors run out, asyncio reports each failed ``accept()`` with a traceback, and in
    one wake-up it tries up to ``backlog`` times and schedules as many retries: hundreds of
    tracebacks a second. Here the first is one WARNING line, then a count per interval. An error
    on a connection whose client went away is not ours: INFO, throttled. Anything else goes to
    the loop's default handler (traceback and all); repeats of the same error within an interval
    are counted instead.
    """

    def __init__(self, repeated: RepeatedLog) -> None:
        self._repeated = repeated

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """Handle one report from the loop (see :meth:`asyncio.loop.set_exception_handler`)."""
        exc = context.get("exception")
        if isinstance(exc, OSError) and exc.errno in RESOURCE_ERRNOS:
            code = errno.errorcode.get(exc.errno, str(exc.errno))
            where = _sockname(context.get("socket"))
            self._repeated.report(
                f"cannot accept connections: {os.strerror(exc.errno)} ({code})",
                f"listening on {where}; asyncio retries every second; raise the open-files "
                "limit or expect new connections to wait",
            )
            return
        if isinstance(exc, ConnectionError) and ("transport" in context or "protocol" in context):
            self._repeated.report(CLIENT_GONE, level=logging.INFO)
            return
        message = str(context.get("message") or "unhandled exception in the event loop")
        kind = message if exc is None else f"{message}: {type(exc).__name__}: {exc}"
        if self._repeated.admit(one_line(kind), logging.ERROR):
            loop.default_exception_handler(context)


class ClientErrorFilter(logging.Filter):
    """On aiohttp's server logger: a malformed request is a throttled line, not a traceback.

    aiohttp logs ``Error handling request`` with a traceback for a request line or header it
    cannot parse, or a body it cannot decode. That is the client's doing, and a client can
    repeat it as fast as it likes: one WARNING line, then a count. Other records pass, those
    with a ``ConnectionError`` included: a handler whose *client* went away is answered by
    :meth:`ConnectionGuard.middleware`, which can tell (the transport is gone), so what reaches
    the log is a handler's own connection failing (to Zoom, say): a real error.
    """

    def __init__(self, repeated: RepeatedLog) -> None:
        super().__init__()
        self._repeated = repeated

    def filter(self, record: logging.LogRecord) -> bool:
        """False (after reporting it throttled) for a client's error; True for the rest."""
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError | web.RequestPayloadError):
            detail = f"{record.getMessage()}: {type(exc).__name__}: {exc}"
            self._repeated.report("refused a malformed request", detail)
            return False
        return True


class _Phase(enum.Enum):
    HEADERS = "receiving request headers"
    HANDLING = "in a handler"
    IDLE = "idle"


@define(eq=False)
class _Connection:
    """What the guard knows of one connection."""

    transport: asyncio.Transport
    peer: str
    since: float
    phase: _Phase = _Phase.HEADERS
    #: The body of the latest request while it is still arriving.
    body: StreamReader | None = None
    body_deadline: float = 0.0
    closed_by_guard: bool = False

    @property
    def unfinished(self) -> bool:
        """Still sending a request: no complete headers yet, or a body still arriving."""
        return self.phase is _Phase.HEADERS or (self.body is not None and not self.body.is_eof())


class _GuardedProtocol(asyncio.Protocol):
    """The protocol of one connection: reports to the guard, delegates to aiohttp's.

    aiohttp's protocol (a ``RequestHandler``) is made only once the guard has admitted the
    connection, so a refused connection costs nothing but its socket.
    """

    __slots__ = ("_conn", "_guard", "_inner", "_make")

    def __init__(self, guard: ConnectionGuard, make: Callable[[], asyncio.Protocol]) -> None:
        self._guard = guard
        self._make = make
        self._inner: asyncio.Protocol | None = None
        self._conn: _Connection | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Admit the connection (closing another to make room if need be) or refuse it."""
        # A TCP server's transport. Not checked with isinstance: uvloop's transports have the
        # methods without being asyncio.Transport subclasses.
        tcp = cast("asyncio.Transport", transport)
        conn = self._guard._admit(tcp)
        if conn is None:
            tcp.abort()
            return
        self._conn = conn
        self._inner = self._make()
        self._inner.connection_made(tcp)

    def data_received(self, data: bytes) -> None:
        """Note the start of a new request, then let aiohttp parse."""
        if self._inner is None or self._conn is None:
            return
        self._guard._data(self._conn)
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        """aiohttp's answer (it closes: a half-closed client sends no more requests)."""
        return None if self._inner is None else self._inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        """Forget the connection; aiohttp cancels what it was doing for it."""
        if self._conn is not None:
            self._guard._forget(self._conn)
        if self._inner is not None:
            self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        """Flow control is aiohttp's."""
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        """Flow control is aiohttp's."""
        if self._inner is not None:
            self._inner.resume_writing()


class ConnectionGuard:
    """Tracks inbound connections, enforces :class:`ConnectionLimits`, closes the slow ones.

    It sits between the listening socket and aiohttp: :meth:`protocol_factory` wraps aiohttp's
    factory (``runner.server``), so the guard sees every connection arrive, every chunk of data
    and every close; :meth:`middleware` tells it when a request's headers are complete (aiohttp
    calls the handler then) and when the handler is done. Only public aiohttp API is used: the
    server object as a protocol factory, a middleware, ``request.transport`` and
    ``request.content``. A periodic check closes connections past their deadlines; every close
    is logged through a :class:`RepeatedLog`, so once per connection at most and one line per
    interval in aggregate, without a traceback.
    """

    def __init__(self, limits: ConnectionLimits, repeated: RepeatedLog) -> None:
        self.limits = limits
        self._repeated = repeated
        # Insertion order is age order: the oldest connections are found first.
        self._conns: dict[asyncio.BaseTransport, _Connection] = {}
        self._watcher: asyncio.Task[None] | None = None
        #: Connections closed or refused, by reason: ``header_timeout``, ``body_timeout``,
        #: ``evicted``, ``refused``.
        self.closed: Counter[str] = Counter()

    @property
    def open(self) -> int:
        """Connections open now."""
        return len(self._conns)

    def protocol_factory(
        self, make: Callable[[], asyncio.Protocol]
    ) -> Callable[[], asyncio.Protocol]:
        """A factory for ``loop.create_server`` whose protocols report to this guard."""
        return lambda: _GuardedProtocol(self, make)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Marks a request's headers as complete while its handler runs; quiet on disconnects."""
        conn = self._conns.get(request.transport) if request.transport is not None else None
        if conn is None:  # not a connection of ours (the app served another way)
            return await handler(request)
        loop = asyncio.get_running_loop()
        conn.phase = _Phase.HANDLING
        body = request.content
        if body.is_eof():
            conn.body = None
        else:
            conn.body = body
            conn.body_deadline = loop.time() + self.limits.body_timeout
        try:
            return await handler(request)
        except ConnectionError:
            transport = request.transport
            if transport is not None and not transport.is_closing():
                raise
            # The client went away (or the guard closed it) while the handler read the body:
            # nobody is left to answer, and it is not an error. The response below is never
            # sent; returning one keeps aiohttp from logging the exception with a traceback.
            if not conn.closed_by_guard:
                self._repeated.report(CLIENT_GONE, f"from {conn.peer}", logging.INFO)
            return web.Response(status=400)
        finally:
            conn.phase = _Phase.IDLE
            conn.since = loop.time()

    def start(self) -> None:
        """Start checking deadlines (in the running loop)."""
        if self._watcher is None:
            self._watcher = asyncio.get_running_loop().create_task(self._watch())

    async def close(self) -> None:
        """Stop checking, write the summaries due, and abort any connection still open."""
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
            self._watcher = None
        for conn in list(self._conns.values()):
            conn.closed_by_guard = True
            conn.transport.abort()
        self._conns.clear()
        self._repeated.flush(final=True)

    def check(self) -> None:
        """Close the connections past a deadline; write the log summaries that are due."""
        now = asyncio.get_running_loop().time()
        limits = self.limits
        for conn in list(self._conns.values()):
            if conn.phase is _Phase.HEADERS:
                if now - conn.since >= limits.header_timeout:
                    self._close(
                        conn,
                        "header_timeout",
                        "closed a connection: request headers not received within "
                        f"{limits.header_timeout:g} s",
                    )
            elif conn.body is not None:
                if conn.body.is_eof():
                    conn.body = None
                elif now < conn.body_deadline:
                    continue
                elif conn.phase is _Phase.IDLE:
                    # The handler answered without the rest of the body (the webhook's own
                    # time limit, say, which logged it); aiohttp would go on reading it for
                    # another 10 s. Nothing new to say.
                    self._close(conn, "body_timeout")
                else:
                    self._close(
                        conn,
                        "body_timeout",
                        "closed a connection: request body not received within "
                        f"{limits.body_timeout:g} s",
                    )
        self._repeated.flush()

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.limits.check_interval)
            self.check()

    # Called by the protocols.

    def _admit(self, transport: asyncio.Transport) -> _Connection | None:
        limit = self.limits.max_connections
        if len(self._conns) >= limit:
            victim = self._victim()
            if victim is None:
                self.closed["refused"] += 1
                self._repeated.report(
                    f"refused a connection: all {limit} connections are busy with requests",
                    f"from {_peer(transport)}",
                )
                return None
            self._close(
                victim,
                "evicted",
                f"closed the oldest unfinished connection to make room: {limit} connections open",
            )
        conn = _Connection(transport, _peer(transport), asyncio.get_running_loop().time())
        self._conns[transport] = conn
        return conn

    def _data(self, conn: _Connection) -> None:
        # Data on an idle connection starts the next request's headers (unless it is the rest
        # of a body the handler did not read, which aiohttp reads and throws away).
        if conn.phase is _Phase.IDLE and (conn.body is None or conn.body.is_eof()):
            conn.phase = _Phase.HEADERS
            conn.since = asyncio.get_running_loop().time()
            conn.body = None

    def _forget(self, conn: _Connection) -> None:
        self._conns.pop(conn.transport, None)

    def _victim(self) -> _Connection | None:
        """The oldest connection still sending a request, else the oldest idle one."""
        idle = None
        for conn in self._conns.values():
            if conn.unfinished:
                return conn
            if idle is None and conn.phase is _Phase.IDLE:
                idle = conn
        return idle

    def _close(self, conn: _Connection, reason: str, message: str = "") -> None:
        # Removed now, not when the loop reports the close: the descriptor is released an
        # iteration later, and until then the connection must not count or be picked again.
        self._conns.pop(conn.transport, None)
        conn.closed_by_guard = True
        self.closed[reason] += 1
        # abort(), not close(): close() waits to flush what is buffered, for a client that
        # may never read it.
        conn.transport.abort()
        if message:
            self._repeated.report(message, f"from {conn.peer}")


def _peer(transport: asyncio.BaseTransport) -> str:
    peer = transport.get_extra_info("peername")
    if isinstance(peer, tuple | list) and peer:
        return str(peer[0])
    return str(peer or "-")


def _sockname(sock: object) -> str:
    getsockname = getattr(sock, "getsockname", None)
    try:
        name = getsockname() if callable(getsockname) else None
    except OSError:
        name = None
    return _address(name[0], name[1]) if isinstance(name, tuple) else str(name or "?")


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@contextlib.contextmanager
def _quiet_errors(loop: asyncio.AbstractEventLoop, repeated: RepeatedLog) -> Iterator[None]:
    """Install the loop exception handler and aiohttp's log filter; restore on exit."""
    previous = loop.get_exception_handler()
    loop.set_exception_handler(LoopErrorHandler(repeated))
    server_log = logging.getLogger("aiohttp.server")
    errors = ClientErrorFilter(repeated)
    server_log.addFilter(errors)
    try:
        yield
    finally:
        server_log.removeFilter(errors)
        loop.set_exception_handler(previous)


@contextlib.contextmanager
def _signals(loop: asyncio.AbstractEventLoop, stop: asyncio.Event, enabled: bool) -> Iterator[None]:
    """SIGTERM and SIGINT set ``stop`` (a second one changes nothing: shutdown is bounded)."""

    def received(sig: signal.Signals) -> None:
        if not stop.is_set():
            log.info("received %s: shutting down", sig.name)
        stop.set()

    installed = []
    if enabled:
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(sig, received, sig)
            except NotImplementedError:  # pragma: no cover - Windows
                continue
            installed.append(sig)
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


async def serve(
    app: web.Application,
    *,
    host: str,
    port: int,
    shutdown_timeout: float,
    limits: ConnectionLimits | None = None,
    ready: Callable[[list[tuple[str, int]]], None] | None = None,
    stop: asyncio.Event | None = None,
    handle_signals: bool = True,
    handler_options: Mapping[str, Any] | None = None,
) -> None:
    """Serve ``app`` on ``host:port`` until SIGTERM or SIGINT (or ``stop`` is set).

    ``limits`` defaults to :meth:`ConnectionLimits.for_open_files`. ``ready`` is called with the
    addresses listened on once connections are accepted (port 0 picks a free port).
    ``shutdown_timeout`` bounds aiohttp's wait for handlers still running at shutdown.
    ``handler_options`` go to aiohttp's connection handler (``lingering_time``, say), after
    the ones ``limits`` sets. Adds the guard's middleware to ``app``, which must not have been
    started yet.

    Shutdown: stop listening, then ``runner.cleanup()``: the app's ``on_shutdown`` (while open
    connections can still be answered), aiohttp's wait for handlers, the cleanup contexts. A
    failure to start (storage, say) is raised after the same cleanup.
    """
    loop = asyncio.get_running_loop()
    limits = ConnectionLimits.for_open_files() if limits is None else limits
    stop = asyncio.Event() if stop is None else stop
    repeated = RepeatedLog(log, limits.log_interval)
    guard = ConnectionGuard(limits, repeated)
    # First, so the guard hears of a request before any other middleware runs, and last of
    # its end.
    app.middlewares.insert(0, guard.middleware)
    options: dict[str, Any] = {
        "access_log": None,
        "keepalive_timeout": limits.idle_timeout,
        "max_line_size": limits.max_line_size,
        "max_field_size": limits.max_field_size,
        **(handler_options or {}),
    }
    runner = web.AppRunner(app, shutdown_timeout=shutdown_timeout, **options)
    with _quiet_errors(loop, repeated), _signals(loop, stop, handle_signals):
        listener: asyncio.Server | None = None
        try:
            await runner.setup()
            server = runner.server
            assert server is not None  # noqa: S101 - setup() made it
            listener = await loop.create_server(
                guard.protocol_factory(server), host, port, backlog=limits.backlog
            )
            for sock in listener.sockets:
                # asyncio passes ``backlog`` to listen() as well; lengthen the kernel's queue,
                # which costs no descriptors, on a duplicate (the same socket underneath).
                with sock.dup() as raw:
                    raw.listen(limits.listen_queue)
            guard.start()
            addresses = [
                (str(s.getsockname()[0]), int(s.getsockname()[1])) for s in listener.sockets
            ]
            for address in addresses:
                log.info(
                    "listening on http://%s (at most %d connections; request headers within "
                    "%g s, bodies within %g s; idle connections closed after %g s)",
                    _address(*address),
                    limits.max_connections,
                    limits.header_timeout,
                    limits.body_timeout,
                    limits.idle_timeout,
                )
            if ready is not None:
                ready(addresses)
            await stop.wait()
        finally:
            if listener is not None:
                listener.close()
            try:
                # The guard keeps closing slow connections while the app drains.
                await runner.cleanup()
            finally:
                await guard.close()
                if listener is not None:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(5):
                            await listener.wait_closed()


def run(
    app: web.Application,
    *,
    host: str,
    port: int,
    shutdown_timeout: float,
    limits: ConnectionLimits | None = None,
    handler_options: Mapping[str, Any] | None = None,
) -> None:
    """:func:`serve` in a new event loop, until SIGTERM or SIGINT: ``chatopsbot run``."""
    asyncio.run(
        serve(
            app,
            host=host,
            port=port,
            shutdown_timeout=shutdown_timeout,
            limits=limits,
            handler_options=handler_options,
        )
    )
