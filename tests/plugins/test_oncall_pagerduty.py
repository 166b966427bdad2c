"""On-call from PagerDuty: the bot against a fake of PagerDuty's REST API v2 on loopback,
through the same commands and handoff announcements as a rotation in the config."""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chatopsbot.clock import ManualClock
from chatopsbot.config import ConfigError
from chatopsbot.testing import BotHarness
from chatopsbot_oncall import OncallPlugin
from chatopsbot_oncall.pagerduty import Schedule, Shift, Source, _retry_after, shifts
from tests.plugins.example_config import example_tables
from tests.plugins.fake_pagerduty import TOKEN, Entry, FakePagerDuty

START = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)  # Wednesday
CHANNEL = "platform@conference.xmpp.zoom.us"


def at(day: int, hour: int) -> datetime:
    return datetime(2026, 11, day, hour, 0, tzinfo=UTC)


#: A 12-hour rotation in PagerDuty: Alice, Bob, Carol, Alice, ...
SHIFTS = [
    Entry("Alice", at(25, 5), at(25, 17)),
    Entry("Bob", at(25, 17), at(26, 5)),
    Entry("Carol", at(26, 5), at(26, 17)),
    Entry("Alice", at(26, 17), at(27, 5)),
]


def config(fake: FakePagerDuty, team: dict[str, Any] | None = None, **oncall: Any) -> Any:
    table = team or {"pagerduty": {"schedule": "P123ABC"}, "timezone": "UTC", "channel": CHANNEL}
    return {
        "plugins": {
            "oncall": {
                "account_id": "acct-1",
                "pagerduty_token": TOKEN,
                "pagerduty_url": fake.url,
                "teams": {"platform": table},
                **oncall,
            }
        },
        "access": {"admins": ["u-alice"]},
    }


@pytest.fixture
async def pagerduty():
    fake = FakePagerDuty(entries=list(SHIFTS))
    await fake.start()
    yield fake
    await fake.close()


@pytest.fixture
async def bot(pagerduty):
    async with BotHarness(clock=ManualClock(START), config=config(pagerduty)) as harness:
        yield harness


async def say(bot: BotHarness, text: str) -> str:
    return (await bot.command(text)).only().text


async def test_oncall_and_oncall_team_answer_from_the_schedule(bot, pagerduty):
    assert await say(bot, "oncall") == ("platform: Alice until Wed 2026-11-25 17:00 UTC, then Bob")
    assert (await say(bot, "oncall platform")).splitlines() == [
        "platform: Alice is on call until Wed 2026-11-25 17:00 UTC",
        "Next: Bob from Wed 2026-11-25 17:00 UTC",
        "Then: Carol from Thu 2026-11-26 05:00 UTC",
        "Then: Alice from Thu 2026-11-26 17:00 UTC",
        'From PagerDuty (schedule "Platform primary", P123ABC).',
    ]
    [named] = [r for r in pagerduty.requests if r.path == "/schedules/P123ABC"]
    assert named.headers["Authorization"] == f"Token token={TOKEN}"
    # What PagerDuty requires: the token, its media type, the array filter, the window.
    first = pagerduty.requests[0]
    assert first.headers["Authorization"] == f"Token token={TOKEN}"
    assert first.headers["Accept"] == "application/vnd.pagerduty+json;version=2"
    assert pagerduty.queries()[0] == [
        ("schedule_ids[]", "P123ABC"),
        ("since", "2026-11-25T09:00:00+00:00"),
        ("until", "2026-12-23T09:00:00+00:00"),
        ("limit", "100"),
        ("offset", "0"),
        ("time_zone", "UTC"),
    ]


async def test_answers_are_cached_for_pagerduty_cache(pagerduty):
    clock = ManualClock(START)
    async with BotHarness(clock=clock, config=config(pagerduty, pagerduty_cache="5m")) as bot:
        await say(bot, "oncall")
        await say(bot, "oncall platform")
        await say(bot, "oncall schedule platform")
        assert len(pagerduty.queries()) == 1
        await clock.advance(timedelta(minutes=4, seconds=59))
        await say(bot, "oncall")
        assert len(pagerduty.queries()) == 1
        await clock.advance(timedelta(seconds=2))
        await say(bot, "oncall")
        assert len(pagerduty.queries()) == 2


