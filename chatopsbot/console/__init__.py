"""``chatopsbot console``: the real bot against the fake Zoom, seen in a browser as Zoom draws it.

The page is served by the bot's own aiohttp application on loopback; what a person does there
(type a command, press a button, pick an option, call a plugin hook) goes in through the same
signed HTTP paths Zoom and CI use, and what the fake Zoom receives comes back live.
"""

from __future__ import annotations

from chatopsbot.console.launcher import run_console
from chatopsbot.console.server import Console
from chatopsbot.console.settings import console_settings

__all__ = ["Console", "console_settings", "run_console"]
