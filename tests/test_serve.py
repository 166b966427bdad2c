"""Serving under hostile connections: slow headers and bodies, too many connections, no fds left.

The end-to-end tests run ``chatopsbot run`` (and a bare :func:`~chatopsbot.serve.run`) as a real
process with a low open-files limit and attack it over loopback; the others run :func:`serve`
in-process with short limits, or drive the throttling pieces directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import re
import resource
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import attrs
import pytest
from aiohttp import web
from aiohttp.http_exceptions import BadStatusLine

from chatopsbot.logthrottle import RepeatedLog
from chatopsbot.serve import (
    ClientErrorFilter,
    ConnectionLimits,
    LoopErrorHandler,
    open_files_limit,
    serve,
)
from chatopsbot.zoom.fake import FakeZoom
from chatopsbot.zoom.payloads import bot_notification, signed

SECRET = "serve-test-secret"
HOST = "127.0.0.1"


# Helpers: slow clients.


@attrs.define
class Slow:
    """One slow client's fate: seconds from connecting until the server closed it."""

    kind: str
    closed_after: float | None = None
    answered: bytes = b""


async def slow_client(
    port: int, head: bytes, *, kind: str, every: float, give_up: float, host: str = HOST
) -> Slow:
    """Connect, send ``head``, then one more byte every ``every`` s until the server closes."""
    loop = asyncio.get_running_loop()
    slow = Slow(kind)
    reader, writer = await asyncio.open_connection(host, port)
    start = loop.time()
    try:
        writer.write(head)
        while loop.time() - start < give_up:
            try:
                data = await asyncio.wait_for(reader.read(4096), every)
            except TimeoutError:
                writer.write(b"a")
                continue
            if not data:
                break
            slow.answered += data
        else:
            return slow
    except OSError:  # reset by the server: closed all the same
        pass
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    slow.closed_after = loop.time() - start
    return slow


def partial_headers(path: str = "/zoom/webhook") -> bytes:
    return f"POST {path} HTTP/1.1\r\nHost: bot\r\nX-Slow: ".encode()


def partial_body(path: str = "/zoom/webhook") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: bot\r\nContent-Type: application/json\r\n"
        "Content-Length: 100000\r\n\r\n{"
    ).encode()


# Helpers: a real process.


def open_files(limit: int) -> Callable[[], None]:
    """A ``preexec_fn`` that lowers the child's soft RLIMIT_NOFILE to ``limit``."""

    def apply() -> None:
        _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))

    return apply


class Child:
    """A child process whose stderr is read as it comes (a full pipe would stall it)."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls, *args: str, open_file_limit: int) -> Child:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            preexec_fn=open_files(open_file_limit),
        )
        return cls(proc)

    async def _read(self) -> None:
        assert self.proc.stderr is not None
        while line := await self.proc.stderr.readline():
            self.lines.append(line.decode(errors="replace"))

    @property
    def log(self) -> str:
        return "".join(self.lines)

    async def wait_for(self, pattern: str, within: float = 30.0) -> re.Match[str]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            for line in self.lines:
                if found := re.search(pattern, line):
                    return found
            assert self.proc.returncode is None, f"the process exited:\n{self.log}"
            assert loop.time() < deadline, f"no line matching {pattern!r} in:\n{self.log}"
            await asyncio.sleep(0.05)

    async def port(self) -> int:
        return int((await self.wait_for(r"listening on http://127\.0\.0\.1:(\d+)"))[1])

    async def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(self.proc.wait(), 30)
        await asyncio.wait_for(self._reader, 10)
        return code

    async def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._reader, 10)


@pytest.fixture
async def children() -> AsyncIterator[list[Child]]:
    started: list[Child] = []
    yield started
    for child in started:
        await child.kill()


def assert_quiet(child: Child, max_lines: int) -> None:
    assert "Traceback" not in child.log, child.log
    assert len(child.lines) < max_lines, f"{len(child.lines)} lines:\n{child.log}"


async def get_until_ok(url: str, within: float) -> aiohttp.ClientResponse:
    """GET ``url`` (a new connection each time) until it answers 200."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    timeout = aiohttp.ClientTimeout(total=3)
    while True:
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.get(url) as resp,
            ):
                await resp.read()
                if resp.status == 200:
                    return resp
        except (aiohttp.ClientError, TimeoutError):
            pass
        assert loop.time() < deadline, f"{url} did not answer 200 within {within} s"
        await asyncio.sleep(0.2)


