"""A plugin under test that is also installed (``pip install -e .``, the usual case): the test
kit runs the object the test gives, not a second copy found through the entry point.

The installed copy is a real distribution: a ``.dist-info`` with an ``entry_points.txt`` in a
directory put on ``sys.path``, found by :mod:`importlib.metadata` as pip's would be.
"""

from __future__ import annotations

import importlib.metadata
import sys
from pathlib import Path
from typing import Any

import pytest

from chatopsbot import Context, Text, command, hookimpl
from chatopsbot.app import PLUGINS
from chatopsbot.config import PluginSettings
from chatopsbot.plugins import PluginError, load_plugins
from chatopsbot.testing import BotHarness

INSTALLED = """
from chatopsbot import Context, Text, command, hookimpl

IMPORTED = True


class Twin:
    @hookimpl
    def chatops_commands(self):
        @command("twin", help="Which copy answers")
        async def twin(ctx: Context) -> Text:
            return Text("the installed copy")

        return [twin]
"""


class GivenTwin:
    """The copy a test passes in: what the author is changing right now."""

    @hookimpl
    def chatops_commands(self) -> list[Any]:
        @command("twin", help="Which copy answers")
        async def twin(ctx: Context) -> Text:
            return Text("the given copy")

        return [twin]


@pytest.fixture
def installed_twin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """chatopsbot-twin 0.1, installed into a directory on sys.path with its entry point."""
    site = tmp_path / "site"
    (site / "chatopsbot_twin").mkdir(parents=True)
    (site / "chatopsbot_twin" / "__init__.py").write_text(INSTALLED)
    info = site / "chatopsbot_twin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: chatopsbot-twin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[chatopsbot]\ntwin = chatopsbot_twin:Twin\n")
    monkeypatch.syspath_prepend(str(site))
    # The installed module must not linger for the next test: each test imports it afresh.
    monkeypatch.delitem(sys.modules, "chatopsbot_twin", raising=False)
    return site


def test_the_installed_copy_is_a_real_entry_point(installed_twin):
    [ep] = importlib.metadata.entry_points(group="chatopsbot", name="twin")
    assert ep.dist is not None
    assert (ep.dist.name, ep.dist.version) == ("chatopsbot-twin", "0.1")
    plugins = load_plugins(PluginSettings())
    assert [i.version for i in plugins.info if i.name == "twin"] == ["chatopsbot-twin 0.1"]


async def test_the_harness_runs_the_installed_copy_when_given_none(installed_twin):
    async with BotHarness() as bot:
        assert (await bot.command("twin")).only().text == "the installed copy"


async def test_the_harness_uses_the_given_plugin_instead_of_the_installed_one(installed_twin):
    async with BotHarness({"twin": GivenTwin()}) as bot:
        assert (await bot.command("twin")).only().text == "the given copy"
        # The installed copy's code never ran: not even imported.
        assert "chatopsbot_twin" not in sys.modules
        # The other installed plugins are still there.
        assert (await bot.command("ping")).only().text == "pong"
        [info] = [i for i in bot.client.app[PLUGINS].info if i.name == "twin"]
        assert info.source == "GivenTwin"


async def test_the_fixture_uses_the_given_plugin_too(installed_twin, chatopsbot_bot):
    bot = await chatopsbot_bot(plugins={"twin": GivenTwin()})
    assert (await bot.command("twin")).only().text == "the given copy"


def test_two_installed_plugins_with_one_name_are_still_refused(installed_twin):
    info = installed_twin / "chatopsbot_twin2-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: chatopsbot-twin2\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[chatopsbot]\ntwin = chatopsbot_twin:Twin\n")
    with pytest.raises(PluginError, match="two plugins are named 'twin'"):
        load_plugins(PluginSettings())
