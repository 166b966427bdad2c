"""``chatopsbot shell``: talk to the real bot in a terminal, no Zoom account needed.

The bot runs with its real plugins, storage and outbound layer against the fake Zoom on
loopback; what you type goes in as a signed slash-command webhook from the user and channel you
choose, and what the fake Zoom receives is printed: cards with numbered buttons, private replies
marked with who sees them, edits as updates of an earlier card. What timers, jobs and plugin
HTTP hooks send is printed when Zoom receives it, while the shell waits for your next line.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import queue
import sys
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TextIO
from urllib.parse import urlsplit

import attrs

from chatopsbot.clock import SystemClock
from chatopsbot.config import Settings
from chatopsbot.testing import BotHarness, channel_jid, user
from chatopsbot.zoom.fake import Message

HELP = """Type a command as you would after the slash command (try: help). Shell commands:
  /as NAME [ID] act as another user (alice, an admin here; bob, ...); with ID, events carry
                that Zoom user id (or JID, if it has an @) so access rules naming it apply
  /in CHANNEL   talk in a channel (#ops, or a JID ...@conference.xmpp.zoom.us);
                /dm for a direct message with the bot
  /click N      press button N of the cards shown
  /pick N       choose dropdown option N
  /hook METHOD PATH [JSON]
                call a plugin's HTTP hook as CI would, signed (v1) with the plugin's
                *_token or *_secret setting: /hook POST /hooks/deploy {"service": "api",
                "environment": "prod", "status": "succeeded"}
  /help         this text;  /quit  leave (or end of input)
Messages from timers, jobs and hooks are printed when they are sent."""

AS_USAGE = (
    "  ! /as NAME [ID]: act as NAME (a test user u-NAME); give ID to use a real Zoom user id "
    "or JID. You are {who}."
)
HOOK_USAGE = "  ! /hook METHOD PATH [JSON], for example: /hook POST /hooks/deploy {...}"
#: How often new requests to the fake Zoom are looked for while the shell waits for input.
WATCH_INTERVAL = 0.05


class LineReader:
    """Lines from a blocking ``read(prompt)`` (``input``), read in a thread of its own.

    The event loop keeps running while a person thinks, so jobs, timers and hooks are served
    and their messages printed. The thread is a daemon: a shell that ends (``/quit``, or the
    bot failing) does not wait for a line nobody will type. One line is read per request, so
    each prompt shows the state after the previous line was handled.
    """

    def __init__(self, read: Callable[[str], str]) -> None:
        self._read = read
        self._requests: queue.SimpleQueue[
            tuple[str, asyncio.Future[str], asyncio.AbstractEventLoop] | None
        ] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    async def __call__(self, prompt: str) -> str:
        """The next line; raises ``EOFError`` at the end of input."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[str] = loop.create_future()
        self._requests.put((prompt, future, loop))
        if self._thread is None:
            self._thread = threading.Thread(target=self._serve, name="shell-input", daemon=True)
            self._thread.start()
        return await future

    def close(self) -> None:
        """Let the thread end once it is not blocked in a read."""
        self._requests.put(None)

    def _serve(self) -> None:
        while (request := self._requests.get()) is not None:
            prompt, future, loop = request
            try:
                line = self._read(prompt)
            except BaseException as exc:
                # EOFError (end of input) and KeyboardInterrupt belong to the waiting loop,
                # which may be closed by now.
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(_fail, future, exc)
                if not isinstance(exc, Exception):
                    return
                continue
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_succeed, future, line)


def _succeed(future: asyncio.Future[str], line: str) -> None:
    if not future.done():
        future.set_result(line)


def _fail(future: asyncio.Future[str], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)


def piped_reader(stream: TextIO, out: TextIO) -> Callable[[str], str]:
    """``read(prompt)`` for input that is not a terminal: each line is echoed after the prompt,
    so the output of a piped script reads as a transcript."""

    def read(prompt: str) -> str:
        line = stream.readline()
        if not line:
            raise EOFError
        print(prompt + line.rstrip("\n"), file=out, flush=True)
        return line

    return read


