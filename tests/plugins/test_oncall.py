"""The on-call plugin: rotation arithmetic across DST and year ends, overrides, announcements."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from chatopsbot import PluginConfigError, hookimpl
from chatopsbot.clock import ManualClock
from chatopsbot.config import ConfigError
from chatopsbot.testing import BotHarness
from chatopsbot_oncall.rotation import parse_teams

BERLIN = ZoneInfo("Europe/Berlin")
START = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)  # Wednesday, 10:00 in Berlin
CHANNEL = "platform@conference.xmpp.zoom.us"
TEAMS: dict[str, Any] = {
    "platform": {
        "members": ["Alice", {"name": "Bob", "user": "u-bob"}, "Carol"],
        "rotation": "weekly",
        "start": "2026-01-05T09:00",
        "timezone": "Europe/Berlin",
        "channel": CHANNEL,
    },
    "data": {
        "members": ["Dan", "Erin"],
        "rotation": "12h",
        "start": "2026-11-01T08:00",
        "timezone": "UTC",
    },
}
#: Alice is a bot admin: overrides are admin-only by default.
CONFIG: dict[str, Any] = {
    "plugins": {"oncall": {"account_id": "acct-1", "teams": TEAMS}},
    "access": {"admins": ["u-alice"]},
}


def team(**overrides: Any) -> Any:
    table = {**TEAMS["platform"], **overrides}
    return parse_teams({"account_id": "a", "teams": {"t": table}})["t"]


# Pure arithmetic.


def test_weekly_rotation_round_robin():
    t = team()
    member, since, until = t.shift_at(START)
    assert member.name == "Bob"  # 46 weeks after the start: 46 % 3 == 1
    assert since.isoformat() == "2026-11-23T09:00:00+01:00"
    assert until.isoformat() == "2026-11-30T09:00:00+01:00"
    assert [m.name for m, _, _ in t.upcoming(START, 4)] == ["Bob", "Carol", "Alice", "Bob"]


def test_dst_never_shifts_the_handoff_hour():
    t = team(rotation="daily", start="2026-03-27T09:00")
    handoffs = [t.handoff(k) for k in range(4)]
    assert [h.astimezone(BERLIN).strftime("%H:%M") for h in handoffs] == ["09:00"] * 4
    assert [h.astimezone(UTC).strftime("%d %H:%M") for h in handoffs] == [
        "27 08:00",
        "28 08:00",
        "29 07:00",  # summer time from the 29th: same local hour, one UTC hour earlier
        "30 07:00",
    ]
    autumn = team(rotation="daily", start="2026-10-24T09:00")
    assert autumn.handoff(2).astimezone(UTC).strftime("%d %H:%M") == "26 08:00"
    member, _, _ = autumn.shift_at(datetime(2026, 10, 25, 7, 59, tzinfo=UTC))  # 08:59 CET
    assert member.name == "Alice"
    member, _, _ = autumn.shift_at(datetime(2026, 10, 25, 8, 0, tzinfo=UTC))  # 09:00 CET
    assert member.name == "Bob"


def test_year_end_and_before_the_start():
    t = team(start="2026-12-28T09:00")
    assert t.handoff(1).isoformat() == "2027-01-04T09:00:00+01:00"
    assert t.shift_at(datetime(2026, 12, 1, tzinfo=UTC)) is None
    member, _, _ = t.shift_at(datetime(2027, 1, 4, 8, 0, tzinfo=UTC))
    assert member.name == "Bob"


def test_members_match_loosely():
    t = team(members=["Alice", "Alfred", "Carol"])
    assert t.find("car").name == "Carol"
    assert t.find("ALICE").name == "Alice"
    with pytest.raises(LookupError, match="'al' matches several members of t: Alice, Alfred"):
        t.find("al")
    with pytest.raises(LookupError, match="no member 'zed' in t; members: Alice, Alfred, Carol"):
        t.find("zed")


@pytest.mark.parametrize(
    ("change", "key", "message"),
    [
        ({"timezone": "Mars/Base"}, "teams.t.timezone", "unknown time zone 'Mars/Base'"),
        ({"members": []}, "teams.t.members", "expected a non-empty list of names"),
        ({"members": ["A", "a"]}, "teams.t.members", "a member is listed twice"),
        ({"rotation": "fortnightly"}, "teams.t.rotation", "expected daily, weekly or an interval"),
        (
            {"start": "2026-01-05T09:00+01:00"},
            "teams.t.start",
            "expected the first handoff as local",
        ),
        ({"channel": "general"}, "teams.t.channel", "expected a channel JID"),
        ({"shift": 1}, "teams.t.shift", "unknown key"),
    ],
)
def test_bad_teams_name_the_key(change, key, message):
    with pytest.raises(PluginConfigError) as info:
        team(**change)
    assert info.value.key == key
    assert info.value.message.startswith(message)


async def test_a_bad_config_stops_startup_with_the_full_key():
    bad = {"plugins": {"oncall": {"teams": {"x": {**TEAMS["platform"], "timezone": "Nowhere"}}}}}
    with pytest.raises(
        ConfigError, match=r"plugins\.oncall\.teams\.x\.timezone: unknown time zone"
    ):
        await BotHarness(config=bad).start()


# Through the bot.


@pytest.fixture
async def bot():
    async with BotHarness(clock=ManualClock(START), config=CONFIG) as harness:
        yield harness


async def test_who_is_on_call(bot):
    overview = (await bot.command("oncall")).only()
    assert overview.text.splitlines() == [
        "platform: Bob until Mon 2026-11-30 09:00 CET, then Carol",
        "data: Dan until Wed 2026-11-25 20:00 UTC, then Erin",
    ]
    detail = (await bot.command("oncall Platform")).only()
    assert detail.text.splitlines()[:3] == [
        "platform: Bob is on call until Mon 2026-11-30 09:00 CET",
        "Next: Carol from Mon 2026-11-30 09:00 CET",
        "Then: Alice from Mon 2026-12-07 09:00 CET",
    ]
    schedule = (await bot.command("oncall schedule platform --count 2")).only()
    assert schedule.text.splitlines() == [
        "platform on call:",
        "Wed 2026-11-25 10:00 CET → Mon 2026-11-30 09:00 CET: Bob",
        "Mon 2026-11-30 09:00 CET → Mon 2026-12-07 09:00 CET: Carol",
    ]
    mine = (await bot.command("oncall me", user="bob")).only()
    assert mine.visible_to_user == "u-bob"
    assert (
        mine.text.splitlines()[1] == "platform: Wed 2026-11-25 10:00 CET → Mon 2026-11-30 09:00 CET"
    )
    # Carol is configured by name only: a display name is no identity, so she is not matched.
    carol = (await bot.command("oncall me", user="carol")).only()
    assert carol.text.startswith("You are not in any on-call rotation")


async def test_unknown_team_lists_the_known_ones(bot):
    reply = (await bot.command("oncall infra")).only()
    assert reply.visible_to_user == "u-alice"
    assert reply.text.startswith("unknown team 'infra'; teams: platform, data")


async def test_overrides_tell_the_replaced_person_and_can_be_cleared(bot):
    replies = await bot.command("oncall override platform car 4h", user="alice")
    assert [(m.text, m.visible_to_user) for m in replies] == [
        (
            "Carol takes the platform pager from you until Wed 2026-11-25 14:00 CET "
            "(set by Alice).",
            "u-bob",
        ),
        (replies[1].text, None),
    ]
    assert replies[1].text.startswith(
        "Carol is on call for platform until Wed 2026-11-25 14:00 CET"
    )
    assert (
        (await bot.command("oncall platform"))
        .only()
        .text.startswith(
            "platform: Carol is on call until Wed 2026-11-25 14:00 CET\n"
            "Next: Bob from Wed 2026-11-25 14:00 CET"
        )
    )
    clash = (await bot.command("oncall override platform alice --until 16:00")).only()
    assert clash.text.startswith("it overlaps override ")
    listing = (await bot.command("oncall overrides platform")).only()
    override_id = listing.text.splitlines()[1].split(":")[0]
    assert (
        "Carol Wed 2026-11-25 10:00 CET → Wed 2026-11-25 14:00 CET (set by Alice)" in listing.text
    )
    assert (await bot.command(f"oncall clear platform {override_id}")).texts == [
        "Removed 1 override(s) of platform."
    ]
    assert (await bot.command("oncall platform")).only().text.startswith("platform: Bob is on call")


@pytest.mark.parametrize(
    ("command", "problem"),
    [
        (
            "oncall override platform zed 2h",
            "no member 'zed' in platform; members: Alice, Bob, Carol",
        ),
        ("oncall override platform bob soon", "invalid duration 'soon': use a number and a unit"),
        (
            "oncall override platform bob",
            "give a duration (like 4h) or --until TIME, one of the two",
        ),
        (
            "oncall override platform bob --until 2026-01-01T09:00",
            "Thu 2026-01-01 09:00 CET is in the past",
        ),
        ("oncall override platform bob --until noonish", "invalid time 'noonish'"),
        ("oncall schedule platform --count 99", "--count must be between 1 and 52"),
    ],
)
async def test_bad_requests_say_exactly_what_is_wrong(bot, command, problem):
    reply = (await bot.command(command)).only()
    assert reply.visible_to_user == "u-alice"
    assert reply.text.startswith(problem), reply.text


async def test_handoffs_are_announced_once_across_a_restart(tmp_path):
    clock = ManualClock(START)
    config: dict[str, Any] = {**CONFIG, "storage": {"path": str(tmp_path / "bot.db")}}
    async with BotHarness(clock=clock, config=config) as bot:
        assert await bot.advance(60) == []  # the current state is noted, not announced
        await bot.stop()
        # The Monday handoff happens while the bot is down.
        await clock.advance(timedelta(days=5))
        await bot.restart()
        announced = await bot.advance(60)
        assert [(m.text, m.to_jid) for m in announced] == [
            ("📟 Carol is now on call for platform until Mon 2026-12-07 09:00 CET.", CHANNEL)
        ]
        await bot.restart()
        assert await bot.advance(120) == []  # not repeated after another restart
        # An override starting and ending is a handoff too.
        await bot.command("oncall override platform alice 1h", channel="platform")
        started = await bot.advance(30)
        assert [m.text for m in started] == [
            # Set at 10:04 (the clock moved 5 days and 4 minutes), for an hour.
            "📟 Alice is now on call for platform until Mon 2026-11-30 11:04 CET."
        ]
        ended = await bot.advance(timedelta(hours=1))
        assert [m.text for m in ended] == [
            "📟 Carol is now on call for platform until Mon 2026-12-07 09:00 CET."
        ]


async def test_no_teams_configured():
    async with BotHarness() as bot:
        assert (await bot.command("oncall")).only().text == (
            "No on-call teams are configured ([plugins.oncall.teams.<name>])."
        )


class FakePager:
    """Another plugin answering for one team from an outside on-call system."""

    def __init__(self) -> None:
        self.who = "Zed"

    @hookimpl
    def chatops_oncall_lookup(self, team: str, moment: datetime) -> Any:
        if team != "platform":
            return None

        async def ask() -> tuple[str, datetime | None]:
            return self.who, None

        return ask()


async def test_another_plugin_can_answer_from_its_on_call_system(tmp_path):
    pager = FakePager()
    async with BotHarness({"pager": pager}, clock=ManualClock(START), config=CONFIG) as bot:
        assert (await bot.command("oncall platform")).only().text == (
            "platform: Zed is on call (from the on-call system)"
        )
        overview = (await bot.command("oncall")).only().text.splitlines()
        assert overview == [
            "platform: Zed (from the on-call system)",
            "data: Dan until Wed 2026-11-25 20:00 UTC, then Erin",
        ]
        await bot.advance(30)
        assert await bot.advance(60) == []  # the same person is not a handoff
        pager.who = "Yan"
        assert [m.text for m in await bot.advance(30)] == ["📟 Yan is now on call for platform."]
        # An override made in chat still comes first.
        await bot.command("oncall override platform alice 1h")
        assert (
            (await bot.command("oncall platform"))
            .only()
            .text.startswith("platform: Alice is on call until")
        )


class AsyncShrug:
    """A lookup plugin written the natural way, ``async def``, that knows no team."""

    @hookimpl
    async def chatops_oncall_lookup(self, team: str, moment: datetime) -> Any:
        return None


async def test_an_async_lookup_that_does_not_know_lets_the_next_answer():
    # Registered after FakePager, so pluggy calls it first: its None must not end the lookup.
    plugins = {"pager": FakePager(), "shrug": AsyncShrug()}
    async with BotHarness(plugins, clock=ManualClock(START), config=CONFIG) as bot:
        assert (await bot.command("oncall platform")).only().text == (
            "platform: Zed is on call (from the on-call system)"
        )
        # Nobody knows data: the rotation answers.
        assert (await bot.command("oncall data")).only().text.startswith("data: Dan is on call")


# Issue #17: overrides are privileged, `oncall me` goes by identity, arguments are bounded.


@pytest.mark.parametrize("where", ["ops", "platform", None])
@pytest.mark.parametrize("command", ["oncall override platform carol 2h", "oncall clear platform"])
async def test_overrides_are_for_admins_only_by_default(bot, command, where):
    await bot.command("oncall override platform alice 1h", user="alice")
    refused = (await bot.command(command, user="dave", channel=where)).only()
    name = " ".join(command.split()[:2])
    assert refused.text.startswith(f"Only the bot's admins may run {name}.")
    assert refused.visible_to_user == ("u-dave" if where else None)
    # Nothing changed: Alice's override stands.
    listing = (await bot.command("oncall overrides platform", user="dave")).only()
    assert len(listing.text.splitlines()) == 2
    assert "Alice" in listing.text
    assert (
        (await bot.command("oncall platform")).only().text.startswith("platform: Alice is on call")
    )


async def test_an_admin_may_override_and_clear_from_anywhere(bot):
    done = await bot.command("oncall override platform carol 2h", user="alice", channel=None)
    assert done.texts[-1].startswith("Carol is on call for platform until")
    assert (await bot.command("oncall clear platform", user="alice", channel=None)).texts == [
        "Removed 1 override(s) of platform."
    ]


async def test_help_does_not_offer_overrides_to_others(bot):
    listing = (await bot.command("help", user="dave")).only().text
    assert "oncall override —" not in listing
    assert "oncall clear —" not in listing
    assert "oncall me" in listing
    assert "oncall override —" in (await bot.command("help", user="alice")).only().text


async def test_oncall_me_goes_by_user_id_never_by_display_name(bot):
    # Mallory renames herself "Bob": she must not be told Bob's shifts.
    impostor = (await bot.command("oncall me", user="mallory", user_name="Bob")).only()
    assert impostor.visible_to_user == "u-mallory"
    assert impostor.text == (
        "You are not in any on-call rotation: no member of a team is configured with your "
        "Zoom user id (u-mallory) or JID (mallory@xmpp.zoom.us); a display name is not enough. "
        "An operator adds you in [plugins.oncall.teams.<team>] members, like "
        '{ name = "Your name", user = "u-mallory" }.'
    )
    # Bob, whatever he is called today, is matched by his id.
    renamed = (await bot.command("oncall me", user="bob", user_name="Robert")).only()
    assert renamed.text.startswith("Your shifts:\nplatform: Wed 2026-11-25 10:00 CET")


async def test_oncall_me_by_jid_and_in_a_rotation_that_starts_later():
    teams = {
        "data": {**TEAMS["data"], "members": [{"name": "Dan", "user": "DAN@xmpp.zoom.us"}, "Erin"]},
        "later": {
            **TEAMS["data"],
            "start": "2027-06-01T08:00",
            "members": [{"name": "Erin", "user": "u-erin"}],
        },
    }
    config = {"plugins": {"oncall": {"teams": teams}}}
    async with BotHarness(clock=ManualClock(START), config=config) as bot:
        dan = (await bot.command("oncall me", user="dan")).only()
        assert dan.text.startswith("Your shifts:\ndata: ")
        erin = (await bot.command("oncall me", user="erin")).only()
        assert erin.text.startswith("Your shifts:\nlater: Tue 2027-06-01 08:00 UTC")
        # Erin is in "data" by name only: those shifts are not hers to be told.
        assert "data" not in erin.text


async def test_override_resolves_configured_names_not_the_callers_name(bot):
    # Alice (an admin) displayed as "Bob" puts "alice" on call: the member named Alice.
    replies = await bot.command("oncall override platform alice 1h", user="alice", user_name="Bob")
    assert replies.texts[-1].startswith("Alice is on call for platform")
    with pytest.raises(LookupError, match="no member 'me'"):
        team().find("me")


@pytest.mark.parametrize(
    ("change", "key", "message"),
    [
        ({"members": [{"name": "Bob", "user": ""}]}, "teams.t.members[0].user", "expected the"),
        (
            {"members": [{"name": "Bob", "user": "bob smith"}]},
            "teams.t.members[0].user",
            "expected the member's Zoom user id or JID",
        ),
        ({"members": [{"name": "Bob", "user": 7}]}, "teams.t.members[0].user", "expected a string"),
        ({"members": [{"name": "Bob", "id": "u-bob"}]}, "teams.t.members[0].id", "unknown key"),
        (
            {"members": [{"name": "A", "user": "u-x"}, {"name": "B", "user": "U-X"}]},
            "teams.t.members",
            "two members have the same user",
        ),
        ({"members": [3]}, "teams.t.members[0]", "expected a string or a table (name, user)"),
        ({"members": [{"user": "u-bob"}]}, "teams.t.members[0].name", "required"),
        ({"membres": ["A"]}, "teams.t.membres", "unknown key (did you mean members?)"),
        ({"rotation": 3}, "teams.t.rotation", "expected daily, weekly or an interval"),
    ],
)
def test_bad_members_name_the_key(change, key, message):
    with pytest.raises(PluginConfigError) as info:
        team(**change)
    assert info.value.key == key
    assert info.value.message.startswith(message)


def test_members_by_name_still_parse():
    members = team(members=["Alice", {"name": "Bob"}, {"name": "Carol", "user": " u-carol "}])
    assert [(m.name, m.user) for m in members.members] == [
        ("Alice", ""),
        ("Bob", ""),
        ("Carol", "u-carol"),
    ]
    assert not members.members[0].is_user("u-alice", "alice@xmpp.zoom.us")
    assert members.members[2].is_user("U-CAROL", "carol@xmpp.zoom.us")


@pytest.mark.parametrize(
    ("command", "problem"),
    [
        (f"oncall {'x' * 65}", "<team> is 65 characters long; at most 64 are allowed"),
        (f"oncall schedule {'x' * 200}", "<team> is 200 characters long; at most 64"),
        (f"oncall override platform {'b' * 65} 2h", "<member> is 65 characters long"),
        (f"oncall override platform bob --until {'9' * 65}", "<until> is 65 characters long"),
        (f"oncall clear platform {'f' * 65}", "<id> is 65 characters long"),
        (f"oncall overrides {'p' * 65}", "<team> is 65 characters long"),
        ("oncall override platform bob 99999999999d", "invalid duration '99999999999d': at most"),
        ("oncall override platform bob 366d1m", "invalid duration '366d1m': at most 366d"),
        (
            "oncall override platform bob --until 9999-12-31T09:00",
            "Fri 9999-12-31 09:00 CET is more than 366 days away",
        ),
    ],
)
async def test_over_long_arguments_are_refused_privately(bot, command, problem):
    reply = (await bot.command(command)).only()
    assert reply.visible_to_user == "u-alice"
    assert reply.text.startswith(problem), reply.text


async def test_overrides_stored_one_per_key_by_earlier_versions_still_count(bot):
    """Earlier versions kept each override under ``override:<team>:<id>``: they are read, they
    refuse an overlapping override, and the next change folds them into the team's key."""
    from chatopsbot.store import Store

    store = Store(bot.runtime.backend, "oncall", bot.clock)
    start = START.timestamp()
    old = {
        "id": "abc123",
        "team": "platform",
        "member": "Carol",
        "start": start,
        "end": start + 3600,
        "created": start,
        "by": "Alice",
        "by_id": "u-alice",
        "replaced": "Bob",
    }
    await store.set("override:platform:abc123", old)
    assert (
        (await bot.command("oncall platform"))
        .only()
        .text.startswith("platform: Carol is on call until")
    )
    clash = (await bot.command("oncall override platform alice 2h")).only()
    assert clash.text.startswith("it overlaps override abc123 ")
    await bot.clock.advance(3600)
    # Carol's override has ended: the handoff announcement may be sent while the command runs,
    # so the confirmation is looked for among what was sent, not in a given place.
    replies = await bot.command("oncall override platform alice 2h")
    assert any("is on call for platform" in text for text in replies.texts), replies.texts
    assert [k for k, _ in await store.list("override")] == ["overrides:platform"]
    assert [o["member"] for o in (await store.get("overrides:platform")).values()] == ["Alice"]


async def test_from_a_direct_message_the_replaced_person_is_told_in_theirs():
    teams = {
        **TEAMS,
        "platform": {
            **TEAMS["platform"],
            "members": ["Alice", {"name": "Bob", "user": "bob@xmpp.zoom.us"}, "Carol"],
        },
    }
    config = {**CONFIG, "plugins": {"oncall": {"account_id": "acct-1", "teams": teams}}}
    async with BotHarness(clock=ManualClock(START), config=config) as bot:
        replies = await bot.command("oncall override platform car 4h", user="alice", channel=None)
        note, done = replies
        # Bob's own 1:1 chat with the bot, not Alice's.
        assert (note.to_jid, note.visible_to_user) == ("bob@xmpp.zoom.us", None)
        assert note.text.startswith("Carol takes the platform pager from you")
        assert done.to_jid == "alice@xmpp.zoom.us"
        assert done.text.startswith("Carol is on call for platform")


async def test_from_a_direct_message_a_member_known_by_id_only_is_not_told_elsewhere():
    async with BotHarness(clock=ManualClock(START), config=CONFIG) as bot:
        replies = await bot.command("oncall override platform car 4h", user="alice", channel=None)
        assert [m.text[:30] for m in replies] == ["Carol is on call for platform "]
