"""``chatopsbot shell``: talk to the real bot in a terminal, no Zoom account needed.

The bot runs with its real plugins, storage and outbound layer against the fake Zoom on
loopback; what you type goes in as a signed slash-command webhook from the user and channel you
choose, and what the fake Zoom receives is printed: cards with numbered buttons, private replies
marked with who sees them, edits as updates of an earlier card.
"""

from __future__ import annotations

import asyncio
import datetime
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
        kind = str(block.get("type"))
        if kind == "message":
            self._message(block, indent)
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
            self._select(message, block, indent)
        elif kind == "section":
            for child in block.get("sections", []):
                self._block(message, child, indent + "  ")
            self._footer(block, indent + "  ")
        elif kind == "page":
            pages = block.get("pages", [])
            for page in pages:
                self._say(f"{indent}(page {page.get('pageNo')} of {len(pages)})")
                for child in page.get("body", []):
                    self._block(message, child, indent + "  ")
        else:
            line = _line(kind, block)
            self._say(f"{indent}{line}" if line is not None else f"{indent}[{kind}]")

    def _message(self, block: Mapping[str, Any], indent: str) -> None:
        lines = str(block.get("text", "")).splitlines() or [""]
        if block.get("link"):
            lines[-1] += f" <{block['link']}>"
        if block.get("editable"):
            lines[-1] += " (editable)"
        for line in lines:
            self._say(f"{indent}{line}")

    def _select(self, message: Message, block: Mapping[str, Any], indent: str) -> None:
        source = block.get("static_source")
        if source:
            # Zoom fills these in from its directory; the shell has none to offer.
            self._say(f"{indent}{block.get('text', '')} <a {source[:-1]} to pick>")
            return
        options = []
        for item in block.get("select_items", []):
            options.append(f"<{self._control('option', message, item['text'])}: {item['text']}>")
        self._say(f"{indent}{block.get('text', '')} " + " ".join(options))

    def _footer(self, block: Mapping[str, Any], indent: str) -> None:
        parts = [str(block["footer"])] if block.get("footer") else []
        if isinstance(block.get("ts"), int | float):
            when = datetime.datetime.fromtimestamp(block["ts"] / 1000, datetime.UTC)
            parts.append(when.strftime("%Y-%m-%d %H:%M UTC"))
        if parts:
            self._say(f"{indent}-- " + " · ".join(parts))

    def _audience(self, message: Message) -> str:
        if message.visible_to_user:
            seen_by = message.visible_to_user.removeprefix("u-")
            return (
                " (only you see this)" if seen_by == self._user else f" (only {seen_by} sees this)"
            )
        if message.to_jid == user(self._user).jid:
            return " (direct message)"
        return ""


def _line(kind: str, block: Mapping[str, Any]) -> str | None:
    """One line showing a display or form element readably; ``None`` for an unknown one."""
    if kind == "divider":
        return "-" * 20
    if kind == "attachments":
        title = block.get("information", {}).get("title", {}).get("text", "")
        return f"[attachment] {title} <{block.get('resource_url', '')}>".replace("  ", " ")
    if kind == "file":
        title = block.get("title", {})
        description = block.get("description", {}).get("text", "")
        return (
            f"[file] {title.get('text', '')} <{title.get('file_url', '')}> {description}".rstrip()
        )
    if kind == "progress_bar":
        value = float(block.get("value", 0))
        filled = round(value / 10)
        return f"[{'#' * filled}{'.' * (10 - filled)}] {value:g}%"
    if kind == "datepicker":
        return f"[date: {block.get('initial_date', 'choose')}]"
    if kind == "timepicker":
        return f"[time: {block.get('initial_time', 'choose')}]"
    if kind == "radio_buttons":
        chosen = (block.get("initial_option") or {}).get("value")
        marks = [f"({'*' if o['value'] == chosen else ' '}) {o['text']}" for o in block["options"]]
        return "  ".join(marks)
    if kind == "checkboxes":
        on, off = ("[on]", "[off]") if block.get("style") else ("[x]", "[ ]")
        boxes = [
            f"{on if o.get('initial_selected') else off} {o['text']}" for o in block["options"]
        ]
        return "  ".join(boxes)
    if kind == "alert":
        return f"! {str(block.get('level', 'info')).upper()}: {block.get('text', '')}"
    if kind == "images":
        images = block.get("images", [])
        current = images[int(block.get("cur_index", 0))] if images else {}
        alt = f" {current['alt_text']}" if current.get("alt_text") else ""
        shown = f"{int(block.get('cur_index', 0)) + 1}/{len(images)}"
        return f"[image {shown}]{alt} <{current.get('image_url', '')}>"
    if kind == "plain_text_input":
        hint = block.get("value") or block.get("placeholder") or ""
        lines = " (several lines)" if block.get("multiline") else ""
        return f"{block.get('text', '')}: [{hint}]{lines}"
    if kind == "video":
        title = block.get("title", {}).get("text", "")
        return f"[video] {title} <{block.get('video_url', '')}>"
    return None


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
