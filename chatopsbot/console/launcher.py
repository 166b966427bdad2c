"""``chatopsbot console``: start the console on loopback and serve until interrupted."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import tempfile
from typing import TextIO

from chatopsbot.config import Settings
from chatopsbot.console.server import Console

__all__ = ["run_console"]


async def run_console(
    base: Settings | None,
    *,
    port: int,
    out: TextIO | None = None,
    stop: asyncio.Event | None = None,
) -> int:
    """Serve the console until interrupted (or ``stop`` is set); return the exit status."""
    stream = out or sys.stdout
    with tempfile.TemporaryDirectory(prefix="chatopsbot-console-") as workdir:
        try:
            console = await Console.start(
                base, storage=os.path.join(workdir, "console.db"), port=port
            )
        except OSError as exc:
            print(
                f"chatopsbot console: cannot listen on 127.0.0.1:{port}: {exc.strerror or exc}",
                file=stream if out else sys.stderr,
            )
            return 1
        done = stop or asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signum, done.set)
        print(
            f"chatopsbot console: open {console.url}/console "
            f"(the real bot, a fake Zoom at {console.zoom.url}; Ctrl-C stops)",
            file=stream,
            flush=True,
        )
        try:
            await done.wait()
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.remove_signal_handler(signum)
            await console.close()
    return 0
