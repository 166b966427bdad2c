"""The alerts plugin: Alertmanager's webhook in, cards in the fake Zoom, silences out.

Payload fixtures (tests/plugins/fixtures/alertmanager-*.json) are notifications Debian's
prometheus-alertmanager 0.25.0 really sent; each file names its source.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import io
import json
import logging
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from chatopsbot_alerts.card import GroupView, render
from chatopsbot_alerts.matchers import Matcher, MatcherError, parse_matchers
from chatopsbot_alerts.notification import NotificationInvalid, parse
from chatopsbot_alerts.plugin import _key, group_id
from chatopsbot_alerts.settings import read_settings

from chatopsbot import Conversation, PluginConfigError
from chatopsbot.clock import ManualClock
from chatopsbot.config import ConfigError
from chatopsbot.testing import BotHarness, channel_jid
from tests.bot_process import wait_until
from tests.plugins.fake_alertmanager import FakeAlertmanager

FIXTURES = Path(__file__).parent / "fixtures"
TOKEN = "am-secret"
START = datetime(2026, 11, 25, 19, 10, tzinfo=UTC)
OPS = channel_jid("ops")
PAGES = channel_jid("pages")
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def fixture(name: str) -> dict[str, Any]:
    data = json.loads((FIXTURES / f"alertmanager-{name}.json").read_text())
    assert "prometheus-alertmanager 0.25.0" in data["source"]
    payload: dict[str, Any] = data["payload"]
    return payload


def firing(**labels: str) -> dict[str, Any]:
    """The real firing notification, with its alert's labels changed or added."""
    body = fixture("firing")
    for alert in body["alerts"]:
        alert["labels"].update(labels)
    body["commonLabels"].update(labels)
    return body


def with_second_alert(body: dict[str, Any]) -> dict[str, Any]:
    body = copy.deepcopy(body)
    second = copy.deepcopy(body["alerts"][0])
    second["labels"]["instance"] = "api-2:9090"
    second["annotations"]["summary"] = "API latency above 900ms"
    second["fingerprint"] = "d2beef0000000001"
    body["alerts"].append(second)
    body["commonLabels"].pop("instance")
    body["commonAnnotations"].pop("summary")
    return body


@pytest.fixture
async def alertmanager() -> AsyncIterator[FakeAlertmanager]:
    fake = FakeAlertmanager()
    await fake.start()
    yield fake
    await fake.close()


def config(alertmanager_url: str = "", **extra: Any) -> dict[str, Any]:
    table = {
        "webhook_token": TOKEN,
        "alertmanager_url": alertmanager_url,
        "channel": OPS,
        "account_id": "acct-1",
        **extra,
    }
    return {"plugins": {"alerts": table}}


@pytest.fixture
async def bot(alertmanager: FakeAlertmanager) -> AsyncIterator[BotHarness]:
    async with BotHarness(clock=ManualClock(START), config=config(alertmanager.url)) as harness:
        yield harness


async def notify(bot: BotHarness, body: Any, headers: dict[str, str] | None = None) -> Any:
    return await bot.hook("POST", "alerts", json=body, headers=AUTH if headers is None else headers)


def cards(bot: BotHarness) -> list[Any]:
    return [m for m in bot.messages if m.content.get("head")]


def head_color(message: Any) -> str:
    return str(message.content["head"]["style"]["color"])


def jid(where: Conversation | None) -> str | None:
    return None if where is None else where.jid


