"""The polls plugin end to end, through the test kit: signed webhooks in, fake Zoom out."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from chatopsbot.clock import ManualClock
from chatopsbot.testing import BotHarness
from chatopsbot.zoom.fake import Message
from chatopsbot_polls.model import parse_clock_time, parse_duration

START = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


@pytest.fixture
async def bot():
    async with BotHarness(clock=ManualClock(START)) as harness:
        yield harness


async def test_create_vote_change_and_close(bot):
    card = (await bot.command('poll "Lunch?" Pizza Sushi “Salad bar”', user="alice")).only()
    assert card.visible_to_user is None
    assert card.text.splitlines()[:4] == [
        "Lunch?",
        card.text.splitlines()[1],
        "Pizza: 0",
        "Sushi: 0",
    ]
    assert "one choice" in card.text

    assert (await bot.click(card, "Pizza", user="alice")).texts == ["You voted Pizza"]
    assert (await bot.click(card, "Sushi", user="bob")).texts == ["You voted Sushi"]
    reply = (await bot.click(card, "Pizza", user="carol")).only()
    assert (reply.text, reply.visible_to_user) == ("You voted Pizza", "u-carol")
    assert (await bot.click(card, "Sushi", user="carol")).texts == ["You now vote Sushi"]
    assert "Pizza: 1 (Alice)" in card.text
    assert "Sushi: 2 (Bob, Carol)" in card.text
    assert (await bot.click(card, "Sushi", user="bob")).texts == [
        "You took back your vote for Sushi"
    ]
    assert "Sushi: 1 (Carol)" in card.text
    # Nobody but the voter ever sees a new message: one card, private confirmations.
    assert [m.visible_to_user for m in bot.messages[1:]] == [
        "u-alice",
        "u-bob",
        "u-carol",
        "u-carol",
        "u-bob",
    ]

    refusal = (await bot.click(card, "Close poll", user="bob")).only()
    assert refusal.text == "Only Alice (who asked) or an admin can close this poll."
    assert refusal.visible_to_user == "u-bob"
    assert await bot.click(card, "Close poll", user="alice") == []
    assert card.text.startswith("Lunch? (closed)")
    assert "Salad bar: 0 (0%)" in card.text
    assert "Close poll" not in json.dumps(card.content)  # the buttons are gone
    late = (await bot.click(card, "Pizza", user="dave")).only()
    assert late.text == "This poll is closed."


async def test_closed_results_are_sorted_with_bars(bot):
    card = (await bot.command("poll Deploy? yes no maybe")).only()
    for user in ("a", "b"):
        await bot.click(card, "no", user=user)
    await bot.click(card, "maybe", user="c")
    await bot.command(f"poll close {_poll_id(card)}")
    lines = card.text.splitlines()[2:]
    assert lines == [
        "███████░░░ no: 2 (67%) (A, B)",
        "███░░░░░░░ maybe: 1 (33%) (C)",
        "░░░░░░░░░░ yes: 0 (0%)",
    ]


async def test_concurrent_votes_all_count_and_the_card_ends_current(bot):
    card = (await bot.command("poll Coffee? yes no")).only()
    voters = [f"user{n}" for n in range(30)]
    await asyncio.gather(*(bot.click(card, "yes", user=v) for v in voters))
    await bot.settle()
    assert "yes: 30" in card.text
    edits = card.edits
    assert edits < 30  # coalesced: a burst does not cost one edit per click


async def test_multi_with_max(bot):
    card = (await bot.command("poll Toppings? ham olives corn --multi --max 2")).only()
    await bot.click(card, "ham")
    await bot.click(card, "olives")
    assert (await bot.click(card, "corn")).texts == [
        "You can pick at most 2 options; remove one first."
    ]
    assert "ham: 1 (Alice)" in card.text
    assert "olives: 1 (Alice)" in card.text


async def test_anonymous_polls_store_no_names(bot):
    card = (await bot.command("poll Happy? yes no --anonymous")).only()
    await bot.click(card, "yes", user="bob")
    await bot.click(card, "no", user="carol")
    assert "yes: 1\n" in card.text + "\n"
    assert "Bob" not in card.text
    assert "Carol" not in card.text
    store = bot.runtime.dispatcher.context_for("polls").store
    stored = json.dumps(await store.list())
    assert "Bob" not in stored
    assert "u-bob" not in stored
    assert "Carol" not in stored
    results = (await bot.command(f"poll results {_poll_id(card)}")).only()
    assert results.text.splitlines()[1:] == ["yes: 1", "no: 1"]
    # A voter can still take their own vote back.
    assert (await bot.click(card, "yes", user="bob")).texts == ["You took back your vote for yes"]


async def test_hidden_polls_show_counts_only_when_closed(bot):
    card = (await bot.command("poll Secret? a b --hidden")).only()
    await bot.click(card, "a", user="bob")
    assert "a: 1" not in card.text
    hidden = (await bot.command(f"poll results {_poll_id(card)}", user="bob")).only()
    assert hidden.text == "The results of this poll are hidden until it closes."
    await bot.click(card, "Close poll")
    assert "a: 1 (100%) (Bob)" in card.text


async def test_deadline_closes_the_poll(bot):
    card = (await bot.command("poll Standup? yes no --closes-in 30m")).only()
    assert "closes 2026-11-25 09:30 UTC" in card.text
    await bot.advance(timedelta(minutes=29))
    assert "(closed)" not in card.text
    await bot.advance(timedelta(minutes=1))
    assert card.text.startswith("Standup? (closed)")


async def test_a_deadline_passed_while_down_closes_at_startup(tmp_path):
    clock = ManualClock(START)
    config = {"storage": {"path": str(tmp_path / "bot.db")}}
    async with BotHarness(clock=clock, config=config) as bot:
        card = (await bot.command("poll Retro? now later --closes-in 1h")).only()
        await bot.click(card, "now", user="bob")
        await bot.stop()
        await clock.advance(timedelta(hours=3))
        await bot.restart()
        await bot.advance(0)
        assert card.text.startswith("Retro? (closed)")
        assert "now: 1 (100%) (Bob)" in card.text
        await bot.restart()
        await bot.advance(timedelta(hours=1))
        assert card.edits == 2  # the vote, then the close: not closed twice


async def test_list_and_closes_at_in_the_configured_zone(tmp_path):
    clock = ManualClock(START)
    async with BotHarness(
        clock=clock, config={"plugins": {"polls": {"timezone": "Europe/Berlin"}}}
    ) as bot:
        card = (await bot.command("poll Beer? yes no --closes-at 17:00")).only()
        assert "closes 2026-11-25 17:00 CET" in card.text
        listing = (await bot.command("poll list")).only()
        assert listing.text == f"Open polls:\n{_poll_id(card)}: Beer? (by Alice)"
        assert (await bot.command("poll list", channel="random")).texts == ["No open polls here."]
        await bot.advance(timedelta(hours=7))
        assert "(closed)" in card.text


@pytest.mark.parametrize(
    ("command", "problem"),
    [
        ("poll Lunch? Pizza", "a poll needs at least 2 options, got 1"),
        (
            "poll Q? " + " ".join(f"o{n}" for n in range(11)),
            "a poll takes at most 10 options, got 11",
        ),
        ("poll Q? a A", "option 'A' is there twice"),
        ('poll "" a b', "the question is empty"),
        ('poll "Lunch? a b', "unterminated quote"),
        (
            "poll Q? a b --closes-in soon",
            "invalid duration 'soon': use a number with s, m, h, d or w, like 30m",
        ),
        ("poll Q? a b --closes-at 25:00", "invalid time '25:00': use HH:MM, like 17:00"),
        ("poll Q? a b --max 2", "--max needs --multi"),
        ("poll Q? a b --multi --max 3", "--max must be between 1 and 2"),
        ("poll results nope", "no poll 'nope'; poll list shows the open ones here"),
    ],
)
async def test_bad_input_gets_a_private_reply_and_posts_nothing(bot, command, problem):
    reply = (await bot.command(command)).only()
    assert reply.visible_to_user == "u-alice"
    assert reply.text.startswith(problem), reply.text
    assert "Usage: poll" in reply.text or "unterminated" in problem


def test_durations_and_clock_times():
    assert parse_duration("1h30m") == timedelta(minutes=90)
    assert parse_duration("2d") == timedelta(days=2)
    berlin = ZoneInfo("Europe/Berlin")
    assert parse_clock_time("08:00", START, berlin).isoformat() == "2026-11-26T08:00:00+01:00"


def _poll_id(card: Message) -> str:
    return str(card.text.splitlines()[1].split()[1])


async def test_long_voter_lists_are_cut_on_the_card_but_not_in_results(bot):
    card = (await bot.command("poll Tea? yes no")).only()
    for n in range(10):
        await bot.click(card, "yes", user=f"v{n}")
    assert "yes: 10 (V0, V1, V2, V3, V4, V5, V6, V7 and 2 more)" in card.text
    results = (await bot.command(f"poll results {_poll_id(card)}")).only()
    assert "V9" in results.text
