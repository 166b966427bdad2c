"""Every state change of the built-ins, raced: hundreds of simultaneous signed webhooks into the
real app (on one bot, and on two replicas sharing one PostgreSQL schema), with the invariant
checked exactly.

Each race is one ``asyncio.gather`` of webhooks; the handlers interleave at every ``await``
(storage calls, sends), which is where a read, a check and a later write used to come apart.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from chatopsbot.clock import ManualClock
from chatopsbot.testing import BotHarness
from chatopsbot.zoom.fake import Message
from tests.conftest import POSTGRES_URL

START = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


@pytest.fixture
async def bot():
    async with BotHarness(clock=ManualClock(START)) as harness:
        yield harness


def _private(bot: BotHarness, text: str) -> list[str]:
    """Who was told ``text`` privately (user ids, one per message)."""
    return [m.visible_to_user or "" for m in bot.messages if m.visible_to_user and m.text == text]


def _poll_id(card: Message) -> str:
    found = re.search(r"Poll (\w+) by", card.text)
    assert found, card.text
    return found[1]


def _closed_counts(card: Message) -> dict[str, int]:
    """``{option: votes}`` from a closed card's bars."""
    assert "(closed)" in card.text, card.text
    return {m[1]: int(m[2]) for m in re.finditer(r"[█░]+ (\w+): (\d+) \(", card.text)}


def _results(text: str) -> tuple[int, dict[str, int], dict[str, set[str]]]:
    """Voters, ``{option: votes}`` and ``{option: voter names}`` from ``poll results``."""
    first, *rows = text.splitlines()
    voters = re.search(r"(\d+) voters\)$", first)
    assert voters, first
    counts, names = {}, {}
    for row in rows:
        found = re.match(r"(\w+): (\d+)(?: \((.*)\))?$", row)
        assert found, row
        counts[found[1]] = int(found[2])
        names[found[1]] = set(found[3].split(", ")) if found[3] else set()
    return int(voters[1]), counts, names


async def _settle_all(bots: list[BotHarness], done: Callable[[], bool]) -> None:
    """Wait until ``done()``, then until every bot is idle: a follower's replies are sent by
    the leader, after the follower has settled."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    while not done():
        assert loop.time() < deadline, bots[0].transcript()
        await asyncio.sleep(0.02)
    for b in bots:
        await b.settle()


def _answered(bot: BotHarness) -> list[Message]:
    return [m for m in bot.messages if m.visible_to_user]


# Polls.


async def _votes_racing_close(bots: list[BotHarness], voters: int) -> None:
    """``voters`` votes for Red, with the Close button clicked among them; then the closed
    card, ``poll results`` and the voters' confirmations must agree exactly."""
    first = bots[0]
    card = (await first.command("poll Colour? Red Blue", user="alice")).only()
    poll_id = _poll_id(card)
    clicks = [bots[n % len(bots)].click(card, "Red", user=f"voter{n}") for n in range(voters)]
    close = bots[-1].click(card, "Close poll", user="alice")
    half = voters // 2
    await asyncio.gather(*clicks[:half], close, *clicks[half:])
    await _settle_all(bots, lambda: len(_answered(first)) >= voters)

    told_voted = _private(first, "You voted Red")
    told_closed = _private(first, "This poll is closed.")
    assert len(told_voted) + len(told_closed) == voters, first.transcript()
    assert len(set(told_voted)) == len(told_voted)
    # The closed card (the last edit Zoom got) shows exactly the votes confirmed.
    assert _closed_counts(card) == {"Red": len(told_voted), "Blue": 0}
    assert f"· {len(told_voted)} voter" in card.text
    # poll results says the same, voter by voter.
    summary = (await first.command(f"poll results {poll_id}", user="alice")).only().text
    count, counts, names = _results(summary)
    assert (count, counts) == (len(told_voted), {"Red": len(told_voted), "Blue": 0})
    assert {f"u-{n.lower()}" for n in names["Red"]} == set(told_voted)
    # Closed is closed: a late click is refused and changes nothing.
    assert (await first.click(card, "Blue", user="late")).texts == ["This poll is closed."]
    assert _closed_counts(card) == {"Red": len(told_voted), "Blue": 0}


async def test_150_votes_racing_close_agree_with_the_closed_card_and_results(bot):
    await _votes_racing_close([bot], 150)


async def test_votes_racing_close_on_a_sqlite_file(tmp_path):
    """The default storage: a file, read on one thread and written on another."""
    storage = {"path": str(tmp_path / "bot.db")}
    async with BotHarness(clock=ManualClock(START), config={"storage": storage}) as bot:
        await _votes_racing_close([bot], 150)


async def test_votes_racing_close_on_two_replicas_sharing_postgres(start_bot, postgres_schema):
    storage = {"url": f"{POSTGRES_URL}?search_path={postgres_schema}"}
    clock = ManualClock(START)
    one = await start_bot(storage=storage, clock=clock)
    two = await start_bot(storage=storage, clock=clock)
    await _votes_racing_close([one, two], 120)