# Pure parts.


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("alertname=Foo", [Matcher("alertname", "Foo")]),
        (
            "alertname=Foo,severity=~crit.*",
            [Matcher("alertname", "Foo"), Matcher("severity", "crit.*", is_regex=True)],
        ),
        (
            '{alertname=Foo, job!="a, b", env!~dev|test}',
            [
                Matcher("alertname", "Foo"),
                Matcher("job", "a, b", is_equal=False),
                Matcher("env", "dev|test", is_regex=True, is_equal=False),
            ],
        ),
        (
            "service = api , instance=~api-[0-9]+",
            [Matcher("service", "api"), Matcher("instance", "api-[0-9]+", is_regex=True)],
        ),
    ],
)
def test_matchers_are_read_with_all_four_operators(text, expected):
    assert list(parse_matchers(text)) == expected
    # What the bot echoes reads back the same.
    assert list(parse_matchers(",".join(str(m) for m in expected))) == expected


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "expected at least one matcher"),
        ("alertname", "cannot read matcher 'alertname'"),
        ("alertname=Foo,9x=1", "cannot read matcher '9x=1'"),
        ("severity=~crit(", "severity: not a regular expression"),
        ("alertname=~.*", "these matchers match every alert"),
        ("env!=prod", "these matchers match every alert"),
    ],
)
def test_bad_matchers_say_what_is_wrong(text, problem):
    with pytest.raises(MatcherError, match=re.escape(problem)):
        parse_matchers(text)


def test_matcher_api_json_is_alertmanagers():
    assert Matcher("severity", "crit.*", is_regex=True).to_api() == {
        "name": "severity",
        "value": "crit.*",
        "isRegex": True,
        "isEqual": True,
    }


def test_routes_first_match_wins_else_the_default():
    settings = read_settings(
        {
            "channel": OPS,
            "account_id": "acct-1",
            "routes": {
                "pages": {"match": {"severity": "critical"}, "channel": PAGES},
                "db": {
                    "match": {"severity": "critical", "team": "db"},
                    "channel": channel_jid("db"),
                    "account_id": "acct-2",
                },
            },
        }
    )
    assert jid(settings.destination({"severity": "critical", "team": "db"})) == PAGES
    db_only = read_settings(
        {
            "routes": {
                "db": {
                    "match": {"team": "db"},
                    "channel": channel_jid("db"),
                    "account_id": "acct-2",
                }
            }
        }
    )
    where = db_only.destination({"team": "db", "severity": "warning"})
    assert where is not None
    assert (where.jid, where.account_id) == (channel_jid("db"), "acct-2")
    assert db_only.destination({"team": "web"}) is None
    assert jid(settings.destination({"severity": "warning"})) == OPS


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"chanel": OPS}, "plugins.alerts.chanel: unknown key (did you mean channel?)"),
        ({"channel": "ops"}, "plugins.alerts.channel: expected a channel JID"),
        ({"channel": OPS}, "plugins.alerts.account_id: a channel needs the Zoom account id"),
        (
            {"alertmanager_url": "alertmanager:9093"},
            "plugins.alerts.alertmanager_url: expected Alertmanager's base URL",
        ),
        (
            {"routes": {"p": {"match": {}, "channel": PAGES}}, "account_id": "a"},
            "plugins.alerts.routes.p.match: expected at least one label",
        ),
        (
            {"routes": {"p": {"match": {"severity": "critical"}, "channel": PAGES}}},
            "plugins.alerts.routes.p.account_id: a route's channel needs",
        ),
        (
            {"routes": {"p": {"match": {"severity": 1}, "channel": PAGES}}, "account_id": "a"},
            "plugins.alerts.routes.p.match",
        ),
        ({"webhook_token": 5}, "plugins.alerts.webhook_token: expected a string, got int"),
    ],
)
async def test_bad_config_fails_startup_naming_the_key(table, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        await BotHarness(config={"plugins": {"alerts": table}}).start()


def test_a_real_notification_renders_red_then_green():
    view = GroupView(parse(fixture("firing")))
    card = render(view)
    assert card.head == "🔥 FIRING: 1 · HighLatency"
    assert card.sub_head == "service=api"
    assert card.head_style is not None
    assert card.head_style.color == "#D64541"
    texts = [getattr(item, "text", "") for item in card.body]
    links = {getattr(item, "text", ""): getattr(item, "link", None) for item in card.body}
    assert "API latency above 500ms" in texts
    assert any(t.startswith("🔴 HighLatency · since 2026-11-25 19:") for t in texts)
    assert links["Runbook: HighLatency"] == "https://runbooks.example/latency"
    assert str(links["Source: HighLatency"]).startswith("http://prometheus.example:9090/graph")
    resolved = render(GroupView(parse(fixture("resolved"))))
    assert resolved.head == "✅ RESOLVED · HighLatency"
    assert resolved.head_style is not None
    assert resolved.head_style.color == "#1F9D55"
    assert any(
        "🟢 HighLatency · resolved 2026-11-25 19:" in getattr(i, "text", "") for i in resolved.body
    )


async def test_label_text_cannot_inject_markdown_or_links(bot):
    body = firing(instance="**x** <https://evil.example|click> @all")
    body["alerts"][0]["generatorURL"] = "javascript:alert(1)"
    body["alerts"][0]["annotations"]["runbook_url"] = "data:text/html,hi"
    await notify(bot, with_second_alert(body))
    [card] = cards(bot)
    assert card.is_markdown is False
    assert "instance=**x** <https://evil.example|click> @all" in card.text
    text = json.dumps(card.content, ensure_ascii=False)
    assert "javascript:" not in text
    assert "data:text" not in text


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda b: b.update(version="3"), 'version: expected "4"'),
        (lambda b: b.pop("groupKey"), "groupKey: required"),
        (lambda b: b.update(alerts=[]), "alerts: expected a non-empty list"),
        (lambda b: b.update(status="on fire"), "status: expected firing or resolved"),
        (
            lambda b: b["alerts"][0].update(labels={"a": 1}),
            "alerts[0].labels: expected an object of strings",
        ),
        (lambda b: b["alerts"][0].pop("status"), "alerts[0].status: expected firing or resolved"),
    ],
)
def test_malformed_notifications_name_the_field(change, problem):
    body = fixture("firing")
    change(body)
    with pytest.raises(NotificationInvalid, match=re.escape(problem)):
        parse(body)