async def test_pages_are_followed(pagerduty):
    pagerduty.page_size = 2
    async with BotHarness(clock=ManualClock(START), config=config(pagerduty)) as bot:
        lines = (await say(bot, "oncall schedule platform")).splitlines()
        assert lines == [
            "platform on call:",
            "Wed 2026-11-25 09:00 UTC → Wed 2026-11-25 17:00 UTC: Alice",
            "Wed 2026-11-25 17:00 UTC → Thu 2026-11-26 05:00 UTC: Bob",
            "Thu 2026-11-26 05:00 UTC → Thu 2026-11-26 17:00 UTC: Carol",
            "Thu 2026-11-26 17:00 UTC → Fri 2026-11-27 05:00 UTC: Alice",
        ]
        offsets = [dict(q)["offset"] for q in pagerduty.queries()]
        assert offsets == ["0", "2"]


async def test_an_escalation_policy_shows_its_first_level(pagerduty):
    pagerduty.entries = [
        *SHIFTS,
        # The second level, and the same schedule seen through another policy: not shown twice.
        Entry("Zed", at(25, 0), at(28, 0), schedule="PSECOND", level=2),
        Entry("Alice", at(25, 5), at(25, 17), policy="POTHER1"),
    ]
    team = {"pagerduty": {"escalation_policy": "PEPOL01"}, "timezone": "UTC"}
    async with BotHarness(clock=ManualClock(START), config=config(pagerduty, team)) as bot:
        assert await say(bot, "oncall") == (
            "platform: Alice until Wed 2026-11-25 17:00 UTC, then Bob"
        )
        assert dict(pagerduty.queries()[0])["escalation_policy_ids[]"] == "PEPOL01"


async def test_handoffs_are_announced_as_for_a_rotation(bot):
    assert await bot.advance(60) == []  # the current state is noted, not announced
    announced = await bot.advance(timedelta(hours=8))
    assert [(m.text, m.to_jid) for m in announced] == [
        ("📟 Bob is now on call for platform until Thu 2026-11-26 05:00 UTC.", CHANNEL)
    ]
    assert await bot.advance(timedelta(minutes=10)) == []  # refetched, the same: no handoff
    texts = [m.text for m in await bot.advance(timedelta(hours=12))]
    assert texts == ["📟 Carol is now on call for platform until Thu 2026-11-26 17:00 UTC."]
    texts = [m.text for m in await bot.advance(timedelta(hours=12))]
    assert texts == ["📟 Alice is now on call for platform until Fri 2026-11-27 05:00 UTC."]
    # Past the last shift PagerDuty has: a gap, announced once.
    texts = [m.text for m in await bot.advance(timedelta(hours=12))]
    assert texts == ["📟 nobody is now on call for platform."]
    assert await bot.advance(timedelta(minutes=10)) == []


async def test_an_override_beats_pagerduty(pagerduty):
    team = {
        "pagerduty": {"schedule": "P123ABC"},
        "timezone": "UTC",
        "members": ["Alice", "Bob", "Dana"],
    }
    async with BotHarness(clock=ManualClock(START), config=config(pagerduty, team)) as bot:
        reply = await say(bot, "oncall override platform dana 2h")
        assert reply.startswith("Dana is on call for platform until Wed 2026-11-25 11:00 UTC")
        assert await say(bot, "oncall") == (
            "platform: Dana until Wed 2026-11-25 11:00 UTC, then Alice"
        )
        assert "Dana" in await say(bot, "oncall overrides platform")
        assert (await say(bot, "oncall schedule platform --count 2")).splitlines()[1:] == [
            "Wed 2026-11-25 09:00 UTC → Wed 2026-11-25 11:00 UTC: Dana",
            "Wed 2026-11-25 11:00 UTC → Wed 2026-11-25 17:00 UTC: Alice",
        ]
        assert await say(bot, "oncall clear platform") == "Removed 1 override(s) of platform."
        assert await say(bot, "oncall") == (
            "platform: Alice until Wed 2026-11-25 17:00 UTC, then Bob"
        )
        assert (await say(bot, "oncall me")).startswith("You are not in any on-call rotation")


async def test_an_override_without_members_says_where_to_list_them(bot):
    reply = (await bot.command("oncall override platform dana 2h", user="alice")).only()
    assert reply.text.startswith("platform's rotation is in PagerDuty: list the people")
    assert reply.visible_to_user == "u-alice"