# The bot itself, the hard way.

BOT_CONFIG = """
[zoom]
client_id = "{zoom.client_id}"
client_secret = "{zoom.client_secret}"
bot_jid = "{zoom.robot_jid}"
secret_token = "{secret}"
api_base_url = "{zoom.api_base_url}"
oauth_url = "{zoom.oauth_url}"

[server]
host = "127.0.0.1"
port = 0

[storage]
path = "{storage}"

[outbound]
drain_timeout = 2

[logging]
level = "INFO"
"""


async def webhook_gets_a_reply(port: int, zoom: FakeZoom, text: str) -> None:
    """A signed ``ping`` webhook is accepted and its ``pong`` reaches the fake Zoom."""
    seen = len(zoom.sent())
    body, headers = signed(SECRET, bot_notification(text))
    timeout = aiohttp.ClientTimeout(total=10)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.post(f"http://{HOST}:{port}/zoom/webhook", data=body, headers=headers) as resp,
    ):
        assert resp.status == 200, await resp.text()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while not any("pong" in m.text for m in zoom.sent()[seen:]):
        assert loop.time() < deadline, f"no reply reached Zoom: {[m.text for m in zoom.sent()]}"
        await asyncio.sleep(0.05)


async def test_slow_connections_neither_starve_the_bot_nor_flood_its_log(tmp_path, children):
    limits = ConnectionLimits()
    async with FakeZoom() as zoom:
        config = tmp_path / "config.toml"
        storage = tmp_path / "bot.db"
        config.write_text(BOT_CONFIG.format(zoom=zoom, secret=SECRET, storage=storage))
        # 256 open files: room for 144 connections (ConnectionLimits.for_open_files).
        child = await Child.start(
            "-m", "chatopsbot.cli", "run", "--config", str(config), open_file_limit=256
        )
        children.append(child)
        port = await child.port()
        assert "at most 144 connections" in child.log

        # 400 clients, more than the process has descriptors, each sending a byte every 2 s:
        # half never finish their headers, half never finish their body.
        heads = [partial_headers(), partial_body()]
        attack = [
            asyncio.create_task(
                slow_client(
                    port, heads[i % 2], kind=("headers", "body")[i % 2], every=2, give_up=25
                )
            )
            for i in range(400)
        ]
        await asyncio.sleep(3)
        # Meanwhile (the slow connections the bot holds are not closed before 10 s), the
        # oldest of them make room for health checks and Zoom.
        assert sum(not task.done() for task in attack) >= 100
        await get_until_ok(f"http://{HOST}:{port}/healthz", within=5)
        await webhook_gets_a_reply(port, zoom, "ping")

        results = await asyncio.gather(*attack)
        # Never more than the cap held (however many came), the rest closed at once.
        held = [r for r in results if (r.closed_after or float("inf")) > 8]
        assert len(held) <= 144
        # Every slow connection is closed: at the cap at once, else within seconds of its
        # time limit (headers 10 s in the guard; bodies 10 s in the webhook handler, with the
        # guard's backstop 2 s later).
        slowest = {
            kind: max(r.closed_after or float("inf") for r in results if r.kind == kind)
            for kind in ("headers", "body")
        }
        assert slowest["headers"] < limits.header_timeout + 4, slowest
        assert slowest["body"] < 10 + 4, slowest
        # And the bot still works once they are gone.
        await get_until_ok(f"http://{HOST}:{port}/healthz", within=5)
        await webhook_gets_a_reply(port, zoom, "ping")

        assert await child.stop() == 0
    assert_quiet(child, max_lines=50)
    assert "request headers not received within 10 s" in child.log