def test_config_errors_come_from_load_config():
    with pytest.raises(PluginConfigError) as raised:
        read_settings({"routes": {"x": {"match": {"a": "b"}, "channel": PAGES, "chanel": 1}}})
    assert raised.value.key == "routes.x.chanel"


# Through the bot.


async def test_authentication(bot):
    body = fixture("firing")
    assert (await notify(bot, body, headers={})).status == 401
    wrong = await notify(bot, body, headers={"Authorization": "Bearer nope"})
    assert (wrong.status, wrong.body) == (401, {"error": "wrong token"})
    basic_wrong = base64.b64encode(b"alertmanager:nope").decode()
    assert (
        await notify(bot, body, headers={"Authorization": f"Basic {basic_wrong}"})
    ).status == 401
    assert (await notify(bot, body, headers={"Authorization": "Basic !!"})).status == 401
    assert cards(bot) == []
    basic = base64.b64encode(f"alertmanager:{TOKEN}".encode()).decode()
    assert (await notify(bot, body, headers={"Authorization": f"Basic {basic}"})).status == 200
    assert (await notify(bot, body)).status == 200
    assert len(cards(bot)) == 1


async def test_a_refused_request_is_logged(bot, caplog):
    caplog.set_level("WARNING", logger="chatopsbot.app")
    await notify(bot, fixture("firing"), headers={"Authorization": "Bearer nope"})
    assert any(
        "/hooks/alerts" in r.getMessage() and "401 wrong token" in r.getMessage()
        for r in caplog.records
    )


async def test_without_a_token_the_hook_refuses_everything(caplog):
    caplog.set_level("WARNING")
    async with BotHarness(
        config={"plugins": {"alerts": {"channel": OPS, "account_id": "a"}}}
    ) as bot:
        result = await bot.hook(
            "POST", "alerts", json=fixture("firing"), headers={"Authorization": "Bearer "}
        )
        assert result.status == 401
        assert result.body == {
            "error": "the alerts hook is off: set [plugins.alerts] webhook_token"
        }
    assert any("POST /hooks/alerts refuses every request" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"{not json", "malformed JSON"),
        (json.dumps({"version": "4"}).encode(), "groupKey: required"),
        (json.dumps([1]).encode(), "body: expected a JSON object"),
    ],
)
async def test_malformed_bodies_get_400_with_the_reason(bot, data, error):
    result = await bot.hook(
        "POST", "alerts", data=data, headers={**AUTH, "Content-Type": "application/json"}
    )
    assert result.status == 400
    assert result.body["error"].startswith(error)
    assert cards(bot) == []


