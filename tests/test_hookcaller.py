"""Hooks plugins offer each other: async answers are awaited before they count."""

from __future__ import annotations

import inspect
import sys
import types

import pluggy
import pytest

from chatopsbot import Arg, Context, Text, command, hookimpl, hookspec
from chatopsbot.hookcaller import HookCaller
from chatopsbot.hookspecs import PROJECT


@hookspec(firstresult=True)
def chatops_weather(city: str) -> str | None:
    """Answer with the weather in ``city``, or ``None``."""
    raise NotImplementedError


class Sunny:
    @hookimpl
    def chatops_weather(self, city: str) -> str | None:
        return "sunny" if city == "Lisbon" else None


class AsyncNobody:
    @hookimpl
    async def chatops_weather(self, city: str) -> str | None:
        return None


class AsyncRainy:
    @hookimpl(tryfirst=True)
    async def chatops_weather(self, city: str) -> str | None:
        return "rainy" if city == "Bergen" else None


def caller(*plugins: object) -> tuple[HookCaller, pluggy.PluginManager]:
    manager = pluggy.PluginManager(PROJECT)
    module = types.ModuleType("weather_specs")
    module.chatops_weather = chatops_weather  # type: ignore[attr-defined]
    sys.modules.setdefault("weather_specs", module)
    manager.add_hookspecs(module)
    for plugin in plugins:
        manager.register(plugin)
    return HookCaller(manager), manager


async def test_an_async_implementation_answering_none_does_not_win():
    hooks, manager = caller(Sunny(), AsyncNobody())
    # pluggy alone: the coroutine of the last registered implementation "answers".
    wrong = manager.hook.chatops_weather(city="Lisbon")
    assert inspect.iscoroutine(wrong)
    wrong.close()
    assert await hooks.first(chatops_weather, city="Lisbon") == "sunny"
    assert await hooks.first(chatops_weather, city="Oslo") is None


async def test_order_is_pluggys_and_collect_gathers_every_answer():
    hooks, _ = caller(Sunny(), AsyncNobody(), AsyncRainy())
    assert await hooks.first(chatops_weather, city="Bergen") == "rainy"  # tryfirst
    assert await hooks.collect(chatops_weather, city="Lisbon") == ["sunny"]


async def test_a_missing_hook_or_positional_arguments_are_errors():
    hooks, _ = caller(Sunny())

    def chatops_unknown(x: int) -> None:
        """Not registered."""

    with pytest.raises(LookupError, match="no hook 'chatops_unknown'"):
        await hooks.first(chatops_unknown, x=1)
    with pytest.raises(TypeError, match="keyword arguments"):
        await hooks.first(chatops_weather, "Lisbon")


# Through a running bot: one plugin offers a hook (chatops_hookspecs), two implement it.


class Forecast:
    @hookimpl
    def chatops_hookspecs(self) -> list[object]:
        module = types.ModuleType("forecast_specs")
        module.chatops_weather = chatops_weather  # type: ignore[attr-defined]
        return [module]

    @hookimpl
    def chatops_commands(self) -> list[object]:
        @command("weather", help="Ask the other plugins", args=(Arg("city"),))
        async def weather(ctx: Context) -> Text:
            answer = await ctx.hooks.first(chatops_weather, city=ctx.args["city"])
            every = await ctx.hooks.collect(chatops_weather, city=ctx.args["city"])
            return Text(f"{answer} ({len(every)} answered)")

        return [weather]


async def test_a_hook_offered_by_a_plugin_is_answered_by_others_through_ctx_hooks(start_bot):
    bot = await start_bot(extra={"forecast": Forecast(), "sunny": Sunny(), "nobody": AsyncNobody()})
    [reply] = await bot.command("weather Lisbon")
    assert reply.text == "sunny (1 answered)"
    [reply] = await bot.command("weather Oslo")
    assert reply.text == "None (0 answered)"
