"""The bot in a process of its own, for ``tests/test_durability.py`` (which may kill it).

    python tests/durability_bot.py CONFIG.json

``CONFIG.json`` holds the config sections as :func:`chatopsbot.config.parse_settings` takes them;
``[plugins.durability] control`` names a directory shared with the test. The app is built with
:func:`chatopsbot.app.create_app` and served with aiohttp, as ``benchmarks/bench.py`` ``_serve``
does; once it listens, ``<control>/port`` holds ``"<pid> <port>"``. SIGTERM or SIGINT stops it the
way ``chatopsbot run`` stops (drain included). Logs go to stderr in the plain format.

Besides the installed plugins it loads ``durability``, whose commands help the tests:

- ``echo WORDS...`` answers the words in the conversation;
- ``block NAME`` appends NAME to ``<control>/runs`` and answers ``released NAME`` once the file
  ``<control>/release`` exists (so a test can kill the bot while a handler runs).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

from aiohttp import web

from chatopsbot import Arg, Command, Context, PluginConfigError, Text, command, hookimpl
from chatopsbot.app import create_app
from chatopsbot.config import Settings, parse_settings
from chatopsbot.logs import configure_logging
from chatopsbot.plugins import Plugins, load_plugins

#: How often ``block`` looks for its release file.
POLL_SECONDS = 0.05


@command("echo", help="Answer the words in the conversation", args=(Arg("words", variadic=True),))
async def echo(ctx: Context) -> Text:
    return Text(" ".join(ctx.args["words"]))


@command("block", help="Wait for <control>/release, then answer", args=(Arg("name"),))
async def block(ctx: Context) -> Text:
    control: Path = ctx.config
    name: str = ctx.args["name"]
    with (control / "runs").open("a", encoding="utf-8") as runs:
        runs.write(name + "\n")
    while not (control / "release").exists():  # noqa: ASYNC110 - a file, not an event
        await asyncio.sleep(POLL_SECONDS)
    return Text(f"released {name}")


class DurabilityPlugin:
    """The test plugin: ``[plugins.durability] control`` is the shared directory."""

    @hookimpl
    def chatops_config(self, config: dict[str, Any]) -> Path:
        control = config.get("control")
        if not isinstance(control, str) or not os.path.isdir(control):
            raise PluginConfigError("control", "expected an existing directory")
        return Path(control)

    @hookimpl
    def chatops_commands(self) -> list[Command]:
        return [echo, block]


async def serve(settings: Settings, plugins: Plugins, control: Path) -> None:
    """Serve until SIGTERM or SIGINT, then stop as ``chatopsbot run`` does."""
    app = create_app(settings, plugins=plugins)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=settings.outbound.drain_timeout)
    await runner.setup()
    try:
        site = web.TCPSite(runner, settings.server.host, settings.server.port)
        await site.start()
        port = runner.addresses[0][1]
        # Written whole, then renamed: the test never reads half a line.
        partial = control / "port.partial"
        partial.write_text(f"{os.getpid()} {port}\n", encoding="utf-8")
        partial.replace(control / "port")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: list[str]) -> int:
    """Run the bot described by the config file ``argv[0]``."""
    if len(argv) != 1:
        print("usage: durability_bot.py CONFIG.json", file=sys.stderr)
        return 2
    source = argv[0]
    data = json.loads(Path(source).read_text(encoding="utf-8"))
    settings = parse_settings(data, source=source, environ={})
    configure_logging(settings.logging.format, settings.logging.level)
    plugins = load_plugins(
        settings.plugins, source=source, extra={"durability": DurabilityPlugin()}
    )
    control = Path(settings.plugins.tables["durability"]["control"])
    asyncio.run(serve(settings, plugins, control))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
