"""Every state change of the built-ins, raced: hundreds of simultaneous signed webhooks into the
real app (on one bot, and on two replicas sharing one PostgreSQL schema), with the invariant
checked exactly.

Each race is one ``asyncio.gather`` of webhooks; the handlers interleave at every ``await``
(storage calls, sends), which is where a read, a check and a later write used to come apart.
"""

from __future__ import annotations

import asyncio
import itertools
import re
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chatopsbot.clock import ManualClock
from chatopsbot.testing import BotHarness
from chatopsbot.zoom.fake import Message
from chatopsbot_deploy.events import when
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


# Deploys.

TOKEN = "ci-secret"
DEPLOY: dict[str, Any] = {
    "plugins": {"deploy": {"webhook_token": TOKEN, "lock_reminder": "4h"}},
    "access": {"admins": ["u-carol"]},
}
RANKS = {"started": 0, "succeeded": 1, "failed": 1, "rolled_back": 2}


def _deploy_events(count: int) -> list[dict[str, Any]]:
    """``count`` events of one deploy in a scrambled order: every status, distinct times."""
    statuses = ["started", "succeeded", "failed", "rolled_back"]
    base = START.timestamp()
    return [
        {
            "service": "api",
            "environment": "prod",
            "version": "1.4.2",
            "status": statuses[(n * 7) % 4],
            "timestamp": base + (n * 37) % count,
            "actor": "ci",
        }
        for n in range(count)
    ]


def _cards(bot: BotHarness, head: str = "api → prod") -> list[Message]:
    return [m for m in bot.messages if m.visible_to_user is None and m.text.startswith(head)]


async def _events_racing(bots: list[BotHarness], count: int) -> None:
    """``count`` events of one deploy at once, into two subscribed channels: the accepted ones
    form one forward chain, each in the history once, and each channel has one card, showing
    the end of the chain."""
    first = bots[0]
    await first.command("deploy subscribe api", channel="ops")
    await first.command("deploy subscribe all", channel="releases")
    sent = _deploy_events(count)
    results = await asyncio.gather(
        *(
            bots[n % len(bots)].signed_hook(
                "POST", "deploy", secret=TOKEN, json=body, delivery_id=f"d-{n}"
            )
            for n, body in enumerate(sent)
        )
    )
    assert {r.status for r in results} <= {200, 202}
    accepted = [body for body, r in zip(sent, results, strict=True) if r.status == 202]
    chain = sorted(accepted, key=lambda e: (RANKS[e["status"]], e["timestamp"]))
    # Each accepted event moved the deploy past the one before it: applied one at a time.
    for before, after in itertools.pairwise(chain):
        assert after["status"] != before["status"], chain
        assert (RANKS[after["status"]], after["timestamp"]) > (
            RANKS[before["status"]],
            before["timestamp"],
        )
    top = chain[-1]
    # The deploy ends at the highest rank sent, whatever the order (a status never repeats, so
    # which event of that rank got there first depends on the order).
    assert RANKS[top["status"]] == max(RANKS[e["status"]] for e in sent)
    history = (await first.command("deploy history api --limit 50")).only().text.splitlines()[1:]
    assert len(history) == len(accepted)
    await _settle_all(bots, lambda: len(_cards(first)) >= 2)
    await asyncio.sleep(0.2)  # edits a follower queued reach the leader
    for b in bots:
        await b.settle()
    cards = _cards(first)
    assert sorted(c.to_jid for c in cards) == [
        "ops@conference.xmpp.zoom.us",
        "releases@conference.xmpp.zoom.us",
    ], first.transcript()
    for card in cards:
        assert f"Status: {_icon(top['status'])} {top['status']}" in card.text, card.text
        assert f"At: {when(top['timestamp'])}" in card.text
    status = (await first.command("deploy status api")).only().text
    assert f"{top['status']} (" in status


def _icon(status: str) -> str:
    return {"started": "🚀", "succeeded": "✅", "failed": "❌", "rolled_back": "↩️"}[status]


async def test_200_events_of_one_deploy_at_once_move_it_forward_once_each():
    async with BotHarness(clock=ManualClock(START), config=DEPLOY) as bot:
        await _events_racing([bot], 200)


async def test_events_racing_on_two_replicas_post_one_card_per_channel(start_bot, postgres_schema):
    storage = {"url": f"{POSTGRES_URL}?search_path={postgres_schema}"}
    clock = ManualClock(START)
    bots = [await start_bot(clock=clock, storage=storage, **DEPLOY) for _ in range(2)]
    await _events_racing(bots, 120)


async def test_200_locks_at_once_one_is_taken_and_reminded():
    async with BotHarness(clock=ManualClock(START), config=DEPLOY) as bot:
        await asyncio.gather(
            *(bot.command("deploy lock api prod busy", user=f"user{n}") for n in range(200))
        )
        taken = [m for m in bot.messages if m.text.startswith("🔒 ")]
        assert len(taken) == 1, bot.transcript()
        winner = taken[0].text.split()[1]
        refused = [m for m in bot.messages if m.text.startswith("api prod is already locked by")]
        assert len(refused) == 199
        assert all(f"locked by {winner} since" in m.text for m in refused)
        locks = (await bot.command("deploy locks")).only().text.splitlines()
        assert len(locks) == 2
        assert f"api prod: {winner} since" in locks[1]
        reminders = await bot.advance(timedelta(hours=4, minutes=1))
        assert [m.visible_to_user for m in reminders] == [f"u-{winner.lower()}"]


async def test_unlock_racing_locks_never_removes_a_lock_it_did_not_check():
    """Alice unlocks her lock while 100 locks by Bob race it: Bob gets it at most once, his
    lock is never removed by Alice's unlock, and only the lock that remains is reminded."""
    async with BotHarness(clock=ManualClock(START), config=DEPLOY) as bot:
        await bot.command("deploy lock api prod", user="alice")
        await asyncio.gather(
            bot.command("deploy unlock api prod", user="alice"),
            *(bot.command("deploy lock api prod", user="bob") for _ in range(100)),
        )
        unlocked = [m for m in bot.messages if m.text == "🔓 Alice unlocked api prod"]
        bob_took = [m for m in bot.messages if m.text == "🔒 Bob locked api prod"]
        assert len(unlocked) == 1
        assert len(bob_took) == 1, bot.transcript()  # Alice's unlock ran once, Bob took it after
        locks = (await bot.command("deploy locks")).only().text.splitlines()
        assert locks[1].startswith("api prod: Bob since")
        reminders = await bot.advance(timedelta(hours=4, minutes=1))
        assert [m.visible_to_user for m in reminders] == ["u-bob"]


async def test_100_subscriptions_at_once_are_all_kept():
    async with BotHarness(clock=ManualClock(START), config=DEPLOY) as bot:
        await asyncio.gather(*(bot.command(f"deploy subscribe svc{n}") for n in range(100)))
        listing = (await bot.command("deploy subscriptions")).only().text.splitlines()
        assert sorted(listing[1:]) == sorted(f"svc{n}" for n in range(100))
        await asyncio.gather(
            *(bot.command(f"deploy unsubscribe svc{n}") for n in range(100) if n % 2)
        )
        listing = (await bot.command("deploy subscriptions")).only().text.splitlines()
        assert sorted(listing[1:]) == sorted(f"svc{n}" for n in range(0, 100, 2))
