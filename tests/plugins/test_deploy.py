"""The deploy plugin end to end: the CI hook in, signed webhooks in, fake Zoom out."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chatopsbot.clock import ManualClock
from chatopsbot.config import ConfigError
from chatopsbot.testing import BotHarness

TOKEN = "ci-secret"
START = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
CONFIG = {"plugins": {"deploy": {"webhook_token": TOKEN, "lock_reminder": "4h"}}}
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def event(status: str = "started", **fields: Any) -> dict[str, Any]:
    return {
        "service": "api",
        "environment": "prod",
        "version": "1.4.2",
        "status": status,
        "actor": "ci-bot",
        "url": "https://ci.example/run/7",
        **fields,
    }


@pytest.fixture
async def bot():
    async with BotHarness(clock=ManualClock(START), config=CONFIG) as harness:
        yield harness


async def post(bot: BotHarness, body: Any, headers: dict[str, str] | None = None) -> Any:
    return await bot.hook("POST", "deploy", json=body, headers=AUTH if headers is None else headers)


async def test_authentication(bot):
    assert (await post(bot, event(), headers={})).status == 401
    assert (await post(bot, event(), headers={"Authorization": "Bearer nope"})).status == 401
    body = json.dumps(event()).encode()
    sig = "sha256=" + hmac.new(TOKEN.encode(), body, hashlib.sha256).hexdigest()
    result = await bot.hook(
        "POST",
        "deploy",
        data=body,
        headers={"X-Signature-256": sig, "Content-Type": "application/json"},
    )
    assert result.status == 202


async def test_without_a_token_the_hook_refuses_everything():
    async with BotHarness() as bot:
        result = await bot.hook(
            "POST", "deploy", json=event(), headers={"Authorization": "Bearer "}
        )
        assert result.status == 401
        assert result.body == {
            "error": "the deploy hook is off: set [plugins.deploy] webhook_token"
        }


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"environment": "prod", "version": "1", "status": "started"}, "service: required"),
        (
            event(status="exploded"),
            "status: expected one of started, succeeded, failed, rolled_back",
        ),
        (
            event(version=""),
            "version: expected a name of letters, digits, '.', '_', '/', '-' (at most 100)",
        ),
        (
            event(version=3),
            "version: expected a name of letters, digits, '.', '_', '/', '-' (at most 100)",
        ),
        (event(url="javascript:alert(1)"), "url: expected an http(s) URL"),
        (
            event(timestamp="yesterday"),
            "timestamp: expected ISO 8601 with a time zone, or epoch seconds",
        ),
        (event(colour="red"), "colour: unknown field"),
        ([1, 2], "body: expected a JSON object"),
    ],
)
async def test_bad_payloads_get_400_naming_the_field_and_reach_nothing(bot, body, error):
    await bot.command("deploy subscribe all")
    result = await post(bot, body)
    assert result.status == 400
    assert result.body == {"error": error}
    assert (await bot.command("deploy status")).only().text.endswith("No deploys recorded yet.")


async def test_announcements_are_edited_in_place_per_deploy(bot):
    await post(bot, event())  # before anyone subscribed: recorded, not announced
    assert (await bot.command("deploy subscribe api", channel="ops")).texts == [
        "This channel now gets deploys of api."
    ]
    await bot.command("deploy subscribe all prod", channel="releases")
    started = await post(bot, event(version="1.5.0"))
    assert started.body == {"accepted": True, "announced": 2, "locked": False}
    cards = [m for m in bot.messages if m.text.startswith("api → prod")]
    assert [c.to_jid for c in cards] == [
        "ops@conference.xmpp.zoom.us",
        "releases@conference.xmpp.zoom.us",
    ]
    assert "Status: 🚀 started" in cards[0].text
    await post(bot, event(version="1.5.0", status="succeeded"))
    assert all("Status: ✅ succeeded" in c.text and c.edits == 1 for c in cards)
    # A late "started" does not roll the cards back.
    await post(bot, event(version="1.5.0", status="started", timestamp=START.timestamp() - 60))
    assert all("succeeded" in c.text for c in cards)
    # A new version is a new card; an environment the subscription excludes is not announced.
    await post(bot, event(version="1.6.0", environment="staging"))
    assert [m.to_jid for m in bot.messages if "1.6.0" in m.text] == ["ops@conference.xmpp.zoom.us"]


async def test_status_and_history(bot):
    for n, status in enumerate(["started", "succeeded"]):
        await post(bot, event(status=status, timestamp=START.timestamp() + n))
    await post(
        bot,
        event(
            environment="staging", version="1.5.0", status="failed", timestamp=START.timestamp() + 5
        ),
    )
    await post(bot, event(service="web", version="9", status="succeeded"))
    card = (await bot.command("deploy status")).only()
    assert "api prod: 1.4.2 ✅ succeeded" in card.text
    assert "api staging: 1.5.0 ❌ failed" in card.text
    assert "web prod: 9 ✅ succeeded" in card.text
    one = (await bot.command("deploy status web")).only()
    assert "api" not in one.text.replace("Deploys of web", "")
    history = (await bot.command("deploy history api --limit 2")).only()
    assert history.text.splitlines() == [
        "Deploy history of api:",
        "staging · 2026-11-25 09:00 UTC · 1.5.0 · ❌ failed · by ci-bot · https://ci.example/run/7",
        "prod · 2026-11-25 09:00 UTC · 1.4.2 · ✅ succeeded · by ci-bot · https://ci.example/run/7",
    ]
    unknown = (await bot.command("deploy history apx")).only()
    assert unknown.visible_to_user == "u-alice"
    assert unknown.text.startswith("unknown service 'apx'; known: api, web")
    env = (await bot.command("deploy status api qa")).only()
    assert env.text.startswith("unexpected argument 'qa'")
    env = (await bot.command("deploy history api qa")).only()
    assert env.text.startswith("unknown environment 'qa' for api; known: prod, staging")


async def test_locks_force_unlock_and_the_ci_lock_check(bot):
    await post(bot, event())
    check = await bot.hook("GET", "deploy", "/lock?service=api&environment=prod", headers=AUTH)
    assert (check.status, check.body) == (200, {"locked": False})
    assert (await bot.command("deploy lock api prod db migration", user="alice")).texts == [
        "🔒 Alice locked api prod: db migration"
    ]
    check = await bot.hook("GET", "deploy", "/lock?service=api&environment=prod", headers=AUTH)
    assert check.status == 423
    assert check.body == {
        "locked": True,
        "by": "Alice",
        "since": "2026-11-25 09:00 UTC",
        "reason": "db migration",
    }
    assert (await bot.hook("GET", "deploy", "/lock?service=api", headers=AUTH)).status == 400
    assert (await bot.hook("GET", "deploy", "/lock?service=api&environment=prod")).status == 401

    again = (await bot.command("deploy lock api prod", user="bob")).only()
    assert again.text.startswith("api prod is already locked by Alice")
    # A deploy into a locked environment is recorded and announced with a warning.
    await bot.command("deploy subscribe api")
    result = await post(bot, event(version="2.0.0"))
    assert result.body["locked"] is True
    assert "⚠ prod is locked by Alice: db migration" in bot.messages[-1].text

    refused = (await bot.command("deploy unlock api prod", user="bob")).only()
    assert refused.text.startswith("api prod is locked by Alice; add --force to remove their lock")
    replies = await bot.command("deploy unlock api prod --force", user="bob")
    assert [(m.text, m.visible_to_user) for m in replies] == [
        ("Your lock on api prod was removed by Bob.", "u-alice"),
        ("🔓 Bob unlocked api prod", None),
    ]
    assert (await bot.command("deploy locks")).only().text == "Nothing is locked."


async def test_an_old_lock_reminds_its_holder(bot):
    await post(bot, event())
    await bot.command("deploy lock api prod", user="carol")
    assert await bot.advance(timedelta(hours=3, minutes=59)) == []
    reminder = (await bot.advance(timedelta(minutes=1))).only()
    assert reminder.visible_to_user == "u-carol"
    assert reminder.text.startswith("Reminder: you locked api prod 4 h ago.")
    await bot.command("deploy unlock api prod", user="carol")
    assert await bot.advance(timedelta(hours=8)) == []


async def test_subscriptions_listing_and_unsubscribe(bot):
    await post(bot, event())
    await bot.command("deploy subscribe api prod")
    await bot.command("deploy subscribe all")
    listing = (await bot.command("deploy subscriptions")).only()
    assert listing.text == "Deploys announced here:\napi in prod\nevery service"
    assert (await bot.command("deploy unsubscribe all")).texts == ["No more deploys of all here."]
    nope = (await bot.command("deploy unsubscribe web")).only()
    assert nope.text.startswith("this channel is not subscribed to web")


async def test_everything_survives_a_restart(tmp_path):
    clock = ManualClock(START)
    config: dict[str, Any] = {**CONFIG, "storage": {"path": str(tmp_path / "bot.db")}}
    async with BotHarness(clock=clock, config=config) as bot:
        await bot.command("deploy subscribe api")
        await post(bot, event())
        await bot.command("deploy lock api prod freeze")
        await bot.restart()
        card = next(m for m in bot.messages if m.text.startswith("api → prod"))
        await post(bot, event(status="succeeded"))
        assert card.edits == 1  # the same card, found again after the restart
        assert "1.4.2 ✅ succeeded" in (await bot.command("deploy status")).only().text
        check = await bot.hook("GET", "deploy", "/lock?service=api&environment=prod", headers=AUTH)
        assert check.status == 423


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (
            {"lock_reminder": "soon"},
            "plugins.deploy.lock_reminder: expected a duration like 30m, 4h or 1d",
        ),
        ({"webhook_token": 5}, "plugins.deploy.webhook_token: expected a string"),
        ({"webhook_tokn": "x"}, "plugins.deploy.webhook_tokn: unknown key"),
    ],
)
async def test_bad_config_fails_startup_naming_the_key(table, message):
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        await BotHarness(config={"plugins": {"deploy": table}}).start()