async def test_a_body_over_2_mib_is_refused_with_413(bot):
    body = fixture("firing")
    body["alerts"][0]["annotations"]["description"] = "x" * (2 * 1024 * 1024)
    resp = await bot.client.post(
        "/hooks/alerts",
        data=io.BytesIO(json.dumps(body).encode()),
        headers={**AUTH, "Content-Type": "application/json"},
    )
    assert resp.status == 413
    assert (await resp.json()) == {"error": "body over 2097152 bytes"}
    assert cards(bot) == []


async def test_one_card_per_group_edited_as_alerts_fire_repeat_and_resolve(bot):
    first = await notify(bot, fixture("firing"))
    assert (first.status, first.body["accepted"]) == (200, True)
    [card] = cards(bot)
    assert card.to_jid == OPS
    assert card.text.startswith("🔥 FIRING: 1 · HighLatency")
    assert head_color(card) == "#D64541"
    # Alertmanager's repeat notification (repeat_interval): same content, nothing sent.
    repeat = await notify(bot, fixture("firing"))
    assert repeat.body["changed"] is False
    assert (len(bot.messages), card.edits) == (1, 0)
    # A second alert joins the group: the same card, edited.
    await notify(bot, with_second_alert(fixture("firing")))
    assert (len(bot.messages), card.edits) == (1, 1)
    assert card.text.startswith("🔥 FIRING: 2 · HighLatency")
    assert "instance=api-2:9090" in card.text
    # Both alerts come from one rule: its runbook and source are linked once.
    links = [item["text"] for item in card.content["body"] if item.get("link")]
    assert links == ["Runbook: HighLatency", "Source: HighLatency", "Open Alertmanager"]
    assert "API latency above 900ms" in card.text
    # Resolved: still the same card, now green, without silence buttons.
    await notify(bot, fixture("resolved"))
    assert (len(bot.messages), card.edits) == (1, 2)
    assert card.text.startswith("✅ RESOLVED · HighLatency")
    assert head_color(card) == "#1F9D55"
    assert "Silence 1 h" not in json.dumps(card.content)
    # A client still showing the red card: its Silence button says there is nothing to silence.
    stale = (await bot.click(card, "Silence 1 h")).only()
    assert stale.text == "HighLatency has resolved: there is nothing to silence."
    # The group fires again later: a new card; the green one stays as it was.
    await notify(bot, fixture("firing"))
    assert len(cards(bot)) == 2
    assert cards(bot)[0].text.startswith("✅ RESOLVED")
    assert cards(bot)[1].text.startswith("🔥 FIRING: 1")


async def test_two_notifications_racing_make_one_card(bot):
    one, two = fixture("firing"), with_second_alert(fixture("firing"))
    results = await asyncio.gather(notify(bot, one), notify(bot, two), notify(bot, one))
    assert all(r.status == 200 for r in results)
    [card] = cards(bot)
    # Whichever was stored last is what the card shows, once everything settled.
    stored = await bot.runtime.dispatcher.context_for("alerts").store.get(
        _key(group_id(one["groupKey"], Conversation("acct-1", OPS)))
    )
    count = len([a for a in stored["notification"]["alerts"] if a["status"] == "firing"])
    assert card.text.startswith(f"🔥 FIRING: {count} · HighLatency")


async def test_a_notification_stored_while_the_card_is_being_posted_is_drawn(bot):
    """The second notification arrives while the first one's card is on its way to Zoom: it
    finds the card claimed and leaves it to the poster, who draws it once the card is posted."""
    body = json.dumps(with_second_alert(fixture("firing"))).encode()
    answers: list[int] = []

    async def second_notification_meanwhile(request: Any) -> None:
        if request.method == "POST" and not answers:
            resp = await bot.client.post(
                "/hooks/alerts", data=body, headers={**AUTH, "Content-Type": "application/json"}
            )
            answers.append(resp.status)

    bot.zoom.on_request = second_notification_meanwhile
    await notify(bot, fixture("firing"))
    assert answers == [200]
    [card] = cards(bot)
    assert card.text.startswith("🔥 FIRING: 2 · HighLatency")
    assert card.edits == 1


