"""The polls plugin's hooks: commands, vote and close actions, the deadline timer."""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import attrs

from chatopsbot import (
    Action,
    ActionContext,
    Arg,
    Card,
    Command,
    Context,
    Conversation,
    Edit,
    Option,
    PluginConfigError,
    PluginContext,
    Text,
    TimerHandler,
    UsageError,
    action,
    command,
    hookimpl,
    require_known_keys,
    timer,
)
from chatopsbot_polls import model

POLL = "poll:"
VOTES = "votes:"


class PollsPlugin:
    """One instance per bot: it remembers which poll cards have an edit under way."""

    def __init__(self) -> None:
        # Coalescing: one edit in flight per poll, and one more if votes came in meanwhile.
        self._editing: set[str] = set()
        self._dirty: set[str] = set()

    @hookimpl
    def chatops_config(self, config: Mapping[str, Any]) -> ZoneInfo:
        """``timezone`` (IANA) for ``--closes-at`` and displayed deadlines; default UTC."""
        require_known_keys(config, ("timezone",))
        name = config.get("timezone", "UTC")
        if not isinstance(name, str):
            raise PluginConfigError("timezone", "expected a string")
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise PluginConfigError("timezone", f"unknown time zone {name!r}") from None

    @hookimpl
    def chatops_commands(self) -> Iterable[Command]:
        """``poll``, ``poll list``, ``poll results``, ``poll close``."""
        return [
            command(
                "poll",
                help="Ask the channel a question with buttons to vote",
                args=(
                    Arg("question", help="the question, quoted if it has spaces"),
                    Arg("options", variadic=True, help="2 to 10 answers, quoted if needed"),
                ),
                options=(
                    Option("multi", flag=True, help="voters may pick several options"),
                    Option("max", type=int, help="with --multi: at most this many each"),
                    Option("anonymous", flag=True, help="never store who voted what"),
                    Option("hidden", flag=True, help="show counts only once closed"),
                    Option("closes-in", metavar="DURATION", help="close after 30m, 2h, 1d..."),
                    Option("closes-at", metavar="HH:MM", help="close at this time today"),
                ),
                examples=(
                    'poll "Lunch?" Pizza Sushi "Salad bar"',
                    "poll Deploy? yes no --closes-in 1h",
                ),
            )(self.create),
            command("poll list", help="The open polls in this channel")(self.list_open),
            command(
                "poll results",
                help="A poll's results, shown to you only",
                args=(Arg("id", help="the poll's id, as on its card"),),
            )(self.results),
            command(
                "poll close",
                help="Close a poll (its creator or an admin)",
                args=(Arg("id", help="the poll's id, as on its card"),),
            )(self.close_command),
        ]

    @hookimpl
    def chatops_actions(self) -> Iterable[Action]:
        """The vote buttons and the close button."""
        return [action("vote")(self.vote), action("close")(self.close_button)]

    @hookimpl
    def chatops_jobs(self) -> Iterable[TimerHandler]:
        """The deadline timer."""
        return [timer("deadline")(self.deadline)]

    # Commands.

    async def create(self, ctx: Context) -> Text | None:
        """Validate everything first: a bad poll posts nothing."""
        args = ctx.args
        question: str = args["question"]
        options: tuple[str, ...] = tuple(o.strip() for o in args["options"])
        model.validate_options(question, options)
        if args["max"] is not None and not args["multi"]:
            raise UsageError("--max needs --multi")
        most = args["max"] if args["max"] is not None else len(options)
        if not 1 <= most <= len(options):
            raise UsageError(f"--max must be between 1 and {len(options)}")
        if args["closes_in"] and args["closes_at"]:
            raise UsageError("give --closes-in or --closes-at, not both")
        zone: ZoneInfo = ctx.config
        now = ctx.clock.now()
        closes_at = None
        if args["closes_in"]:
            closes_at = now + model.parse_duration(args["closes_in"])
        elif args["closes_at"]:
            closes_at = model.parse_clock_time(args["closes_at"], now, zone)
        poll_id = secrets.token_hex(3)
        poll: dict[str, Any] = {
            "id": poll_id,
            "question": question.strip(),
            "options": list(options),
            "creator": {"id": ctx.caller.id, "name": ctx.caller.name},
            "conversation": attrs.asdict(ctx.conversation),
            "multi": bool(args["multi"]),
            "max": most if args["multi"] else 1,
            "anonymous": bool(args["anonymous"]),
            "hidden": bool(args["hidden"]),
            "closes_at": closes_at.timestamp() if closes_at else None,
            "closed": False,
            "message_id": None,
        }
        # Stored before it is posted, so the earliest click finds it.
        await ctx.store.set(POLL + poll_id, poll)
        sent = await ctx.send(self._card(ctx, poll, {}))
        timer_id = None
        if closes_at is not None:
            timer_id = await ctx.timers.schedule("deadline", closes_at, {"id": poll_id})

        def posted(stored: dict[str, Any]) -> dict[str, Any]:
            return {**stored, "message_id": sent.message_id, "timer": timer_id}

        await ctx.store.update(POLL + poll_id, posted, default=poll)
        if await ctx.store.exists(VOTES + poll_id):
            await self._refresh(ctx, poll_id)
        return None

    async def list_open(self, ctx: Context) -> Text:
        """The open polls of this conversation, privately."""
        open_polls = [
            p
            for _, p in await ctx.store.list(POLL)
            if not p["closed"] and p["conversation"]["jid"] == ctx.conversation.jid
        ]
        if not open_polls:
            return Text("No open polls here.", private=True)
        lines = [f"{p['id']}: {p['question']} (by {p['creator']['name']})" for p in open_polls]
        return Text("Open polls:\n" + "\n".join(lines), private=True)

    async def results(self, ctx: Context) -> Text:
        """A private summary; hidden results only for the creator or an admin until closed."""
        poll = await self._find(ctx, ctx.args["id"])
        insider = ctx.caller.id == poll["creator"]["id"] or ctx.caller_is_admin
        if poll["hidden"] and not poll["closed"] and not insider:
            return Text("The results of this poll are hidden until it closes.", private=True)
        ballots = await ctx.store.get(VOTES + poll["id"], {})
        return Text(model.summary(poll, ballots), private=True)

    async def close_command(self, ctx: Context) -> Text | None:
        """``poll close <id>``."""
        poll = await self._find(ctx, ctx.args["id"])
        return await self._close(ctx, poll, ctx.caller.id, ctx.caller_is_admin)

    # Buttons.

    async def vote(self, ctx: ActionContext) -> Text | None:
        """Record the click and edit the card; the voter alone hears about it."""
        poll_id, _, index_text = ctx.payload.partition(":")
        poll = await ctx.store.get(POLL + poll_id)
        if poll is None:
            return Text("This poll no longer exists.", private=True)
        if poll["closed"]:
            return Text("This poll is closed.", private=True)
        choice = int(index_text)
        voter = ctx.pseudonym(ctx.clicker.id) if poll["anonymous"] else ctx.clicker.id
        name = None if poll["anonymous"] else ctx.clicker.name
        outcome = "full"

        def apply(ballots: dict[str, Any]) -> dict[str, Any]:
            nonlocal outcome
            ballots, outcome = model.cast_vote(ballots, voter, name, choice, poll)
            return ballots

        await ctx.store.update(VOTES + poll_id, apply, default={})
        option = poll["options"][choice]
        if outcome == "full":
            return Text(
                f"You can pick at most {poll['max']} options; remove one first.", private=True
            )
        await self._refresh(ctx, poll_id)
        verb = {
            "added": "You voted",
            "moved": "You now vote",
            "removed": "You took back your vote for",
        }
        return Text(f"{verb[outcome]} {option}", private=True)

    async def close_button(self, ctx: ActionContext) -> Text | None:
        """The Close button on the card."""
        poll = await ctx.store.get(POLL + ctx.payload)
        if poll is None:
            return Text("This poll no longer exists.", private=True)
        return await self._close(ctx, poll, ctx.clicker.id, ctx.clicker_is_admin)

    # The deadline.

    async def deadline(self, ctx: PluginContext, payload: Any) -> None:
        """Close a poll whose time has come (also once at startup if it came while down)."""
        poll = await ctx.store.get(POLL + payload["id"])
        if poll is not None and not poll["closed"]:
            await self._finish(ctx, poll)

    # Shared steps.

    async def _close(
        self, ctx: PluginContext, poll: dict[str, Any], who: str, admin: bool
    ) -> Text | None:
        if who != poll["creator"]["id"] and not admin:
            return Text(
                f"Only {poll['creator']['name']} (who asked) or an admin can close this poll.",
                private=True,
            )
        if poll["closed"]:
            return Text("This poll is already closed.", private=True)
        if poll.get("timer"):
            await ctx.timers.cancel(poll["timer"])
        await self._finish(ctx, poll)
        return None

    async def _finish(self, ctx: PluginContext, poll: dict[str, Any]) -> None:
        def mark(stored: dict[str, Any]) -> dict[str, Any]:
            return {**stored, "closed": True}

        closed = await ctx.store.update(POLL + poll["id"], mark, default=poll)
        ballots = await ctx.store.get(VOTES + closed["id"], {})
        if closed["message_id"]:
            conversation = Conversation(**closed["conversation"])
            await ctx.send_to(
                conversation, Edit(closed["message_id"], self._card(ctx, closed, ballots))
            )

    async def _refresh(self, ctx: PluginContext, poll_id: str) -> None:
        """Edit the card to the latest tally, coalescing clicks that arrive meanwhile.

        Each edit reads the store after the previous one reached Zoom, so the card never goes
        back to an older tally, and a burst of clicks costs two edits, not one per click.
        """
        self._dirty.add(poll_id)
        if poll_id in self._editing:
            return
        self._editing.add(poll_id)
        try:
            while poll_id in self._dirty:
                self._dirty.discard(poll_id)
                poll = await ctx.store.get(POLL + poll_id)
                if poll is None or poll["closed"] or not poll["message_id"]:
                    return
                ballots = await ctx.store.get(VOTES + poll_id, {})
                conversation = Conversation(**poll["conversation"])
                await ctx.send_to(
                    conversation, Edit(poll["message_id"], self._card(ctx, poll, ballots))
                )
        finally:
            self._editing.discard(poll_id)

    def _card(
        self, ctx: PluginContext, poll: Mapping[str, Any], ballots: Mapping[str, Any]
    ) -> Card:
        zone: ZoneInfo = ctx.config
        return model.render(poll, ballots, zone, ctx.button)

    async def _find(self, ctx: Context, poll_id: str) -> dict[str, Any]:
        poll: dict[str, Any] | None = await ctx.store.get(POLL + poll_id.lstrip("#"))
        if poll is None:
            raise UsageError(f"no poll {poll_id!r}; poll list shows the open ones here")
        return poll
