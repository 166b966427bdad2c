"""Scheduled work: interval and cron jobs (DST-correct), no overlap, stored one-shot timers."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chatopsbot import Arg, Context, Conversation, PluginContext, Post, Text, command, hookimpl
from chatopsbot.clock import ManualClock
from chatopsbot.scheduler import Job, cron, every, timer
from tests.conftest import CHANNEL

OPS = Conversation("acct-1", CHANNEL, "ops")
OTHER = Conversation("acct-1", "other@conference.xmpp.zoom.us", "other")
START = datetime(2026, 3, 27, 12, 0, tzinfo=UTC)


async def noop(ctx: Any) -> None:
    return None


# Pure schedule arithmetic.


def test_interval_jobs_come_every_n_seconds():
    job = Job("j", noop, interval=90)
    assert job.next_after(START) == START + timedelta(seconds=90)


def test_cron_keeps_the_local_hour_across_the_spring_dst_change():
    job = Job("j", noop, cron="0 9 * * *", timezone="Europe/Berlin")
    first = job.next_after(START)
    second = job.next_after(first)
    third = job.next_after(second)
    assert [t.isoformat() for t in (first, second, third)] == [
        "2026-03-28T08:00:00+00:00",  # 09:00 CET
        "2026-03-29T07:00:00+00:00",  # 09:00 CEST: the UTC hour moves, the local one does not
        "2026-03-30T07:00:00+00:00",
    ]


def test_a_repeated_hour_in_autumn_runs_once():
    job = Job("j", noop, cron="30 2 * * *", timezone="Europe/Berlin")
    first = job.next_after(datetime(2026, 10, 24, 12, 0, tzinfo=UTC))
    second = job.next_after(first)
    assert first.isoformat() == "2026-10-25T00:30:00+00:00"  # 02:30 CEST
    assert second.isoformat() == "2026-10-26T01:30:00+00:00"  # next day, not 02:30 CET again


def test_cron_across_the_year_end():
    job = Job("j", noop, cron="0 0 1 1 *", timezone="Asia/Tokyo")
    when = job.next_after(datetime(2026, 12, 31, 14, 59, tzinfo=UTC))
    assert when.isoformat() == "2026-12-31T15:00:00+00:00"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "exactly one of an interval or a cron"),
        ({"interval": 5, "cron": "* * * * *"}, "exactly one"),
        ({"interval": 0}, "must be positive"),
        ({"cron": "61 * * * *"}, "invalid cron expression '61 \\* \\* \\* \\*'"),
        ({"cron": "0 9 * * *", "timezone": "Mars/Base"}, "unknown time zone 'Mars/Base'"),
    ],
)
def test_bad_jobs_are_refused_with_the_reason(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Job("j", noop, **kwargs)


# Through the running app.


class Ticker:
    def __init__(self) -> None:
        self.running = 0
        self.most = 0
        self.fail_next = False
        self.slow_running = 0
        self.slow_most = 0
        self.slow_starts: list[datetime] = []

    @hookimpl
    def chatops_jobs(self) -> list[Any]:
        @every(60, name="tick")
        async def tick(ctx: PluginContext) -> None:
            self.running += 1
            self.most = max(self.most, self.running)
            try:
                if self.fail_next:
                    self.fail_next = False
                    raise RuntimeError("tick broke")
                await ctx.send_to(OPS, Text(f"tick {ctx.clock.now():%H:%M:%S}"))
            finally:
                self.running -= 1

        @every(60, name="slow")
        async def slow(ctx: PluginContext) -> None:
            self.slow_starts.append(ctx.clock.now())
            self.slow_running += 1
            self.slow_most = max(self.slow_most, self.slow_running)
            await ctx.clock.sleep(150)
            self.slow_running -= 1

        return [tick, slow] if self.slow else [tick]

    slow = False


async def test_interval_jobs_run_on_time_and_a_failure_does_not_stop_them(start_bot, caplog):
    clock = ManualClock(START)
    ticker = Ticker()
    bot = await start_bot(extra={"ticker": ticker}, clock=clock)
    await clock.advance(59)
    await bot.settle()
    assert bot.zoom.sent() == []
    await clock.advance(1)
    await bot.settle()
    ticker.fail_next = True
    await clock.advance(60)
    await bot.settle()
    await clock.advance(60)
    await bot.settle()
    assert [m.text for m in bot.zoom.sent()] == ["tick 12:01:00", "tick 12:03:00"]
    assert "job ticker:tick failed; it stays scheduled" in caplog.text


async def test_a_slow_run_never_overlaps_the_next(start_bot):
    clock = ManualClock(START)
    ticker = Ticker()
    ticker.slow = True
    # The slow run still sleeps on the manual clock at the end: shutdown cancels it after 0.2 s.
    bot = await start_bot(extra={"ticker": ticker}, clock=clock, outbound={"drain_timeout": 0.2})
    for _ in range(20):
        await clock.advance(30)
    assert ticker.slow_most == 1
    # Runs start at 60 s, then as soon as the 150 s run before them ends: 210, 360, 510.
    assert [int((t - START).total_seconds()) for t in ticker.slow_starts] == [60, 210, 360, 510]
    assert bot.runtime.scheduler.busy


class Reminder:
    def __init__(self) -> None:
        self.fired: list[Any] = []

    @hookimpl
    def chatops_commands(self) -> list[Any]:
        @command("remind", help="Remind me", args=(Arg("minutes", type=int), Arg("text")))
        async def remind(ctx: Context) -> Text:
            at = ctx.clock.now() + timedelta(minutes=ctx.args["minutes"])
            await ctx.timers.schedule(
                "remind", at, {"text": ctx.args["text"], "to": ctx.conversation.jid}
            )
            return Text("ok", private=True)

        return [remind]

    @hookimpl
    def chatops_jobs(self) -> list[Any]:
        @timer("remind")
        async def fire(ctx: PluginContext, payload: Any) -> None:
            self.fired.append(payload)
            await ctx.send_to(Conversation("acct-1", payload["to"]), Text(payload["text"]))

        return [fire]


async def test_a_timer_fires_once_at_its_time(start_bot):
    clock = ManualClock(START)
    reminder = Reminder()
    bot = await start_bot(extra={"reminder": reminder}, clock=clock)
    await bot.command("remind 10 standup")
    await clock.advance(timedelta(minutes=9))
    await bot.settle()
    assert reminder.fired == []
    await clock.advance(timedelta(minutes=2))
    await bot.settle()
    await clock.advance(timedelta(hours=1))
    await bot.settle()
    assert [m.text for m in bot.zoom.sent()] == ["ok", "standup"]


async def test_timers_survive_a_restart_and_an_overdue_one_runs_once(start_bot, tmp_path, caplog):
    db = str(tmp_path / "bot.db")
    clock = ManualClock(START)
    first = await start_bot(extra={"reminder": Reminder()}, clock=clock, storage={"path": db})
    await first.command("remind 10 standup")
    await first.client.close()  # the bot stops before the timer is due

    await clock.advance(timedelta(minutes=30))  # it was due while the bot was down
    reminder = Reminder()
    with caplog.at_level(logging.INFO, "chatopsbot.scheduler"):
        second = await start_bot(extra={"reminder": reminder}, clock=clock, storage={"path": db})
        await clock.advance(0)
        await second.settle()
    assert "loaded 1 timer(s), 1 overdue" in caplog.text
    assert reminder.fired == [{"text": "standup", "to": CHANNEL}]
    await second.client.close()

    again = Reminder()
    third = await start_bot(extra={"reminder": again}, clock=clock, storage={"path": db})
    await clock.advance(timedelta(hours=2))
    await third.settle()
    assert again.fired == []


async def test_timers_need_a_handler_and_an_aware_time(start_bot):
    clock = ManualClock(START)
    bot = await start_bot(extra={"reminder": Reminder()}, clock=clock)
    ctx = bot.runtime.dispatcher.context_for("reminder")
    with pytest.raises(ValueError, match="no timer handler 'nope'"):
        await ctx.timers.schedule("nope", START, None)
    with pytest.raises(ValueError, match="aware datetime"):
        await ctx.timers.schedule("remind", datetime(2026, 1, 1), None)
    timer_id = await ctx.timers.schedule("remind", START + timedelta(hours=1), {"x": 1})
    assert [p[0] for p in await ctx.timers.pending()] == [timer_id]
    assert await ctx.timers.cancel(timer_id) is True
    assert await ctx.timers.pending() == []


def test_cron_decorator_builds_a_job():
    job = cron("0 9 * * 1-5", timezone="Europe/Berlin")(noop)
    assert (job.name, job.cron, job.timezone) == ("noop", "0 9 * * 1-5", "Europe/Berlin")


async def test_timers_of_a_plugin_not_loaded_are_kept_for_its_return(start_bot, tmp_path, caplog):
    db = str(tmp_path / "bot.db")
    clock = ManualClock(START)
    first = await start_bot(extra={"reminder": Reminder()}, clock=clock, storage={"path": db})
    await first.command("remind 1 later")
    await first.client.close()
    await clock.advance(timedelta(minutes=5))
    without = await start_bot(clock=clock, storage={"path": db})
    await clock.advance(0)
    await without.settle()
    assert "1 stored timer(s) belong to plugins not loaded; kept, not run" in caplog.text
    await without.client.close()
    reminder = Reminder()
    back = await start_bot(extra={"reminder": reminder}, clock=clock, storage={"path": db})
    await clock.advance(0)
    await back.settle()
    assert reminder.fired == [{"text": "later", "to": CHANNEL}]


class Returning:
    """A job and a timer that return what they send, as commands do."""

    @hookimpl
    def chatops_commands(self) -> list[Any]:
        @command("later", help="Answer in a minute", args=(Arg("text"),))
        async def later(ctx: Context) -> None:
            at = ctx.clock.now() + timedelta(minutes=1)
            where = {"account_id": ctx.account_id, "jid": ctx.conversation.jid}
            await ctx.timers.schedule("later", at, {"text": ctx.args["text"], "to": where})

        return [later]

    @hookimpl
    def chatops_jobs(self) -> list[Any]:
        @every(60, name="report")
        async def report(ctx: PluginContext) -> list[Post]:
            return [
                Post(OPS, Text(f"report {ctx.clock.now():%H:%M}")),
                Post(OPS, Text("only you", private=True), visible_to="u-alice"),
            ]

        @every(3600, name="lost")
        async def lost(ctx: PluginContext) -> Text:
            return Text("to whom?")

        @timer("later")
        async def fire(ctx: PluginContext, payload: Any) -> Post:
            return Post(Conversation(**payload["to"]), Text(payload["text"]))

        return [report, lost, fire]


async def test_jobs_and_timers_return_posts_like_commands_return_responses(start_bot, caplog):
    clock = ManualClock(START)
    bot = await start_bot(extra={"returning": Returning()}, clock=clock)
    await bot.command("later hello")
    await clock.advance(60)
    await bot.settle()
    sent = [(m.text, m.visible_to_user) for m in bot.zoom.sent()]
    assert sent[:2] == [("report 12:01", None), ("only you", "u-alice")]
    assert ("hello", None) in sent
    # A bare response from a job has nowhere to go: the job fails loudly, nothing is sent.
    await clock.advance(3600)
    await bot.settle()
    assert "job returning:lost failed" in caplog.text
    assert (
        "returned a Text with no conversation: return Post(conversation, response)" in caplog.text
    )
    assert "to whom?" not in [m.text for m in bot.zoom.sent()]


async def test_a_command_may_post_elsewhere_in_the_same_unit(start_bot):
    @command("tell", help="Tell ops", args=(Arg("text"),))
    async def tell(ctx: Context) -> list[Any]:
        return [Text("told", private=True), Post(OTHER, Text(ctx.args["text"]))]

    class Teller:
        @hookimpl
        def chatops_commands(self) -> list[Any]:
            return [tell]

    bot = await start_bot(extra={"teller": Teller()})
    replies = await bot.command("tell hi")
    assert [(r.text, r.to_jid) for r in replies] == [("told", CHANNEL), ("hi", OTHER.jid)]