async def test_groups_are_routed_by_their_common_labels(alertmanager):
    routes = {"pages": {"match": {"severity": "critical"}, "channel": PAGES}}
    async with BotHarness(
        clock=ManualClock(START), config=config(alertmanager.url, routes=routes)
    ) as bot:
        await notify(bot, fixture("firing"))  # severity=critical
        warning = firing(severity="warning")
        warning["groupKey"] = '{}:{alertname="HighLatency", service="web"}'
        await notify(bot, warning)
        assert [c.to_jid for c in cards(bot)] == [PAGES, OPS]


async def test_no_destination_is_a_200_with_the_reason_and_a_log_line(caplog):
    caplog.set_level("WARNING")
    async with BotHarness(config={"plugins": {"alerts": {"webhook_token": TOKEN}}}) as bot:
        result = await notify(bot, fixture("firing"))
        assert (result.status, result.body) == (
            200,
            {"accepted": False, "reason": "no channel configured"},
        )
        assert bot.messages == []
    assert any("no route matches" in r.getMessage() for r in caplog.records)


async def test_silence_from_the_card_then_unsilence(bot, alertmanager):
    await notify(bot, fixture("firing"))
    [card] = cards(bot)
    reply = (await bot.click(card, "Silence 1 h", user="alice")).only()
    assert reply.visible_to_user == "u-alice"
    [(method, path, body)] = alertmanager.requests
    assert (method, path) == ("POST", "/api/v2/silences")
    assert body["matchers"] == [
        {"name": "alertname", "value": "HighLatency", "isRegex": False, "isEqual": True},
        {"name": "service", "value": "api", "isRegex": False, "isEqual": True},
    ]
    assert body["createdBy"] == "Alice (u-alice)"
    starts = datetime.fromisoformat(body["startsAt"].replace("Z", "+00:00"))
    ends = datetime.fromisoformat(body["endsAt"].replace("Z", "+00:00"))
    assert (starts, ends - starts) == (START, timedelta(hours=1))
    [silence_id] = alertmanager.silences
    assert silence_id in reply.text
    assert "Silenced: by Alice until 2026-11-25 20:10 UTC" in card.text
    buttons = [b["text"] for b in card.content["body"][-1]["items"]]
    assert buttons == ["Acknowledge", "Unsilence"]
    # A second click on the old card's button: already silenced, nothing sent to Alertmanager.
    again = (await bot.click(card, "Silence 4 h", user="bob")).only()
    assert again.text.startswith("HighLatency is already silenced by Alice")
    assert len(alertmanager.requests) == 1
    # Unsilence expires it in Alertmanager and brings the silence buttons back.
    (await bot.click(card, "Unsilence", user="bob")).only()
    assert alertmanager.requests[-1][:2] == ("DELETE", f"/api/v2/silence/{silence_id}")
    assert alertmanager.silences[silence_id]["status"]["state"] == "expired"
    assert "Silenced" not in card.text
    assert [b["text"] for b in card.content["body"][-1]["items"]][:2] == [
        "Silence 1 h",
        "Silence 4 h",
    ]


async def test_unsilence_of_a_silence_alertmanager_no_longer_has_clears_the_card(bot, alertmanager):
    await notify(bot, fixture("firing"))
    [card] = cards(bot)
    await bot.click(card, "Silence 4 h")
    alertmanager.silences.clear()  # Alertmanager lost it (a restart without its storage)
    reply = (await bot.click(card, "Unsilence", user="bob")).only()
    assert reply.text.startswith("Silence ")
    assert reply.text.endswith(" lifted.")
    assert "Silenced" not in card.text
    # Any other error leaves the card as it is and says why.
    await bot.click(card, "Silence 1 h")
    alertmanager.fail_with = 502
    refused = (await bot.click(card, "Unsilence")).only()
    assert refused.text.startswith("Could not lift the silence: Alertmanager answered 502")
    assert "Silenced: by Alice" in card.text


