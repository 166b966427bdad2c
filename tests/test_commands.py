"""Command declaration, the tree, tokenizing (smart quotes), argument parsing and help text."""

from __future__ import annotations

from typing import Any

import pytest

from chatopsbot.commands import (
    Arg,
    Command,
    CommandTree,
    HelpRequested,
    Option,
    UnknownCommand,
    UsageError,
    command,
    format_help,
    format_overview,
    format_usage,
    parse_args,
    tokenize,
)


async def handler(ctx: Any) -> None:
    return None


history = command(
    "deploy history",
    help="Past deploys",
    description="Newest first.",
    args=(Arg("service", help="the service"), Arg("env", required=False, choices=("dev", "prod"))),
    options=(
        Option("limit", type=int, default=10, help="how many"),
        Option("force", flag=True, help="no questions"),
        Option("dry-run", flag=True),
        Option("ratio", type=float, short="r"),
    ),
    examples=("deploy history api prod --limit 5",),
)(handler)
lock = command("deploy lock", help="Lock", args=(Arg("reason", variadic=True),))(handler)
status = command("deploy status", help="Status", args=(Arg("service", required=False),))(handler)
ping = command("ping", help="Pong")(handler)


def tree() -> CommandTree:
    return CommandTree([history, lock, status, ping])


# Tokenizing.


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("deploy status api", ["deploy", "status", "api"]),
        ('poll "Lunch?" Pizza', ["poll", "Lunch?", "Pizza"]),
        ("poll “Lunch today?” Pizza", ["poll", "Lunch today?", "Pizza"]),
        ("poll „Mittag?” «Pizza Hut»", ["poll", "Mittag?", "Pizza Hut"]),
        ("echo ‘a b’ c", ["echo", "a b", "c"]),
        ("lock api don’t deploy", ["lock", "api", "don’t", "deploy"]),
        ("lock api don't deploy", ["lock", "api", "don't", "deploy"]),
        ("echo 'it''s'", ["echo", "its"]),
        ("a\u00a0b\u202fc", ["a", "b", "c"]),
        ("echo a\\ b", ["echo", "a b"]),
        ("echo #notacomment", ["echo", "#notacomment"]),
        ("   ", []),
    ],
)
def test_tokenize(text, words):
    assert tokenize(text) == words


@pytest.mark.parametrize("text", ['poll "Lunch? Pizza', "poll “Lunch? Pizza", "echo 'oops"])
def test_unterminated_quotes_are_usage_errors(text):
    with pytest.raises(UsageError, match=r"^unterminated quote"):
        tokenize(text)


# The tree.


def test_resolve_takes_the_longest_prefix_case_insensitively():
    cmd, rest = tree().resolve(["Deploy", "STATUS", "Api"])
    assert cmd is status
    assert rest == ["Api"]


def test_unknown_command_suggests_close_names():
    with pytest.raises(UnknownCommand) as info:
        tree().resolve(["pnig"])
    assert info.value.suggestions == ("ping",)
    assert str(info.value) == "unknown command 'pnig' (did you mean 'ping'?)"


def test_a_typo_in_the_first_word_suggests_that_group():
    with pytest.raises(UnknownCommand) as info:
        tree().resolve(["deplyo", "status"])
    assert info.value.suggestions == ("deploy status",)
    with pytest.raises(UnknownCommand) as info:
        tree().resolve(["deplyo"])
    assert set(info.value.suggestions) <= {"deploy history", "deploy lock", "deploy status"}
    assert info.value.suggestions


def test_a_group_name_lists_its_commands():
    with pytest.raises(UnknownCommand) as info:
        tree().resolve(["deploy"])
    assert [c.name for c in info.value.subcommands] == [
        "deploy history",
        "deploy lock",
        "deploy status",
    ]


def test_nothing_close_gives_no_suggestion():
    with pytest.raises(UnknownCommand) as info:
        tree().resolve(["xyzzy"])
    assert info.value.suggestions == ()
    assert str(info.value) == "unknown command 'xyzzy'"


def test_tree_iterates_sorted_and_finds_by_name():
    assert [c.name for c in tree()] == [
        "deploy history",
        "deploy lock",
        "deploy status",
        "ping",
    ]
    assert len(tree()) == 4
    assert tree().find("Deploy  Lock") is lock
    assert tree().find("deploy") is None


