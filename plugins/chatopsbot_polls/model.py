"""Polls as data: parsing durations and deadlines, counting votes, rendering cards. No I/O."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from chatopsbot import (
    Actions,
    Button,
    ButtonStyle,
    Card,
    DurationError,
    Paragraph,
    UsageError,
    next_time_of_day,
    parse_time_of_day,
)
from chatopsbot import parse_duration as parse_any_duration

MIN_OPTIONS = 2
MAX_OPTIONS = 10
#: Caps on what a user types into a card (characters, after trimming). Zoom documents no card
#: limits; its guidance is 40 characters of button text and 4096 of message text. An option is
#: a button's label; 300 + 10 options keep a card far below 4096 even with voter names.
MAX_QUESTION_LENGTH = 300
MAX_OPTION_LENGTH = 40
#: A duration or a clock time is short; longer text is refused before it is echoed back.
MAX_TIME_LENGTH = 16
#: The longest a poll may stay open with ``--closes-in``.
MAX_DURATION = timedelta(days=366)
#: Display names come from Zoom, not from the command, so they are cut on the card, not refused.
MAX_NAME_LENGTH = 40
BAR_WIDTH = 10
#: Voter names shown per option on the card; ``poll results`` lists them all.
SHOWN_NAMES = 8


def parse_duration(text: str) -> timedelta:
    """``30m``, ``2h``, ``1d``, ``1h30m`` as a timedelta; :class:`UsageError` otherwise."""
    _short_time(text)
    try:
        return parse_any_duration(text, longest=MAX_DURATION)
    except DurationError as exc:
        raise UsageError(f"invalid duration {text!r}: {exc.problem}") from None


def parse_clock_time(text: str, now: datetime, zone: ZoneInfo) -> datetime:
    """The next ``HH:MM`` in ``zone`` after ``now`` (today, or tomorrow if already past)."""
    _short_time(text)
    try:
        clock = parse_time_of_day(text)
    except DurationError as exc:
        raise UsageError(f"invalid time {text!r}: {exc.problem}") from None
    return next_time_of_day(clock, now, zone)


def validate_options(question: str, options: tuple[str, ...]) -> None:
    """Refuse an empty or over-long question, too few or too many options, an empty or
    over-long option, or duplicates."""
    if not question.strip():
        raise UsageError("the question is empty")
    if len(question.strip()) > MAX_QUESTION_LENGTH:
        raise UsageError(
            f"the question is {len(question.strip())} characters long; "
            f"at most {MAX_QUESTION_LENGTH} are allowed"
        )
    if len(options) < MIN_OPTIONS:
        raise UsageError(f"a poll needs at least {MIN_OPTIONS} options, got {len(options)}")
    if len(options) > MAX_OPTIONS:
        raise UsageError(f"a poll takes at most {MAX_OPTIONS} options, got {len(options)}")
    seen: set[str] = set()
    for option in options:
        key = option.strip().casefold()
        if not key:
            raise UsageError("an option is empty")
        if len(option.strip()) > MAX_OPTION_LENGTH:
            raise UsageError(
                f"option {_shorten(option.strip(), 20)!r} is {len(option.strip())} characters "
                f"long; an option is a button's label, at most {MAX_OPTION_LENGTH} characters"
            )
        if key in seen:
            raise UsageError(f"option {option!r} is there twice")
        seen.add(key)


def visible_to(
    poll: Mapping[str, Any], *, conversation_jid: str, user_id: str, admin: bool
) -> bool:
    """Whether a person may learn anything about ``poll`` from where they ask.

    In the poll's own conversation (where its card is), its creator anywhere, an admin
    anywhere. Anyone else is answered as if the poll did not exist: its id alone is no key.
    """
    return (
        admin or user_id == poll["creator"]["id"] or conversation_jid == poll["conversation"]["jid"]
    )


def may_close(poll: Mapping[str, Any], *, policy: str, user_id: str, admin: bool) -> bool:
    """Whether a person may close ``poll`` under the configured ``close`` policy."""
    return policy == "anyone" or admin or user_id == poll["creator"]["id"]


def cast_vote(
    ballots: dict[str, Any], voter: str, name: str | None, choice: int, poll: Mapping[str, Any]
) -> tuple[dict[str, Any], str]:
    """Apply one click to the ballots; return them and what happened (``added``, ``removed``,
    ``moved``, ``full``). Clicking your current choice again removes it."""
    ballots = dict(ballots)
    mine = list(ballots.get(voter, {}).get("choices", []))
    if choice in mine:
        mine.remove(choice)
        outcome = "removed"
    elif not poll["multi"]:
        outcome = "moved" if mine else "added"
        mine = [choice]
    elif len(mine) >= poll["max"]:
        return ballots, "full"
    else:
        mine.append(choice)
        outcome = "added"
    if mine:
        ballots[voter] = {"choices": sorted(mine), **({"name": name} if name else {})}
    else:
        ballots.pop(voter, None)
    return ballots, outcome


def tally(
    poll: Mapping[str, Any], ballots: Mapping[str, Any]
) -> list[tuple[int, str, int, list[str]]]:
    """``(index, option, votes, voter names)`` per option, in the poll's order."""
    rows = []
    for index, option in enumerate(poll["options"]):
        names = sorted(
            b.get("name", "") for b in ballots.values() if index in b["choices"] and b.get("name")
        )
        count = sum(1 for b in ballots.values() if index in b["choices"])
        rows.append((index, option, count, names))
    return rows