class Shell:
    """The loop: read a line, send it, print what the bot did (and what it does meanwhile)."""

    def __init__(
        self,
        bot: BotHarness,
        out: TextIO,
        read: Callable[[str], str],
        *,
        hook_secrets: Mapping[str, str] | None = None,
        redraw: Callable[[], str] | None = None,
    ) -> None:
        self._bot = bot
        self._out = out
        self._read = read
        # A plugin's name -> the secret its HTTP hook is signed with.
        self._hook_secrets = dict(hook_secrets or {})
        # On a terminal, what the person had typed so far: redrawn after output arrives.
        self._redraw = redraw
        self._waiting: str | None = None
        self._user = "alice"
        self._user_id: str | None = None
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
        if self._channel and "@" in self._channel:
            where = self._channel
        return f"{self._user} in {where}> "

    async def run(self) -> int:
        """Read until /quit or end of input; return the exit status."""
        self._say("chatopsbot shell: the real bot, a fake Zoom. /help lists the shell commands.")
        reader = LineReader(self._read)
        watcher = asyncio.create_task(self._watch(), name="shell-watch")
        try:
            while True:
                self._waiting = self.prompt
                try:
                    line = await reader(self.prompt)
                except EOFError:
                    self._say()
                    return 0
                finally:
                    self._waiting = None
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
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            reader.close()

    async def _watch(self) -> None:
        """Print what Zoom receives while the shell waits for a line: timers, jobs, hooks."""
        while True:
            await asyncio.sleep(WATCH_INTERVAL)
            if len(self._bot.zoom.requests) > self._seen_requests:
                with self._between_prompts():
                    self._show_new()

    @contextlib.contextmanager
    def _between_prompts(self) -> Iterator[None]:
        """Output that arrives while a prompt is shown goes above it; the prompt is redrawn."""
        waiting = self._waiting
        if waiting is None:
            yield
            return
        if self._redraw is not None:
            # Back to the start of the prompt's line and clear it (a terminal).
            self._out.write("\r\x1b[K")
        else:
            self._say()
        yield
        if self._redraw is not None:
            self._out.write(waiting + self._redraw())
            self._out.flush()

    async def _handle(self, line: str) -> None:
        word, _, rest = line.partition(" ")
        rest = rest.strip()
        if word == "/help":
            self._say(HELP)
        elif word == "/as":
            self._act_as(rest)
        elif word == "/in" and rest:
            self._channel = rest if "@" in rest else rest.lstrip("#").lower()
        elif word == "/dm":
            self._channel = None
        elif word in ("/click", "/pick") and rest.isdigit():
            await self._press(word, int(rest))
        elif word == "/hook":
            await self._hook(rest)
        elif word.startswith("/"):
            self._say(f"  ! unknown shell command {word}; /help lists them")
        else:
            await self._bot.command(
                line, user=self._user, channel=self._shell_channel, **self._who()
            )

    @property
    def _shell_channel(self) -> str | None:
        # A JID is passed on as is below; the harness wants a name here.
        if self._channel and "@" in self._channel:
            return self._channel.split("@", 1)[0]
        return self._channel

    def _who(self) -> dict[str, str]:
        """Event fields that differ from the test user's: a real id or JID, a channel JID."""
        fields = {}
        if self._user_id is not None:
            if "@" in self._user_id:
                fields["user_jid"] = self._user_id
            else:
                fields["user_id"] = self._user_id
        if self._channel and "@" in self._channel:
            fields["to_jid"] = self._channel
        return fields

    def _act_as(self, rest: str) -> None:
        words = rest.split()
        if not words or len(words) > 2:
            who = self._user + (f" ({self._user_id})" if self._user_id else "")
            self._say(AS_USAGE.format(who=who))
            return
        self._user = words[0].lower()
        self._user_id = words[1] if len(words) == 2 else None

    async def _hook(self, rest: str) -> None:
        method, _, rest = rest.partition(" ")
        target, _, body = rest.strip().partition(" ")
        url = urlsplit(target)
        parts = url.path.split("/")
        if not method or len(parts) < 3 or parts[1] != "hooks" or not parts[2]:
            self._say(HOOK_USAGE)
            return
        plugin = parts[2]
        path = url.path[len(f"/hooks/{plugin}") :] + (f"?{url.query}" if url.query else "")
        data = body.strip().encode()
        if data:
            try:
                json.loads(data)
            except ValueError as exc:
                self._say(f"  ! the body is not JSON: {exc}")
                return
        secret = self._hook_secrets.get(plugin)
        if secret:
            result = await self._bot.signed_hook(
                method.upper(),
                plugin,
                path,
                secret=secret,
                data=data,
                delivery_id=f"shell-{uuid.uuid4().hex}",
            )
        else:
            self._say(f"  (no *_token or *_secret in [plugins.{plugin}]: sent unsigned)")
            result = await self._bot.hook(
                method.upper(),
                plugin,
                path,
                data=data,
                headers={"Content-Type": "application/json"} if data else None,
            )
        shown = result.body if isinstance(result.body, str) else json.dumps(result.body)
        self._say(f"  hook {method.upper()} {target}: {result.status} {shown}".rstrip())

    async def _press(self, word: str, number: int) -> None:
        if not 1 <= number <= len(self._controls):
            self._say(f"  ! there is no {number}; the numbers are on the cards above")
            return
        kind, message, label = self._controls[number - 1]
        fields = {k: v for k, v in self._who().items() if k != "to_jid"}
        if kind == "button" and word == "/click":
            await self._bot.click(message, label, user=self._user, **fields)
        elif kind == "option" and word == "/pick":
            await self._bot.select(message, label, user=self._user, **fields)
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
        if message.to_jid.endswith("@xmpp.zoom.us"):
            return f" (direct message to {message.to_jid.split('@', 1)[0]})"
        here = self._channel if self._channel and "@" in self._channel else None
        here = here or (channel_jid(self._channel) if self._channel else None)
        if message.to_jid != here:
            name = message.to_jid.removesuffix("@conference.xmpp.zoom.us")
            return f" (in #{name})" if "@" not in name else f" (in {name})"
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
    settings: Settings | None = None,
    out: TextIO | None = None,
    read: Callable[[str], str] | None = None,
) -> int:
    """Start the bot against a fake Zoom and run the shell on it.

    ``settings`` (a config file's) brings its plugin tables, disabled plugins, access rules,
    command timeout and audit retention; its ``[zoom]``, ``[server]`` and ``[storage]`` are not
    used: the shell talks to the fake Zoom and keeps its data in ``storage``. ``config`` adds
    raw tables on top (tests use it). ``read`` defaults to ``input`` on a terminal, else to
    reading standard input with each line echoed.
    """
    tables = shell_tables(settings) if settings is not None else {}
    for name, values in (config or {}).items():
        tables[name] = {**tables.get(name, {}), **values}
    # Alice (the user you start as) is an admin, so admin-only commands can be tried; /as bob
    # shows what everyone else sees. A config's own admins stay admins.
    access = tables.setdefault("access", {})
    access["admins"] = ["u-alice", *access.get("admins", ())]
    if settings is None:
        # Without a config, the deploy hook gets a token, so /hook POST /hooks/deploy works.
        deploy = tables.setdefault("plugins", {}).setdefault("deploy", {})
        deploy.setdefault("webhook_token", f"shell-{uuid.uuid4().hex}")
    tables["storage"] = {"path": storage}
    output = out or sys.stdout
    redraw = None
    if read is None:
        if sys.stdin.isatty():
            read, redraw = input, _line_buffer()
        else:
            read = piped_reader(sys.stdin, output)
    bot = BotHarness(config=tables, clock=SystemClock())
    async with bot:
        # From the tables as the plugins see them (expanded), not as written.
        secrets = hook_secrets(bot.settings().plugins.tables)
        return await Shell(bot, output, read, hook_secrets=secrets, redraw=redraw).run()