async def test_the_bot_runs_on_uvloop(tmp_path, children):
    # A deployment may install uvloop's event loop before starting the bot. Its transports are
    # not asyncio.Transport subclasses: the connection guard took every connection for
    # something else and failed it (no webhook got an answer).
    pytest.importorskip("uvloop")
    async with FakeZoom() as zoom:
        config = tmp_path / "config.toml"
        config.write_text(BOT_CONFIG.format(zoom=zoom, secret=SECRET, storage=tmp_path / "bot.db"))
        start = (
            "import asyncio, sys, uvloop\n"
            "asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())\n"
            "from chatopsbot.cli import main\n"
            f"sys.exit(main(['run', '--config', {str(config)!r}]))\n"
        )
        child = await Child.start("-c", start, open_file_limit=1024)
        children.append(child)
        port = await child.port()
        for _ in range(3):
            await webhook_gets_a_reply(port, zoom, "ping")
        await get_until_ok(f"http://{HOST}:{port}/healthz", within=5)
        assert await child.stop() == 0
    assert "Traceback" not in child.log, child.log


# Out of descriptors: a bare server with no connection cap, so accept() fails.

NO_CAP_SERVER = """
from aiohttp import web
from chatopsbot.logs import configure_logging
from chatopsbot.serve import ConnectionLimits, run

async def healthz(request):
    return web.Response(text="ok")

configure_logging("plain", "INFO")
app = web.Application()
app.router.add_get("/healthz", healthz)
limits = ConnectionLimits(
    max_connections=10_000, header_timeout=2, check_interval=0.2, log_interval=2, backlog=32
)
run(app, host="127.0.0.1", port=0, shutdown_timeout=1, limits=limits)
"""


async def hold_open(port: int, count: int, seconds: float) -> int:
    """Open ``count`` connections that send nothing; hold them ``seconds``; how many opened."""
    writers: list[asyncio.StreamWriter] = []

    async def connect() -> None:
        with contextlib.suppress(OSError, TimeoutError):
            _reader, writer = await asyncio.wait_for(asyncio.open_connection(HOST, port), 3)
            writers.append(writer)

    await asyncio.gather(*(connect() for _ in range(count)))
    await asyncio.sleep(seconds)
    for writer in writers:
        writer.close()
    for writer in writers:
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    return len(writers)


async def test_running_out_of_descriptors_logs_a_line_and_a_count_and_recovers(children):
    child = await Child.start("-c", NO_CAP_SERVER, open_file_limit=64)
    children.append(child)
    port = await child.port()

    opened = await hold_open(port, 100, seconds=3)
    assert opened > 64  # the listen queue holds what the process cannot accept
    await get_until_ok(f"http://{HOST}:{port}/healthz", within=10)
    assert await child.stop() == 0

    assert_quiet(child, max_lines=25)
    emfile = [line for line in child.lines if "cannot accept connections" in line]
    assert len([line for line in emfile if "more time" not in line]) == 1, child.log
    assert "Too many open files (EMFILE)" in emfile[0]
    assert any(re.search(r"\d+ more times in the last \d s", line) for line in emfile), child.log


# The guard in-process, with short limits.


@contextlib.asynccontextmanager
async def serving(app: web.Application, **limits: Any) -> AsyncIterator[int]:
    """Serve ``app`` on loopback with these limits; yield the port; stop on exit."""
    defaults: dict[str, Any] = {"check_interval": 0.05, "log_interval": 60}
    ready: asyncio.Future[list[tuple[str, int]]] = asyncio.get_running_loop().create_future()
    stop = asyncio.Event()
    task = asyncio.create_task(
        serve(
            app,
            host=HOST,
            port=0,
            shutdown_timeout=1,
            limits=ConnectionLimits(**{**defaults, **limits}),
            ready=ready.set_result,
            stop=stop,
            handle_signals=False,
        )
    )
    try:
        [(_host, port)] = await asyncio.wait_for(asyncio.shield(ready), 10)
        yield port
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


