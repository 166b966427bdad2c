# ruff: noqa: RUF001, RUF002 - typographic quotes are what this module exists to handle
"""Commands: the tree of names, shell-style argument parsing, help text and "did you mean".

A command is declared once, with :func:`command`, and that declaration drives parsing,
validation, usage lines and help. Pure logic: no I/O, nothing Zoom-specific.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeAlias

from attrs import field, frozen

from chatopsbot.errors import UserError
from chatopsbot.suggest import close_matches

if TYPE_CHECKING:
    from chatopsbot.context import Context
    from chatopsbot.responses import HandlerResult

__all__ = [
    "Arg",
    "Command",
    "CommandTree",
    "Handler",
    "HelpRequested",
    "Option",
    "UnknownCommand",
    "UsageError",
    "command",
    "format_help",
    "format_overview",
    "format_usage",
    "parse_args",
    "tokenize",
]

Handler: TypeAlias = "Callable[[Context], Awaitable[HandlerResult]]"

_WORD = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_NUMBER = re.compile(r"^-\d+(\.\d+)?$")
# Phones turn "--" into a dash; before a letter it can only have meant an option.
_DASH_OPTION = re.compile(r"^[\u2013\u2014](?=[^\W\d_])")


def _tuple(items: Iterable[Any]) -> tuple[Any, ...]:
    return tuple(items)


def _letter(short: str) -> str:
    return short.lstrip("-")


@frozen
class Arg:
    """A positional argument. ``variadic`` collects the remaining words into a tuple."""

    name: str
    type: Callable[[str], Any] = str
    help: str = ""
    required: bool = True
    default: Any = None
    variadic: bool = False
    choices: tuple[str, ...] = field(default=(), converter=_tuple)


@frozen
class Option:
    """An ``--option value`` (or a ``--flag`` when ``flag=True``), stored under its name.

    ``metavar`` names the value in usage lines (default ``N`` for numbers, else the name).

    ``--dry-run`` is stored as ``dry_run`` (and may be typed ``--dry_run``); ``short`` adds a
    one-letter form, given as ``"n"`` or ``"-n"``.
    """

    name: str
    type: Callable[[str], Any] = str
    help: str = ""
    default: Any = None
    flag: bool = False
    metavar: str = ""
    choices: tuple[str, ...] = field(default=(), converter=_tuple)
    short: str = field(default="", converter=_letter)

    @property
    def key(self) -> str:
        """The name handlers read it under in ``ctx.args``."""
        return self.name.replace("-", "_")

    @property
    def spelling(self) -> str:
        """``--limit N`` or ``--force``."""
        if self.flag:
            return f"--{self.name}"
        metavar = self.metavar or (
            "N" if self.type in (int, float) else self.name.upper().replace("-", "_")
        )
        return f"--{self.name} {metavar}"


@frozen
class Command:
    """A command: its words (``("deploy", "status")``), handler, help and parameters."""

    path: tuple[str, ...] = field(converter=_tuple)
    handler: Handler
    help: str
    description: str = ""
    args: tuple[Arg, ...] = field(default=(), converter=_tuple)
    options: tuple[Option, ...] = field(default=(), converter=_tuple)
    examples: tuple[str, ...] = field(default=(), converter=_tuple)
    timeout: float | None = None
    admin_only: bool = False
    confirm: str | None = None
    plugin: str = ""

    def __attrs_post_init__(self) -> None:
        name = " ".join(self.path)
        if not self.path or not all(_WORD.match(w) for w in self.path):
            raise ValueError(f"command {name!r}: words must be lower-case letters, digits, - or _")
        seen_optional = False
        names: set[str] = set()
        for i, arg in enumerate(self.args):
            if arg.variadic and i != len(self.args) - 1:
                raise ValueError(f"command {name!r}: variadic <{arg.name}> must be last")
            if not arg.required:
                seen_optional = True
            elif seen_optional:
                raise ValueError(f"command {name!r}: required <{arg.name}> after an optional one")
            if arg.name in names:
                raise ValueError(f"command {name!r}: two parameters named {arg.name!r}")
            names.add(arg.name)
        for opt in self.options:
            if opt.name in ("help", "h") or opt.short == "h":
                raise ValueError(f"command {name!r}: --help is built in")
            if opt.key in names:
                raise ValueError(f"command {name!r}: two parameters named {opt.key!r}")
            names.add(opt.key)

    @property
    def name(self) -> str:
        """The words joined: ``deploy status``."""
        return " ".join(self.path)

    @property
    def usage(self) -> str:
        """``deploy history <service> [env] [--limit N]``."""
        parts = [self.name]
        for arg in self.args:
            label = f"{arg.name}..." if arg.variadic else arg.name
            parts.append(f"<{label}>" if arg.required else f"[{label}]")
        parts.extend(f"[{opt.spelling}]" for opt in self.options)
        return " ".join(parts)


def command(
    name: str,
    *,
    help: str,
    args: Sequence[Arg] = (),
    options: Sequence[Option] = (),
    description: str = "",
    examples: Sequence[str] = (),
    timeout: float | None = None,
    admin_only: bool = False,
    confirm: str | None = None,
) -> Callable[[Handler], Command]:
    """Declare a command; the decorated coroutine function becomes its handler.

    ``name`` may have several words (``"deploy status"``). ``timeout`` overrides
    ``[commands] timeout`` for this command. ``confirm`` makes it ask the caller first, with
    that question formatted with the arguments (``"Roll back {service}?"``); only the caller
    sees and may press Confirm, and the question expires after five minutes.
    """

    def decorate(handler: Handler) -> Command:
        return Command(
            path=tuple(name.split()),
            handler=handler,
            help=help,
            description=description,
            args=tuple(args),
            options=tuple(options),
            examples=tuple(examples),
            timeout=timeout,
            admin_only=admin_only,
            confirm=confirm,
        )

    return decorate


class UsageError(UserError):
    """The words do not fit the command; ``str()`` is the exact problem, fit for the user."""

    def __init__(self, message: str, command: Command | None = None) -> None:
        super().__init__(message)
        self.command = command


class HelpRequested(UserError):
    """``--help`` was among the words."""

    def __init__(self, command: Command) -> None:
        super().__init__(command.name)
        self.command = command


class UnknownCommand(UserError):
    """No command starts with these words.

    ``suggestions`` holds up to three close command names; ``subcommands`` the commands under
    the words when they name a group (``deploy`` when only ``deploy status`` exists).
    """

    def __init__(
        self,
        text: str,
        suggestions: Sequence[str] = (),
        subcommands: Sequence[Command] = (),
    ) -> None:
        hint = (
            f" (did you mean {' or '.join(repr(s) for s in suggestions)}?)" if suggestions else ""
        )
        super().__init__(f"unknown command {text!r}{hint}" if text else "no command given")
        self.text = text
        self.suggestions = tuple(suggestions)
        self.subcommands = tuple(subcommands)


class CommandTree:
    """Every command the loaded plugins declared, found by its words."""

    def __init__(self, commands: Iterable[Command] = ()) -> None:
        self._commands: dict[tuple[str, ...], Command] = {}
        # The most words any command has: longer prefixes of what was typed cannot match.
        self._depth = 0
        for cmd in commands:
            self.add(cmd)

    def add(self, command: Command) -> None:
        """Add ``command``; a name already taken raises ``ValueError`` naming both plugins."""
        existing = self._commands.get(command.path)
        if existing is not None:
            raise ValueError(
                f"command {command.name!r} from plugin {command.plugin or '?'!r} clashes with "
                f"the one from plugin {existing.plugin or '?'!r}"
            )
        self._commands[command.path] = command
        self._depth = max(self._depth, len(command.path))

    def narrow(self, exc: UnknownCommand, may_run: Callable[[Command], bool]) -> UnknownCommand:
        """``exc`` suggesting only the commands ``may_run`` admits: the others stay unseen."""
        suggested = [s for s in exc.suggestions if (c := self.find(s)) is not None and may_run(c)]
        return UnknownCommand(exc.text, suggested, [c for c in exc.subcommands if may_run(c)])

    def find(self, name: str) -> Command | None:
        """The command called exactly ``name``, if any."""
        return self._commands.get(tuple(name.lower().split()))

    def group(self, prefix: Sequence[str]) -> tuple[Command, ...]:
        """The commands whose words start with ``prefix``, sorted."""
        words = tuple(w.lower() for w in prefix)
        return tuple(c for c in self if c.path[: len(words)] == words)

    def resolve(self, words: Sequence[str]) -> tuple[Command, list[str]]:
        """The command the longest prefix of ``words`` names, and the words after it."""
        if not words:
            raise UnknownCommand("")
        depth = min(len(words), self._depth)
        lowered = [w.lower() for w in words[:depth]]
        for n in range(depth, 0, -1):
            found = self._commands.get(tuple(lowered[:n]))
            if found is not None:
                return found, list(words[n:])
        text = " ".join(words)
        for n in range(depth, 0, -1):
            under = self.group(lowered[:n])
            if under:
                raise UnknownCommand(" ".join(words[:n]), subcommands=under)
        names = [c.name for c in self]
        typed = " ".join(lowered)[:200]
        close = close_matches(typed, names, n=3, cutoff=0.6)
        if not close:
            # "deplyo" alone: compare first words, offer the commands under the closest.
            heads = sorted({c.path[0] for c in self})
            for head in close_matches(words[0].lower()[:100], heads, n=1, cutoff=0.6):
                close = [c.name for c in self.group([head])][:3]
        raise UnknownCommand(text if len(text) <= 60 else text[:57] + "...", close)

    def __iter__(self) -> Iterator[Command]:
        return iter(sorted(self._commands.values(), key=lambda c: c.path))

    def __len__(self) -> int:
        return len(self._commands)


# Phones turn straight quotes into typographic ones; shlex only knows the straight kind.
_DOUBLE_QUOTES = str.maketrans({c: '"' for c in "“”„‟«»"})
_SPACES = " \t\r\n\u00a0\u202f\u2007"
#: Characters that make a word more than itself: quotes (plain and smart) and the backslash.
_QUOTING = frozenset("\"'\\‘’“”„‟«»")
_UNQUOTED_WORD = re.compile(f"[^{_SPACES}]+")


def tokenize(text: str) -> list[str]:
    """Split ``text`` into words like a POSIX shell, accepting smart quotes.

    “double” and «guillemet» quotes act as ``"``. ‘single’ quotes act as ``'`` when the ‘ opens
    a word and a later ’ closes one (so ‘don’t stop’ is one word); any other ’ stays a literal
    apostrophe, so ``don’t`` is the word ``don’t``, curly apostrophe kept. Outside quotes a
    plain ``'`` right after a letter, digit or ``_`` is an apostrophe too (``don't stop`` is
    ``["don't", "stop"]``, ``ops' bot`` is ``["ops'", "bot"]``); shell-style ``foo'bar baz'``
    concatenation is therefore not supported.
    Non-breaking spaces separate words, ``#`` starts no comment and a trailing ``\\`` is
    literal. Any other unmatched quote is a :class:`UsageError` ("unterminated quote: ...").
    """
    if _QUOTING.isdisjoint(text):
        # Most commands quote nothing: plain words need no lexer (a tenth of the dispatch
        # cost of a short command went to shlex).
        return _UNQUOTED_WORD.findall(text)
    return _lex(text)


def _lex(text: str) -> list[str]:
    text = _pair_single_quotes(text.translate(_DOUBLE_QUOTES))
    lexer = shlex.shlex(_escape_apostrophes(text), posix=True, punctuation_chars=False)
    lexer.whitespace = _SPACES
    lexer.whitespace_split = True
    lexer.commenters = ""
    return list(lexer)


def _pair_single_quotes(text: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(text):
        opens = text[i] == "‘" and (i == 0 or text[i - 1] in _SPACES or text[i - 1] == "=")
        end = _closing_single(text, i + 1) if opens else None
        if end is None:
            out.append(text[i])
            i += 1
            continue
        # Nothing escapes inside POSIX single quotes: a plain ' must close, be escaped, reopen.
        out.append("'" + text[i + 1 : end].replace("'", "'\\''") + "'")
        i = end + 1
    return "".join(out)


def _closing_single(text: str, start: int) -> int | None:
    for i in range(start, len(text)):
        if text[i] == "’" and (i + 1 == len(text) or text[i + 1] in _SPACES):
            return i
    return None


def _is_word_char(char: str) -> bool:
    return char.isalnum() or char == "_"


def _escape_apostrophes(text: str) -> str:
    # Follows shlex's quoting states so that only apostrophes outside quotes are escaped (a
    # retry after a failed split would glue "don't ... can't" into one word), and so that an
    # unterminated quote can be reported with where it starts.
    out: list[str] = []
    quote, opened, i = "", 0, 0
    while i < len(text):
        char = text[i]
        if char == "\\" and quote != "'":
            # shlex rejects a trailing backslash; outside quotes it is kept as a literal one.
            out.append(text[i : i + 2] if i + 1 < len(text) or quote else "\\\\")
            i += 2
            continue
        if quote:
            quote = "" if char == quote else quote
        elif char == "'" and i > 0 and _is_word_char(text[i - 1]):
            out.append("\\'")
            i += 1
            continue
        elif char in "'\"":
            quote, opened = char, i
        out.append(char)
        i += 1
    if quote:
        rest = text[opened:]
        raise UsageError(f"unterminated quote: {rest if len(rest) <= 40 else rest[:37] + '...'}")
    return "".join(out)


_TYPE_NAMES: dict[Any, str] = {int: "expected an integer", float: "expected a number"}


def _convert(kind: Callable[[str], Any], name: str, value: str, choices: Sequence[str]) -> Any:
    if choices and value not in choices:
        raise UsageError(f"invalid {name} {value!r}: choose one of {', '.join(choices)}")
    try:
        return kind(value)
    except (TypeError, ValueError) as exc:
        # A custom converter's own message is the best explanation there is.
        reason = _TYPE_NAMES.get(kind) or str(exc) or "invalid value"
        raise UsageError(f"invalid {name} {value!r}: {reason}") from None


def parse_args(command: Command, words: Sequence[str]) -> dict[str, Any]:
    """Parse ``words`` (what followed the command's name) into values by parameter name."""
    try:
        return _parse(command, words)
    except UsageError as exc:
        if exc.command is None:
            exc.command = command
        raise


def _is_option(word: str) -> bool:
    return word.startswith("-") and word != "-" and not _NUMBER.match(word)


def _parse(command: Command, words: Sequence[str]) -> dict[str, Any]:
    words = [_DASH_OPTION.sub("--", word) for word in words]
    # Asking for help wins over any mistake elsewhere in the same words.
    options_end = words.index("--") if "--" in words else len(words)
    if any(word in ("--help", "-h") for word in words[:options_end]):
        raise HelpRequested(command)
    by_name = {opt.name.replace("_", "-"): opt for opt in command.options}
    by_short = {opt.short: opt for opt in command.options if opt.short}
    values: dict[str, Any] = {
        opt.key: (False if opt.flag else opt.default) for opt in command.options
    }
    positional: list[str] = []
    i = 0
    options_done = False
    while i < len(words):
        word = words[i]
        i += 1
        if options_done or not _is_option(word):
            positional.append(word)
            continue
        if word == "--":
            options_done = True
            continue
        name, has_value, inline = word.lstrip("-").partition("=")
        if word.startswith("--"):
            name = name.replace("_", "-")
        opt = by_name.get(name) if word.startswith("--") else by_short.get(name)
        if opt is None:
            close = close_matches(name, list(by_name), n=1)
            hint = f" (did you mean --{close[0]}?)" if close else ""
            raise UsageError(f"unknown option {word.partition('=')[0]}{hint}")
        if opt.flag:
            if has_value:
                raise UsageError(f"--{opt.name} takes no value")
            values[opt.key] = True
            continue
        if has_value:
            raw = inline
        elif i < len(words) and not _is_option(words[i]):
            raw = words[i]
            i += 1
        else:
            raise UsageError(f"option --{opt.name} needs a value")
        values[opt.key] = _convert(opt.type, opt.name, raw, opt.choices)

    for arg in command.args:
        if arg.variadic:
            taken, positional = positional, []
            if not taken and arg.required:
                raise UsageError(f"missing <{arg.name}>")
            values[arg.name] = tuple(_convert(arg.type, arg.name, w, arg.choices) for w in taken)
        elif positional:
            values[arg.name] = _convert(arg.type, arg.name, positional.pop(0), arg.choices)
        elif arg.required:
            raise UsageError(f"missing <{arg.name}>")
        else:
            values[arg.name] = arg.default
    if positional:
        raise UsageError(f"unexpected argument {positional[0]!r}")
    return values


def format_usage(command: Command) -> str:
    """``Usage: deploy history <service> [env] [--limit N]``."""
    return f"Usage: {command.usage}"


def format_help(command: Command) -> str:
    """Everything about one command: what it does, usage, arguments, options, examples."""
    lines = [f"{command.name} — {command.help}"]
    if command.description:
        lines += ["", command.description]
    lines += ["", format_usage(command)]
    if command.args:
        lines += ["", "Arguments:"]
        for arg in command.args:
            extra = _extras(arg.choices, None if arg.required else arg.default)
            lines.append(_help_line(arg.name, arg.help, extra))
    if command.options:
        lines += ["", "Options:"]
        for opt in command.options:
            spelled = f"-{opt.short}, {opt.spelling}" if opt.short else opt.spelling
            extra = _extras(opt.choices, None if opt.flag else opt.default)
            lines.append(_help_line(spelled, opt.help, extra))
    if command.examples:
        lines += ["", "Examples:", *(f"  {example}" for example in command.examples)]
    return "\n".join(lines)


def _extras(choices: Sequence[str], default: Any) -> str:
    parts = []
    if choices:
        parts.append(f"one of {', '.join(choices)}")
    if default not in (None, ""):
        parts.append(f"default {default}")
    return f"({'; '.join(parts)})" if parts else ""


def _help_line(name: str, text: str, extra: str) -> str:
    return "  " + "  ".join(part for part in (name, " ".join(filter(None, (text, extra)))) if part)


def format_overview(commands: Iterable[Command]) -> str:
    """One line per command, sorted: ``deploy status — Show what runs where``."""
    return "\n".join(f"{c.name} — {c.help}" for c in sorted(commands, key=lambda c: c.path))