async def test_200_votes_racing_each_other_all_count_and_the_card_shows_the_last(bot):
    card = (await bot.command("poll Colour? Red Blue Green", user="alice")).only()
    options = ["Red", "Blue", "Green"]
    # Everyone votes; a third of them change their mind at the same time (moved votes).
    first = [bot.click(card, options[n % 3], user=f"voter{n}") for n in range(200)]
    await asyncio.gather(*first)
    second = [bot.click(card, options[(n + 1) % 3], user=f"voter{n}") for n in range(0, 200, 3)]
    await asyncio.gather(*second)

    moved = {f"u-voter{n}" for n in range(0, 200, 3)}
    assert (
        len(_private(bot, "You voted Red"))
        + len(_private(bot, "You voted Blue"))
        + len(_private(bot, "You voted Green"))
        == 200
    )
    expected = Counter(
        options[(n + 1) % 3] if f"u-voter{n}" in moved else options[n % 3] for n in range(200)
    )
    for option in options:
        assert len(_private(bot, f"You now vote {option}")) == sum(
            1 for n in range(0, 200, 3) if options[(n + 1) % 3] == option
        )
    # The open card's last edit has the final tally.
    for option in options:
        assert re.search(rf"^{option}: {expected[option]}\b", card.text, re.M), card.text
    assert "· 200 voted" in card.text
    count, counts, _ = _results(
        (await bot.command(f"poll results {_poll_id(card)}", user="alice")).only().text
    )
    assert (count, counts) == (200, {option: expected[option] for option in options})


async def test_closes_racing_each_other_close_once(bot):
    card = (await bot.command("poll Colour? Red Blue", user="alice")).only()
    await bot.click(card, "Red", user="bob")
    poll_id = _poll_id(card)
    await asyncio.gather(
        *(bot.click(card, "Close poll", user="alice") for _ in range(25)),
        *(bot.command(f"poll close {poll_id}", user="alice") for _ in range(25)),
    )
    # One close did it (silently, on the card); the other 49 were told it was closed already.
    assert len(_private(bot, "This poll is already closed.")) == 49
    assert _closed_counts(card) == {"Red": 1, "Blue": 0}


# On-call overrides.

ONCALL: dict[str, Any] = {
    "plugins": {
        "oncall": {
            "teams": {
                "platform": {
                    "members": ["Alice", {"name": "Bob", "user": "u-bob"}, "Carol"],
                    "rotation": "weekly",
                    "start": "2026-01-05T09:00",
                    "timezone": "Europe/Berlin",
                }
            }
        }
    },
    "access": {"admins": ["u-alice", "u-dave"]},
}


def _accepted_overrides(bot: BotHarness) -> list[Message]:
    return [m for m in bot.messages if " is on call for platform until " in m.text]


async def _overrides_racing(bots: list[BotHarness], count: int) -> None:
    """``count`` overlapping overrides at once (several lengths, several members, two
    admins): exactly one is stored, one is confirmed, the replaced person is told once."""
    members = ["carol", "alice"]
    lengths = ["1h", "2h", "30m", "1d"]
    commands = [
        bots[n % len(bots)].command(
            f"oncall override platform {members[n % 2]} {lengths[n % 4]}",
            user=("alice", "dave")[n % 2],
        )
        for n in range(count)
    ]
    await asyncio.gather(*commands)
    first = bots[0]
    await _settle_all(
        bots,
        lambda: len([m for m in first.messages if "override" in m.text]) >= count,
    )
    accepted = _accepted_overrides(first)
    refused = [m for m in first.messages if m.text.startswith("it overlaps override ")]
    assert (len(accepted), len(refused)) == (1, count - 1), first.transcript()
    assert len(_private_to(first, "u-bob")) == 1  # Bob, on call by rotation, told once
    listing = (await first.command("oncall overrides platform")).only().text.splitlines()
    assert len(listing) == 2, listing  # the heading and one override
    override_id = listing[1].split(":")[0]
    assert f"(override {override_id})" in accepted[0].text


def _private_to(bot: BotHarness, user_id: str) -> list[Message]:
    return [m for m in bot.messages if m.visible_to_user == user_id]


async def test_200_overlapping_overrides_at_once_store_exactly_one():
    async with BotHarness(clock=ManualClock(START), config=ONCALL) as bot:
        await _overrides_racing([bot], 200)


async def test_overlapping_overrides_on_two_replicas_store_exactly_one(start_bot, postgres_schema):
    storage = {"url": f"{POSTGRES_URL}?search_path={postgres_schema}"}
    clock = ManualClock(START)
    bots = [await start_bot(clock=clock, storage=storage, **ONCALL) for _ in range(2)]
    await _overrides_racing(bots, 100)


async def test_clears_racing_overrides_leave_no_overlap():
    """Overrides and clears interleaved: whatever the order, what is stored never overlaps."""
    async with BotHarness(clock=ManualClock(START), config=ONCALL) as bot:
        await asyncio.gather(
            *(
                bot.command(
                    "oncall clear platform" if n % 3 == 0 else "oncall override platform carol 1h",
                    user="alice",
                )
                for n in range(150)
            )
        )
        listing = (await bot.command("oncall overrides platform")).only().text.splitlines()
        assert len(listing) <= 2, listing
