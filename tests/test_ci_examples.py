"""The CI scripts under examples/ci sign as the bot checks: run against the real app over TCP."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from chatopsbot import sign_request
from chatopsbot.testing import BotHarness

CI = Path(__file__).resolve().parent.parent / "examples" / "ci"
TOKEN = "ci-secret"


def _load_python_script() -> Any:
    spec = importlib.util.spec_from_file_location("deploy_event", CI / "deploy_event.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


script = _load_python_script()


@pytest.mark.parametrize(
    ("method", "path", "query", "body", "delivery"),
    [
        ("POST", "/hooks/deploy", {}, b'{"a": "\xc3\xa9"}', "gha-1-2-started"),
        ("GET", "/hooks/deploy/lock", {"service": "team/api", "environment": "prod"}, b"", ""),
        ("get", "/hooks/x y", {"q": "a b&c=d", "": "é"}, b"", ""),
    ],
)
def test_the_python_script_signs_as_sign_request(method, path, query, body, delivery):
    ours = sign_request(
        TOKEN, method, path, query=query, body=body, timestamp=1764061200, delivery_id=delivery
    )
    theirs = script.sign(
        TOKEN, method, path, query, body, timestamp=1764061200, delivery_id=delivery
    )
    assert theirs == ours


@pytest.fixture
async def bot() -> Any:
    # The scripts sign with the wall clock; the harness's clock starts at it.
    config = {"plugins": {"deploy": {"webhook_token": TOKEN}}}
    async with BotHarness(config=config) as harness:
        yield harness


def environment(bot: BotHarness, **extra: str) -> dict[str, str]:
    return {
        "PATH": os.environ["PATH"],
        "CHATOPSBOT_URL": str(bot.client.make_url("")),
        "DEPLOY_WEBHOOK_TOKEN": TOKEN,
        "SERVICE": "team/api",
        "ENVIRONMENT": "prod",
        "VERSION": "1.4.2",
        **extra,
    }


async def run_shell(bot: BotHarness, *args: str, **extra: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        "sh",
        str(CI / "deploy-event.sh"),
        *args,
        env=environment(bot, **extra),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    await bot.settle()
    assert process.returncode is not None
    return process.returncode, output.decode()


@pytest.mark.skipif(
    not (shutil.which("curl") and shutil.which("openssl")), reason="needs curl and openssl"
)
async def test_the_shell_script_reports_deploys_once_and_checks_locks(bot):
    await bot.command("deploy subscribe all")
    code, output = await run_shell(
        bot, "event", "started", DELIVERY_ID="run-1-started", DEPLOY_ACTOR="ci bot"
    )
    assert (code, '"accepted": true' in output) == (0, True), output
    code, output = await run_shell(bot, "event", "started", DELIVERY_ID="run-1-started")
    assert (code, '"status": "duplicate"' in output) == (0, True), output
    code, output = await run_shell(bot, "event", "succeeded", GITHUB_RUN_ID="77")
    assert code == 0, output
    [card] = [m for m in bot.messages if m.text.startswith("team/api → prod")]
    assert "Status: ✅ succeeded" in card.text
    assert card.edits == 1
    assert (await run_shell(bot, "check"))[0] == 0
    await bot.command("deploy lock team/api prod")
    code, output = await run_shell(bot, "check")
    assert (code, "team/api prod is locked" in output) == (3, True), output


async def test_the_python_script_reports_deploys_and_checks_locks(bot, monkeypatch):
    for name, value in environment(bot, DEPLOY_MESSAGE="ship it").items():
        monkeypatch.setenv(name, value)
    await bot.command("deploy subscribe all")
    assert await asyncio.to_thread(script.main, ["event", "started"]) == 0
    await bot.settle()
    [card] = [m for m in bot.messages if m.text.startswith("team/api → prod")]
    assert "ship it" in card.text
    assert await asyncio.to_thread(script.main, ["check"]) == 0
    await bot.command("deploy lock team/api prod")
    assert await asyncio.to_thread(script.main, ["check"]) == 3
    assert await asyncio.to_thread(script.main, ["nonsense"]) == 2
