"""The built-in ``core`` plugin: ``help``, ``ping``, ``whoami`` and ``audit`` (admins).

Registered like any third-party plugin; besides the public API it uses the help and audit
formatting, which only it needs.
"""

from __future__ import annotations

from collections.abc import Iterable

from chatopsbot import (
    Arg,
    AuditQuery,
    Command,
    Context,
    Option,
    Text,
    UsageError,
    command,
    hookimpl,
)
from chatopsbot.audit import AuditQueryError, format_table
from chatopsbot.commands import UnknownCommand, format_help, format_overview

__all__ = ["audit_command", "chatops_commands", "help_command", "ping", "whoami"]

#: The most entries ``audit`` shows in chat (the CLI shows any number).
AUDIT_MOST = 50


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
        overview = format_overview(ctx.runnable())
        return Text(f"Commands:\n{overview}\nType help <command> for details.", private=True)
    try:
        # Only what the actor may run: the rest is answered like an unknown command.
        found, rest = ctx.lookup(words)
    except UnknownCommand as exc:
        if exc.subcommands:
            return Text(format_overview(exc.subcommands), private=True)
        raise UsageError(str(exc), ctx.command) from None
    if rest:
        raise UsageError(f"{found.name!r} has no subcommand {' '.join(rest)!r}", ctx.command)
    return Text(format_help(found), private=True)


@command("whoami", help="Your Zoom ids and this conversation's, for writing access rules")
async def whoami(ctx: Context) -> Text:
    """Rules match ids and JIDs, never names: this is where an operator gets them."""
    you, here = ctx.actor, ctx.conversation
    kind = "channel" if "@conference." in here.jid else "1:1 chat"
    lines = [
        f"You: {you.name or '(no name)'}",
        f"  user id: {you.id}",
        f"  JID: {you.jid}",
        f"  bot admin: {'yes' if ctx.actor_is_admin else 'no'}",
        f"This {kind}: {here.name or '(no name)'}",
        f"  JID: {here.jid}",
        f"  account id: {here.account_id}",
    ]
    return Text("\n".join(lines), private=True)


@command("ping", help="Check that the bot is alive: it answers pong")
async def ping(ctx: Context) -> Text:
    """Answer in the conversation, so everyone can see the bot is up."""
    return Text("pong")


@command(
    "audit",
    help="Who did what lately: commands, buttons, confirmations, hooks",
    admin_only=True,
    options=(
        Option("since", metavar="WHEN", default="24h", help="30m, 24h, 7d or an ISO time"),
        Option("user", metavar="WHO", help="a user id, JID or display name"),
        Option("command", metavar="NAME", help='a command or action ("deploy" covers its group)'),
        Option("limit", type=int, default=20, help=f"how many, newest first (1 to {AUDIT_MOST})"),
    ),
    examples=("audit", "audit --since 7d --command deploy", "audit --user u-alice"),
)
async def audit_command(ctx: Context) -> Text:
    """Admins only, and privately: the log names people and what they did."""
    limit = ctx.args["limit"]
    if not 1 <= limit <= AUDIT_MOST:
        raise UsageError(f"--limit must be between 1 and {AUDIT_MOST}")
    if ctx.audit is None:
        return Text("This bot keeps no audit log.", private=True)
    try:
        query = AuditQuery.parse(
            now=ctx.clock.timestamp(),
            since=ctx.args["since"],
            user=ctx.args["user"],
            command=ctx.args["command"],
            limit=limit,
        )
    except AuditQueryError as exc:
        raise UsageError(str(exc)) from None
    entries = await ctx.audit.query(query)
    if not entries:
        return Text("Nothing recorded that matches.", private=True)
    return Text("\n".join(format_table(entries)), private=True)


@hookimpl
def chatops_commands() -> Iterable[Command]:
    """The core commands."""
    return [audit_command, help_command, ping, whoami]
