"""The on-call plugin and Zoom's events: handoffs are not announced in a channel the bot was
removed from (until it is added back); the teams' account removing the app loses overrides."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from chatopsbot.clock import ManualClock
from chatopsbot.testing import BotHarness
from tests.plugins.test_oncall import CHANNEL, CONFIG, START, TEAMS


@pytest.fixture
async def bot():
    async with BotHarness(clock=ManualClock(START), config=CONFIG) as harness:
        yield harness


async def test_handoffs_stop_in_a_channel_the_bot_left_and_resume_when_added_back(bot, caplog):
    assert await bot.advance(60) == []  # the current state is noted
    caplog.set_level(logging.INFO)
    await bot.remove_from_channel("platform")
    assert "oncall: 1," in caplog.text
    await bot.command("oncall override platform alice 1h", channel=None)
    assert await bot.advance(30) == []
    assert "not announcing platform's handoff to Alice" in caplog.text
    assert bot.zoom.requests[-1].status != 403  # nothing was tried in the channel
    await bot.add_to_channel("platform")
    ended = await bot.advance(timedelta(hours=1))
    assert [(m.to_jid, m.text.split(" until")[0]) for m in ended] == [
        (CHANNEL, "📟 Bob is now on call for platform")
    ]


async def test_the_teams_account_removing_the_app_loses_the_overrides(bot):
    async def on_call() -> str:
        text: str = (await bot.command("oncall platform")).only().text
        return text.splitlines()[0]

    assert (await on_call()).startswith("platform: Bob")  # the rotation's week
    await bot.command("oncall override platform alice 2h", channel=None)
    assert (await on_call()).startswith("platform: Alice")
    await bot.deauthorize("acct-2")  # another account: nothing of the teams goes
    assert (await on_call()).startswith("platform: Alice")
    await bot.deauthorize("acct-1")
    assert (await on_call()).startswith("platform: Bob")


async def test_a_handoff_goes_out_on_behalf_of_the_person_now_on_call_when_known(tmp_path):
    teams = {
        "platform": {
            **TEAMS["platform"],
            "members": ["Alice", {"name": "Bob", "user": "bob@xmpp.zoom.us"}, "Carol"],
        }
    }
    config = {**CONFIG, "plugins": {"oncall": {"account_id": "acct-1", "teams": teams}}}
    async with BotHarness(clock=ManualClock(START), config=config) as bot:
        assert await bot.advance(60) == []
        await bot.command("oncall override platform alice 1h", channel=None)
        [alice] = await bot.advance(30)
        assert alice.user_jid is None  # no JID configured for Alice
        [bob] = await bot.advance(timedelta(hours=1))
        assert bob.text.startswith("📟 Bob is now on call")
        assert bob.user_jid == "bob@xmpp.zoom.us"


async def test_without_an_account_in_the_config_a_removal_loses_the_overrides():
    # No team announces in a channel, so [plugins.oncall] account_id is not needed: the
    # install serves one account, and its removal must not leave who-covered-whom behind.
    team = {k: v for k, v in TEAMS["platform"].items() if k != "channel"}
    config = {**CONFIG, "plugins": {"oncall": {"teams": {"platform": team}}}}
    async with BotHarness(clock=ManualClock(START), config=config) as bot:
        await bot.command("oncall override platform alice 2h", channel=None)
        overrides = (await bot.command("oncall overrides platform")).only().text
        assert "Alice" in overrides
        await bot.deauthorize("acct-1")
        assert "Alice" not in (await bot.command("oncall overrides platform")).only().text