def small_app() -> tuple[web.Application, asyncio.Event]:
    """``GET /ok``; ``POST /upload`` reads its body with no time limit; ``GET /block`` waits."""
    release = asyncio.Event()

    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def upload(request: web.Request) -> web.Response:
        return web.Response(text=str(len(await request.read())))

    async def block(request: web.Request) -> web.Response:
        await release.wait()
        return web.Response(text="released")

    app = web.Application()
    app.router.add_get("/ok", ok)
    app.router.add_post("/upload", upload)
    app.router.add_get("/block", block)
    return app, release


def no_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    assert not [r for r in caplog.records if r.exc_info], caplog.text
    assert "Traceback" not in caplog.text


def lines_with(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if text in r.getMessage()]


async def test_slow_headers_and_slow_bodies_are_closed_and_logged_once(caplog):
    caplog.set_level(logging.INFO)
    app, _release = small_app()
    async with serving(app, header_timeout=0.5, body_timeout=0.8) as port:
        results = await asyncio.gather(
            *(
                slow_client(port, partial_headers("/ok"), kind="headers", every=0.1, give_up=5)
                for _ in range(5)
            ),
            *(
                slow_client(port, partial_body("/upload"), kind="body", every=0.1, give_up=5)
                for _ in range(5)
            ),
        )
        # The bytes kept coming, yet each was closed soon after its limit, without an answer.
        for r in results:
            limit = 0.5 if r.kind == "headers" else 0.8
            assert r.closed_after is not None
            # (The server's clock starts when it accepts, a moment before the client's.)
            assert limit - 0.1 < r.closed_after < limit + 1, r
            assert r.answered == b""
    assert lines_with(caplog, "request headers not received within 0.5 s") == [
        f"closed a connection: request headers not received within 0.5 s (from {HOST})",
        "closed a connection: request headers not received within 0.5 s: 4 more times "
        "in the last 1 s",
    ]
    assert len(lines_with(caplog, "request body not received within 0.8 s")) == 2
    assert not lines_with(caplog, "disconnected")  # closed by the guard: no second line
    no_tracebacks(caplog)


async def test_at_the_cap_the_oldest_unfinished_connection_makes_room(caplog):
    caplog.set_level(logging.INFO)
    app, _release = small_app()
    async with serving(app, max_connections=3, header_timeout=5) as port:
        slow = [
            asyncio.create_task(
                slow_client(port, partial_headers("/ok"), kind="headers", every=0.2, give_up=1.5)
            )
        ]
        await asyncio.sleep(0.2)  # the oldest
        slow += [
            asyncio.create_task(
                slow_client(port, partial_headers("/ok"), kind="headers", every=0.2, give_up=1.5)
            )
            for _ in range(2)
        ]
        await asyncio.sleep(0.2)
        # The fourth connection: the oldest slow one makes room for it.
        async with aiohttp.ClientSession() as session, session.get(f"http://{HOST}:{port}/ok") as r:
            assert r.status == 200
        oldest, *others = await asyncio.gather(*slow)
    assert oldest.closed_after is not None
    assert oldest.closed_after < 1.0, oldest
    assert [o.closed_after for o in others] == [None, None]
    assert lines_with(caplog, "to make room") == [
        f"closed the oldest unfinished connection to make room: 3 connections open (from {HOST})"
    ]
    no_tracebacks(caplog)


async def test_when_every_connection_is_busy_a_new_one_is_refused_at_once(caplog):
    caplog.set_level(logging.INFO)
    app, release = small_app()
    async with serving(app, max_connections=2) as port, aiohttp.ClientSession() as session:
        url = f"http://{HOST}:{port}"
        busy = [asyncio.create_task(session.get(f"{url}/block")) for _ in range(2)]
        await asyncio.sleep(0.2)
        refused = await slow_client(
            port, b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n", kind="refused", every=1, give_up=3
        )
        assert refused.closed_after is not None
        assert refused.closed_after < 0.5
        assert refused.answered == b""
        release.set()
        for response in await asyncio.gather(*busy):
            assert response.status == 200
            response.release()
        async with session.get(f"{url}/ok") as resp:
            assert resp.status == 200
    assert lines_with(caplog, "refused a connection") == [
        f"refused a connection: all 2 connections are busy with requests (from {HOST})"
    ]
    no_tracebacks(caplog)


