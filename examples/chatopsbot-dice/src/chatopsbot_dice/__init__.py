"""An example third-party chatopsbot plugin: dice."""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Mapping
from typing import Any

from attrs import field, frozen, validators

from chatopsbot import (
    Action,
    ActionContext,
    Actions,
    Arg,
    ButtonStyle,
    Card,
    Command,
    Context,
    Edit,
    HookRequest,
    HookResponse,
    Option,
    Paragraph,
    PluginContext,
    Route,
    Text,
    UsageError,
    action,
    command,
    hookimpl,
    load_config,
    route,
)

__all__ = ["DicePlugin", "DiceSettings"]

_SPEC = re.compile(r"^(\d{1,3})d(\d{1,4})$")
HISTORY = 10


@frozen
class DiceSettings:
    """``[plugins.dice]``: how many dice one roll may use, and a seed for repeatable tests."""

    max_dice: int = field(default=20, validator=[validators.ge(1), validators.le(100)])
    seed: int | None = None


class DicePlugin:
    """Instantiated once per bot by chatopsbot, so its random generator is per bot."""

    def __init__(self) -> None:
        self._random: random.Random | None = None

    @hookimpl
    def chatops_config(self, config: Mapping[str, Any]) -> DiceSettings:
        """``[plugins.dice]``, read into :class:`DiceSettings` (the framework checks it)."""
        return load_config(DiceSettings, config)

    @hookimpl
    def chatops_commands(self) -> Iterable[Command]:
        """``roll`` and ``roll history``."""
        return [
            command(
                "roll",
                help="Roll dice, like 2d6",
                args=(Arg("dice", required=False, default="1d6", help="NdM: N dice of M sides"),),
                options=(Option("label", help="what the roll is for"),),
                examples=("roll", "roll 3d20 --label initiative"),
            )(self.roll),
            command("roll history", help="The last rolls in this channel")(self.history),
        ]

    @hookimpl
    def chatops_actions(self) -> Iterable[Action]:
        """The re-roll button."""
        return [action("again")(self.again)]

    @hookimpl
    def chatops_routes(self) -> Iterable[Route]:
        """``GET /hooks/dice/stats``."""
        return [route("GET", "/stats")(self.stats)]

    async def roll(self, ctx: Context[DiceSettings]) -> Card:
        """Roll and post a card with a re-roll button."""
        count, sides = self._parse(ctx.args["dice"], ctx.config)
        return await self._rolled(ctx, count, sides, ctx.args["label"], ctx.actor.name)

    async def again(self, ctx: ActionContext[DiceSettings]) -> Edit:
        """Roll the same dice again, in place."""
        count, _, sides = ctx.payload.partition("d")
        card = await self._rolled(ctx, int(count), int(sides), None, ctx.actor.name)
        return Edit(ctx.message_id, card)

    async def history(self, ctx: Context) -> Text:
        """The channel's last rolls, privately."""
        rolls = await ctx.store.get("history:" + ctx.conversation.jid, [])
        if not rolls:
            return Text("No rolls here yet.", private=True)
        return Text("\n".join(rolls), private=True)

    async def stats(self, ctx: PluginContext, request: HookRequest) -> HookResponse:
        """How many rolls the bot has made."""
        return HookResponse(200, {"rolls": await ctx.store.get("count", 0)})

    def _parse(self, spec: str, settings: DiceSettings) -> tuple[int, int]:
        match = _SPEC.match(spec.lower())
        if match is None:
            raise UsageError(f"invalid dice {spec!r}: write NdM, like 2d6")
        count, sides = int(match[1]), int(match[2])
        if not 1 <= count <= settings.max_dice:
            raise UsageError(f"roll 1 to {settings.max_dice} dice at a time")
        if sides < 2:
            raise UsageError("dice need at least 2 sides")
        return count, sides

    async def _rolled(
        self, ctx: PluginContext, count: int, sides: int, label: str | None, who: str
    ) -> Card:
        if self._random is None:
            self._random = random.Random(ctx.config.seed)
        faces = [self._random.randint(1, sides) for _ in range(count)]
        line = f"{who} rolled {count}d{sides}: {' + '.join(map(str, faces))} = {sum(faces)}"
        await ctx.store.update("count", lambda n: n + 1, default=0)
        if isinstance(ctx, Context | ActionContext):
            key = "history:" + ctx.conversation.jid
            await ctx.store.update(key, lambda h: [*h, line][-HISTORY:], default=[])
        again = ctx.button("Roll again", "again", f"{count}d{sides}", ButtonStyle.PRIMARY)
        return Card(head=label or "Dice", body=[Paragraph(line), Actions((again,))])
