"""How people write lengths of time and times of day, parsed in one place.

Commands (``--closes-in 2h``, ``oncall override platform bob 1d12h``), config values
(``lock_reminder = "4h"``) and CLI options (``--since 7d``) all read durations the same way.
"""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta, tzinfo

__all__ = [
    "DurationError",
    "format_duration",
    "next_time_of_day",
    "parse_duration",
    "parse_time_of_day",
]

_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
_WHOLE = re.compile(r"(?:\s*\d+(?:\.\d+)?\s*[smhdw])+")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_CLOCK = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)")
#: Longer than anyone means: a typo (``99999999d``) is refused instead of overflowing.
LONGEST = timedelta(days=3660)


class DurationError(ValueError):
    """Text that is not a duration or a time of day; the message says what was expected.

    ``problem`` is the same without the text, for messages that quote it their own way
    (``invalid duration '5x': use a number and a unit...``).
    """

    def __init__(self, message: str, problem: str) -> None:
        super().__init__(message)
        self.problem = problem


def parse_duration(
    text: str, *, longest: timedelta = LONGEST, allow_zero: bool = False
) -> timedelta:
    """``90s``, ``30m``, ``4h``, ``1d``, ``2w``, ``1.5h``, or parts together (``1d12h``,
    ``1h 30m``: the parts add up). Anything over ``longest`` is refused, and zero unless
    ``allow_zero``."""
    compact = text.strip().lower()
    if not _WHOLE.fullmatch(compact):
        raise DurationError(
            f"expected a duration such as 30m, 4h, 1d or 1h30m, got {text!r}",
            "use a number and a unit (s, m, h, d or w), like 30m or 1h30m",
        )
    seconds = sum(float(p[1]) * _UNITS[p[2]] for p in _PART.finditer(compact))
    if seconds <= 0 and not allow_zero:
        raise DurationError(f"{text!r} is no time at all", "it must be longer than zero")
    # Compared as seconds: a timedelta of ten thousand years cannot even be made.
    if seconds > longest.total_seconds():
        most = format_duration(longest)
        raise DurationError(f"{text!r} is longer than {most}", f"at most {most}")
    return timedelta(seconds=seconds)


def parse_time_of_day(text: str) -> time:
    """``17:00`` or ``9:05`` (24-hour clock)."""
    match = _CLOCK.fullmatch(text.strip())
    if match is None:
        raise DurationError(
            f"expected a time of day such as 09:30 or 17:00, got {text!r}",
            "use HH:MM, like 17:00",
        )
    return time(int(match[1]), int(match[2]))


def next_time_of_day(clock: time, after: datetime, zone: tzinfo) -> datetime:
    """The first moment after ``after`` when the clock in ``zone`` shows ``clock``: today,
    or tomorrow if that time has passed (``--closes-at 17:00``, ``--until 09:00``)."""
    local = after.astimezone(zone)
    at = local.replace(hour=clock.hour, minute=clock.minute, second=0, microsecond=0)
    if at <= local:
        at = (at + timedelta(days=1)).replace(hour=clock.hour, minute=clock.minute)
    return at


def format_duration(span: timedelta) -> str:
    """The shortest exact spelling: ``1d 12h``, ``30m``, ``45s``."""
    seconds = int(span.total_seconds())
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return " ".join(parts) or "0s"
