"""The storage thread: functions run in order on one thread, outcomes come back to the loop."""

from __future__ import annotations

import asyncio
import threading

import pytest

from chatopsbot.storage.worker import Worker


async def test_runs_functions_in_order_on_its_own_thread():
    worker = Worker("test-worker")
    seen: list[tuple[int, str]] = []

    def note(n: int) -> int:
        seen.append((n, threading.current_thread().name))
        return n * 2

    try:
        results = await asyncio.gather(*(worker.run(note, n) for n in range(50)))
    finally:
        await worker.stop()
    assert results == [n * 2 for n in range(50)]
    assert [n for n, _ in seen] == list(range(50))
    assert {name for _, name in seen} == {"test-worker"}


async def test_an_exception_reaches_the_caller_and_the_thread_goes_on():
    worker = Worker("test-worker")

    def fail() -> None:
        raise ValueError("no")

    try:
        with pytest.raises(ValueError, match="no"):
            await worker.run(fail)
        assert await worker.run(lambda: 7) == 7
    finally:
        await worker.stop()


async def test_a_caller_that_stopped_waiting_does_not_break_the_next_call():
    worker = Worker("test-worker")
    release = threading.Event()
    try:
        slow = worker.run(release.wait, 5)
        slow.cancel()
        release.set()
        assert await worker.run(lambda: "after") == "after"
    finally:
        await worker.stop()


async def test_stop_finishes_what_was_handed_over_then_refuses_more():
    worker = Worker("test-worker")
    done: list[int] = []
    pending = [worker.run(done.append, n) for n in range(20)]
    await worker.stop()
    assert done == list(range(20))
    assert all(f.done() for f in pending)
    assert not worker._thread.is_alive()
    with pytest.raises(RuntimeError, match="stopped"):
        worker.run(done.append, 99)
    await worker.stop()  # a second stop is harmless


async def test_call_hands_the_outcome_to_a_callback_on_the_loop():
    worker = Worker("test-worker")
    heard: list[tuple[object, bool]] = []
    done = asyncio.Event()

    def record(outcome: tuple[bool, object]) -> None:
        heard.append((outcome[1], threading.current_thread() is threading.main_thread()))
        if len(heard) == 2:
            done.set()

    def fail() -> None:
        raise ValueError("no")

    try:
        worker.call(lambda: 7, (), record)
        worker.call(fail, (), record)
        async with asyncio.timeout(5):
            await done.wait()
    finally:
        await worker.stop()
    assert heard[0] == (7, True)
    error, on_the_loop_thread = heard[1]
    assert isinstance(error, ValueError)
    assert on_the_loop_thread
    with pytest.raises(RuntimeError, match="stopped"):
        worker.call(lambda: 7, (), record)
