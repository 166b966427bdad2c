"""Properties of command parsing, checked by Hypothesis: ``tokenize`` reads back what a shell
would write, and ``parse_args`` does not care where options stand."""

from __future__ import annotations

import shlex
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from chatopsbot import Arg, Command, Context, Option
from chatopsbot.commands import _lex, parse_args, tokenize

#: Smart quotes: tokenize gives them a meaning of their own beyond POSIX, tested apart.
_SPECIAL = "“”„‟«»‘’"
SPACES = " \t\r\n\u00a0\u202f\u2007"

words = st.text(st.characters(blacklist_characters=_SPECIAL, blacklist_categories=["Cs"]))
plain = st.text(
    st.characters(
        # Unquoted words: no quote, backslash or space of any kind.
        blacklist_characters=_SPECIAL + SPACES + "'\"\\",
        blacklist_categories=["Cs", "Zs", "Cc"],
    ),
    min_size=1,
)


@given(st.lists(words, max_size=8))
def test_tokenize_reads_back_shell_quoted_words(items: list[str]) -> None:
    """Whatever the words (spaces, quotes, backslashes, #, empty ones), quoting them as a shell
    would and tokenizing gives them back."""
    assert tokenize(shlex.join(items)) == items


@given(st.lists(plain, max_size=8), st.data())
def test_any_run_of_spaces_separates_words(items: list[str], data: st.DataObject) -> None:
    gaps = [data.draw(st.text(st.sampled_from(SPACES), min_size=1)) for _ in items]
    text = "".join(gap + item for gap, item in zip(gaps, items, strict=True))
    assert tokenize(text) == items


@given(st.lists(plain, min_size=1, max_size=4))
def test_smart_double_quotes_act_as_plain_ones(items: list[str]) -> None:
    phrase = " ".join(items)
    for opening, closing in (("“", "”"), ("«", "»"), ("„", "“")):
        assert tokenize(f"say {opening}{phrase}{closing} now") == ["say", phrase, "now"]


async def _handler(ctx: Context) -> None:
    return None


HISTORY = Command(
    ("deploy", "history"),
    _handler,
    "history",
    args=(Arg("service"), Arg("env", required=False)),
    options=(
        Option("limit", type=int, default=10),
        Option("force", flag=True),
        Option("reason", short="r"),
    ),
)

values = st.text(st.characters(whitelist_categories=("L", "N")), min_size=1, max_size=10)


@given(
    values,
    st.none() | values,
    st.none() | st.integers(-1000, 1000),
    st.booleans(),
    st.none() | values,
    st.randoms(use_true_random=False),
)
def test_options_may_stand_anywhere(
    service: str,
    env: str | None,
    limit: int | None,
    force: bool,
    reason: str | None,
    rnd: Any,
) -> None:
    """The same options, spelled in any of their ways and put anywhere among the positional
    arguments, parse to the same values."""
    groups: list[list[str]] = []
    if limit is not None:
        groups.append(rnd.choice([["--limit", str(limit)], [f"--limit={limit}"]]))
    if force:
        groups.append(["--force"])
    if reason is not None:
        groups.append(rnd.choice([["--reason", reason], ["-r", reason], [f"--reason={reason}"]]))
    positional = [service] + ([env] if env is not None else [])
    slots: list[list[str]] = [[word] for word in positional]
    for group in groups:
        slots.insert(rnd.randint(0, len(slots)), group)
    line = [word for slot in slots for word in slot]
    assert parse_args(HISTORY, line) == {
        "service": service,
        "env": env,
        "limit": 10 if limit is None else limit,
        "force": force,
        "reason": reason,
    }
    # And through the tokenizer, as typed.
    assert parse_args(HISTORY, tokenize(shlex.join(line))) == parse_args(HISTORY, line)


@given(
    st.text(
        st.characters(
            blacklist_characters=_SPECIAL + "'\"\\",
            blacklist_categories=["Cs"],
        )
    )
)
def test_text_without_quotes_splits_as_the_lexer_splits_it(text: str) -> None:
    """The shortcut for text that quotes nothing gives what the full lexer gives."""
    assert tokenize(text) == _lex(text)