async def test_rate_limited_gives_the_last_known_and_waits_as_told(pagerduty, caplog):
    caplog.set_level(logging.WARNING)
    clock = ManualClock(START)
    # No channel, so no handoff job asking PagerDuty at its own moments (every 30 s) while
    # the clock moves: the commands below are the only ones to ask.
    team = {"pagerduty": {"schedule": "P123ABC"}, "timezone": "UTC"}
    async with BotHarness(clock=clock, config=config(pagerduty, team)) as bot:
        await say(bot, "oncall")
        pagerduty.retry_after = 120
        await clock.advance(timedelta(minutes=2))
        assert await say(bot, "oncall") == (
            "platform: Alice until Wed 2026-11-25 17:00 UTC, then Bob ⚠ could not reach "
            "PagerDuty (rate limited (429), retry in 120 s), last known: its schedule as of "
            "Wed 2026-11-25 09:00 UTC"
        )
        asked = len(pagerduty.requests)
        await clock.advance(timedelta(seconds=60))
        assert "retry in 60 s" in await say(bot, "oncall")
        assert len(pagerduty.requests) == asked  # not asked again before Retry-After
        pagerduty.retry_after = None
        await clock.advance(timedelta(seconds=61))
        assert await say(bot, "oncall") == (
            "platform: Alice until Wed 2026-11-25 17:00 UTC, then Bob"
        )
        assert len(pagerduty.requests) == asked + 1
    assert any("rate limited (429)" in r.getMessage() for r in caplog.records)


async def test_slow_pagerduty_times_out_into_the_last_known(pagerduty):
    clock = ManualClock(START)
    async with BotHarness(
        clock=clock, config=config(pagerduty, pagerduty_timeout=0.3, pagerduty_cache="1s")
    ) as bot:
        await say(bot, "oncall")
        pagerduty.delay = 3.0
        await clock.advance(timedelta(seconds=2))
        detail = await say(bot, "oncall platform")
        # Asked (and waited for) PagerDuty once, not once per line of the answer, then used
        # what it had.
        assert len(pagerduty.queries()) == 2
        assert detail.splitlines()[0] == "platform: Alice is on call until Wed 2026-11-25 17:00 UTC"
        assert detail.splitlines()[-1] == (
            "⚠ could not reach PagerDuty (no answer within 0.3 s), last known: its schedule as "
            "of Wed 2026-11-25 09:00 UTC"
        )


async def test_pagerduty_down_before_any_answer_says_so(pagerduty):
    async with BotHarness(clock=ManualClock(START), config=config(pagerduty)) as bot:
        await pagerduty.close()
        assert await say(bot, "oncall") == (
            "platform: could not reach PagerDuty (connection failed), last known: nothing yet"
        )
        assert await say(bot, "oncall platform") == (
            "platform: could not reach PagerDuty (connection failed), last known: nothing yet"
        )


async def test_the_last_known_schedule_survives_a_restart(pagerduty, tmp_path):
    clock = ManualClock(START)
    cfg = {**config(pagerduty), "storage": {"path": str(tmp_path / "bot.db")}}
    async with BotHarness(clock=clock, config=cfg) as bot:
        await say(bot, "oncall")
        pagerduty.fail_with = 503
        await bot.restart()
        await clock.advance(timedelta(hours=9))
        replies = await bot.command("oncall")
        # The handoff is announced from the last known schedule too.
        assert sorted((m.to_jid, m.text) for m in replies) == [
            (
                "ops@conference.xmpp.zoom.us",
                "platform: Bob until Thu 2026-11-26 05:00 UTC, then Carol ⚠ could not reach "
                "PagerDuty (HTTP 503: Internal error), last known: its schedule as of "
                "Wed 2026-11-25 09:00 UTC",
            ),
            (CHANNEL, "📟 Bob is now on call for platform until Thu 2026-11-26 05:00 UTC."),
        ]


async def test_a_refused_token_is_logged_loudly(pagerduty, caplog):
    caplog.set_level(logging.ERROR)
    pagerduty.token = "another"
    async with BotHarness(clock=ManualClock(START), config=config(pagerduty)) as bot:
        assert "(the API key was refused (401))" in await say(bot, "oncall")
    assert any("pagerduty_token" in r.getMessage() for r in caplog.records)


