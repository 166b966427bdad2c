"""Plugin loading: entry points, disabled plugins, config hand-off, broken plugins named."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

import pytest

from chatopsbot import Context, PluginConfigError, Text, command, hookimpl
from chatopsbot.config import ConfigError, PluginSettings
from chatopsbot.plugins import PluginError, load_plugins


@command("hello", help="Greets")
async def hello(ctx: Context) -> Text:
    return Text("hi")


class Greeter:
    @hookimpl
    def chatops_commands(self) -> list[Any]:
        return [hello]

    @hookimpl
    def chatops_config(self, config: Any) -> dict[str, Any]:
        if "teams" in config and not isinstance(config["teams"], str):
            raise PluginConfigError("teams.platform.timezone", "unknown time zone 'Mars/Base'")
        return {"greeting": config.get("greeting", "hi")}


def settings(disabled: tuple[str, ...] = (), **tables: Any) -> PluginSettings:
    return PluginSettings(disabled, MappingProxyType(tables))


def test_builtins_come_from_the_entry_point_group():
    plugins = load_plugins(settings())
    core = next(p for p in plugins.info if p.name == "core")
    assert core.enabled
    assert core.source == "chatopsbot_core"
    assert core.version.startswith("chatopsbot ")
    assert set(core.commands) == {"audit", "help", "ping", "whoami"}
    ping = plugins.commands.find("ping")
    assert ping is not None
    assert ping.plugin == "core"


def test_a_disabled_plugin_is_listed_but_not_loaded():
    plugins = load_plugins(settings(disabled=("core",)))
    assert plugins.commands.find("ping") is None
    assert not next(p for p in plugins.info if p.name == "core").enabled
    assert plugins.manager.is_blocked("core")


def test_the_plugin_table_goes_to_its_plugin_and_the_result_to_handlers():
    plugins = load_plugins(settings(greeter={"greeting": "hey"}), extra={"greeter": Greeter()})
    assert plugins.configs["greeter"] == {"greeting": "hey"}
    assert plugins.configs["core"] is None
    without = load_plugins(settings(), extra={"greeter": Greeter()})
    assert without.configs["greeter"] == {"greeting": "hi"}


def test_a_plugin_config_error_names_the_full_key():
    with pytest.raises(ConfigError) as info:
        load_plugins(
            settings(greeter={"teams": {}}), source="bot.toml", extra={"greeter": Greeter()}
        )
    assert str(info.value) == (
        "bot.toml: plugins.greeter.teams.platform.timezone: unknown time zone 'Mars/Base'"
    )


def test_a_command_name_clash_names_both_plugins():
    class Other:
        @hookimpl
        def chatops_commands(self) -> list[Any]:
            return [hello]

    with pytest.raises(PluginError) as info:
        load_plugins(settings(), extra={"greeter": Greeter(), "other": Other()})
    assert str(info.value) == (
        "command 'hello' from plugin 'other' clashes with the one from plugin 'greeter'"
    )


def test_a_plugin_that_breaks_at_startup_is_named():
    class Broken:
        @hookimpl
        def chatops_commands(self) -> list[Any]:
            raise RuntimeError("database unreachable")

    with pytest.raises(PluginError) as info:
        load_plugins(settings(), extra={"broken": Broken()})
    assert "plugin 'broken' failed in chatops_commands" in str(info.value)
    assert "database unreachable" in str(info.value)


def test_a_plugin_returning_something_else_than_commands_is_named():
    class Sloppy:
        @hookimpl
        def chatops_commands(self) -> list[Any]:
            return ["hello"]

    with pytest.raises(PluginError, match="plugin 'sloppy': chatops_commands returned a str"):
        load_plugins(settings(), extra={"sloppy": Sloppy()})


def test_a_plugin_with_a_misspelt_hook_is_refused():
    class Typo:
        @hookimpl
        def chatops_comands(self) -> list[Any]:
            return []

    with pytest.raises(PluginError, match=r"plugin 'typo'.*chatops_comands"):
        load_plugins(settings(), extra={"typo": Typo()})


@pytest.mark.parametrize("name", ["chatopsbot", "chatopsbot:timers", "a:b"])
def test_names_that_could_reach_the_runtimes_storage_are_refused(name):
    from chatopsbot.config import PluginSettings
    from chatopsbot.plugins import PluginError, load_plugins

    with pytest.raises(PluginError, match="reserved or contains ':'"):
        load_plugins(PluginSettings(), source="t", extra={name: object()}, entry_points=False)
