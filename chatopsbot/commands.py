# ruff: noqa: RUF001, RUF002 - typographic quotes are what this module exists to handle
"""Commands: the tree of names, shell-style argument parsing, help text and "did you mean".

A command is declared once, with :func:`command`, and that declaration drives parsing,
validation, usage lines and help. Pure logic: no I/O, nothing Zoom-specific.
"""

from __future__ import annotations

import difflib
import re
import shlex
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeAlias

from attrs import field, frozen

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


def _tuple(items: Iterable[Any]) -> tuple[Any, ...]:
    return tuple(items)


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

    ``--dry-run`` is stored as ``dry_run``; ``short`` adds a one-letter form such as ``-n``.
    """

    name: str
    type: Callable[[str], Any] = str
    help: str = ""
    default: Any = None
    flag: bool = False
    metavar: str = ""
    choices: tuple[str, ...] = field(default=(), converter=_tuple)
    short: str = ""

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


class UsageError(Exception):
    """The words do not fit the command; ``str()`` is the exact problem, fit for the user."""

    def __init__(self, message: str, command: Command | None = None) -> None:
        super().__init__(message)
        self.command = command


class HelpRequested(Exception):
    """``--help`` was among the words."""

    def __init__(self, command: Command) -> None:
        super().__init__(command.name)
        self.command = command


class UnknownCommand(Exception):
    """No command starts with these words.

    ``suggestions`` holds up to three close command names; ``subcommands`` the commands under
    the words when they name a group (``deploy`` when only ``deploy status`` exists).
    """

    def __init__(
        self, text: str, suggestions: Sequence[str] = (), subcommands: Sequence[Command] = ()
    ) -> None:
        hint = (
            f" (did you mean {' or '.join(repr(s) for s in suggestions)}?)" if suggestions else ""
        )
        super().__init__(f"unknown command {text!r}{hint}")
        self.text = text
        self.suggestions = tuple(suggestions)
        self.subcommands = tuple(subcommands)


class CommandTree:
    """Every command the loaded plugins declared, found by its words."""

    def __init__(self, commands: Iterable[Command] = ()) -> None:
        self._commands: dict[tuple[str, ...], Command] = {}
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
        # No command is deeper than the deepest path: longer prefixes cannot match.
        depth = min(len(words), max((len(path) for path in self._commands), default=0))
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
        close = difflib.get_close_matches(typed, names, n=3, cutoff=0.6)
        if not close:
            # "deplyo" alone: compare first words, offer the commands under the closest.
            heads = sorted({c.path[0] for c in self})
            for head in difflib.get_close_matches(words[0].lower()[:100], heads, n=1, cutoff=0.6):
                close = [c.name for c in self.group([head])][:3]
        raise UnknownCommand(text if len(text) <= 60 else text[:57] + "...", close)

    def __iter__(self) -> Iterator[Command]:
        return iter(sorted(self._commands.values(), key=lambda c: c.path))

    def __len__(self) -> int:
        return len(self._commands)


# Phones turn straight quotes into typographic ones; shlex only knows the straight kind.
_DOUBLE_QUOTES = str.maketrans({c: '"' for c in "“”„‟«»"})
_SINGLE_PAIR = re.compile(r"(?<!\S)‘([^‘’]*)’(?!\S)")
_SPACES = str.maketrans({"\u00a0": " ", "\u202f": " ", "\u2007": " "})


def tokenize(text: str) -> list[str]:
    """Split ``text`` into words like a POSIX shell, accepting smart quotes.

    “double” and «guillemet» quotes act as ``"``; ‘single’ quotes act as ``'`` when they open
    and close around whole words; any other ’ (``don’t``) stays a literal apostrophe. An
    unmatched ``'`` between letters (``don't``) is an apostrophe too; any other unmatched quote
    is a :class:`UsageError`.
    """
    text = text.translate(_SPACES).translate(_DOUBLE_QUOTES)
    text = _SINGLE_PAIR.sub(lambda m: "'" + m.group(1).replace("'", "'\"'\"'") + "'", text)
    try:
        return _split(text)
    except ValueError:
        pass
    try:
        return _split(_APOSTROPHE.sub(r"\\'", text))
    except ValueError:
        raise UsageError("unterminated quote: every \" and ' needs its closing partner") from None


_APOSTROPHE = re.compile(r"(?<=\w)'(?=\w)")


def _split(text: str) -> list[str]:
    lexer = shlex.shlex(text, posix=True)
    lexer.whitespace_split = True
    lexer.commenters = ""
    return list(lexer)


_TYPE_NAMES: dict[Any, str] = {int: "an integer", float: "a number"}


def _convert(kind: Callable[[str], Any], name: str, value: str, choices: Sequence[str]) -> Any:
    if choices and value not in choices:
        raise UsageError(f"invalid {name} {value!r}: choose one of {', '.join(choices)}")
    try:
        return kind(value)
    except (TypeError, ValueError) as exc:
        expected = _TYPE_NAMES.get(kind) or (str(exc) or "invalid value")
        raise UsageError(f"invalid {name} {value!r}: expected {expected}") from None


def parse_args(command: Command, words: Sequence[str]) -> dict[str, Any]:
    """Parse ``words`` (what followed the command's name) into values by parameter name."""
    try:
        return _parse(command, words)
    except UsageError as exc:
        if exc.command is None:
            exc.command = command
        raise


def _parse(command: Command, words: Sequence[str]) -> dict[str, Any]:
    by_name = {opt.name: opt for opt in command.options}
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
        if options_done or not word.startswith("-") or word == "-" or _NUMBER.match(word):
            positional.append(word)
            continue
        if word == "--":
            options_done = True
            continue
        if word in ("--help", "-h"):
            raise HelpRequested(command)
        name, has_value, inline = word.lstrip("-").partition("=")
        opt = by_name.get(name) if word.startswith("--") else by_short.get(name)
        if opt is None:
            close = difflib.get_close_matches(name, list(by_name), n=1)
            hint = f" (did you mean --{close[0]}?)" if close else ""
            raise UsageError(f"unknown option {word.partition('=')[0]}{hint}")
        if opt.flag:
            if has_value:
                raise UsageError(f"--{opt.name} takes no value")
            values[opt.key] = True
            continue
        if has_value:
            raw = inline
        elif i < len(words):
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