async def test_a_client_that_leaves_mid_request_is_not_an_error(caplog):
    caplog.set_level(logging.INFO)
    app, _release = small_app()
    async with serving(app) as port:
        for head in (partial_body("/upload"), partial_headers("/upload"), b"NOT HTTP\r\n\r\n"):
            _reader, writer = await asyncio.open_connection(HOST, port)
            writer.write(head)
            await asyncio.sleep(0.1)
            writer.transport.abort()  # a reset, as a client that crashed would
            await asyncio.sleep(0.1)
        async with aiohttp.ClientSession() as session, session.get(f"http://{HOST}:{port}/ok") as r:
            assert r.status == 200
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, caplog.text
    assert lines_with(caplog, "disconnected") == [
        f"a client disconnected before its request was complete (from {HOST})"
    ]
    no_tracebacks(caplog)


async def test_a_malformed_request_is_one_line_without_a_traceback(caplog):
    caplog.set_level(logging.INFO)
    app, _release = small_app()
    async with serving(app) as port:
        for _ in range(3):
            reader, writer = await asyncio.open_connection(HOST, port)
            try:
                writer.write(b"GET /ok HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n")
                assert re.match(rb"HTTP/1\.\d 400 ", await reader.read())
            finally:
                writer.close()
                await writer.wait_closed()
    first, summary = lines_with(caplog, "malformed")
    assert first == (
        "refused a malformed request (Error handling request from 127.0.0.1: BadHttpMessage: "
        "400, message: Invalid header token: b'Bad Header' ^)"
    )
    assert summary == "refused a malformed request: 2 more times in the last 1 s"
    no_tracebacks(caplog)


