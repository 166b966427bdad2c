"""The polls plugin and Zoom's events: a channel the bot leaves loses its polls (and their
deadlines), an account that removes the app loses its polls and votes."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from chatopsbot.clock import ManualClock
from chatopsbot.testing import BotHarness
from tests.plugins.test_polls import START


@pytest.fixture
async def bot():
    async with BotHarness(clock=ManualClock(START)) as harness:
        yield harness


async def stored(bot: BotHarness, prefix: str) -> list[str]:
    rows = await bot.runtime.backend.scan("polls", prefix, bot.clock.timestamp())
    return [key for key, _ in rows]


async def test_leaving_a_channel_drops_its_polls_and_their_deadlines(bot):
    ops = (await bot.command("poll Lunch? a b --closes-in 1h")).only()
    dev = (await bot.command("poll Deploy? yes no --closes-in 1h", channel="dev")).only()
    await bot.click(ops, "a")
    await bot.remove_from_channel("ops")
    rows = await bot.runtime.backend.scan("polls", "poll:", bot.clock.timestamp())
    assert [json.loads(v)["conversation"]["jid"] for _, v in rows] == [dev.to_jid]
    assert len(await stored(bot, "votes:")) == 1
    seen = len(bot.zoom.requests)
    await bot.advance(timedelta(hours=2))
    # The poll in the channel the bot is still in closes; nothing is tried in "ops".
    paths = [r.path for r in bot.zoom.requests[seen:]]
    assert paths == [f"/v2/im/chat/messages/{dev.message_id}"]
    assert dev.edits == 1


async def test_an_account_removing_the_app_loses_its_polls_and_votes(bot):
    mine = (await bot.command("poll Lunch? a b")).only()
    await bot.click(mine, "a")
    theirs = (await bot.command("poll Coffee? yes no", account_id="acct-2")).only()
    await bot.click(theirs, "yes", account_id="acct-2")
    assert len(await stored(bot, "poll:")) == 2
    await bot.deauthorize("acct-1")
    assert len(await stored(bot, "poll:")) == 1
    assert len(await stored(bot, "votes:")) == 1
    assert (await bot.command("poll list", account_id="acct-2")).only().text.count("Coffee?") == 1


async def test_a_polls_card_is_edited_on_behalf_of_its_creator(bot):
    card = (await bot.command("poll Lunch? a b --closes-in 1h", user="carol")).only()
    await bot.click(card, "a", user="dan")
    await bot.advance(timedelta(hours=2))
    edits = [r for r in bot.zoom.requests if r.method == "PUT"]
    assert len(edits) == 2  # the vote, then the deadline's close
    assert {r.body["user_jid"] for r in edits} == {"carol@xmpp.zoom.us"}
