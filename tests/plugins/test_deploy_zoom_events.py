"""The deploy plugin and Zoom's events: a shared CI run URL unfurls into its deploy's card,
announcements and lock notes go out on behalf of the subscriber or the lock holder, a channel
the bot leaves loses its subscriptions, an account that removes the app loses its data."""

from __future__ import annotations

import logging
import re
from datetime import timedelta

import pytest

from chatopsbot.clock import ManualClock
from chatopsbot.testing import BotHarness
from tests.plugins.test_deploy import CONFIG, START, event, signed

CHANNEL = "ops@conference.xmpp.zoom.us"


@pytest.fixture
async def bot():
    async with BotHarness(clock=ManualClock(START), config=CONFIG) as harness:
        yield harness


async def test_a_shared_ci_run_url_unfurls_into_the_deploys_card(bot):
    await signed(bot, event(url="https://ci.example/run/7"))
    await signed(bot, event(status="succeeded", url="https://ci.example/run/7"))
    [unfurl] = await bot.share_link("https://ci.example/run/7")
    assert unfurl.content["head"]["text"] == "api → prod"
    assert "Status: ✅ succeeded" in unfurl.text
    assert "Version: 1.4.2" in unfurl.text


async def test_a_url_no_deploy_carried_is_not_unfurled(bot):
    await signed(bot, event(url="https://ci.example/run/7"))
    assert await bot.share_link("https://ci.example/run/8") == []


async def test_an_unfurl_shows_the_environments_lock(bot):
    await signed(bot, event())
    await bot.command("deploy lock api prod hotfix", user="bob")
    [unfurl] = await bot.share_link("https://ci.example/run/7")
    assert "locked by Bob: hotfix" in unfurl.text


async def test_announcements_go_out_on_behalf_of_the_subscriber(bot):
    await bot.command("deploy subscribe api", user="dave")
    await signed(bot, event())
    await signed(bot, event(status="succeeded"))
    card = bot.messages[-1]
    assert card.user_jid == "dave@xmpp.zoom.us"
    edit = bot.zoom.requests[-1]
    assert edit.method == "PUT"
    assert edit.body["user_jid"] == "dave@xmpp.zoom.us"


async def test_a_removed_lock_is_told_on_behalf_of_its_holder(bot):
    await bot.command("deploy lock api prod", user="bob")
    await bot.command("deploy unlock api prod --force", user="carol")
    note = bot.messages[-2]
    assert note.visible_to_user == "u-bob"
    assert note.user_jid == "bob@xmpp.zoom.us"


async def test_leaving_a_channel_drops_its_subscriptions(bot, caplog):
    await bot.command("deploy subscribe api")
    caplog.set_level(logging.INFO, "chatopsbot.dispatch")
    await bot.remove_from_channel("ops")
    assert re.search(r"\bdeploy: 1\b", caplog.text), caplog.text
    sent = len(bot.zoom.requests)
    assert (await signed(bot, event())).body["announced"] == 0
    assert len(bot.zoom.requests) == sent


async def test_an_account_removing_the_app_loses_its_subscriptions_and_locks(bot):
    await bot.command("deploy subscribe api")
    await bot.command("deploy lock api prod")
    await bot.command("deploy subscribe api", channel="elsewhere", account_id="acct-2")
    await bot.deauthorize("acct-1")
    assert (await bot.command("deploy locks")).only().text == "Nothing is locked."
    assert (await signed(bot, event())).body["announced"] == 1
    assert bot.messages[-1].to_jid == "elsewhere@conference.xmpp.zoom.us"


async def test_a_channel_is_left_whatever_the_case_of_its_jid(bot):
    # Zoom names the channel by id in the removal event; the subscription has the JID Zoom
    # sent with the command.
    await bot.command("deploy subscribe api", to_jid="OPS@conference.xmpp.zoom.us")
    await bot.remove_from_channel("ops")
    assert (await signed(bot, event())).body["announced"] == 0


async def test_a_user_managed_app_announces_and_reminds_for_the_user():
    from chatopsbot.zoom.fake import FakeZoom

    async with FakeZoom(app_type="user") as zoom:
        config = {**CONFIG, "zoom": {"app_type": "user"}}
        async with BotHarness(clock=ManualClock(START), config=config, zoom=zoom) as bot:
            await bot.command("deploy subscribe api", user="dave")
            await signed(bot, event())
            await signed(bot, event(status="succeeded"))
            await bot.command("deploy lock api prod", user="bob")
            reminded = await bot.advance(timedelta(hours=4))
            assert [r.status for r in zoom.requests if r.status >= 400] == []
            [card] = [m for m in bot.messages if m.text.startswith("api → prod")]
            assert (card.user_jid, card.edits) == ("dave@xmpp.zoom.us", 1)
            # No visible_to_user for a user-managed app: the reminder is a direct message.
            [reminder] = reminded
            assert (reminder.to_jid, reminder.visible_to_user) == ("bob@xmpp.zoom.us", None)


async def test_an_unfurl_obeys_the_rules_of_the_plugins_commands():
    # Who may not see `deploy status` may not have the status unfurled under a link either.
    config = {
        **CONFIG,
        "access": {
            "admins": ["u-carol"],
            "commands": {
                "deploy": {"deny_users": ["u-bob"]},
                "deploy:unfurl": {"allow_channels": [CHANNEL]},
            },
        },
    }
    async with BotHarness(clock=ManualClock(START), config=config) as bot:
        await signed(bot, event(url="https://ci.example/run/7"))
        assert await bot.share_link("https://ci.example/run/7", user="bob") == []
        assert await bot.share_link("https://ci.example/run/7", channel="elsewhere") == []
        [unfurl] = await bot.share_link("https://ci.example/run/7", user="dave")
        assert unfurl.content["head"]["text"] == "api → prod"


async def test_a_link_shared_by_a_guest_of_another_account_is_not_unfurled(bot, caplog):
    from chatopsbot.zoom.payloads import link_shared

    await signed(bot, event(url="https://ci.example/run/7"))
    caplog.set_level(logging.INFO, "chatopsbot.dispatch")
    shared = link_shared("https://ci.example/run/7", base_url=bot.zoom.api_base_url)
    shared["payload"]["by_external_user"] = True
    await bot.deliver(shared)
    assert bot.zoom.unfurls == []
    assert "shared by a user of another account: not unfurled" in caplog.text
