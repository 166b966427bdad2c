"""Properties of the built-ins' pure models, checked by Hypothesis: rotations, polls, deploy
events, durations. Each states something that must hold for every input, not an example."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from chatopsbot import UsageError
from chatopsbot_deploy import events
from chatopsbot_oncall.rotation import Member, Team, parse_duration
from chatopsbot_polls import model

# Rotations.

ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata"]

periods = st.one_of(
    st.integers(1, 72).map(lambda h: timedelta(hours=h)),
    st.integers(1, 14).map(lambda d: timedelta(days=d)),
)


@st.composite
def teams(draw: st.DrawFn) -> Team:
    size = draw(st.integers(1, 5))
    start = draw(
        st.datetimes(datetime(2020, 1, 1), datetime(2030, 1, 1)).map(
            lambda d: d.replace(second=0, microsecond=0)
        )
    )
    if draw(st.booleans()):
        # The small hours, where clocks are changed.
        start = start.replace(hour=draw(st.integers(0, 3)))
    zone = ZoneInfo(draw(st.sampled_from(ZONES)))
    members = tuple(Member(f"m{i}") for i in range(size))
    return Team("t", members, draw(periods), start, zone)


def moments(team: Team) -> st.SearchStrategy[datetime]:
    """Any moment in the rotation's first years, often within hours of a handoff (where a
    change of the clocks bites)."""
    # An instant, in UTC: adding to the zone's own time is wall-clock arithmetic, which gives
    # local times a change of the clocks skipped (Lord Howe's half-hour jump found it), and
    # datetimes in one zone compare by wall clock too.
    first = team.handoff(0).astimezone(UTC)
    anywhere = st.integers(0, 3 * 365 * 86400).map(lambda s: first + timedelta(seconds=s))
    near = st.builds(
        lambda k, s: max(first, team.handoff(k).astimezone(UTC) + timedelta(seconds=s)),
        st.integers(0, 400),
        st.integers(-3 * 3600, 3 * 3600),
    )
    return st.one_of(anywhere, near)


@settings(max_examples=300)
@given(st.data())
def test_the_shift_at_a_moment_contains_it(data: st.DataObject) -> None:
    team = data.draw(teams())
    moment = data.draw(moments(team))
    shift = team.shift_at(moment)
    assert shift is not None
    _, since, until = shift
    assert since <= moment < until


@settings(max_examples=300)
@given(st.data())
def test_shifts_tile_time_without_gaps_or_overlaps_and_go_round(data: st.DataObject) -> None:
    """Walking from shift to shift: each starts where the last ended, and the members take
    their turns in order."""
    team = data.draw(teams())
    moment = data.draw(moments(team))
    shifts = team.upcoming(moment, 2 * len(team.members) + 1)
    for (member, _, until), (following, since, _) in itertools.pairwise(shifts):
        assert since == until
        i = team.members.index(member)
        assert following == team.members[(i + 1) % len(team.members)]
    # upcoming() starts with the shift the moment falls in.
    assert team.shift_at(moment) == shifts[0]


#: 2026's changes of the clocks, as UTC instants (spring forward, fall back).
CLOCK_CHANGES = {
    "Europe/Berlin": [datetime(2026, 3, 29, 1, tzinfo=UTC), datetime(2026, 10, 25, 1, tzinfo=UTC)],
    "America/New_York": [datetime(2026, 3, 8, 7, tzinfo=UTC), datetime(2026, 11, 1, 6, tzinfo=UTC)],
}


@settings(max_examples=500)
@given(
    st.sampled_from(sorted(CLOCK_CHANGES)),
    st.sampled_from([timedelta(days=1), timedelta(days=7), timedelta(hours=12)]),
    st.integers(0, 4 * 60 - 1),
    st.integers(0, 1),
    st.integers(-3 * 3600, 3 * 3600),
)
def test_shifts_contain_their_moment_across_clock_changes(
    zone: str, period: timedelta, minute: int, which: int, offset: int
) -> None:
    """Handoffs in the small hours, moments around a change of the clocks (an hour that
    happens twice, or not at all): the shift found still contains the moment."""
    start = datetime(2026, 1, 4, minute // 60, minute % 60)
    team = Team("t", (Member("a"), Member("b"), Member("c")), period, start, ZoneInfo(zone))
    moment = CLOCK_CHANGES[zone][which] + timedelta(seconds=offset)
    shift = team.shift_at(moment)
    assert shift is not None
    _, since, until = shift
    assert since <= moment < until
    following = team.shift_at(until)
    assert following is not None
    assert following[1] == until


@given(teams(), st.integers(-1000, 1000), st.integers(0, 1000))
def test_handoffs_are_in_order(team: Team, k: int, step: int) -> None:
    assert team.handoff(k) <= team.handoff(k + step)


@given(teams())
def test_nobody_is_on_call_before_the_first_handoff(team: Team) -> None:
    assert team.shift_at(team.handoff(0) - timedelta(seconds=1)) is None
    assert team.shift_at(team.handoff(0)) is not None


# Override durations (on-call) and poll durations.


@given(st.integers(0, 400), st.integers(0, 99), st.integers(0, 99))
def test_override_durations_add_up_and_are_bounded(days: int, hours: int, minutes: int) -> None:
    text = (f"{days}d" if days else "") + (f"{hours}h" if hours else "")
    text += f"{minutes}m" if minutes else ""
    assume(text)
    longest = timedelta(days=366)
    total = timedelta(days=days, hours=hours, minutes=minutes)
    if timedelta(0) < total <= longest:
        assert parse_duration(text, longest) == total
        assert parse_duration(text.upper(), longest) == total
    else:
        with pytest.raises(ValueError, match="invalid duration"):
            parse_duration(text, longest)


@given(st.text(max_size=12))
def test_override_durations_refuse_anything_else_with_a_message(text: str) -> None:
    try:
        parsed = parse_duration(text, timedelta(days=366))
    except ValueError as exc:
        message = str(exc)
    else:
        assert timedelta(0) < parsed <= timedelta(days=366)
        return
    assert message.startswith(f"invalid duration {text!r}")


def _poll_text(seconds: int) -> str:
    """``seconds`` written the long way round: weeks, days, hours, minutes, seconds."""
    parts = []
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


@given(st.integers(1, int(model.MAX_DURATION.total_seconds())))
def test_a_poll_duration_written_out_parses_back(seconds: int) -> None:
    text = _poll_text(seconds)
    assume(len(text) <= model.MAX_TIME_LENGTH)
    assert model.parse_duration(text) == timedelta(seconds=seconds)
    assert model.parse_duration(f" {text.upper()} ") == timedelta(seconds=seconds)


UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
pieces = st.tuples(st.integers(0, 9999), st.sampled_from(sorted(UNITS)))


@given(pieces, pieces)
def test_poll_durations_concatenate_as_sums(left: tuple[int, str], right: tuple[int, str]) -> None:
    text = f"{left[0]}{left[1]}{right[0]}{right[1]}"
    total = left[0] * UNITS[left[1]] + right[0] * UNITS[right[1]]
    if 0 < total <= model.MAX_DURATION.total_seconds():
        assert model.parse_duration(text) == timedelta(seconds=total)
    else:
        with pytest.raises(UsageError, match="invalid duration"):
            model.parse_duration(text)


@given(st.text(max_size=20))
def test_a_poll_duration_is_positive_bounded_or_refused(text: str) -> None:
    try:
        parsed = model.parse_duration(text)
    except UsageError:
        return
    assert timedelta(0) < parsed <= model.MAX_DURATION


# Polls: casting votes.


@st.composite
def polls(draw: st.DrawFn) -> dict[str, Any]:
    options = draw(st.integers(model.MIN_OPTIONS, model.MAX_OPTIONS))
    multi = draw(st.booleans())
    return {
        "options": [f"o{i}" for i in range(options)],
        "multi": multi,
        "max": draw(st.integers(1, options)) if multi else 1,
    }


def clicks(poll: dict[str, Any]) -> st.SearchStrategy[list[tuple[str, int]]]:
    voters = st.sampled_from([f"v{i}" for i in range(6)])
    return st.lists(st.tuples(voters, st.integers(0, len(poll["options"]) - 1)), max_size=40)


def cast_all(
    poll: dict[str, Any], ballots: dict[str, Any], sequence: list[tuple[str, int]]
) -> dict[str, Any]:
    for voter, choice in sequence:
        ballots, _ = model.cast_vote(ballots, voter, voter.upper(), choice, poll)
    return ballots


@given(st.data())
def test_ballots_always_respect_the_poll(data: st.DataObject) -> None:
    poll = data.draw(polls())
    ballots = cast_all(poll, {}, data.draw(clicks(poll)))
    rows = model.tally(poll, ballots)
    for ballot in ballots.values():
        choices = ballot["choices"]
        assert choices == sorted(set(choices))
        assert 1 <= len(choices) <= poll["max"]
    # Every choice is counted once, under its option.
    assert sum(count for _, _, count, _ in rows) == sum(len(b["choices"]) for b in ballots.values())
    if not poll["multi"]:
        assert sum(count for _, _, count, _ in rows) == len(ballots)


@given(st.data())
def test_casting_then_taking_back_a_vote_restores_the_ballots(data: st.DataObject) -> None:
    poll = data.draw(polls())
    ballots = cast_all(poll, {}, data.draw(clicks(poll)))
    choice = data.draw(st.integers(0, len(poll["options"]) - 1))
    voter = "newcomer"
    cast, outcome = model.cast_vote(ballots, voter, "Newcomer", choice, poll)
    assert outcome == "added"
    counts = [c for _, _, c, _ in model.tally(poll, cast)]
    before = [c for _, _, c, _ in model.tally(poll, ballots)]
    assert [a - b for a, b in zip(counts, before, strict=True)] == [
        int(i == choice) for i in range(len(poll["options"]))
    ]
    back, outcome = model.cast_vote(cast, voter, "Newcomer", choice, poll)
    assert outcome == "removed"
    assert back == ballots


@given(st.data())
def test_different_voters_clicks_commute(data: st.DataObject) -> None:
    """Votes applied one at a time in any interleaving end the same: so serialising them (the
    store does) is all a race needs; no order between voters matters."""
    poll = data.draw(polls())
    sequence = data.draw(clicks(poll))
    shuffled = data.draw(st.permutations(range(len(sequence))))
    # Keep each voter's own clicks in their order; interleave voters differently.
    by_voter: dict[str, list[tuple[str, int]]] = {}
    for click in sequence:
        by_voter.setdefault(click[0], []).append(click)
    order = [sequence[i][0] for i in shuffled]
    interleaved = [by_voter[v].pop(0) for v in order]
    assert cast_all(poll, {}, interleaved) == cast_all(poll, {}, sequence)


@given(st.data())
def test_a_single_choice_poll_is_never_full_and_a_click_moves_the_vote(
    data: st.DataObject,
) -> None:
    poll = {**data.draw(polls()), "multi": False, "max": 1}
    ballots = cast_all(poll, {}, data.draw(clicks(poll)))
    voter = data.draw(st.sampled_from([f"v{i}" for i in range(6)]))
    choice = data.draw(st.integers(0, len(poll["options"]) - 1))
    after, outcome = model.cast_vote(ballots, voter, voter.upper(), choice, poll)
    assert outcome != "full"
    if outcome == "removed":
        assert voter not in after
    else:
        assert after[voter]["choices"] == [choice]


# Deploy events: they only move a deploy forward.

STATUSES = list(events.RANKS)


@st.composite
def deploy_events(draw: st.DrawFn) -> list[dict[str, Any]]:
    count = draw(st.integers(1, 12))
    return [
        {
            "version": "1.0",
            "status": draw(st.sampled_from(STATUSES)),
            "timestamp": float(draw(st.integers(0, 50))),
        }
        for _ in range(count)
    ]


def fold(sequence: list[dict[str, Any]]) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    state: dict[str, Any] | None = None
    accepted = []
    for event in sequence:
        moved = events.advance(event, state, None)
        if moved is not None:
            state = moved
            accepted.append(event)
    return state, accepted


@given(deploy_events(), st.randoms(use_true_random=False))
def test_a_deploy_only_moves_forward_and_ends_at_the_highest_rank(
    sequence: list[dict[str, Any]], rnd: Any
) -> None:
    shuffled = list(sequence)
    rnd.shuffle(shuffled)
    for order in (sequence, shuffled):
        state, accepted = fold(order)
        assert state is not None
        assert accepted[0] is order[0]  # the first event of a deploy always counts
        for before, after in itertools.pairwise(accepted):
            assert events.supersedes(after, before)
        # Whatever the order, a deploy ends at the highest rank any event had.
        assert events.RANKS[state["status"]] == max(events.RANKS[e["status"]] for e in order)
        assert state["run"] == 0  # one version: never a new run


@given(deploy_events())
def test_replaying_an_accepted_event_changes_nothing(sequence: list[dict[str, Any]]) -> None:
    state, accepted = fold(sequence)
    for event in accepted:
        assert events.advance(event, state, None) is None or event["status"] == "started"
    assert events.advance(accepted[-1], state, None) is None


def test_a_half_hour_change_of_the_clocks() -> None:
    # Lord Howe Island moves its clocks by 30 minutes: 02:00 becomes 02:30. A shift from
    # 01:30 lasts half an hour of real time, and the next starts at 02:30.
    team = Team(
        "t",
        (Member("a"), Member("b")),
        timedelta(hours=1),
        datetime(2020, 10, 4, 1, 30),
        ZoneInfo("Australia/Lord_Howe"),
    )
    moment = team.handoff(0).astimezone(UTC) + timedelta(minutes=30)
    shift = team.shift_at(moment)
    assert shift is not None
    member, since, until = shift
    assert (member.name, since.astimezone(UTC), until - since) == ("b", moment, timedelta(hours=1))