def shell_tables(settings: Settings) -> dict[str, dict[str, Any]]:
    """The raw config tables of ``settings`` that a shell bot takes over (see :func:`run_shell`)."""
    plugins: dict[str, Any] = {"disabled": list(settings.plugins.disabled)}
    plugins.update({name: _thaw(table) for name, table in settings.plugins.tables.items()})
    rules = {}
    for name, rule in settings.access.rules.items():
        fields: dict[str, Any] = {
            k: list(v) for k, v in attrs.asdict(rule).items() if k != "admin_only" and v
        }
        if rule.admin_only is not None:
            fields["admin_only"] = rule.admin_only
        rules[name] = fields
    return {
        "plugins": plugins,
        "access": {"admins": list(settings.access.admins), "commands": rules},
        "commands": {"timeout": settings.commands.timeout},
        "audit": {"keep": settings.audit.keep},
    }


def hook_secrets(plugin_tables: Mapping[str, Any]) -> dict[str, str]:
    """Each plugin's hook secret: the one string setting named ``*_token`` or ``*_secret``."""
    found = {}
    for plugin, table in plugin_tables.items():
        if not isinstance(table, Mapping):
            continue
        candidates = [
            value
            for key, value in table.items()
            if isinstance(value, str) and value and key.endswith(("token", "secret"))
        ]
        if len(candidates) == 1:
            found[plugin] = candidates[0]
    return found


def _thaw(value: Any) -> Any:
    """A frozen config value (read-only mappings, tuples) as TOML would give it.

    Strings are already expanded: a ``${`` left in one (written ``$${``) is escaped again, as
    the harness expands the tables a second time.
    """
    if isinstance(value, Mapping):
        return {k: _thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [_thaw(v) for v in value]
    if isinstance(value, str):
        return value.replace("${", "$${")
    return value


def _line_buffer() -> Callable[[], str]:
    """What the person has typed at the prompt so far, where readline can tell."""
    try:
        import readline
    except ImportError:  # pragma: no cover - Windows without pyreadline
        return lambda: ""
    return readline.get_line_buffer
