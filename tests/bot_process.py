"""The bot as a child process (``tests/durability_bot.py``), for tests that kill and restart it:
start it, wait until it listens, SIGKILL or SIGTERM it, read its log; and what those tests
share about channels and waiting."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from chatopsbot.zoom.fake import FakeZoom
from chatopsbot.zoom.payloads import bot_notification

RUNNER = Path(__file__).with_name("durability_bot.py")
ACCOUNT = "acct-1"


def room(channel: int) -> str:
    """The JID of test channel ``channel``."""
    return f"room{channel}@conference.xmpp.zoom.us"


def command_body(text: str, channel: int) -> bytes:
    """The raw body of a slash command typed in ``channel`` (kept as is for redelivery)."""
    event = bot_notification(
        text, account_id=ACCOUNT, to_jid=room(channel), channel_name=f"room{channel}"
    )
    return json.dumps(event).encode()


def texts_in(zoom: FakeZoom, channel: int) -> list[str]:
    """What the fake Zoom took for ``channel``, in arrival order (repeats kept)."""
    return [m.text for m in zoom.sent() if m.to_jid == room(channel)]


async def wait_until(
    condition: Callable[[], bool], *, within: float, what: str, every: float = 0.05
) -> float:
    """Poll ``condition`` until it holds; fail naming ``what`` after ``within`` seconds.

    Returns how long it took.
    """
    loop = asyncio.get_running_loop()
    started = loop.time()
    while not condition():
        if loop.time() - started > within:
            raise AssertionError(f"timed out after {within:g} s waiting until {what}")
        await asyncio.sleep(every)
    return loop.time() - started


class BotProcess:
    """The runner in a child process: started, killed and started again (on a new port).

    Each start appends to one log file and reads ``"<pid> <port>"`` from ``<control>/port``.
    """

    def __init__(self, workdir: Path, config: dict[str, Any], name: str = "the bot") -> None:
        self.name = name
        workdir.mkdir(parents=True, exist_ok=True)
        self.control = Path(config["plugins"]["durability"]["control"])
        self.control.mkdir(exist_ok=True)
        self.config_file = workdir / "config.json"
        self.config_file.write_text(json.dumps(config), encoding="utf-8")
        self.log_path = workdir / "bot.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    async def start(self, within: float = 30.0, *, every: float = 0.01) -> float:
        """Start the process and wait until it listens; return how long that took."""
        assert not self.alive, f"{self.name} is running already"
        port_file = self.control / "port"
        port_file.unlink(missing_ok=True)
        proc = self.proc = self._spawn()
        address: list[str] = []

        def listening() -> bool:
            if proc.poll() is not None:
                raise AssertionError(
                    f"{self.name} exited with {proc.returncode} while starting:\n{self.log()}"
                )
            try:
                address[:] = port_file.read_text(encoding="utf-8").split()
            except FileNotFoundError:
                return False
            return len(address) == 2 and int(address[0]) == proc.pid

        took = await wait_until(listening, within=within, what=f"{self.name} listens", every=every)
        self.url = f"http://127.0.0.1:{address[1]}"
        return took

    def _spawn(self) -> subprocess.Popen[bytes]:
        # Forking takes a few milliseconds: no need to hand it to a thread.
        with self.log_path.open("ab") as log:
            # A fixed command: this interpreter, the runner script, the config file.
            return subprocess.Popen(  # noqa: S603
                [sys.executable, str(RUNNER), str(self.config_file)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    async def kill(self) -> None:
        """SIGKILL, and wait until the process is gone."""
        assert self.proc is not None
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        await self.wait_exit(10.0)

    async def terminate(self, within: float = 30.0) -> int:
        """SIGTERM (the bot drains and stops); its exit status. SIGKILL if it takes too long."""
        assert self.proc is not None
        self.proc.terminate()
        try:
            return await self.wait_exit(within)
        except AssertionError:
            await self.kill()
            raise

    async def wait_exit(self, within: float) -> int:
        """Wait until the process has exited; its exit status."""
        proc = self.proc
        assert proc is not None
        await wait_until(lambda: proc.poll() is not None, within=within, what=f"{self.name} exits")
        return proc.returncode

    def reap(self) -> None:
        """Last resort for a test that failed half-way: kill, and wait here (not on the loop)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def log(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""
