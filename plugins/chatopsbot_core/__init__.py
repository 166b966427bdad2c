"""The built-in ``core`` plugin: ``help``, ``ping`` and ``whoami``.

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

__all__ = ["chatops_commands", "help_command", "ping", "whoami"]


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
    if not ctx.may_run(found):
        # Told exactly what an unknown command gets: what you may not run stays unseen.
        raise UsageError(str(UnknownCommand(" ".join(words))), ctx.command)
    if rest:
        raise UsageError(f"{found.name!r} has no subcommand {' '.join(rest)!r}", ctx.command)
    return Text(format_help(found), private=True)


@command("whoami", help="Your Zoom ids and this conversation's, for writing access rules")
async def whoami(ctx: Context) -> Text:
    """Rules match ids and JIDs, never names: this is where an operator gets them."""
    you, here = ctx.caller, ctx.conversation
    kind = "channel" if "@conference." in here.jid else "1:1 chat"
    lines = [
        f"You: {you.name or '(no name)'}",
        f"  user id: {you.id}",
        f"  JID: {you.jid}",
        f"  bot admin: {'yes' if ctx.caller_is_admin else 'no'}",
        f"This {kind}: {here.name or '(no name)'}",
        f"  JID: {here.jid}",
        f"  account id: {here.account_id}",
    ]
    return Text("\n".join(lines), private=True)


@command("ping", help="Check that the bot is alive: it answers pong")
async def ping(ctx: Context) -> Text:
    """Answer in the conversation, so everyone can see the bot is up."""
    return Text("pong")


@hookimpl
def chatops_commands() -> Iterable[Command]:
    """The core commands."""
    return [help_command, ping, whoami]