async def test_a_silence_runs_out_on_the_card(bot):
    await notify(bot, fixture("firing"))
    [card] = cards(bot)
    await bot.click(card, "Silence 1 h")
    assert "Silenced" in card.text
    await bot.advance(timedelta(hours=1, minutes=1))
    await notify(bot, with_second_alert(fixture("firing")))
    assert "Silenced" not in card.text
    assert "Silence 1 h" in json.dumps(card.content)


async def test_acknowledge_records_who(bot):
    await notify(bot, fixture("firing"))
    [card] = cards(bot)
    assert await bot.click(card, "Acknowledge", user="bob") == []
    assert "Acknowledged: Bob at 2026-11-25 19:10 UTC" in card.text
    assert 'Acknowledge"' not in json.dumps(card.content)
    late = (await bot.click(card, "Acknowledge", user="carol")).only()
    assert late.text == "Already acknowledged by Bob at 2026-11-25 19:10 UTC."
    assert late.visible_to_user == "u-carol"
    # Later notifications keep the acknowledgement on the card.
    await notify(bot, with_second_alert(fixture("firing")))
    assert "Acknowledged: Bob" in card.text


@pytest.mark.parametrize("failure", ["down", "error"])
async def test_alertmanager_failing_gets_a_clear_private_reply(bot, alertmanager, failure):
    await notify(bot, fixture("firing"))
    [card] = cards(bot)
    before = dict(card.content)
    if failure == "down":
        await alertmanager.close()
        expected = f"could not reach Alertmanager at {alertmanager.url}"
    else:
        alertmanager.fail_with = 503
        expected = "Alertmanager answered 503 to POST /api/v2/silences: internal error"
    reply = (await bot.click(card, "Silence 1 h")).only()
    assert reply.visible_to_user == "u-alice"
    assert reply.text.startswith("Could not silence HighLatency: ")
    assert expected in reply.text
    assert card.content == before
    # The failed attempt left nothing behind: the next click tries again.
    alertmanager.fail_with = 0
    if failure == "error":
        (await bot.click(card, "Silence 1 h")).only()
        assert "Silenced: by Alice" in card.text
    listing = (await bot.command("alerts silences")).only()
    if failure == "down":
        assert listing.text.startswith("Could not list silences: could not reach Alertmanager")


async def test_without_alertmanager_url_the_buttons_say_so():
    async with BotHarness(clock=ManualClock(START), config=config()) as bot:
        await notify(bot, fixture("firing"))
        reply = (await bot.click(cards(bot)[0], "Silence 4 h")).only()
        assert reply.text.endswith(
            "no Alertmanager configured: set [plugins.alerts] alertmanager_url"
        )


async def test_silence_command(bot, alertmanager):
    reply = (
        await bot.command(
            "alerts silence alertname=Foo,severity=~crit.* 2h db migration", user="bob"
        )
    ).only()
    [(_, _, body)] = alertmanager.requests
    assert body["matchers"] == [
        {"name": "alertname", "value": "Foo", "isRegex": False, "isEqual": True},
        {"name": "severity", "value": "crit.*", "isRegex": True, "isEqual": True},
    ]
    assert (body["createdBy"], body["comment"]) == ("Bob (u-bob)", "db migration")
    assert body["endsAt"] == "2026-11-25T21:10:00.000Z"
    [silence_id] = alertmanager.silences
    assert reply.text == (
        f"🔕 Bob silenced alertname=Foo,severity=~crit.* for 2h, until 2026-11-25 21:10 UTC "
        f"(silence {silence_id})."
    )
    assert reply.visible_to_user is None
    listing = (await bot.command("alerts silences")).only()
    assert listing.text.splitlines()[1] == (
        f"{silence_id} · alertname=Foo,severity=~crit.* · until 2026-11-25 21:10 UTC · "
        "by Bob (u-bob) · db migration"
    )
    expired = (await bot.command(f"alerts expire {silence_id}")).only()
    assert expired.text == f"🔔 Alice expired silence {silence_id}."
    assert (await bot.command("alerts silences")).only().text == "No active silences."
    unknown = (await bot.command("alerts expire 00000000-0000-0000-0000-000000000000")).only()
    assert unknown.text.startswith(
        "Could not expire silence 00000000-0000-0000-0000-000000000000: "
    )
    assert "silence not found" in unknown.text
    assert unknown.visible_to_user == "u-alice"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("alerts silence alertname 2h", "matchers: cannot read matcher 'alertname'"),
        ("alerts silence env!=prod 2h", "matchers: these matchers match every alert"),
        ("alerts silence alertname=Foo soon", "duration: expected a duration"),
        ("alerts silence alertname=Foo 90d", "duration:"),
        ("alerts expire ../../api", "id: expected a silence id"),
    ],
)
async def test_typos_get_a_private_usage_reply_and_reach_nothing(bot, alertmanager, text, problem):
    reply = (await bot.command(text)).only()
    assert reply.visible_to_user == "u-alice"
    assert problem in reply.text
    assert alertmanager.requests == []


