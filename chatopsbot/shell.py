"""``chatopsbot shell``: talk to the real bot in a terminal, no Zoom account needed.

The bot runs with its real plugins, storage and outbound layer against the fake Zoom on
loopback; what you type goes in as a signed slash-command webhook from the user and channel you
choose, and what the fake Zoom receives is printed: cards with numbered buttons, private replies
marked with who sees them, edits as updates of an earlier card.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Mapping
from typing import Any, TextIO

from chatopsbot.clock import SystemClock
from chatopsbot.testing import BotHarness, user
from chatopsbot.zoom.fake import Message

HELP = """Type a command as you would after the slash command (try: help). Shell commands:
  /as NAME      act as another user (alice, an admin here; bob, ...)
  /in CHANNEL   talk in a channel (#ops); /dm for a direct message with the bot
  /click N      press button N of the cards shown
  /pick N       choose dropdown option N
  /help         this text;  /quit  leave (or end of input)"""


class Shell:
    """The loop: read a line, send it, print what the bot did."""

    def __init__(self, bot: BotHarness, out: TextIO, read: Callable[[str], str]) -> None:
        self._bot = bot
        self._out = out
        self._read = read
        self._user = "alice"
        self._channel: str | None = "ops"
        self._controls: list[tuple[str, Message, str]] = []
        self._control_numbers: dict[tuple[str, str, str], int] = {}
        self._numbers: dict[str, int] = {}
        self._seen_requests = 0

    def _say(self, text: str = "") -> None:
        print(text, file=self._out, flush=True)

    @property
    def prompt(self) -> str:
        where = f"#{self._channel}" if self._channel else "DM"
        return f"{self._user} in {where}> "

    async def run(self) -> int:
        """Read until /quit or end of input; return the exit status."""
        self._say("chatopsbot shell: the real bot, a fake Zoom. /help lists the shell commands.")
        loop = asyncio.get_running_loop()
        while True:
            try:
                line = await loop.run_in_executor(None, self._read, self.prompt)
            except EOFError:
                self._say()
                return 0
            line = line.strip()
            if not line:
                continue
            if line in ("/quit", "/exit"):
                return 0
            try:
                await self._handle(line)
            except AssertionError as exc:
                self._say(f"  ! {exc}")
            await self._bot.settle()
            self._show_new()

    async def _handle(self, line: str) -> None:
        word, _, rest = line.partition(" ")
        rest = rest.strip()
        if word == "/help":
            self._say(HELP)
        elif word == "/as" and rest:
            self._user = rest.lower()
        elif word == "/in" and rest:
            self._channel = rest.lstrip("#").lower()
        elif word == "/dm":
            self._channel = None
        elif word in ("/click", "/pick") and rest.isdigit():
            await self._press(word, int(rest))
        elif word.startswith("/"):
            self._say(f"  ! unknown shell command {word}; /help lists them")
        else:
            await self._bot.command(line, user=self._user, channel=self._channel)

    async def _press(self, word: str, number: int) -> None:
        if not 1 <= number <= len(self._controls):
            self._say(f"  ! there is no {number}; the numbers are on the cards above")
            return
        kind, message, label = self._controls[number - 1]
        if kind == "button" and word == "/click":
            await self._bot.click(message, label, user=self._user)
        elif kind == "option" and word == "/pick":
            await self._bot.select(message, label, user=self._user)
        else:
            self._say(f"  ! {number} is a {kind}: use {'/click' if kind == 'button' else '/pick'}")

    def _show_new(self) -> None:
        requests = self._bot.zoom.requests[self._seen_requests :]
        self._seen_requests += len(requests)
        for request in requests:
            if request.status >= 300:
                self._say(f"  ! Zoom answered {request.status} to {request.method} {request.path}")
            elif request.method == "POST" and request.message_id:
                self._show(self._bot.zoom.messages[request.message_id])
            elif request.method == "PUT":
                message = self._bot.zoom.messages.get(request.path.rsplit("/", 1)[-1])
                if message is not None:
                    self._show(message, updated=True)
            elif request.method == "DELETE":
                self._say(f"  (deleted [{self._number_by_path(request.path)}])")

    def _number(self, message: Message) -> int:
        return self._numbers.setdefault(message.message_id, len(self._numbers) + 1)

    def _number_by_path(self, path: str) -> int | str:
        return self._numbers.get(path.rsplit("/", 1)[-1], "?")

    def _control(self, kind: str, message: Message, label: str) -> int:
        """The number of a button or option; an updated card keeps its buttons' numbers."""
        key = (kind, message.message_id, label)
        if key not in self._control_numbers:
            self._controls.append((kind, message, label))
            self._control_numbers[key] = len(self._controls)
        return self._control_numbers[key]

    def _show(self, message: Message, *, updated: bool = False) -> None:
        number = self._number(message)
        who = self._audience(message)
        self._say(f"  [{number}] bot{who}{' (updated)' if updated else ''}:")
        content: Mapping[str, Any] = message.content
        head = content.get("head")
        if isinstance(head, dict):
            self._say(f"    ** {head.get('text', '')} **")
            sub = head.get("sub_head")
            if isinstance(sub, dict):
                self._say(f"    {sub.get('text', '')}")
        for block in content.get("body", []):
            self._block(message, block, "    ")

    def _block(self, message: Message, block: Mapping[str, Any], indent: str) -> None:
        kind = block.get("type")
        if kind == "message":
            for line in str(block.get("text", "")).splitlines() or [""]:
                self._say(f"{indent}{line}")
        elif kind == "fields":
            for item in block.get("items", []):
                mark = " (editable)" if item.get("editable") else ""
                self._say(f"{indent}{item.get('key')}: {item.get('value')}{mark}")
        elif kind == "actions":
            labels = []
            for item in block.get("items", []):
                labels.append(f"[{self._control('button', message, item['text'])}: {item['text']}]")
            self._say(indent + " ".join(labels))
        elif kind == "select":
            options = []
            for item in block.get("select_items", []):
                options.append(
                    f"<{self._control('option', message, item['text'])}: {item['text']}>"
                )
            self._say(f"{indent}{block.get('text', '')} " + " ".join(options))
        elif kind == "divider":
            self._say(f"{indent}" + "-" * 20)
        elif kind == "attachments":
            self._say(f"{indent}[attachment] {block.get('resource_url', '')}")
        elif kind == "section":
            for child in block.get("sections", []):
                self._block(message, child, indent + "  ")

    def _audience(self, message: Message) -> str:
        if message.visible_to_user:
            seen_by = message.visible_to_user.removeprefix("u-")
            return (
                " (only you see this)" if seen_by == self._user else f" (only {seen_by} sees this)"
            )
        if message.to_jid == user(self._user).jid:
            return " (direct message)"
        return ""


async def run_shell(
    *,
    storage: str,
    config: Mapping[str, Mapping[str, Any]] | None = None,
    out: TextIO | None = None,
    read: Callable[[str], str] = input,
) -> int:
    """Start the bot against a fake Zoom and run the shell on it."""
    # Alice (the user you start as) is an admin, so admin-only commands can be tried; /as bob
    # shows what everyone else sees.
    merged = {"access": {"admins": ["u-alice"]}, **(config or {}), "storage": {"path": storage}}
    bot = BotHarness(config=merged, clock=SystemClock())
    async with bot:
        return await Shell(bot, out or sys.stdout, read).run()
