"""The inbox through the real path: recorded before the 200, redeliveries while pending are
duplicates, unfinished events are handled after a restart, and storage trouble answers 503."""

from __future__ import annotations

import asyncio
import logging
import sqlite3

import pytest

from chatopsbot import Context, Text, command, hookimpl
from chatopsbot.storage import open_backend
from chatopsbot.zoom.payloads import bot_notification
from tests.conftest import CHANNEL


class Gatekeeper:
    """A plugin whose ``wait`` command blocks until the test opens the gate."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.runs = 0

    @hookimpl
    def chatops_commands(self) -> list[object]:
        @command("wait", help="Waits for the gate")
        async def wait(ctx: Context) -> Text:
            self.runs += 1
            await self.gate.wait()
            return Text("through")

        return [wait]


async def test_an_event_is_recorded_before_the_200_and_redeliveries_are_duplicates(
    start_bot, zoom, tmp_path
):
    keeper = Gatekeeper()
    db = str(tmp_path / "bot.db")
    bot = await start_bot(extra={"keeper": keeper}, storage={"path": db})
    event = bot_notification("wait", to_jid=CHANNEL)
    resp = await bot.post(event)
    assert (await resp.json())["status"] == "accepted"
    # Another connection to the file sees it: it is on disk, not in the process.
    with sqlite3.connect(db) as other:
        pending = other.execute("SELECT COUNT(*) FROM inbox WHERE expires_at IS NULL").fetchone()
    assert pending == (1,)
    # Zoom resends while the handler still runs: acknowledged, not run again.
    again = await bot.post(event)
    assert (again.status, (await again.json())["status"]) == (200, "duplicate")
    keeper.gate.set()
    await bot.settle()
    assert keeper.runs == 1
    assert [m.text for m in zoom.sent()] == ["through"]
    with sqlite3.connect(db) as other:
        pending = other.execute("SELECT COUNT(*) FROM inbox WHERE expires_at IS NULL").fetchone()
    assert pending == (0,)


async def test_an_unfinished_event_is_handled_after_a_restart(start_bot, zoom, tmp_path, caplog):
    keeper = Gatekeeper()
    db = str(tmp_path / "bot.db")
    config = {"storage": {"path": db}, "outbound": {"drain_timeout": 0.2}}
    bot = await start_bot(extra={"keeper": keeper}, **config)
    event = bot_notification("wait", to_jid=CHANNEL)
    assert (await bot.post(event)).status == 200
    await asyncio.sleep(0.05)
    # The drain deadline cancels the handler: its event stays unfinished in the inbox.
    await bot.stop()
    assert zoom.sent() == []
    keeper.gate.set()
    caplog.set_level(logging.INFO)
    await bot.restart()
    await bot.settle()
    assert keeper.runs == 2
    assert [m.text for m in zoom.sent()] == ["through"]
    assert "handling 1 event(s) acknowledged before the restart" in caplog.text
    # Handled now: a redelivery is a duplicate, and nothing is pending any more.
    assert (await (await bot.post(event)).json())["status"] == "duplicate"
    backend = await open_backend(db)
    try:
        assert await backend.inbox_pending() == []
    finally:
        await backend.close()


async def test_what_a_handler_decided_and_its_event_are_settled_together(start_bot, tmp_path):
    db = str(tmp_path / "bot.db")
    bot = await start_bot(storage={"path": db})
    await bot.command("ping")
    with sqlite3.connect(db) as other:
        rows = other.execute("SELECT key, body, expires_at FROM inbox").fetchall()
        queued = other.execute("SELECT COUNT(*) FROM outbox").fetchone()
    [(key, body, expires)] = rows
    assert len(key) == 32  # a fingerprint: a 4000-character command is not kept twice
    assert body is None  # only the key is kept once the event is handled
    assert expires > bot.clock.timestamp() + 3600  # past Zoom's last redelivery
    assert queued == (0,)  # sent, and forgotten


@pytest.mark.timeout(30)
async def test_an_event_that_cannot_be_recorded_gets_503_so_zoom_sends_it_again(
    start_bot, zoom, tmp_path
):
    db = tmp_path / "bot.db"
    bot = await start_bot(storage={"path": str(db)})
    holder = sqlite3.connect(db, isolation_level=None, timeout=0)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        resp = await bot.post(bot_notification("ping", to_jid=CHANNEL))
        assert resp.status == 503
        assert (await resp.json())["status"] == "storage_error"
        assert resp.headers["Retry-After"] == "5"
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    # Zoom's retry, once storage works again, is accepted and answered.
    resp = await bot.post(bot_notification("ping", to_jid=CHANNEL))
    assert (await resp.json())["status"] == "accepted"
    await bot.settle()
    assert [m.text for m in zoom.sent()] == ["pong"]


class Locker:
    """``lock``: takes the database away (an exclusive lock from another connection) for a
    while, so that writing this command's reply fails until storage is back."""

    def __init__(self, path: str, seconds: float) -> None:
        self.path = path
        self.seconds = seconds

    @hookimpl
    def chatops_commands(self) -> list[object]:
        @command("lock", help="Locks the database for a while")
        async def lock(ctx: Context) -> Text:
            holder = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            holder.execute("BEGIN EXCLUSIVE")
            asyncio.get_running_loop().call_later(self.seconds, holder.close)
            return Text("after the lock")

        return [lock]


@pytest.mark.timeout(40)
async def test_replies_wait_for_storage_to_come_back_and_keep_their_place(
    start_bot, zoom, tmp_path, caplog
):
    db = str(tmp_path / "bot.db")
    # Longer than SQLite's 5-s busy wait: the first tries to write the reply fail.
    bot = await start_bot(extra={"locker": Locker(db, 6.5)}, storage={"path": db})
    assert (await bot.post(bot_notification("lock", to_jid=CHANNEL))).status == 200
    await bot.settle(within=30)
    assert [m.text for m in zoom.sent()] == ["after the lock"]
    backend = await open_backend(db)
    try:
        assert await backend.inbox_pending() == []  # recorded, not left to be handled anew
    finally:
        await backend.close()
    assert "handled again later" not in caplog.text
