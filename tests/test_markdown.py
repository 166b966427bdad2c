"""chatopsbot.markdown: user text made literal in Zoom's markdown, and text cut to Zoom's size."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chatopsbot import escape_markdown
from chatopsbot.markdown import CONTINUED, MAX_TEXT, TRUNCATED, split_text, truncate

#: Everything Zoom's markdown acts on (see the module docstring): none may survive escaping.
MARKUP = re.compile(r"[*_~`<>\[\]@#]")


@pytest.mark.parametrize(
    "attack",
    [
        "*bold* and **bolder**",
        "_italic_ ~strike~ `code`",
        "<https://evil.example.com|click here>",
        "[click](https://evil.example.com)",
        "@all <!all> @here",
        "# heading",
    ],
)
def test_escaped_text_carries_no_markup(attack):
    escaped = escape_markdown(attack)
    assert not MARKUP.search(escaped)
    assert len(escaped) == len(attack)


def test_plain_text_is_unchanged():
    assert escape_markdown("Pizza, sushi & 3 salads (vegan!)") == "Pizza, sushi & 3 salads (vegan!)"


@given(st.text())
def test_no_text_keeps_markup_after_escaping(text):
    assert not MARKUP.search(escape_markdown(text))


def test_truncate_keeps_short_text_and_marks_a_cut():
    assert truncate("short", 10) == "short"
    cut = truncate("a" * 50, 20)
    assert len(cut) == 20
    assert cut.endswith(TRUNCATED)


def test_split_prefers_line_ends_then_spaces():
    assert split_text("aaaa\nbbbb\ncccc dd\neeee", 20) == [
        "aaaa\nbbbb\ncccc dd",
        CONTINUED + "eeee",
    ]
    assert split_text("one two three four five", 20) == ["one two three four", CONTINUED + "five"]


def test_split_needs_room_for_the_continuation_marker():
    with pytest.raises(ValueError, match="limit"):
        split_text("text", len(CONTINUED))


def test_split_cuts_a_word_longer_than_the_limit():
    parts = split_text("x" * 45, 20)
    assert [len(p) for p in parts] == [20, 20, 20, 20, len(CONTINUED) + 1]
    assert "".join(p.removeprefix(CONTINUED) for p in parts) == "x" * 45


@given(st.text(min_size=0, max_size=3 * MAX_TEXT))
def test_split_parts_fit_and_lose_no_visible_text(text):
    parts = split_text(text)
    assert all(len(p) <= MAX_TEXT for p in parts)
    joined = "".join(p.removeprefix(CONTINUED) for p in parts)
    assert "".join(joined.split()) == "".join(text.split())
