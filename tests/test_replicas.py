"""Two bots on one PostgreSQL database, in one process: who sends, who waits, who takes over.

The end-to-end failover tests with real processes are in tests/test_failover.py.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from chatopsbot import (
    Arg,
    Context,
    Conversation,
    PluginContext,
    Text,
    command,
    every,
    hookimpl,
    timer,
)
from chatopsbot.clock import ManualClock
from chatopsbot.zoom.payloads import bot_notification
from tests.conftest import CHANNEL, POSTGRES_URL


class Sends:
    """``send``: sends a message itself and reports the id Zoom gave it."""

    @hookimpl
    def chatops_commands(self) -> list[object]:
        @command("send", help="Sends, then reports the message id")
        async def send(ctx: Context) -> Text:
            sent = await ctx.send(Text("first"))
            return Text(f"sent {sent.message_id}")

        return [send]


async def _until(check, within: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not check():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def test_followers_write_the_leader_sends_and_takes_over(start_bot, zoom, postgres_schema):
    storage = {"url": f"{POSTGRES_URL}?search_path={postgres_schema}"}
    leader = await start_bot(extra={"sends": Sends()}, storage=storage)
    follower = await start_bot(extra={"sends": Sends()}, storage=storage)
    assert leader.runtime.leading
    assert not follower.runtime.leading
    health = await (await follower.client.get("/healthz")).json()
    assert health["role"] == "follower"

    # A command taken by the follower is answered through the leader.
    assert (await follower.post(bot_notification("ping", to_jid=CHANNEL))).status == 200
    await _until(lambda: [m.text for m in zoom.sent()] == ["pong"])

    # ctx.send on the follower gets its message id from the leader's send.
    assert (await follower.post(bot_notification("send", to_jid=CHANNEL))).status == 200
    await _until(lambda: len(zoom.sent()) == 3)
    first, report = zoom.sent()[1:]
    assert first.text == "first"
    assert report.text == f"sent {first.message_id}"

    # A redelivery landing on the other replica is a duplicate.
    event = bot_notification("ping", to_jid=CHANNEL, user_id="u-bob")
    assert (await (await follower.post(event)).json())["status"] == "accepted"
    assert (await (await leader.post(event)).json())["status"] == "duplicate"
    await _until(lambda: len(zoom.sent()) == 4)

    # The leader stops: the follower takes the lease and sends from then on.
    await leader.stop()
    await _until(lambda: follower.runtime.leading, within=5)
    assert (
        await follower.post(bot_notification("ping", to_jid=CHANNEL, user_id="u-c"))
    ).status == 200
    await _until(lambda: len(zoom.sent()) == 5)
    assert [m.text for m in zoom.sent()] == ["pong", "first", report.text, "pong", "pong"]


class Reminders:
    """``remind N``: a timer N seconds on; a job every minute. Counts runs across replicas."""

    def __init__(self, runs: list[str]) -> None:
        self.runs = runs

    @hookimpl
    def chatops_commands(self) -> list[object]:
        @command("remind", help="Remind in N seconds", args=(Arg("seconds", type=int),))
        async def remind(ctx: Context) -> Text:
            at = ctx.clock.now() + timedelta(seconds=ctx.args["seconds"])
            await ctx.timers.schedule("ring", at, {"to": ctx.conversation.jid})
            return Text("ok")

        return [remind]

    @hookimpl
    def chatops_jobs(self) -> list[object]:
        @timer("ring")
        async def ring(ctx: PluginContext, payload: dict[str, str]) -> None:
            self.runs.append("timer")
            await ctx.send_to(Conversation("acct-1", payload["to"]), Text("ring"))

        @every(60)
        async def tick(ctx: PluginContext) -> None:
            self.runs.append("job")

        return [ring, tick]


async def test_jobs_and_timers_fire_once_and_outlive_their_replica(
    start_bot, zoom, postgres_schema
):
    clock = ManualClock()
    runs: list[str] = []
    storage = {"url": f"{POSTGRES_URL}?search_path={postgres_schema}"}
    first = await start_bot(extra={"r": Reminders(runs)}, clock=clock, storage=storage)
    second = await start_bot(extra={"r": Reminders(runs)}, clock=clock, storage=storage)
    assert first.runtime.leading
    assert not second.runtime.leading

    # Scheduled on the follower, fired by the leader, once.
    await second.deliver(bot_notification("remind 30", to_jid=CHANNEL))
    await _until(lambda: [m.text for m in zoom.sent()] == ["ok"])
    await asyncio.sleep(0.2)  # the leader hears of the timer
    await clock.advance(61)
    await _until(lambda: sorted(runs) == ["job", "timer"])
    await first.settle()
    assert [m.text for m in zoom.sent()] == ["ok", "ring"]

    # Scheduled on the leader, which then goes: the other replica fires it.
    await first.deliver(bot_notification("remind 30", to_jid=CHANNEL, user_id="u-b"))
    await first.stop()
    await _until(lambda: second.runtime.leading, within=5)
    # The new leader's job and timer loops start sleeping on the clock in a moment: an
    # advance before that would pass them by (seen once in a full run under load).
    await asyncio.sleep(0.2)
    runs.clear()
    await clock.advance(61)
    await _until(lambda: sorted(runs) == ["job", "timer"])
    await second.settle()
    assert [m.text for m in zoom.sent()] == ["ok", "ring", "ok", "ring"]