def test_a_name_clash_names_both_plugins():
    import attrs

    t = CommandTree([attrs.evolve(ping, plugin="a")])
    with pytest.raises(ValueError) as info:
        t.add(attrs.evolve(ping, plugin="b"))
    assert str(info.value) == "command 'ping' from plugin 'b' clashes with the one from plugin 'a'"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"path": ("Deploy",)}, "words must be lower-case"),
        ({"path": ()}, "words must be lower-case"),
        ({"args": (Arg("a", variadic=True), Arg("b"))}, "variadic <a> must be last"),
        ({"args": (Arg("a", required=False), Arg("b"))}, "required <b> after an optional one"),
        ({"args": (Arg("a"),), "options": (Option("a"),)}, "two parameters named 'a'"),
        ({"options": (Option("help"),)}, "--help is built in"),
    ],
)
def test_bad_declarations_are_refused(kwargs, message):
    fields: dict[str, Any] = {"path": ("x",), "handler": handler, "help": "h", **kwargs}
    with pytest.raises(ValueError, match=message):
        Command(**fields)


# Parsing.


def test_positional_options_flags_and_defaults():
    args = parse_args(history, ["api", "--limit", "5", "--force", "prod"])
    assert args == {
        "service": "api",
        "env": "prod",
        "limit": 5,
        "force": True,
        "dry_run": False,
        "ratio": None,
    }


def test_equals_form_short_options_and_dashed_names():
    args = parse_args(history, ["api", "--limit=3", "-r", "0.5", "--dry-run"])
    assert (args["limit"], args["ratio"], args["dry_run"], args["env"]) == (3, 0.5, True, None)


def test_double_dash_ends_options_and_negative_numbers_are_values():
    t = command("calc", help="c", args=(Arg("a", type=int), Arg("b", required=False)))(handler)
    assert parse_args(t, ["-5", "--", "--limit"]) == {"a": -5, "b": "--limit"}


def test_variadic_collects_the_rest():
    assert parse_args(lock, ["db", "is", "migrating"]) == {"reason": ("db", "is", "migrating")}


@pytest.mark.parametrize(
    ("words", "message"),
    [
        ([], "missing <service>"),
        (["api", "prod", "extra"], "unexpected argument 'extra'"),
        (["api", "--lmit", "3"], "unknown option --lmit (did you mean --limit?)"),
        (["api", "--zzz"], "unknown option --zzz"),
        (["api", "--limit"], "option --limit needs a value"),
        (["api", "--limit", "abc"], "invalid limit 'abc': expected an integer"),
        (["api", "--ratio", "x"], "invalid ratio 'x': expected a number"),
        (["api", "--force=yes"], "--force takes no value"),
        (["api", "prd"], "invalid env 'prd': choose one of dev, prod"),
    ],
)
def test_precise_usage_errors(words, message):
    with pytest.raises(UsageError) as info:
        parse_args(history, words)
    assert str(info.value) == message
    assert info.value.command is history


def test_a_required_variadic_needs_one_word():
    with pytest.raises(UsageError, match=r"^missing <reason>$"):
        parse_args(lock, [])


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_anywhere_asks_for_help(flag):
    with pytest.raises(HelpRequested) as info:
        parse_args(history, ["api", flag, "--limit", "nope"])
    assert info.value.command is history


# Help text.


def test_usage_line():
    assert format_usage(history) == (
        "Usage: deploy history <service> [env] [--limit N] [--force] [--dry-run] [--ratio N]"
    )
    assert lock.usage == "deploy lock <reason...>"
    assert status.usage == "deploy status [service]"


def test_help_shows_everything_declared():
    assert format_help(history) == "\n".join(
        [
            "deploy history — Past deploys",
            "",
            "Newest first.",
            "",
            "Usage: deploy history <service> [env] [--limit N] [--force] [--dry-run] [--ratio N]",
            "",
            "Arguments:",
            "  service  the service",
            "  env  (one of dev, prod)",
            "",
            "Options:",
            "  --limit N  how many (default 10)",
            "  --force  no questions",
            "  --dry-run",
            "  -r, --ratio N",
            "",
            "Examples:",
            "  deploy history api prod --limit 5",
        ]
    )


def test_overview_has_one_line_per_command():
    assert format_overview(tree()) == "\n".join(
        [
            "deploy history — Past deploys",
            "deploy lock — Lock",
            "deploy status — Status",
            "ping — Pong",
        ]
    )


