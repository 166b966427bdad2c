"""The built-in ``core`` plugin: ``help`` and ``ping``.

Written against the public API only, like any third-party plugin.
"""

from __future__ import annotations

from collections.abc import Iterable

from chatopsbot import (
    Arg,
    Command,
    Context,
    Text,
    UnknownCommand,
    UsageError,
    command,
    format_help,
    format_overview,
    hookimpl,
)

__all__ = ["chatops_commands", "help_command", "ping"]


@command(
    "help",
    help="List the commands, or show how to use one",
    args=(
        Arg("command", help="a command name, e.g. deploy status", required=False, variadic=True),
    ),
    examples=("help", "help ping"),
)
async def help_command(ctx: Context) -> Text:
    """Only the caller sees help, so asking for it never clutters a channel."""
    words: tuple[str, ...] = ctx.args["command"] or ()
    if not words:
        overview = format_overview(c for c in ctx.commands if ctx.may_run(c))
        return Text(f"Commands:\n{overview}\nType help <command> for details.", private=True)
    try:
        found, rest = ctx.commands.resolve(words)
    except UnknownCommand as exc:
        allowed = [c for c in exc.subcommands if ctx.may_run(c)]
        if allowed:
            return Text(format_overview(allowed), private=True)
        raise UsageError(str(exc), ctx.command) from None
    if rest:
        raise UsageError(f"{found.name!r} has no subcommand {' '.join(rest)!r}", ctx.command)
    return Text(format_help(found), private=True)


@command("ping", help="Check that the bot is alive: it answers pong")
async def ping(ctx: Context) -> Text:
    """Answer in the conversation, so everyone can see the bot is up."""
    return Text("pong")


@hookimpl
def chatops_commands() -> Iterable[Command]:
    """The core commands."""
    return [help_command, ping]
