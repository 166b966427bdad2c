"""The plugin authors' test kit, used the way a plugin's own tests would use it."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from chatopsbot import (
    ActionContext,
    Actions,
    Card,
    Context,
    Edit,
    Field,
    Fields,
    HookRequest,
    HookResponse,
    PluginContext,
    Select,
    Text,
    action,
    command,
    hookimpl,
    route,
    timer,
)
from chatopsbot.testing import BotHarness, Replies, user


class Lunch:
    @hookimpl
    def chatops_commands(self) -> list[Any]:
        @command("lunch", help="Vote for lunch")
        async def lunch(ctx: Context) -> Card:
            await ctx.timers.schedule("remind", ctx.clock.now() + timedelta(hours=1), "eat!")
            return Card(
                head="Lunch?",
                body=[
                    Actions((ctx.button("Pizza", "vote", "pizza"),)),
                    Select("Or", (ctx.option("Sushi", "vote", "sushi"),)),
                    Fields((Field("Where", "canteen", editable=True),)),
                ],
            )

        return [lunch]

    @hookimpl
    def chatops_actions(self) -> list[Any]:
        @action("vote")
        async def vote(ctx: ActionContext) -> Text:
            n = await ctx.store.update(ctx.values[0], lambda v: v + 1, default=0)
            return Text(f"{ctx.actor.name}: {ctx.values[0]} ({n})", private=True)

        @action("field_edited")
        async def moved(ctx: ActionContext) -> Edit:
            return Edit(ctx.message_id, Text(f"moved to {ctx.values[1]}"))

        return [vote, moved]

    @hookimpl
    def chatops_jobs(self) -> list[Any]:
        @timer("remind")
        async def remind(ctx: PluginContext, payload: Any) -> None:
            await ctx.send_to(_ops(), Text(payload))

        return [remind]

    @hookimpl
    def chatops_routes(self) -> list[Any]:
        @route("GET", "/count")
        async def count(ctx: PluginContext, request: HookRequest) -> HookResponse:
            return HookResponse(200, {"pizza": await ctx.store.get("pizza", 0)})

        return [count]


def _ops() -> Any:
    from chatopsbot import Conversation

    return Conversation("acct-1", "ops@conference.xmpp.zoom.us", "ops")


async def test_commands_clicks_selects_fields_hooks_and_time(chatopsbot_bot):
    bot = await chatopsbot_bot(plugins={"lunch": Lunch()})
    card = (await bot.command("lunch", user="bob")).only()
    assert card.to_jid == "ops@conference.xmpp.zoom.us"
    reply = (await bot.click(card, "Pizza", user="carol")).only()
    assert (reply.text, reply.visible_to_user) == ("Carol: pizza (1)", "u-carol")
    assert (await bot.select(card, "Sushi")).texts == ["Alice: sushi (1)"]
    assert (await bot.hook("GET", "lunch", "/count")).body == {"pizza": 1}
    assert await bot.edit_field(card, "Where", "park") == []
    assert card.text == "moved to park"
    assert (await bot.advance(timedelta(minutes=59))).texts == []
    assert (await bot.advance(timedelta(minutes=1))).texts == ["eat!"]
    assert "only u-carol" in bot.transcript()


async def test_direct_messages_and_builtins():
    async with BotHarness() as bot:
        reply = (await bot.command("ping", channel=None, user="dave")).only()
        assert reply.to_jid == "dave@xmpp.zoom.us"
    async with BotHarness(installed=False) as bare:
        reply = (await bare.command("ping")).only()
        assert reply.text.startswith("Unknown command 'ping'")


async def test_restart_keeps_storage_on_disk(tmp_path):
    config = {"storage": {"path": str(tmp_path / "bot.db")}}
    async with BotHarness({"lunch": Lunch()}, config=config) as bot:
        card = (await bot.command("lunch")).only()
        await bot.click(card, "Pizza")
        await bot.restart()
        assert (await bot.hook("GET", "lunch", "/count")).body == {"pizza": 1}


async def test_failures_read_well():
    async with BotHarness({"lunch": Lunch()}) as bot:
        card = (await bot.command("lunch")).only()
        with pytest.raises(
            AssertionError, match=r"no button 'Fish' on the message; it has \['Pizza'\]"
        ):
            await bot.click(card, "Fish")
        with pytest.raises(AssertionError, match="expected one message, got 0"):
            Replies().only()


def test_test_users_are_predictable():
    assert user("bob").id == "u-bob"
    assert user("Bob").jid == "bob@xmpp.zoom.us"
    assert user("bob").name == "Bob"


async def test_a_bot_that_fails_to_start_leaves_nothing_running():
    from chatopsbot.config import ConfigError

    harness = BotHarness(config={"plugins": {"nobody": {"x": 1}}})
    with pytest.raises(ConfigError, match=r"plugins\.nobody: no installed plugin"):
        await harness.start()
    host, port = harness.zoom.url.removeprefix("http://").split(":")
    with pytest.raises(OSError):  # the fake Zoom's port is closed again
        await asyncio.open_connection(host, int(port))
