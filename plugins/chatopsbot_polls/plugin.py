"""The polls plugin's hooks: commands, vote and close actions, the deadline timer.

Who may do what (the README's table says the same):

- ``poll``, ``poll list``: anyone allowed to run them (``[access]``); ``poll list`` shows the
  polls of the conversation it is run in only.
- ``poll results <id>``: in the poll's own conversation, its creator anywhere, an admin
  anywhere; anyone else gets exactly the answer for an unknown id. Hidden results stay hidden
  from everyone but the creator and admins until the poll closes.
- ``poll close <id>`` and the Close button: the creator or an admin, or anyone when
  ``[plugins.polls] close = "anyone"``; and only where the poll may be seen (above).
- Vote buttons: anyone who can see the card (the button's value is signed).

Race-free by construction: a poll and its ballots are two keys changed together
(``ctx.store.update_many``), so a vote and a close are serialised on the same state, on one
bot or across replicas. A vote either lands before the close (and is on the closed card and in
``poll results``, and its voter is told so) or after it (and is refused: "This poll is
closed."). The card is drawn from a snapshot of both keys, again after every edit until
nothing has changed, so its last edit shows the last state.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterable, Mapping
from typing import Any

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
    MessageGone,
    Option,
    OutboxClosed,
    Outcome,
    PluginContext,
    Refused,
    SendFailed,
    Text,
    TimerHandler,
    UsageError,
    action,
    command,
    hookimpl,
    timer,
)
from chatopsbot_polls import model
from chatopsbot_polls.settings import PollSettings, parse_settings

POLL = "poll:"
#: Ids are typed back (poll results 3f9a1c2e): short, and claimed so that they never collide.
ID_BYTES = 4
ID_TRIES = 5
VOTES = "votes:"
#: What a poll's card is drawn from: the poll and its ballots, read together.
State = tuple[dict[str, Any], dict[str, Any]]

log = logging.getLogger("chatopsbot.plugin.polls")


class PollsPlugin:
    """One instance per bot: it remembers which poll cards have an edit under way."""

    def __init__(self) -> None:
        # Coalescing: one edit in flight per poll, and one more if votes came in meanwhile.
        self._editing: set[str] = set()
        self._dirty: set[str] = set()

    @hookimpl
    def chatops_config(self, config: Mapping[str, Any]) -> PollSettings:
        """``timezone`` (IANA, default UTC) for ``--closes-at`` and displayed deadlines;
        ``close`` (``creator_or_admin``, the default, or ``anyone``): who may close a poll."""
        return parse_settings(config)

    @hookimpl
    def chatops_commands(self) -> Iterable[Command]:
        """``poll``, ``poll list``, ``poll results``, ``poll close``."""
        return [
            command(
                "poll",
                help="Ask the channel a question with buttons to vote",
                args=(
                    Arg(
                        "question",
                        help=f"the question, quoted if it has spaces "
                        f"(at most {model.MAX_QUESTION_LENGTH} characters)",
                    ),
                    Arg(
                        "options",
                        variadic=True,
                        help=f"{model.MIN_OPTIONS} to {model.MAX_OPTIONS} answers, quoted if "
                        f"needed (at most {model.MAX_OPTION_LENGTH} characters each)",
                    ),
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
                help="A poll's results, shown to you only (here, or anywhere for its creator)",
                args=(Arg("id", help="the poll's id, as on its card"),),
            )(self.results),
            command(
                "poll close",
                help="Close a poll (its creator or an admin, unless configured otherwise)",
                args=(Arg("id", help="the poll's id, as on its card"),),
            )(self.close_command),
        ]

    @hookimpl
    def chatops_actions(self) -> Iterable[Action]:
        """The vote buttons and the close button."""
        # A vote does what the poll group allows; the Close button what poll close allows.
        return [
            action("vote", command="poll")(self.vote),
            action("close", command="poll close")(self.close_button),
        ]

    @hookimpl
    def chatops_jobs(self) -> Iterable[TimerHandler]:
        """The deadline timer."""
        return [timer("deadline")(self.deadline)]

    @hookimpl
    async def chatops_channel_left(self, ctx: PluginContext, conversation: Conversation) -> int:
        """The bot left a channel: its polls go (their cards can no longer change there)."""
        # Zoom names the channel by id there: its JID is compared without case.
        return await self._drop(ctx, lambda where: where["jid"].lower() == conversation.jid.lower())

    @hookimpl
    async def chatops_account_removed(self, ctx: PluginContext, account_id: str) -> int:
        """An account removed the app: its polls and their votes go."""
        return await self._drop(ctx, lambda where: where["account_id"] == account_id)

    async def _drop(self, ctx: PluginContext, doomed: Any) -> int:
        """Delete the polls whose conversation ``doomed`` picks, their votes and deadlines."""
        gone = 0
        for key, poll in await ctx.store.list(POLL):
            if not doomed(poll["conversation"]):
                continue
            if poll.get("timer"):
                await ctx.timers.cancel(poll["timer"])
            await ctx.store.delete(VOTES + poll["id"])
            gone += int(await ctx.store.delete(key))
        return gone

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
        zone = self._settings(ctx).timezone
        now = ctx.clock.now()
        closes_at = None
        if args["closes_in"]:
            closes_at = now + model.parse_duration(args["closes_in"])
        elif args["closes_at"]:
            closes_at = model.parse_clock_time(args["closes_at"], now, zone)
        poll: dict[str, Any] = {
            "id": "",
            "question": question.strip(),
            "options": list(options),
            "creator": {"id": ctx.actor.id, "name": ctx.actor.name, "jid": ctx.actor.jid},
            "conversation": attrs.asdict(ctx.conversation),
            "multi": bool(args["multi"]),
            "max": most if args["multi"] else 1,
            "anonymous": bool(args["anonymous"]),
            "hidden": bool(args["hidden"]),
            "closes_at": closes_at.timestamp() if closes_at else None,
            "closed": False,
            "message_id": None,
        }
        # Stored before it is posted, so the earliest click finds it; claimed with its ballots
        # in one step, so a new poll can never take over an old one's id (and its votes).
        poll_id = await self._claim_id(ctx, poll)
        poll["id"] = poll_id
        sent = await ctx.send(self._card(ctx, poll, {}))
        timer_id = None
        if closes_at is not None:
            timer_id = await ctx.timers.schedule("deadline", closes_at, {"id": poll_id})

        def posted(stored: dict[str, Any]) -> dict[str, Any]:
            return {**stored, "message_id": sent.message_id, "timer": timer_id}

        stored = await ctx.store.update(POLL + poll_id, posted, default=poll)
        # Clicks (or a close) that came before the card's id was known are drawn now.
        await self._refresh(ctx, poll_id, drawn=(stored, {}))
        return None

    async def _claim_id(self, ctx: Context, poll: dict[str, Any]) -> str:
        """A fresh id, stored with the poll and empty ballots; another one if it is taken."""
        for _ in range(ID_TRIES):
            poll_id = secrets.token_hex(ID_BYTES)

            def claim(current: dict[str, Any], poll_id: str = poll_id) -> dict[str, Any]:
                if current:
                    raise Refused("taken")
                return {POLL + poll_id: {**poll, "id": poll_id}, VOTES + poll_id: {}}

            outcome = await ctx.store.update_many([POLL + poll_id, VOTES + poll_id], claim)
            if outcome.applied:
                return poll_id
        raise RuntimeError(f"no free poll id after {ID_TRIES} tries")

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
        poll = await self._find_visible(ctx, ctx.args["id"])
        insider = ctx.actor.id == poll["creator"]["id"] or ctx.actor_is_admin
        # The poll and its ballots from one snapshot: "closed" never comes with a tally that
        # the closed card does not show.
        state = await self._state(ctx, poll["id"])
        if state is None:
            raise UsageError(f"no poll {poll['id']!r}; poll list shows the open ones here")
        poll, ballots = state
        if poll["hidden"] and not poll["closed"] and not insider:
            return Text("The results of this poll are hidden until it closes.", private=True)
        return Text(model.summary(poll, ballots), private=True)

    async def close_command(self, ctx: Context) -> Text | None:
        """``poll close <id>``: where the poll may be seen, by whom the policy allows."""
        poll = await self._find_visible(ctx, ctx.args["id"])
        return await self._close(ctx, poll, ctx.actor.id, ctx.actor_is_admin)

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
        # Whether the poll is anonymous never changes: the voter's key can be made out here.
        voter = ctx.pseudonym(ctx.actor.id) if poll["anonymous"] else ctx.actor.id
        name = None if poll["anonymous"] else ctx.actor.name
        poll_key, votes_key = POLL + poll_id, VOTES + poll_id

        def cast(current: dict[str, Any]) -> dict[str, Any]:
            # Checked where the vote is written: a close cannot come in between.
            stored = current.get(poll_key)
            if stored is None:
                raise Refused("gone")
            if stored["closed"]:
                raise Refused("closed")
            ballots, outcome = model.cast_vote(
                current.get(votes_key, {}), voter, name, choice, stored
            )
            if outcome == "full":
                raise Refused("full")
            return {votes_key: ballots}

        result = await ctx.store.update_many([poll_key, votes_key], cast)
        option = poll["options"][choice]
        if result.reason == "gone":
            return Text("This poll no longer exists.", private=True)
        if result.reason == "closed":
            return Text("This poll is closed.", private=True)
        if result.reason == "full":
            return Text(
                f"You can pick at most {poll['max']} options; remove one first.", private=True
            )
        # What the click did, worked out again from the ballots it was applied to.
        _, outcome = model.cast_vote(
            result.old.get(votes_key, {}), voter, name, choice, result.old[poll_key]
        )
        await self._refresh(ctx, poll_id)
        verb = {
            "added": "You voted",
            "moved": "You now vote",
            "removed": "You took back your vote for",
        }
        return Text(f"{verb[outcome]} {option}", private=True)

    async def close_button(self, ctx: ActionContext) -> Text | None:
        """The Close button on the card (clicked where the card is: the poll is visible)."""
        poll = await ctx.store.get(POLL + ctx.payload)
        if poll is None:
            return Text("This poll no longer exists.", private=True)
        return await self._close(ctx, poll, ctx.actor.id, ctx.actor_is_admin)

    # The deadline.

    async def deadline(self, ctx: PluginContext, payload: Any) -> None:
        """Close a poll whose time has come (also once at startup if it came while down)."""
        if (await self._mark_closed(ctx, payload["id"])).applied:
            await self._refresh(ctx, payload["id"])

    # Shared steps.

    async def _close(
        self, ctx: PluginContext, poll: dict[str, Any], who: str, admin: bool
    ) -> Text | None:
        policy = self._settings(ctx).close
        if not model.may_close(poll, policy=policy, user_id=who, admin=admin):
            return Text(
                f"Only {poll['creator']['name']} (who asked) or an admin can close this poll.",
                private=True,
            )
        result = await self._mark_closed(ctx, poll["id"])
        if result.reason == "closed":
            return Text("This poll is already closed.", private=True)
        if result.reason == "gone":
            return Text("This poll no longer exists.", private=True)
        before = result.old[POLL + poll["id"]]
        if before.get("timer"):
            await ctx.timers.cancel(before["timer"])
        if await self._refresh(ctx, poll["id"]):
            return None
        # Nobody can see the closed card: the one who closed it gets the result instead (the
        # ballots as they were closed: none can be added since).
        closed = result.new[POLL + poll["id"]]
        ballots = result.new.get(VOTES + poll["id"], {})
        return Text(
            "The poll's card was deleted, so here is its result:\n"
            + model.summary(closed, ballots),
            private=True,
        )

    async def _mark_closed(self, ctx: PluginContext, poll_id: str) -> Outcome:
        """Close the poll, in one step with its ballots (so no vote is half in): refused
        ``closed`` if it was closed already, ``gone`` if it no longer exists."""
        poll_key, votes_key = POLL + poll_id, VOTES + poll_id

        def close(current: dict[str, Any]) -> dict[str, Any]:
            stored = current.get(poll_key)
            if stored is None:
                raise Refused("gone")
            if stored["closed"]:
                raise Refused("closed")
            return {poll_key: {**stored, "closed": True}}

        return await ctx.store.update_many([poll_key, votes_key], close)

    async def _state(self, ctx: PluginContext, poll_id: str) -> State | None:
        """The poll and its ballots, read as one snapshot; None if the poll is gone."""
        found = await ctx.store.get_many([POLL + poll_id, VOTES + poll_id])
        poll = found.get(POLL + poll_id)
        return None if poll is None else (poll, found.get(VOTES + poll_id, {}))

    async def _edit_card(
        self, ctx: PluginContext, poll: dict[str, Any], ballots: Mapping[str, Any]
    ) -> bool:
        """Draw ``poll`` on its card; False when there is no card to draw on (any more).

        A card deleted in Zoom is no failure of the vote or the close that wanted to edit it:
        what was stored stays, the poll notes that its card is gone (so later clicks cost no
        doomed calls) and one info line says so. Any other refusal is logged as a warning;
        the caller still gets the ordinary answer, because what they did was recorded.
        """
        if not poll.get("message_id") or poll.get("card_gone"):
            return False
        conversation = Conversation(**poll["conversation"])
        try:
            await ctx.send_to(
                conversation,
                Edit(poll["message_id"], self._card(ctx, poll, ballots)),
                # The card is its creator's: edits (a deadline's too) go out on their behalf.
                on_behalf_of=poll["creator"].get("jid"),
            )
        except OutboxClosed:
            # The bot is stopping; the edit stays queued and is made after the restart.
            return True
        except MessageGone:
            log.info("poll %s: its card was deleted in Zoom; votes are still counted", poll["id"])

            def gone(stored: dict[str, Any]) -> dict[str, Any]:
                return {**stored, "card_gone": True}

            await ctx.store.update(POLL + poll["id"], gone, default=poll)
            return False
        except SendFailed as exc:
            log.warning("poll %s: its card could not be updated: %s", poll["id"], exc)
        return True

    async def _refresh(self, ctx: PluginContext, poll_id: str, drawn: State | None = None) -> bool:
        """Draw the poll's latest state (open or closed) on its card, coalescing clicks that
        arrive meanwhile; False if there is no card to draw on.

        Each edit draws a snapshot read after the previous edit was queued, and the loop
        ends only when a fresh snapshot equals the one drawn last. So the last edit queued
        for a card, by this process or another replica, shows the last state: a change
        committed after that final read is drawn by whoever made it. A burst of clicks costs
        a few edits, not one per click. ``drawn`` is what the card shows already, if known.
        """
        self._dirty.add(poll_id)
        if poll_id in self._editing:
            return True  # the edit under way draws this change too
        self._editing.add(poll_id)
        try:
            while True:
                self._dirty.discard(poll_id)
                state = await self._state(ctx, poll_id)
                if state is None:
                    return False
                if state != drawn:
                    if await self._edit_card(ctx, *state):
                        drawn = state
                        continue
                    # No card (yet: the id may have come in meanwhile, which marks it dirty).
                    if poll_id not in self._dirty:
                        return False
                elif poll_id not in self._dirty:
                    # No await between this read and here: a change after it starts its own.
                    return True
        finally:
            self._editing.discard(poll_id)

    def _card(
        self, ctx: PluginContext, poll: Mapping[str, Any], ballots: Mapping[str, Any]
    ) -> Card:
        return model.render(poll, ballots, self._settings(ctx).timezone, ctx.button)

    def _settings(self, ctx: PluginContext) -> PollSettings:
        settings: PollSettings = ctx.config
        return settings

    async def _find_visible(self, ctx: Context, poll_id: str) -> dict[str, Any]:
        """The poll ``poll_id`` if the caller may see it from here.

        A poll they may not see gets the very answer an unknown id gets, so that an id seen
        elsewhere (or guessed) does not even tell whether the poll exists.
        """
        key = poll_id.lstrip("#")
        # An id is six hex digits; anything longer is not looked up (nor echoed in full).
        poll: dict[str, Any] | None = await ctx.store.get(POLL + key) if len(key) <= 16 else None
        if poll is None or not model.visible_to(
            poll,
            conversation_jid=ctx.conversation.jid,
            user_id=ctx.actor.id,
            admin=ctx.actor_is_admin,
        ):
            shown = poll_id if len(poll_id) <= 16 else poll_id[:15] + "…"
            raise UsageError(f"no poll {shown!r}; poll list shows the open ones here")
        return poll