def describe(poll: Mapping[str, Any], zone: ZoneInfo) -> str:
    """The sub-head: id, creator, mode and deadline."""
    parts = [f"Poll {poll['id']} by {_shorten(poll['creator']['name'])}"]
    parts.append(f"up to {poll['max']} choices" if poll["multi"] else "one choice")
    if poll["anonymous"]:
        parts.append("anonymous")
    if poll["hidden"] and not poll["closed"]:
        parts.append("results hidden until it closes")
    if poll["closes_at"] and not poll["closed"]:
        when = datetime.fromtimestamp(poll["closes_at"], zone)
        parts.append(f"closes {when:%Y-%m-%d %H:%M} {when.tzname()}")
    return " · ".join(parts)


def render(
    poll: Mapping[str, Any],
    ballots: Mapping[str, Any],
    zone: ZoneInfo,
    button: Callable[[str, str, str, ButtonStyle], Button],
) -> Card:
    """The poll card: the live tally and buttons while open, the sorted result once closed."""
    rows = tally(poll, ballots)
    voters = len(ballots)
    if poll["closed"]:
        total = sum(count for _, _, count, _ in rows) or 1
        lines = [
            Paragraph(
                f"{_bar(count, total)} {option}: {count} ({round(100 * count / total)}%)"
                + _voters(names)
            )
            for _, option, count, names in sorted(rows, key=lambda r: (-r[2], r[0]))
        ]
        return Card(
            head=f"{poll['question']} (closed)",
            sub_head=describe(poll, zone) + f" · {voters} voter{'s' if voters != 1 else ''}",
            body=lines,
        )
    hide = poll["hidden"]
    lines = [
        Paragraph(option if hide else f"{option}: {count}" + _voters(names))
        for _, option, count, names in rows
    ]
    buttons = tuple(
        button(option, "vote", f"{poll['id']}:{index}", ButtonStyle.DEFAULT)
        for index, option, _, _ in rows
    )
    close = button("Close poll", "close", poll["id"], ButtonStyle.DANGER)
    return Card(
        head=poll["question"],
        sub_head=describe(poll, zone) + ("" if hide else f" · {voters} voted"),
        body=[*lines, Actions(buttons), Actions((close,))],
    )


def summary(poll: Mapping[str, Any], ballots: Mapping[str, Any]) -> str:
    """A plain-text result, for ``poll results``."""
    rows = tally(poll, ballots)
    state = "closed" if poll["closed"] else "open"
    lines = [f"{poll['question']} ({poll['id']}, {state}, {len(ballots)} voters)"]
    for _, option, count, names in sorted(rows, key=lambda r: (-r[2], r[0])):
        lines.append(f"{option}: {count}" + _voters(names, limit=None))
    return "\n".join(lines)


def _voters(names: list[str], limit: int | None = SHOWN_NAMES) -> str:
    if not names:
        return ""
    names = [_shorten(n) for n in names]
    if limit is None or len(names) <= limit:
        return f" ({', '.join(names)})"
    return f" ({', '.join(names[:limit])} and {len(names) - limit} more)"


def _short_time(text: str) -> None:
    if len(text) > MAX_TIME_LENGTH:
        raise UsageError(
            f"{_shorten(text, 20)!r} is not a time: {len(text)} characters, "
            f"at most {MAX_TIME_LENGTH} are allowed"
        )


def _shorten(text: str, limit: int = MAX_NAME_LENGTH) -> str:
    """``text`` cut to ``limit`` characters, an ellipsis marking the cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _bar(count: int, total: int) -> str:
    filled = round(BAR_WIDTH * count / total)
    return "█" * filled + "░" * (BAR_WIDTH - filled)
