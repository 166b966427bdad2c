"""The local shell: real bot, fake Zoom, readable cards, numbered buttons, who sees what."""

from __future__ import annotations

import io
import subprocess
import sys
from collections.abc import Callable

from chatopsbot.shell import run_shell


def reader(*lines: str) -> Callable[[str], str]:
    queue = list(lines)

    def read(prompt: str) -> str:
        if not queue:
            raise EOFError
        return queue.pop(0)

    return read


async def test_a_session(tmp_path):
    out = io.StringIO()
    status = await run_shell(
        storage=str(tmp_path / "shell.db"),
        out=out,
        read=reader(
            "ping",
            "/as bob",
            'poll "Lunch?" Pizza Sushi',
            "/click 1",
            "/as carol",
            "/click 3",
            "/pick 1",
            "/in #random",
            "pnig",
            "/dm",
            "ping",
            "/nope",
        ),
    )
    text = out.getvalue()
    assert status == 0
    assert "  [1] bot:\n    pong" in text
    assert "    ** Lunch? **" in text
    assert "    [1: Pizza] [2: Sushi]\n    [3: Close poll]" in text
    assert "  [2] bot (updated):" in text
    assert "    Pizza: 1 (Bob)" in text
    assert "  [3] bot (only you see this):\n    You voted Pizza" in text
    assert "Only Bob (who asked) or an admin can close this poll." in text
    assert "! 1 is a button: use /click" in text
    assert "Unknown command 'pnig'. Did you mean 'ping'?" in text
    assert "bot (direct message):\n    pong" in text
    assert "! unknown shell command /nope" in text


async def test_data_stays_in_the_storage_file(tmp_path):
    db = str(tmp_path / "shell.db")
    await run_shell(storage=db, out=io.StringIO(), read=reader('poll "Tea?" yes no'))
    out = io.StringIO()
    await run_shell(storage=db, out=out, read=reader("poll list"))
    assert "Tea? (by Alice)" in out.getvalue()


def test_the_cli_runs_the_shell_on_piped_input(tmp_path):
    result = subprocess.run(  # noqa: S603 - our own CLI
        [sys.executable, "-m", "chatopsbot.cli", "shell", "--storage", str(tmp_path / "s.db")],
        input="ping\n/quit\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "pong" in result.stdout


async def test_alice_is_an_admin_in_the_shell_and_bob_is_not(tmp_path):
    out = io.StringIO()
    status = await run_shell(
        storage=str(tmp_path / "shell.db"),
        out=out,
        read=reader("ping", "audit --command ping", "/as bob", "audit"),
    )
    text = out.getvalue()
    assert status == 0
    assert "Alice (u-alice)  ops    ping  ok" in text  # the table only an admin gets
    assert "Only the bot's admins may run audit." in text
