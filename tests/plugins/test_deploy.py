"""The deploy plugin end to end: the CI hook in, signed webhooks in, fake Zoom out."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chatopsbot import sign_request
from chatopsbot.clock import ManualClock
from chatopsbot.config import ConfigError
from chatopsbot.testing import BotHarness

TOKEN = "ci-secret"
START = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
CONFIG: dict[str, dict[str, Any]] = {
    "plugins": {"deploy": {"webhook_token": TOKEN, "lock_reminder": "4h"}},
    "access": {"admins": ["u-carol"]},
}
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


async def signed(bot: BotHarness, body: Any, **kwargs: Any) -> Any:
    return await bot.signed_hook("POST", "deploy", secret=TOKEN, json=body, **kwargs)


async def history_rows(bot: BotHarness) -> list[str]:
    return (await bot.command("deploy history api --limit 50")).only().text.splitlines()[1:]


async def test_authentication(bot):
    assert (await post(bot, event(), headers={})).status == 401
    assert (await post(bot, event(), headers={"Authorization": "Bearer nope"})).status == 401
    assert (await signed(bot, event())).status == 202
    # The old body-only signature could be replayed forever: it is refused, saying what to do.
    body = json.dumps(event()).encode()
    sig = "sha256=" + hmac.new(TOKEN.encode(), body, hashlib.sha256).hexdigest()
    result = await bot.hook(
        "POST",
        "deploy",
        data=body,
        headers={"X-Signature-256": sig, "Content-Type": "application/json"},
    )
    assert result.status == 401
    assert "body-only X-Signature-256 is not accepted" in result.body["error"]


async def test_a_replayed_delivery_changes_nothing(bot):
    await bot.command("deploy subscribe api")
    assert (await signed(bot, event(), delivery_id="gha-1-started")).status == 202
    succeeded = await signed(bot, event(status="succeeded"), delivery_id="gha-1-done")
    assert succeeded.status == 202
    [card] = bot.messages[1:]
    before = (card.text, card.edits, await history_rows(bot))
    replay = await signed(bot, event(), delivery_id="gha-1-started")
    assert (replay.status, replay.body) == (
        200,
        {"status": "duplicate", "delivery": "gha-1-started"},
    )
    assert (card.text, card.edits, await history_rows(bot)) == before
    assert "Status: ✅ succeeded" in card.text


async def test_a_stale_signed_event_is_refused(bot):
    stale = await signed(bot, event(), timestamp=int(START.timestamp()) - 301)
    assert (stale.status, stale.body) == (
        401,
        {"error": "timestamp too old (more than 300 s before the bot's clock)"},
    )
    assert (await bot.command("deploy status")).only().text.endswith("No deploys recorded yet.")


@pytest.mark.parametrize("with_timestamps", [True, False], ids=["ci-timestamps", "arrival"])
async def test_events_out_of_order_never_roll_a_deploy_back(bot, with_timestamps):
    def at(status: str, seconds: int) -> dict[str, Any]:
        extra = {"timestamp": START.timestamp() + seconds} if with_timestamps else {}
        return event(status=status, version="1.5.0", **extra)

    await bot.command("deploy subscribe api")
    await post(bot, at("started", 0))
    await post(bot, at("succeeded", 60))
    [card] = bot.messages[1:]
    before = (card.text, card.edits, await history_rows(bot))
    status = (await bot.command("deploy status")).only().text
    # The "started" again (a late delivery, or the same request sent twice with the bearer
    # token, which has no timestamp of its own): nothing moves.
    for late in (at("started", 0), at("started", 120), at("succeeded", 60)):
        result = await post(bot, late)
        assert result.status == 200
        assert result.body["accepted"] is False
        assert result.body["current"] == "succeeded"
    assert (card.text, card.edits, await history_rows(bot)) == before
    assert len(before[2]) == 2
    assert (await bot.command("deploy status")).only().text == status
    assert "1.5.0 ✅ succeeded" in status
    # Forward still moves: a later rollback of that version is shown.
    assert (await post(bot, at("rolled_back", 180))).status == 202
    assert "Status: ↩️ rolled_back" in card.text
    assert len(await history_rows(bot)) == 3


async def test_redeploying_an_earlier_version_is_a_new_deploy(bot):
    await bot.command("deploy subscribe api")
    t = START.timestamp()
    await post(bot, event(version="1.4.2", status="succeeded", timestamp=t))
    await post(bot, event(version="1.5.0", status="succeeded", timestamp=t + 60))
    # A late "started" of 1.4.2 (its CI time is before 1.5.0's) is not a new deploy.
    late = await post(bot, event(version="1.4.2", status="started", timestamp=t - 10))
    assert late.body["accepted"] is False
    assert "1.5.0 ✅ succeeded" in (await bot.command("deploy status")).only().text
    # Rolling back by deploying 1.4.2 again: a new card, and the status follows it.
    for n, status in enumerate(["started", "succeeded"]):
        result = await post(bot, event(version="1.4.2", status=status, timestamp=t + 120 + n))
        assert result.status == 202
    cards = [m for m in bot.messages if m.text.startswith("api → prod")]
    assert [("1.4.2" in c.text, c.edits) for c in cards] == [(True, 0), (False, 0), (True, 1)]
    assert "1.4.2 ✅ succeeded" in (await bot.command("deploy status")).only().text
    assert len(await history_rows(bot)) == 4


async def test_a_terminal_event_beats_started_whatever_their_timestamps(bot):
    await bot.command("deploy subscribe api")
    await post(bot, event(status="succeeded", timestamp=START.timestamp() - 60))
    await post(bot, event(status="started", timestamp=START.timestamp()))
    [card] = bot.messages[1:]
    assert "succeeded" in card.text
    assert "1.4.2 ✅ succeeded" in (await bot.command("deploy status")).only().text


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
            "version: expected a name of letters, digits, '.', '_', '/', '-', '@' (at most 100)",
        ),
        (
            event(version=3),
            "version: expected a name of letters, digits, '.', '_', '/', '-', '@' (at most 100)",
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
    signed_check = await bot.signed_hook(
        "GET", "deploy", "/lock?service=api&environment=prod", secret=TOKEN
    )
    assert signed_check.status == 423

    again = (await bot.command("deploy lock api prod", user="bob")).only()
    assert again.text.startswith("api prod is already locked by Alice")
    # A deploy into a locked environment is recorded and announced with a warning.
    await bot.command("deploy subscribe api")
    result = await post(bot, event(version="2.0.0"))
    assert result.body["locked"] is True
    assert "⚠ prod is locked by Alice: db migration" in bot.messages[-1].text

    for command in ("deploy unlock api prod", "deploy unlock api prod --force"):
        refused = (await bot.command(command, user="bob")).only()
        assert (refused.text, refused.visible_to_user) == (
            "api prod is locked by Alice: only Alice or a bot admin can remove that lock, "
            "so ask them.",
            "u-bob",
        )
    assert "api prod: Alice since" in (await bot.command("deploy locks")).only().text
    # An admin (carol) needs --force too, and the holder is told.
    refused = (await bot.command("deploy unlock api prod", user="carol")).only()
    assert refused.text.startswith("api prod is locked by Alice; add --force to remove their lock")
    replies = await bot.command("deploy unlock api prod --force", user="carol")
    assert [(m.text, m.visible_to_user) for m in replies] == [
        ("Your lock on api prod was removed by Carol.", "u-alice"),
        ("🔓 Carol unlocked api prod", None),
    ]
    assert (await bot.command("deploy locks")).only().text == "Nothing is locked."
    # The holder removes their own lock, with or without --force.
    for command in ("deploy unlock api prod", "deploy unlock api prod --force"):
        await bot.command("deploy lock api prod", user="bob")
        assert (await bot.command(command, user="bob")).texts == ["🔓 Bob unlocked api prod"]


async def test_the_lock_check_signature_answers_for_its_own_query_only(bot):
    await post(bot, event())
    await post(bot, event(environment="staging"))
    await bot.command("deploy lock api prod freeze", user="alice")
    headers = sign_request(
        TOKEN,
        "GET",
        "/hooks/deploy/lock",
        query={"service": "api", "environment": "staging"},
        timestamp=int(START.timestamp()),
    )
    ok = await bot.hook("GET", "deploy", "/lock?service=api&environment=staging", headers=headers)
    assert (ok.status, ok.body) == (200, {"locked": False})
    for other in (
        "/lock?service=api&environment=prod",
        "/lock?environment=staging&service=web",
        "/lock?service=api&environment=staging&x=1",
    ):
        assert (await bot.hook("GET", "deploy", other, headers=headers)).status == 401, other
    # The same signature an hour later: refused.
    await bot.advance(timedelta(hours=1))
    late = await bot.hook("GET", "deploy", "/lock?service=api&environment=staging", headers=headers)
    assert late.status == 401


async def test_force_unlock_anyone_lets_anyone_force():
    config = {"plugins": {"deploy": {"webhook_token": TOKEN, "force_unlock": "anyone"}}}
    async with BotHarness(clock=ManualClock(START), config=config) as bot:
        await post(bot, event())
        await bot.command("deploy lock api prod", user="alice")
        replies = await bot.command("deploy unlock api prod --force", user="bob")
        assert replies.texts == [
            "Your lock on api prod was removed by Bob.",
            "🔓 Bob unlocked api prod",
        ]


LONG = "x" * 201


@pytest.mark.parametrize(
    ("command", "reply"),
    [
        (f"deploy lock api prod {LONG}", "reason: at most 200 characters (this one has 201)"),
        (
            f"deploy lock {'a' * 65} prod",
            "service: expected a name of letters, digits, '.', '_', '/', '-' (at most 64)",
        ),
        (
            f"deploy lock api {'e' * 65}",
            "env: expected a name of letters, digits, '.', '_', '/', '-' (at most 64)",
        ),
        (
            f"deploy subscribe {'a' * 65}",
            "target: expected a name of letters, digits, '.', '_', '/', '-' (at most 64)",
        ),
        (
            "deploy history api pr<o>d",
            "env: expected a name of letters, digits, '.', '_', '/', '-' (at most 64)",
        ),
        (
            f"deploy unlock {'a' * 65} prod",
            "service: expected a name of letters, digits, '.', '_', '/', '-' (at most 64)",
        ),
        (
            f"deploy status {'a' * 65}",
            "service: expected a name of letters, digits, '.', '_', '/', '-' (at most 64)",
        ),
    ],
)
async def test_commands_refuse_overlong_or_odd_text_privately(bot, command, reply):
    await post(bot, event())
    [message] = await bot.command(command, user="bob")
    assert message.visible_to_user == "u-bob"
    assert message.text.startswith(reply + "\n")
    assert (await bot.command("deploy locks")).only().text == "Nothing is locked."


async def test_a_reason_of_200_characters_is_accepted_and_shown(bot):
    await post(bot, event())
    await bot.command("deploy subscribe api")
    reason = "r" * 200
    assert (await bot.command(f"deploy lock api prod {reason}")).texts == [
        f"🔒 Alice locked api prod: {reason}"
    ]
    await post(bot, event(version="2.0.0"))
    assert f"⚠ prod is locked by Alice: {reason}" in bot.messages[-1].text


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        (
            {"service": "a" * 65},
            "service: expected a name of letters, digits, '.', '_', '/', '-' (at most 64)",
        ),
        (
            {"environment": "prod\n"},
            "environment: expected a name of letters, digits, '.', '_', '/', '-' (at most 64)",
        ),
        (
            {"version": "v" * 101},
            "version: expected a name of letters, digits, '.', '_', '/', '-', '@' (at most 100)",
        ),
        ({"actor": "a" * 101}, "actor: expected a string of at most 100 characters"),
        ({"commit": "c" * 65}, "commit: expected a string of at most 64 characters"),
        (
            {"url": "https://ci.example/" + "u" * 1000},
            "url: expected a string of at most 1000 characters",
        ),
        ({"message": "m" * 1001}, "message: expected a string of at most 1000 characters"),
        ({"actor": "ci\nbot"}, "actor: expected one line without control characters"),
    ],
)
async def test_ci_fields_over_their_cap_get_400_naming_field_and_limit(bot, fields, error):
    await bot.command("deploy subscribe all")
    result = await post(bot, event(**fields))
    assert (result.status, result.body) == (400, {"error": error})
    assert bot.messages[1:] == []


async def test_ci_fields_at_their_cap_are_accepted(bot):
    fields = {
        "service": "s" * 64,
        "environment": "e" * 64,
        "version": "v" * 100,
        "actor": "a" * 100,
        "commit": "c" * 64,
        "url": "https://ci.example/" + "u" * (1000 - 19),
        "message": "m" * 1000,
    }
    assert (await post(bot, event(**fields))).status == 202


async def test_the_lock_check_refuses_odd_names(bot):
    result = await bot.hook(
        "GET", "deploy", f"/lock?service={'a' * 65}&environment=prod", headers=AUTH
    )
    assert (result.status, result.body) == (
        400,
        {"error": "service: expected a name of letters, digits, '.', '_', '/', '-' (at most 64)"},
    )


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
            "plugins.deploy.lock_reminder: expected a duration such as 30m, 4h, 1d or 1h30m",
        ),
        ({"webhook_token": 5}, "plugins.deploy.webhook_token: expected a string, got int"),
        (
            {"webhook_tokn": "x"},
            "plugins.deploy.webhook_tokn: unknown key (did you mean webhook_token?)",
        ),
        (
            {"force_unlock": "owners"},
            'plugins.deploy.force_unlock: expected "admins" or "anyone", got \'owners\'',
        ),
    ],
)
async def test_bad_config_fails_startup_naming_the_key(table, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        await BotHarness(config={"plugins": {"deploy": table}}).start()


async def test_a_card_whose_post_failed_is_posted_by_the_next_event(bot):
    """The handler that claimed a channel's card could not post it: the claim is given back,
    so the deploy's next event posts the card (with its own status) instead of waiting on a
    card that never comes."""
    from chatopsbot.zoom.fake import Fault

    await bot.command("deploy subscribe api")
    bot.zoom.inject(Fault(400, {"code": 7001, "message": "Invalid to_jid."}))
    failed = await signed(bot, event(), delivery_id="first")
    assert failed.status >= 500
    assert [m for m in bot.messages if m.text.startswith("api → prod")] == []
    done = await signed(bot, event("succeeded"), delivery_id="second")
    assert done.body["announced"] == 1
    cards = [m for m in bot.messages if m.text.startswith("api → prod")]
    assert len(cards) == 1
    assert "succeeded" in cards[0].text


@pytest.mark.parametrize(
    "timestamp", [1e17, -5, "1970-01-02T00:00:00Z", "2999-01-01T00:00:00+00:00", float("nan")]
)
async def test_an_event_time_out_of_range_is_refused_and_status_keeps_working(bot, timestamp):
    body = {**event(), "timestamp": timestamp}
    if timestamp != timestamp:  # NaN: JSON has no spelling for it
        data = json.dumps(body).encode()
        result = await bot.signed_hook("POST", "deploy", secret=TOKEN, data=data)
    else:
        result = await signed(bot, body)
    assert result.status == 400
    assert result.body["error"].startswith("timestamp:")
    assert (await bot.command("deploy status")).only().text.endswith("No deploys recorded yet.")
