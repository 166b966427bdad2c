"""The shell as a user meets it: a production config's plugins and rules, /as and /hook, and
messages from timers and hooks printed while it waits for the next line."""

from __future__ import annotations

import io
import subprocess
import sys
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from chatopsbot import Context, PluginContext, Text, command, hookimpl, timer
from chatopsbot.cli import main
from chatopsbot.clock import SystemClock
from chatopsbot.config import load_settings
from chatopsbot.shell import Shell, hook_secrets, run_shell, shell_tables
from chatopsbot.testing import ACCOUNT, BotHarness, channel_jid
from chatopsbot.values import Conversation

CONFIG = """
[zoom]
client_id = "cid"
client_secret = "${ZOOM_CLIENT_SECRET}"
bot_jid = "bot@xmpp.zoom.us"
secret_token = "${ZOOM_SECRET_TOKEN}"

[storage]
url = "postgresql://bot:${PGPASSWORD}@db.invalid:5432/bot"

[plugins.deploy]
webhook_token = "${DEPLOY_WEBHOOK_TOKEN}"

[plugins.oncall.teams.platform]
members = ["Alice", "Bob", "Carol"]
rotation = "weekly"
start = "2026-01-05T09:00"
timezone = "Europe/Berlin"

[access.commands."deploy lock"]
deny_users = ["u-bob"]

[access.commands."oncall"]
allow_users = ["KdYKjnimT4KPd8KKdQt9FQ"]
"""
SHELL = [sys.executable, "-m", "chatopsbot.cli", "shell"]
EVENT = '{"service": "api", "environment": "prod", "version": "1.2.3", "status": "succeeded"}'


def reader(*lines: str) -> Callable[[str], str]:
    queue = list(lines)

    def read(prompt: str) -> str:
        if not queue:
            raise EOFError
        return queue.pop(0)

    return read