async def test_the_session_is_closed_when_the_bot_stops(pagerduty):
    bot = BotHarness(clock=ManualClock(START), config=config(pagerduty))
    await bot.start()
    try:
        await say(bot, "oncall")
        [plugin] = [
            impl.plugin
            for impl in bot.runtime.hooks.chatops_cleanup.get_hookimpls()  # type: ignore[union-attr]
            if impl.plugin_name == "oncall"
        ]
        session = plugin._pagerduty._session
        assert session is not None
        assert not session.closed
    finally:
        await bot.close()
    assert session.closed
    assert plugin._pagerduty is None


@pytest.mark.parametrize(
    ("oncall", "key", "problem"),
    [
        (
            {"pagerduty_token": "", "teams": {"p": {"pagerduty": {"schedule": "P123ABC"}}}},
            "plugins.oncall.teams.p.pagerduty",
            "needs plugins.oncall.pagerduty_token",
        ),
        (
            {"teams": {"p": {"pagerduty": {"schedule": "P1", "escalation_policy": "P2"}}}},
            "plugins.oncall.teams.p.pagerduty",
            'expected one of schedule = "P..." or escalation_policy = "P..."',
        ),
        (
            {"teams": {"p": {"pagerduty": {"schedule": "https://x.pagerduty.com/P1"}}}},
            "plugins.oncall.teams.p.pagerduty.schedule",
            "expected a PagerDuty id",
        ),
        (
            {"teams": {"p": {"pagerduty": {"schedule": "P1"}, "rotation": "daily"}}},
            "plugins.oncall.teams.p.rotation",
            "not with pagerduty",
        ),
        (
            {"teams": {"p": {"members": ["A"], "start": "2026-01-05T09:00"}}},
            "plugins.oncall.teams.p.rotation",
            "required (or pagerduty",
        ),
        ({"pagerduty_cache": "soon"}, "plugins.oncall.pagerduty_cache", "expected a duration"),
        ({"pagerduty_url": "api.pagerduty.com"}, "plugins.oncall.pagerduty_url", "expected an"),
    ],
)
async def test_bad_pagerduty_config_fails_startup_naming_the_key(oncall, key, problem):
    table = {"pagerduty_token": TOKEN, **oncall}
    with pytest.raises(ConfigError, match=re.escape(f"{key}: {problem}")):
        await BotHarness(config={"plugins": {"oncall": table}}).start()


# The pure parts.


def test_entries_become_shifts_once_each_and_joined():
    source = Source(schedule="P123ABC")
    entry = {
        "user": {"id": "PA", "type": "user_reference", "summary": "Alice"},
        "escalation_level": 1,
        "start": "2026-11-25T05:00:00Z",
        "end": "2026-11-25T17:00:00Z",
    }
    later = {**entry, "start": "2026-11-25T17:00:00Z", "end": "2026-11-26T05:00:00Z"}
    found = shifts([entry, later, dict(entry)], source)
    assert found == (Shift("Alice", at(25, 5), at(26, 5)),)


def test_a_permanent_entry_and_two_people_at_once():
    source = Source(escalation_policy="PEPOL01")
    entries = [
        {"user": {"summary": "Ops"}, "escalation_level": 1, "start": None, "end": None},
        {
            "user": {"summary": "Bea"},
            "escalation_level": 1,
            "start": "2026-11-25T10:00:00Z",
            "end": "2026-11-25T12:00:00Z",
        },
        {"user": {"summary": "Cid"}, "escalation_level": 2, "start": None, "end": None},
    ]
    schedule = Schedule(shifts(entries, source), START, START + timedelta(days=28))
    assert schedule.at(START) == ("Ops", datetime.min.replace(tzinfo=UTC), at(25, 10))
    assert schedule.at(at(25, 11)) == ("Bea, Ops", at(25, 10), at(25, 12))
    assert schedule.at(START + timedelta(days=28)) is None
    assert Schedule.from_json(schedule.to_json()) == schedule


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("120", 120.0), (None, 30.0), ("soon", 30.0), ("0", 1.0), ("1e9", 3600.0)],
)
def test_retry_after_is_honoured_within_bounds(header, seconds):
    assert _retry_after(header) == seconds


def test_the_example_config_of_pagerduty_is_valid():
    table = example_tables("oncall")
    settings = OncallPlugin().chatops_config(table)
    assert settings.pagerduty_cache == timedelta(seconds=60)
    assert settings.teams["sre"].source == Source(schedule="P123ABC")  # type: ignore[union-attr]
