"""The polls plugin end to end, through the test kit: signed webhooks in, fake Zoom out."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from chatopsbot import PluginConfigError
from chatopsbot.clock import ManualClock
from chatopsbot.config import ConfigError
from chatopsbot.testing import BotHarness
from chatopsbot.zoom.fake import Message
from chatopsbot_polls.model import (
    MAX_NAME_LENGTH,
    MAX_OPTION_LENGTH,
    MAX_QUESTION_LENGTH,
    parse_clock_time,
    parse_duration,
    visible_to,
)
from chatopsbot_polls.settings import parse_settings

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
            "invalid duration 'soon': use a number and a unit (s, m, h, d or w), like 30m",
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


# Issue #17: who may see and close a poll, caps on what is typed, cards deleted in Zoom.

ADMIN_CONFIG = {"access": {"admins": ["u-carol"]}}


async def test_results_elsewhere_answer_like_an_unknown_id():
    async with BotHarness(clock=ManualClock(START), config=ADMIN_CONFIG) as bot:
        card = (await bot.command("poll Raise? yes no", user="alice", channel="private")).only()
        await bot.click(card, "yes", user="bob")
        poll_id = _poll_id(card)
        unknown = (await bot.command("poll results 0a0a0a", user="dave", channel="ops")).only()
        for where in ("ops", None):  # another channel, and a direct message
            refused = await bot.command(f"poll results {poll_id}", user="dave", channel=where)
            assert refused.only().text == unknown.text.replace("0a0a0a", poll_id)
            # Private: only to Dave in a channel; a direct message is Dave's alone anyway.
            assert refused.only().visible_to_user == ("u-dave" if where else None)
            assert "Bob" not in refused.only().text
        # In the poll's own conversation anyone may ask; its creator and admins anywhere.
        for who, where in (("dave", "private"), ("alice", None), ("carol", "ops")):
            shown = (await bot.command(f"poll results {poll_id}", user=who, channel=where)).only()
            assert shown.text.splitlines()[1] == "yes: 1 (Bob)", (who, where)
            assert shown.visible_to_user == (f"u-{who}" if where else None)


async def test_close_elsewhere_answers_like_an_unknown_id(bot):
    card = (await bot.command("poll Raise? yes no", user="alice", channel="private")).only()
    poll_id = _poll_id(card)
    refused = (await bot.command(f"poll close {poll_id}", user="dave", channel="ops")).only()
    assert refused.text.startswith(f"no poll '{poll_id}'; poll list shows the open ones here")
    assert "Alice" not in refused.text
    here = (await bot.command(f"poll close {poll_id}", user="dave", channel="private")).only()
    assert here.text == "Only Alice (who asked) or an admin can close this poll."
    assert "(closed)" not in card.text
    # Its creator may close it from anywhere, a direct message included.
    assert await bot.command(f"poll close {poll_id}", user="alice", channel=None) == []
    assert card.text.startswith("Raise? (closed)")


async def test_an_admin_may_close_any_poll_from_anywhere():
    async with BotHarness(clock=ManualClock(START), config=ADMIN_CONFIG) as bot:
        card = (await bot.command("poll Raise? yes no", user="alice", channel="private")).only()
        assert await bot.command(f"poll close {_poll_id(card)}", user="carol", channel="ops") == []
        assert card.text.startswith("Raise? (closed)")
        other = (await bot.command("poll Again? yes no", user="alice")).only()
        assert await bot.click(other, "Close poll", user="carol") == []
        assert other.text.startswith("Again? (closed)")


async def test_close_anyone_lets_everyone_who_sees_the_poll_close_it():
    config = {"plugins": {"polls": {"close": "anyone"}}}
    async with BotHarness(clock=ManualClock(START), config=config) as bot:
        card = (await bot.command("poll Raise? yes no", user="alice")).only()
        assert await bot.click(card, "Close poll", user="bob") == []
        assert card.text.startswith("Raise? (closed)")
        other = (await bot.command("poll Again? yes no", user="alice", channel="private")).only()
        poll_id = _poll_id(other)
        # "anyone" widens who may close, not who may see: from elsewhere it is still unknown.
        refused = (await bot.command(f"poll close {poll_id}", user="bob", channel="ops")).only()
        assert refused.text.startswith(f"no poll '{poll_id}'")
        assert await bot.command(f"poll close {poll_id}", user="bob", channel="private") == []
        assert other.text.startswith("Again? (closed)")


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"close": "everyone"}, 'close: expected "creator_or_admin" or "anyone", got \'everyone\''),
        ({"close": True}, 'close: expected "creator_or_admin" or "anyone", got True'),
        ({"timezone": "Mars/Base"}, "timezone: unknown time zone 'Mars/Base'"),
        ({"closing": "anyone"}, "closing: unknown key (did you mean close?)"),
    ],
)
def test_bad_settings_name_the_key(table, message):
    with pytest.raises(PluginConfigError) as info:
        parse_settings(table)
    assert str(info.value) == message


async def test_a_bad_close_policy_stops_startup_with_the_key():
    config = {"plugins": {"polls": {"close": "everyone"}}}
    with pytest.raises(ConfigError, match=r"plugins\.polls\.close: expected"):
        await BotHarness(config=config).start()


def test_settings_defaults():
    settings = parse_settings({})
    assert (settings.timezone, settings.close) == (ZoneInfo("UTC"), "creator_or_admin")


@pytest.mark.parametrize(
    ("command", "problem"),
    [
        (
            f"poll {'Q' * (MAX_QUESTION_LENGTH + 1)} a b",
            f"the question is {MAX_QUESTION_LENGTH + 1} characters long; "
            f"at most {MAX_QUESTION_LENGTH} are allowed",
        ),
        (
            f"poll Q? a {'o' * (MAX_OPTION_LENGTH + 1)}",
            f"option '{'o' * 19}…' is {MAX_OPTION_LENGTH + 1} characters long; "
            f"an option is a button's label, at most {MAX_OPTION_LENGTH} characters",
        ),
        ("poll results " + "f" * 500, f"no poll '{'f' * 15}…'; poll list shows the open ones"),
        (
            "poll Q? a b --closes-in " + "1" * 99 + "h",
            f"'{'1' * 19}…' is not a time: 100 characters, at most 16 are allowed",
        ),
        ("poll Q? a b --closes-at " + "9" * 17, "'99999999999999999' is not a time: 17"),
        ("poll Q? a b --closes-in 9999999999w", "invalid duration '9999999999w': at most 366d"),
        ("poll Q? a b --closes-in 367d", "invalid duration '367d': at most 366d"),
    ],
)
async def test_over_long_input_is_refused_privately(bot, command, problem):
    reply = (await bot.command(command)).only()
    assert reply.visible_to_user == "u-alice"
    assert reply.text.startswith(problem), reply.text
    assert len(bot.messages) == 1  # no card


async def test_input_at_the_caps_is_accepted(bot):
    question, option = "Q" * MAX_QUESTION_LENGTH, "o" * MAX_OPTION_LENGTH
    card = (await bot.command(f"poll {question} a {option}")).only()
    assert card.text.splitlines()[0] == question
    assert (await bot.click(card, option, user="bob")).texts == [f"You voted {option}"]


async def test_long_display_names_are_cut_on_the_card(bot):
    long_name = "N" * 100
    card = (await bot.command("poll Tea? yes no", user_name=long_name)).only()
    await bot.click(card, "yes", user="bob", user_name=long_name)
    cut = "N" * (MAX_NAME_LENGTH - 1) + "…"
    assert f"by {cut} ·" in card.text
    assert f"yes: 1 ({cut})" in card.text
    assert long_name not in card.text


async def test_a_vote_on_a_deleted_card_is_counted_and_confirmed(bot, caplog):
    card = (await bot.command("poll Lunch? Pizza Sushi")).only()
    poll_id = _poll_id(card)
    bot.zoom.messages[card.message_id].deleted = True  # someone deleted it in Zoom
    caplog.set_level(logging.INFO, logger="chatopsbot.plugin.polls")
    reply = (await bot.click(card, "Pizza", user="bob")).only()
    assert (reply.text, reply.visible_to_user) == ("You voted Pizza", "u-bob")
    gone = [r for r in caplog.records if r.name == "chatopsbot.plugin.polls"]
    assert [(r.levelname, r.getMessage()) for r in gone] == [
        ("INFO", f"poll {poll_id}: its card was deleted in Zoom; votes are still counted")
    ]
    # The next click costs no edit that cannot succeed, and is confirmed the same way.
    edits_before = len([r for r in bot.zoom.requests if r.method == "PUT"])
    assert (await bot.click(card, "Sushi", user="carol")).texts == ["You voted Sushi"]
    assert len([r for r in bot.zoom.requests if r.method == "PUT"]) == edits_before
    results = (await bot.command(f"poll results {poll_id}")).only()
    assert results.text.splitlines()[1:] == ["Pizza: 1 (Bob)", "Sushi: 1 (Carol)"]
    assert "failed" not in bot.transcript()


async def test_closing_a_poll_whose_card_was_deleted(bot):
    card = (await bot.command("poll Lunch? Pizza Sushi")).only()
    await bot.click(card, "Pizza", user="bob")
    bot.zoom.messages[card.message_id].deleted = True
    reply = (await bot.command(f"poll close {_poll_id(card)}")).only()
    assert reply.visible_to_user == "u-alice"
    assert reply.text.splitlines()[:2] == [
        "The poll's card was deleted, so here is its result:",
        f"Lunch? ({_poll_id(card)}, closed, 1 voters)",
    ]
    assert (await bot.click(card, "Pizza", user="carol")).texts == ["This poll is closed."]


async def test_close_button_on_a_deleted_card(bot):
    card = (await bot.command("poll Lunch? Pizza Sushi")).only()
    bot.zoom.messages[card.message_id].deleted = True
    reply = (await bot.click(card, "Close poll")).only()
    assert reply.text.startswith("The poll's card was deleted, so here is its result:")
    assert "failed" not in bot.transcript()


async def test_a_deadline_on_a_deleted_card_closes_quietly(bot, caplog):
    card = (await bot.command("poll Standup? yes no --closes-in 30m")).only()
    bot.zoom.messages[card.message_id].deleted = True
    caplog.set_level(logging.INFO, logger="chatopsbot.plugin.polls")
    assert await bot.advance(timedelta(minutes=30)) == []
    assert [r.levelname for r in caplog.records if r.name == "chatopsbot.plugin.polls"] == ["INFO"]
    late = (await bot.click(card, "yes", user="bob")).only()
    assert late.text == "This poll is closed."


@pytest.mark.parametrize("admin", [False, True])
@pytest.mark.parametrize("creator", [False, True])
@pytest.mark.parametrize("here", [False, True])
def test_visibility_rule(admin, creator, here):
    poll = {"creator": {"id": "u-alice"}, "conversation": {"jid": "ops@conference.x"}}
    seen = visible_to(
        poll,
        conversation_jid="ops@conference.x" if here else "other@conference.x",
        user_id="u-alice" if creator else "u-dave",
        admin=admin,
    )
    assert seen == (admin or creator or here)


async def test_the_buttons_obey_the_rules_of_the_commands_they_stand_for():
    rules = {
        "access": {
            "commands": {
                "poll close": {"deny_users": ["u-alice"]},
                "poll": {"deny_users": ["u-dave"]},
            }
        }
    }
    async with BotHarness(clock=ManualClock(START), config=rules) as bot:
        card = (await bot.command("poll Raise? yes no", user="alice")).only()
        # Alice asked, but may not run poll close: the Close button is refused to her too.
        refused = (await bot.click(card, "Close poll", user="alice")).only()
        assert refused.text.startswith("You may not do that here.")
        assert "(closed)" not in card.text
        # Dave may not use polls at all: his vote is refused and not counted.
        refused = (await bot.click(card, "yes", user="dave")).only()
        assert refused.text.startswith("You may not do that here.")
        assert (await bot.click(card, "yes", user="bob")).texts == ["You voted yes"]
        assert "yes: 1 (Bob)" in card.text


async def test_a_new_poll_never_takes_over_an_old_ones_id(bot, monkeypatch):
    ids = iter(["0a0a0a0a", "0a0a0a0a", "0b0b0b0b"])
    monkeypatch.setattr("chatopsbot_polls.plugin.secrets.token_hex", lambda n: next(ids))
    first = (await bot.command("poll Raise? yes no", user="alice", channel="hr")).only()
    await bot.click(first, "yes", user="bob")
    second = (await bot.command("poll Lunch? pizza sushi", user="carol", channel="random")).only()
    assert _poll_id(first) == "0a0a0a0a"
    assert _poll_id(second) == "0b0b0b0b"  # the taken id was refused, the next one claimed
    assert "pizza: 0" in second.text
    results = (await bot.command("poll results 0a0a0a0a", user="alice", channel="hr")).only()
    assert "yes: 1 (Bob)" in results.text