def test_resolving_many_words_looks_only_as_deep_as_the_deepest_command():
    # 50,000 words once took a minute (a prefix tuple per length); the suite's timeout guards.
    words = ["deploy", "status", *["x"] * 50_000]
    cmd, rest = tree().resolve(words)
    assert cmd is status
    assert len(rest) == 50_000
    with pytest.raises(UnknownCommand) as info:
        tree().resolve(["nope"] * 50_000)
    assert info.value.suggestions == ()


# Phone typing and shell edge cases.


@pytest.mark.parametrize(
    ("text", "words"),
    [
        # Two apostrophes must not pair up into a quote that glues the words between them.
        ("note I don't know, can't say", ["note", "I", "don't", "know,", "can't", "say"]),
        ("echo ‘don’t stop’ now", ["echo", "don’t stop", "now"]),
        ("echo ‘it's here’", ["echo", "it's here"]),
        ("echo --msg=‘a b’", ["echo", "--msg=a b"]),
        ("thank the ops' bot", ["thank", "the", "ops'", "bot"]),
        ('echo "don\'t" x', ["echo", "don't", "x"]),
        ("echo “a\u00a0b” c", ["echo", "a\u00a0b", "c"]),
        ("dir C:\\", ["dir", "C:\\"]),
        ("echo ‘90s", ["echo", "‘90s"]),
    ],
)
def test_tokenize_forgives_phone_typing(text, words):
    assert tokenize(text) == words


def test_an_unterminated_quote_shows_where_it_starts():
    with pytest.raises(UsageError) as info:
        tokenize("poll “Lunch? Pizza")
    assert str(info.value) == 'unterminated quote: "Lunch? Pizza'
    assert info.value.command is None


def test_no_words_is_no_command():
    with pytest.raises(UnknownCommand) as info:
        tree().resolve([])
    assert info.value.text == ""
    assert str(info.value) == "no command given"


def test_options_accept_underscores_phone_dashes_and_dashed_short_letters():
    cmd = command("x", help="h", options=(Option("dry-run", flag=True), Option("n", short="-c")))(
        handler
    )
    assert parse_args(cmd, ["--dry_run", "-c", "3"]) == {"dry_run": True, "n": "3"}
    assert parse_args(cmd, ["\u2014dry-run"]) == {"dry_run": True, "n": None}


def test_an_option_is_not_taken_as_another_options_value():
    with pytest.raises(UsageError) as info:
        parse_args(history, ["api", "--limit", "--force"])
    assert str(info.value) == "option --limit needs a value"


def test_help_wins_over_other_mistakes_but_not_after_double_dash():
    with pytest.raises(HelpRequested):
        parse_args(history, ["--lmit", "3", "-h"])
    with pytest.raises(UsageError, match=r"^unexpected argument '--help'$"):
        parse_args(history, ["api", "prod", "--", "--help"])


def test_negative_numbers_are_values_for_options_too():
    assert parse_args(history, ["api", "-r", "-0.5"])["ratio"] == -0.5


def test_optional_variadic_is_empty_and_choices_apply_to_each_word():
    cmd = command("x", help="h", args=(Arg("k", variadic=True, required=False, choices=("a",)),))(
        handler
    )
    assert parse_args(cmd, []) == {"k": ()}
    assert parse_args(cmd, ["a", "a"]) == {"k": ("a", "a")}
    with pytest.raises(UsageError, match=r"^invalid k 'b': choose one of a$"):
        parse_args(cmd, ["a", "b"])


def _port(text: str) -> int:
    if not text.isdigit():
        raise ValueError("a port is a number")
    return int(text)


def _silent(text: str) -> int:
    raise ValueError


def test_custom_converters_explain_themselves():
    cmd = command("x", help="h", args=(Arg("port", type=_port), Arg("q", type=_silent)))(handler)
    with pytest.raises(UsageError) as info:
        parse_args(cmd, ["http", "1"])
    assert str(info.value) == "invalid port 'http': a port is a number"
    with pytest.raises(UsageError) as info:
        parse_args(cmd, ["80", "1"])
    assert str(info.value) == "invalid q '1': invalid value"


def test_a_command_can_also_be_a_group():
    deploy = command("deploy", help="Deploy", args=(Arg("service", required=False),))(handler)
    t = CommandTree([deploy, status])
    assert t.resolve(["deploy", "status"]) == (status, [])
    assert t.resolve(["deploy", "api"]) == (deploy, ["api"])
    assert t.group(["deploy"]) == (deploy, status)