def test_the_cli_shell_runs_a_production_config_on_piped_input(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text(CONFIG)
    script = "\n".join(
        [
            "/as bob",
            "oncall",
            "deploy lock api prod",
            "/as dana KdYKjnimT4KPd8KKdQt9FQ",
            "oncall",
            "/as alice",
            "deploy subscribe api",
            f"/hook POST /hooks/deploy {EVENT}",
        ]
    )
    result = subprocess.run(  # noqa: S603 - our own CLI
        [*SHELL, "--config", str(path), "--storage", str(tmp_path / "shell.db")],
        input=script + "\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        # No Zoom or database secrets on a laptop: only what the plugins' tables use.
        env={"DEPLOY_WEBHOOK_TOKEN": "tok-laptop", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    # The access rule of the config: oncall only for the listed user id.
    assert "bob in #ops> oncall\n  [1] bot (only you see this):\n    You may not run oncall" in out
    assert "bob in #ops> deploy lock api prod\n  [2] bot (only you see this):\n" in out
    assert "You may not run deploy lock here." in out
    # /as with a real id: the rule naming it applies; the on-call team comes from the config.
    assert "dana in #ops> oncall\n  [3] bot:\n    platform: " in out
    # The hook is signed with the config's webhook_token, as CI would sign it.
    assert "hook POST /hooks/deploy: 202 " in out
    assert "    ** api → prod **" in out
    assert "tok-laptop" not in out + result.stderr
    assert not (tmp_path / "db.invalid").exists()


def test_a_bad_config_stops_the_shell_with_the_usual_list(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text(
        CONFIG + '\n[access.commands."deplyo"]\nadmin_only = true\n[logging]\nlvl = 1\n'
    )
    result = subprocess.run(  # noqa: S603 - our own CLI
        [*SHELL, "--config", str(path)],
        input="",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"DEPLOY_WEBHOOK_TOKEN": "tok", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"{path}: logging.lvl: unknown key (did you mean level?)",
    ]


def test_shell_tables_carry_plugins_rules_and_hook_secrets(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text(CONFIG)
    settings = load_settings(
        path,
        {"ZOOM_CLIENT_SECRET": "s", "ZOOM_SECRET_TOKEN": "t"}
        | {"PGPASSWORD": "p", "DEPLOY_WEBHOOK_TOKEN": "tok"},
    )
    tables = shell_tables(settings)
    assert tables["plugins"]["oncall"]["teams"]["platform"]["members"] == ["Alice", "Bob", "Carol"]
    assert tables["access"]["commands"]["deploy lock"] == {"deny_users": ["u-bob"]}
    assert "zoom" not in tables
    assert "storage" not in tables
    assert hook_secrets(tables["plugins"]) == {"deploy": "tok"}


async def test_a_literal_dollar_brace_in_a_plugin_table_stays_literal(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text(CONFIG.replace("${DEPLOY_WEBHOOK_TOKEN}", "tok-$${NOT_A_VAR}"))
    env = {"ZOOM_CLIENT_SECRET": "s", "ZOOM_SECRET_TOKEN": "t", "PGPASSWORD": "p"}
    settings = load_settings(path, env)
    out = io.StringIO()
    await run_shell(
        storage=":memory:",
        settings=settings,
        out=out,
        read=reader("ping", f"/hook POST /hooks/deploy {EVENT}"),
    )
    assert "pong" in out.getvalue()
    # Signed with the token as the plugin reads it: tok-${NOT_A_VAR}, literally.
    assert "hook POST /hooks/deploy: 202 " in out.getvalue()


async def test_as_without_a_name_says_how_to_use_it(tmp_path):
    out = io.StringIO()
    await run_shell(storage=":memory:", out=out, read=reader("/as", "/as bob", "/as", "whoami"))
    text = out.getvalue()
    assert "! /as NAME [ID]: act as NAME (a test user u-NAME); give ID to use a real Zoom " in text
    assert "You are alice." in text
    assert "You are bob." in text


async def test_hook_without_a_config_uses_the_shells_own_deploy_token(tmp_path):
    out = io.StringIO()
    await run_shell(
        storage=":memory:",
        out=out,
        read=reader(
            "deploy subscribe api",
            "/in #random",
            f"/hook POST /hooks/deploy {EVENT}",
            "/in ops@conference.xmpp.zoom.us",
            "ping",
            "/hook POST /hooks/deploy {nope",
            "/hook POST deploy",
            "/hook GET /hooks/nobody",
        ),
    )
    text = out.getvalue()
    assert "hook POST /hooks/deploy: 202 " in text
    # Announced in #ops, where it was subscribed, while the shell is in #random.
    assert "  [2] bot (in #ops):\n    ** api → prod **" in text
    assert "    Version: 1.2.3" in text
    # A channel given by its JID: replies there are "here".
    assert "  [3] bot:\n    pong" in text
    assert "! the body is not JSON: " in text
    assert "! /hook METHOD PATH [JSON], for example" in text
    assert "(no *_token or *_secret in [plugins.nobody]: sent unsigned)" in text
    assert "hook GET /hooks/nobody: 404" in text


OPS = Conversation(ACCOUNT, channel_jid("ops"), "ops")


class Reminder:
    """A command that sets a timer a moment ahead: its message comes while the shell waits."""

    @hookimpl
    def chatops_commands(self) -> list[Any]:
        @command("remind", help="Remind this channel in a moment")
        async def remind(ctx: Context) -> Text:
            await ctx.timers.schedule("ring", ctx.clock.now() + timedelta(seconds=0.3), "tea!")
            return Text("ok, in a moment")

        return [remind]

    @hookimpl
    def chatops_jobs(self) -> list[Any]:
        @timer("ring")
        async def ring(ctx: PluginContext, payload: Any) -> None:
            await ctx.send_to(OPS, Text(f"reminder: {payload}"))

        return [ring]


async def test_a_timers_message_is_printed_while_the_shell_waits_for_input():
    out = io.StringIO()
    arrived = threading.Event()
    lines = ["remind"]

    def read(prompt: str) -> str:
        if lines:
            return lines.pop(0)
        # The person types nothing: the reminder must show up without another line.
        if not arrived.wait(10):
            raise EOFError
        raise EOFError

    class Watching(io.StringIO):
        def write(self, text: str) -> int:
            if "reminder: tea!" in text:
                arrived.set()
            return out.write(text)

    async with BotHarness({"reminder": Reminder()}, clock=SystemClock()) as bot:
        status = await Shell(bot, Watching(), read).run()
    assert status == 0
    assert arrived.is_set(), out.getvalue()
    assert "  [1] bot:\n    ok, in a moment\n" in out.getvalue()
    assert "  [2] bot:\n    reminder: tea!\n" in out.getvalue()


async def test_on_a_terminal_the_prompt_and_typed_text_are_redrawn_below_new_output():
    out = io.StringIO()
    arrived = threading.Event()
    lines = ["remind"]

    def read(prompt: str) -> str:
        if lines:
            return lines.pop(0)
        arrived.wait(10)
        raise EOFError

    class Watching(io.StringIO):
        def write(self, text: str) -> int:
            if "reminder: tea!" in text:
                arrived.set()
            return out.write(text)

    async with BotHarness({"reminder": Reminder()}, clock=SystemClock()) as bot:
        await Shell(bot, Watching(), read, redraw=lambda: "deploy st").run()
    assert "\r\x1b[K  [2] bot:\n    reminder: tea!\nalice in #ops> deploy st" in out.getvalue()


def test_the_help_lists_hook_and_says_where_storage_is(capsys):
    with pytest.raises(SystemExit):
        main(["shell", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--config FILE" in text
    assert "[storage] are never used" in text
    assert ":memory: for a fresh bot each time" in text


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a pseudo-terminal via pty")
def test_on_a_real_terminal_a_poll_closing_by_itself_shows_above_what_is_being_typed():
    import os
    import pty
    import select
    import time

    fd, terminal = pty.openpty()
    # Not pty.fork(): forking a process with threads (pytest's) may deadlock.
    child = subprocess.Popen(  # noqa: S603 - our own CLI
        [*SHELL, "--storage", ":memory:"],
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        start_new_session=True,
    )
    os.close(terminal)
    seen = b""

    def until(text: bytes, within: float = 30) -> None:
        nonlocal seen
        deadline = time.monotonic() + within
        while text not in seen:
            assert time.monotonic() < deadline, seen.decode(errors="replace")
            if select.select([fd], [], [], 0.1)[0]:
                seen += os.read(fd, 4096)

    try:
        until(b"alice in #ops> ")
        os.write(fd, b'poll "Tea?" yes no --closes-in 2s\r')
        until(b"[3: Close poll]")
        until(b"alice in #ops> ")
        os.write(fd, b"pin")  # typed, not yet entered, when the poll closes
        until(b"(closed)")
        until(b"alice in #ops> pin")
        os.write(fd, b"g\r")
        until(b"pong")
        os.write(fd, b"/quit\r")
        assert child.wait(timeout=30) == 0
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        os.close(fd)
    text = seen.decode()
    assert "\r\x1b[K  [1] bot (updated):\r\n    ** Tea? (closed) **" in text
    assert "alice in #ops> pin\r\x1b[K  [1] bot (updated)" in text