async def test_alerts_lists_the_firing_groups(bot):
    assert (await bot.command("alerts")).only().text == "Nothing is firing."
    await notify(bot, with_second_alert(fixture("firing")))
    other = firing(service="web")
    other["groupKey"] = '{}:{alertname="HighLatency", service="web"}'
    other["groupLabels"]["service"] = "web"
    await notify(bot, other)
    await bot.click(cards(bot)[1], "Acknowledge", user="bob")
    listing = (await bot.command("alerts")).only().text
    assert listing.splitlines() == [
        "Firing now:",
        "🔥 HighLatency: 1 firing (alertname=HighLatency service=web) · acknowledged by Bob",
        "🔥 HighLatency: 2 firing (alertname=HighLatency service=api)",
    ]
    await notify(bot, fixture("resolved"))
    assert len((await bot.command("alerts")).only().text.splitlines()) == 2


async def test_access_rules_apply_to_the_buttons(alertmanager):
    rules = {
        "access": {
            "commands": {
                "alerts silence": {"deny_users": ["u-bob"]},
                "alerts": {"deny_users": ["u-dave"]},
            }
        }
    }
    async with BotHarness(
        clock=ManualClock(START), config={**config(alertmanager.url), **rules}
    ) as bot:
        await notify(bot, fixture("firing"))
        [card] = cards(bot)
        refused = (await bot.click(card, "Silence 1 h", user="bob")).only()
        assert refused.text.startswith("You may not do that here.")
        assert alertmanager.requests == []
        refused = (await bot.click(card, "Acknowledge", user="dave")).only()
        assert refused.text.startswith("You may not do that here.")
        assert "Acknowledged" not in card.text
        typed = (await bot.command("alerts silence alertname=Foo 1h", user="bob")).only()
        assert alertmanager.requests == []
        assert typed.visible_to_user == "u-bob"
        await bot.click(card, "Silence 1 h", user="alice")
        assert len(alertmanager.requests) == 1


async def test_the_session_to_alertmanager_is_closed_when_the_bot_stops(alertmanager):
    async with BotHarness(clock=ManualClock(START), config=config(alertmanager.url)) as bot:
        hooks = bot.runtime.hooks
        assert hooks is not None
        [plugin] = [
            impl.plugin
            for impl in hooks.chatops_cleanup.get_hookimpls()
            if impl.plugin_name == "alerts"
        ]
        client: Any = plugin._alertmanager
        assert client._session is None  # opened on first use, on the running loop
        await bot.command("alerts silences")
        await bot.command("alerts silences")
        session: Any = client._session
        assert session is not None
        assert not session.closed
    assert session.closed
    assert client._session is None


def numbered(count: int) -> dict[str, Any]:
    """The real firing notification with ``count`` alerts (instances api-0 ... api-<count-1>)."""
    body = fixture("firing")
    template = body["alerts"][0]
    body["alerts"] = []
    for n in range(count):
        one = copy.deepcopy(template)
        one["labels"]["instance"] = f"api-{n}:9090"
        one["fingerprint"] = f"{n:016x}"
        body["alerts"].append(one)
    body["commonLabels"].pop("instance")
    return body