async def test_an_idle_kept_alive_connection_is_closed_silently(caplog):
    caplog.set_level(logging.INFO)
    app, _release = small_app()
    async with serving(app, idle_timeout=0.3, header_timeout=5) as port:
        reader, writer = await asyncio.open_connection(HOST, port)
        writer.write(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n")
        started = time.monotonic()
        answer = await asyncio.wait_for(reader.read(), 5)  # until the server closes
        assert answer.startswith(b"HTTP/1.1 200")
        assert 0.25 < time.monotonic() - started < 2
        writer.close()
        await writer.wait_closed()
    assert not lines_with(caplog, "closed a connection")


# The pieces.


def test_limits_are_sized_for_the_open_files_limit():
    assert ConnectionLimits() == ConnectionLimits.for_open_files(1024)
    assert ConnectionLimits().max_connections == 704
    low = ConnectionLimits.for_open_files(256)
    assert (low.max_connections, low.backlog) == (144, 16)
    tiny = ConnectionLimits.for_open_files(20)
    assert tiny.max_connections == 8
    assert ConnectionLimits.for_open_files(1_000_000).max_connections == 10_000
    mine = ConnectionLimits.for_open_files()
    limit = open_files_limit()
    assert limit is None or mine.max_connections + 3 * mine.backlog < limit
    assert (mine.header_timeout, mine.idle_timeout) == (10.0, 30.0)
    with pytest.raises(ValueError, match="header_timeout"):
        ConnectionLimits(header_timeout=0)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def throttled(caplog: pytest.LogCaptureFixture, **kwargs: Any) -> tuple[RepeatedLog, FakeClock]:
    caplog.set_level(logging.INFO)
    clock = FakeClock()
    return RepeatedLog(logging.getLogger("test.repeated"), 10, clock=clock, **kwargs), clock


def test_repeated_lines_are_one_line_then_one_count_per_interval(caplog):
    repeated, clock = throttled(caplog)
    for _ in range(500):
        repeated.report("closed a slow connection", "from 10.0.0.1")
        clock.now += 0.01  # 5 s in all
    repeated.flush()  # not due yet
    assert caplog.messages == ["closed a slow connection (from 10.0.0.1)"]
    clock.now += 5.1
    repeated.flush()
    assert caplog.messages[1:] == ["closed a slow connection: 499 more times in the last 10 s"]
    repeated.report("closed a slow connection", "from 10.0.0.2")
    clock.now += 12
    repeated.report("closed a slow connection", "from 10.0.0.3")  # counted, then summarised
    assert caplog.messages[2:] == ["closed a slow connection: 2 more times in the last 12 s"]
    clock.now += 10.5
    repeated.flush()  # a quiet interval: forgotten, so the next one is logged in full
    repeated.report("closed a slow connection", "from 10.0.0.4")
    assert caplog.messages[3:] == ["closed a slow connection (from 10.0.0.4)"]
    assert all(r.levelno == logging.WARNING for r in caplog.records)


def test_repeated_kinds_are_bounded(caplog):
    repeated, _clock = throttled(caplog, max_kinds=3)
    for i in range(5):
        repeated.report(f"kind {i}")
        repeated.report(f"kind {i}")
    # The oldest kinds were settled (their count written) to make room.
    assert caplog.messages[:4] == [
        "kind 0",
        "kind 1",
        "kind 2",
        "kind 0: 1 more time in the last 1 s",
    ]
    assert len(caplog.messages) == 7


def fake_loop(calls: list[dict[str, Any]]) -> asyncio.AbstractEventLoop:
    class Loop(asyncio.SelectorEventLoop):
        def default_exception_handler(self, context: dict[str, Any]) -> None:
            calls.append(context)

    return Loop()


def test_accept_out_of_descriptors_is_one_warning_then_a_count(caplog):
    repeated, clock = throttled(caplog)
    handler = LoopErrorHandler(repeated)
    calls: list[dict[str, Any]] = []
    loop = fake_loop(calls)
    listener = socket.socket()
    try:
        listener.bind((HOST, 0))
        context = {
            "message": "socket.accept() out of system resource",
            "exception": OSError(errno.EMFILE, os.strerror(errno.EMFILE)),
            "socket": listener,
        }
        for _ in range(1000):
            handler(loop, context)
        clock.now += 10
        repeated.flush()
        gone = {"message": "Fatal read error", "exception": ConnectionResetError(), "transport": 1}
        handler(loop, gone)
        handler(loop, gone)
        bug = {"message": "Task exception was never retrieved", "exception": KeyError("x")}
        handler(loop, bug)
        handler(loop, bug)
        handler(loop, {"message": "something else"})
    finally:
        listener.close()
        loop.close()
    first, summary, disconnected = caplog.messages
    assert first.startswith(
        f"cannot accept connections: Too many open files (EMFILE) (listening on {HOST}:"
    )
    assert summary == (
        "cannot accept connections: Too many open files (EMFILE): 999 more times in the last 10 s"
    )
    assert disconnected == "a client disconnected before its request was complete"
    assert [r.levelname for r in caplog.records] == ["WARNING", "WARNING", "INFO"]
    assert not [r for r in caplog.records if r.exc_info]
    # Anything else goes to the default handler, repeats of the same error once an interval.
    assert [c["message"] for c in calls] == ["Task exception was never retrieved", "something else"]


def test_client_errors_on_aiohttps_logger_lose_their_tracebacks(caplog):
    repeated, _clock = throttled(caplog)
    errors = ClientErrorFilter(repeated)

    def record(exc: BaseException | None) -> logging.LogRecord:
        info = (type(exc), exc, None) if exc is not None else None
        return logging.LogRecord(
            "aiohttp.server",
            logging.ERROR,
            __file__,
            1,
            "Error handling request from %s",
            ("10.0.0.9",),
            info,
        )

    assert not errors.filter(record(BadStatusLine("GARBAGE")))
    assert not errors.filter(record(BadStatusLine("GARBAGE")))
    assert errors.filter(record(RuntimeError("a bug of ours")))
    # A handler's own connection failing is an error (a client that left never gets here).
    assert errors.filter(record(ConnectionResetError("Connection reset by peer")))
    assert errors.filter(record(None))
    assert caplog.messages == [
        "refused a malformed request (Error handling request from 10.0.0.9: BadStatusLine: "
        "400, message: Bad status line 'GARBAGE')",
    ]
