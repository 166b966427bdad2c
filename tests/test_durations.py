"""One parser for durations and times of day: examples, errors and properties."""

from __future__ import annotations

from datetime import time, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chatopsbot.durations import (
    LONGEST,
    DurationError,
    format_duration,
    parse_duration,
    parse_time_of_day,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("30m", timedelta(minutes=30)),
        ("4H", timedelta(hours=4)),
        ("1d", timedelta(days=1)),
        ("2w", timedelta(weeks=2)),
        ("1.5h", timedelta(minutes=90)),
        ("1d12h", timedelta(hours=36)),
        (" 1h 30m ", timedelta(minutes=90)),
        ("1h1h", timedelta(hours=2)),
    ],
)
def test_durations(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("", "expected a duration such as 30m, 4h, 1d or 1h30m, got ''"),
        ("4", "expected a duration"),
        ("4 hours", "expected a duration"),
        ("-1h", "expected a duration"),
        ("0m", "is no time at all"),
        ("99999999d", "is longer than"),
    ],
)
def test_bad_durations_say_what_was_expected(text, error):
    with pytest.raises(DurationError, match=error):
        parse_duration(text)


def test_times_of_day():
    assert parse_time_of_day("17:00") == time(17, 0)
    assert parse_time_of_day("9:05") == time(9, 5)
    for bad in ("24:00", "17", "5pm", "17:60"):
        with pytest.raises(DurationError, match="expected a time of day"):
            parse_time_of_day(bad)


@given(st.integers(min_value=1, max_value=int(LONGEST.total_seconds())))
def test_formatting_then_parsing_gives_the_same_span(seconds):
    span = timedelta(seconds=seconds)
    assert parse_duration(format_duration(span)) == span


@given(
    st.lists(
        st.tuples(st.sampled_from("smhdw"), st.integers(min_value=0, max_value=50)),
        min_size=1,
        max_size=5,
    )
)
def test_parts_add_up_in_any_order(parts):
    text = "".join(f"{count}{unit}" for unit, count in parts)
    seconds = sum(
        count * {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[u] for u, count in parts
    )
    if seconds == 0:
        with pytest.raises(DurationError):
            parse_duration(text)
    else:
        assert parse_duration(text) == timedelta(seconds=seconds)


def test_the_next_time_of_day_is_today_or_tomorrow_in_the_zone():
    from datetime import UTC, datetime
    from zoneinfo import ZoneInfo

    from chatopsbot.durations import next_time_of_day

    paris = ZoneInfo("Europe/Paris")
    now = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)  # 16:00 in Paris
    assert next_time_of_day(time(17, 0), now, paris) == datetime(2026, 11, 25, 17, 0, tzinfo=paris)
    assert next_time_of_day(time(16, 0), now, paris) == datetime(2026, 11, 26, 16, 0, tzinfo=paris)