async def test_notifications_racing_on_two_replicas_sharing_postgres_make_one_card(
    start_bot, postgres_schema, alertmanager
):
    from tests.conftest import POSTGRES_URL

    storage = {"url": f"{POSTGRES_URL}?search_path={postgres_schema}"}
    clock = ManualClock(START)
    bots = [
        await start_bot(clock=clock, storage=storage, **config(alertmanager.url)) for _ in range(2)
    ]
    results = await asyncio.gather(*(notify(bots[n % 2], numbered(1 + n % 5)) for n in range(20)))
    assert all(r.status == 200 for r in results)
    [card] = cards(bots[0])
    stored = (
        await bots[0]
        .runtime.dispatcher.context_for("alerts")
        .store.get(_key(group_id(fixture("firing")["groupKey"], Conversation("acct-1", OPS))))
    )
    count = len(stored["notification"]["alerts"])
    assert card.text.startswith(f"🔥 FIRING: {count} · HighLatency"), bots[0].transcript()
    # Twenty people click Silence on both replicas at once: one silence is made.
    await asyncio.gather(
        *(bots[n % 2].click(card, "Silence 1 h", user=f"user{n}") for n in range(20))
    )
    assert len(alertmanager.silences) == 1

    def refused() -> list[Any]:
        return [m for m in bots[0].messages if "is already silenced by" in m.text]

    # Whichever replica leads sends every reply; on a busy machine some arrive a little later.
    await wait_until(lambda: len(refused()) >= 19, within=30, what="19 refusals")
    await bots[0].settle()
    assert len(refused()) == 19, bots[0].transcript()


async def test_a_huge_group_keeps_its_firing_alerts_and_counts_the_rest(bot):
    body = numbered(260)
    for alert in body["alerts"][:100]:
        alert["status"] = "resolved"
    body["truncatedAlerts"] = 5
    notification = parse(body)
    assert len(notification.alerts) == 200
    assert len(notification.firing) == 160
    assert notification.truncated_alerts == 65
    assert (await notify(bot, body)).status == 200
    [card] = cards(bot)
    assert card.text.startswith("🔥 FIRING: 160 · HighLatency")
    assert "… and 255 more alert(s)" in card.text


async def test_a_card_whose_post_failed_is_posted_by_alertmanagers_retry(bot, caplog):
    """Zoom refused the card: the hook answers 5xx (Alertmanager retries those) and gives the
    claim back, so the retry posts the card instead of waiting on one that never comes."""
    from chatopsbot.zoom.fake import Fault

    caplog.set_level("ERROR")
    bot.zoom.inject(Fault(400, {"code": 7001, "message": "Invalid to_jid."}))
    failed = await notify(bot, fixture("firing"))
    assert failed.status >= 500
    assert cards(bot) == []
    retried = await notify(bot, fixture("firing"))
    assert (retried.status, retried.body["changed"]) == (200, True)
    [card] = cards(bot)
    assert card.text.startswith("🔥 FIRING: 1 · HighLatency")


# Zoom's events about the bot itself.


async def test_leaving_a_channel_forgets_the_group_cards_kept_there(bot, caplog):
    await notify(bot, fixture("firing"))
    caplog.set_level(logging.INFO, "chatopsbot.dispatch")
    await bot.remove_from_channel("ops")
    assert "alerts: 1" in caplog.text
    answer = await bot.command("alerts", channel="elsewhere")
    assert answer.only().text == "Nothing is firing."


async def test_an_account_removing_the_app_loses_its_group_cards(bot):
    await notify(bot, fixture("firing"))
    await bot.deauthorize("acct-2")
    assert (await bot.command("alerts")).only().text.startswith("Firing now:\n🔥 HighLatency")
    await bot.deauthorize("acct-1")
    assert (await bot.command("alerts")).only().text == "Nothing is firing."
