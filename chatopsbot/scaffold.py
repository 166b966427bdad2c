"""``chatopsbot new-plugin NAME``: a ready-to-install plugin package with a passing test."""

from __future__ import annotations

import re
from pathlib import Path

from chatopsbot.errors import UserError

__all__ = ["ScaffoldError", "write_plugin"]

_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")


class ScaffoldError(UserError):
    """The plugin cannot be written (bad name, folder exists); the message says why."""


def write_plugin(name: str, parent: Path) -> Path:
    """Write ``chatopsbot-<name>/`` under ``parent`` and return its path."""
    if not _NAME.match(name):
        raise ScaffoldError(
            f"plugin name {name!r}: use lower-case letters, digits, - or _, starting with a letter"
        )
    plugin = name.replace("-", "_")
    package = f"chatopsbot_{plugin}"
    root = parent / f"chatopsbot-{name}"
    if root.exists():
        raise ScaffoldError(f"{root} already exists")
    files = {
        "pyproject.toml": _PYPROJECT,
        "README.md": _README,
        f"src/{package}/__init__.py": _MODULE,
        f"tests/test_{plugin}.py": _TEST,
    }
    for relative, template in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(template.format(name=name, plugin=plugin, package=package))
    return root


_PYPROJECT = """\
[build-system]
requires = ["hatchling>=1.25"]
build-backend = "hatchling.build"

[project]
name = "chatopsbot-{name}"
version = "0.1.0"
description = "A chatopsbot plugin: {name}"
requires-python = ">=3.11"
dependencies = ["chatopsbot"]

[project.optional-dependencies]
test = ["pytest>=8.3", "pytest-asyncio>=0.24"]

# This line is what makes chatopsbot find the plugin; "{plugin}" is its name in the config.
[project.entry-points.chatopsbot]
{plugin} = "{package}"

[tool.hatch.build.targets.wheel]
packages = ["src/{package}"]

[tool.pytest.ini_options]
asyncio_mode = "auto"
asyncio_default_fixture_loop_scope = "function"
"""

_README = """\
# chatopsbot-{name}

A [chatopsbot](https://github.com/) plugin. Install it beside the bot and it is found through
the `chatopsbot` entry-point group:

    pip install -e '.[test]'
    chatopsbot plugins          # lists {plugin}
    python -m pytest            # runs its tests against a fake Zoom

While chatopsbot is not on your package index, name where it is in the same command:
`pip install /path/to/chatopsbot -e '.[test]'` (a checkout) or
`pip install /path/to/chatopsbot-<version>-py3-none-any.whl -e '.[test]'` (a wheel).

Its commands: `{name} hello [who]`. Configure it under `[plugins.{plugin}]`.
"""

_MODULE = '''\
"""The {plugin} plugin for chatopsbot."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from attrs import field, frozen, validators

from chatopsbot import Arg, Command, Context, Text, command, hookimpl, load_config


@frozen
class Settings:
    """[plugins.{plugin}]: an optional ``greeting``."""

    greeting: str = field(default="Hello", validator=validators.min_len(1))


@command(
    "{name} hello",
    help="Say hello",
    args=(Arg("who", required=False, help="whom to greet (default: you)"),),
    examples=("{name} hello", "{name} hello Bob"),
)
async def hello(ctx: Context) -> Text:
    """Greet someone, with the greeting from the config."""
    settings: Settings = ctx.config
    who = ctx.args["who"] or ctx.actor.name
    return Text(f"{{settings.greeting}}, {{who}}!")


@hookimpl
def chatops_config(config: Mapping[str, Any]) -> Settings:
    """[plugins.{plugin}], read into :class:`Settings` (the framework checks it)."""
    return load_config(Settings, config)


@hookimpl
def chatops_commands() -> Iterable[Command]:
    """The commands of this plugin."""
    return [hello]
'''

_TEST = '''\
"""Tests through the real bot and a fake Zoom, with chatopsbot's test kit."""

from __future__ import annotations

import {package}
from chatopsbot.testing import BotHarness


async def test_hello_greets_the_caller_or_someone():
    async with BotHarness({{"{plugin}": {package}}}, installed=False) as bot:
        assert (await bot.command("{name} hello", user="alice")).only().text == "Hello, Alice!"
        assert (await bot.command("{name} hello Bob")).only().text == "Hello, Bob!"


async def test_the_greeting_comes_from_the_config():
    config = {{"plugins": {{"{plugin}": {{"greeting": "Hi"}}}}}}
    async with BotHarness({{"{plugin}": {package}}}, config=config, installed=False) as bot:
        assert (await bot.command("{name} hello")).only().text == "Hi, Alice!"
'''
