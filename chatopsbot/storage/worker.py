"""A thread that runs, in order, what the event loop hands it: a SQLite connection's calls,
the WAL's fsync.

Why not ``loop.run_in_executor``: every call through a ``ThreadPoolExecutor`` builds a
``concurrent.futures.Future`` (with its lock and condition), chains it to an asyncio future with
callbacks on both sides and copies its state across. That is most of the loop's cost of a
call, which the bot makes for every acknowledgement (an fsync) and every read. Here a call is
one asyncio future, one ``SimpleQueue.put`` (in C) and one ``call_soon_threadsafe`` back; with
:meth:`Worker.call` not even the future, and the loop runs the caller's callback in the turn
that hears back.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["Outcome", "Worker", "resolve"]

T = TypeVar("T")

#: What a function did: ``(True, its result)`` or ``(False, the exception it raised)``.
Outcome = tuple[bool, Any]
_Job = tuple[
    Callable[..., Any], tuple[Any, ...], Callable[[Outcome], None], asyncio.AbstractEventLoop
]


class Worker:
    """One thread running functions one at a time, in the order they were handed over.

    Create and use it on the running loop; :meth:`stop` finishes what was handed over first.
    """

    def __init__(self, name: str) -> None:
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._thread.start()
        self._stopped = False

    def run(self, function: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """Run ``function(*args)`` on the thread; the future holds its result or exception."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self.call(function, args, functools.partial(resolve, future))
        return future

    def call(
        self, function: Callable[..., Any], args: tuple[Any, ...], done: Callable[[Outcome], None]
    ) -> None:
        """Run ``function(*args)`` on the thread, then ``done(outcome)`` on the running loop.

        Raises :class:`RuntimeError` once the worker is stopped.
        """
        if self._stopped:
            raise RuntimeError(f"{self._thread.name} is stopped")
        self._jobs.put((function, args, done, asyncio.get_running_loop()))

    async def stop(self) -> None:
        """Finish the functions handed over so far, then end the thread."""
        if self._stopped:
            return
        done = self.run(lambda: None)
        self._stopped = True
        self._jobs.put(None)
        await done
        self._thread.join()

    def _main(self) -> None:
        while (job := self._jobs.get()) is not None:
            function, args, done, loop = job
            try:
                outcome: Outcome = (True, function(*args))
            except BaseException as exc:
                outcome = (False, exc)
            # A closed loop raises RuntimeError: nobody is waiting any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(done, outcome)


def resolve(future: asyncio.Future[Any], outcome: Outcome) -> None:
    """Give ``future`` the result or exception of ``outcome``, unless its caller stopped
    waiting."""
    if future.done():
        return  # the caller stopped waiting (cancelled)
    ok, value = outcome
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)
