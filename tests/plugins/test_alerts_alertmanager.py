"""The alerts plugin against a real Alertmanager (Debian's ``prometheus-alertmanager``).

Alerts go into Alertmanager's own API; Alertmanager groups them and calls the bot; the card
reaches the fake Zoom; the card's buttons make and expire silences that Alertmanager's API shows.
Skipped without the binary, except where ``CHATOPSBOT_REQUIRE_ALERTMANAGER`` is set.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import time
import tomllib
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from chatopsbot_alerts.settings import read_settings

from chatopsbot.clock import SystemClock
from chatopsbot.testing import BotHarness, channel_jid
from chatopsbot.zoom.fake import Message
from tests.plugins import alertmanager_process
from tests.plugins.alertmanager_process import free_port, running

TOKEN = "am-real-token"
OPS = channel_jid("ops")


def alert(instance: str, **extra: Any) -> dict[str, Any]:
    return {
        "labels": {
            "alertname": "HighLatency",
            "service": "api",
            "severity": "critical",
            "instance": instance,
        },
        "annotations": {
            "summary": f"latency high on {instance}",
            "runbook_url": "https://runbooks.example/latency",
        },
        "generatorURL": "http://prometheus.example:9090/graph?g0.expr=latency",
        **extra,
    }


async def wait_for(check: Callable[[], Any], what: str, within: float = 10.0) -> Any:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        await asyncio.sleep(0.02)
    raise AssertionError(f"waited {within} s for {what}")


async def api(session: aiohttp.ClientSession, method: str, url: str, body: Any = None) -> Any:
    async with session.request(method, url, json=body) as resp:
        assert resp.status == 200, f"{method} {url}: {resp.status} {await resp.text()}"
        text = await resp.text()
        return await resp.json() if text.strip() else None


def cards(bot: BotHarness) -> list[Message]:
    return [m for m in bot.messages if m.content.get("head")]


def settings(am_url: str) -> dict[str, Any]:
    return {
        "plugins": {
            "alerts": {
                "webhook_token": TOKEN,
                "alertmanager_url": am_url,
                "channel": OPS,
                "account_id": "acct-1",
            }
        }
    }


def test_without_the_binary_it_skips_or_fails_where_required(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("shutil.which", lambda name: None)
    monkeypatch.delenv("CHATOPSBOT_REQUIRE_ALERTMANAGER", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no Alertmanager binary"):
        alertmanager_process.binary()
    monkeypatch.setenv("CHATOPSBOT_REQUIRE_ALERTMANAGER", "1")
    with pytest.raises(pytest.fail.Exception, match="Alertmanager is required here"):
        alertmanager_process.binary()


async def test_basic_auth_as_alertmanager_sends_it(tmp_path: Path) -> None:
    alertmanager_process.binary()
    port = free_port()
    am_url = f"http://127.0.0.1:{port}"
    async with BotHarness(clock=SystemClock(), config=settings(am_url)) as bot:
        hook = str(bot.client.make_url("/hooks/alerts"))
        async with (
            running(tmp_path, port=port, receiver_url=hook, token=TOKEN, basic_auth=True),
            aiohttp.ClientSession() as am,
        ):
            await api(am, "POST", f"{am_url}/api/v2/alerts", [alert("api-1:9090")])
            [card] = await wait_for(lambda: cards(bot), "the card")
            assert card.text.startswith("🔥 FIRING: 1 · HighLatency")


async def test_alertmanager_groups_alerts_into_one_card_silences_and_resolves(
    tmp_path: Path,
) -> None:
    alertmanager_process.binary()
    port = free_port()
    am_url = f"http://127.0.0.1:{port}"
    async with BotHarness(clock=SystemClock(), config=settings(am_url)) as bot:
        hook = str(bot.client.make_url("/hooks/alerts"))
        async with (
            running(tmp_path, port=port, receiver_url=hook, token=TOKEN),
            aiohttp.ClientSession() as am,
        ):
            started = time.monotonic()
            # Two alerts of one group, posted apart: one card, edited when the second joins.
            await api(am, "POST", f"{am_url}/api/v2/alerts", [alert("api-1:9090")])
            [card] = await wait_for(lambda: cards(bot), "the first card")
            assert card.to_jid == OPS
            assert card.text.startswith("🔥 FIRING: 1 · HighLatency")
            assert card.content["head"]["style"]["color"] == "#D64541"
            assert "latency high on api-1:9090" in card.text
            await api(am, "POST", f"{am_url}/api/v2/alerts", [alert("api-2:9090")])
            await wait_for(lambda: card.text.startswith("🔥 FIRING: 2"), "the second alert")
            assert len(cards(bot)) == 1
            # Silence from the card: Alertmanager holds it, with the group's labels.
            reply = (await bot.click(card, "Silence 1 h", user="alice")).only()
            silences = await api(am, "GET", f"{am_url}/api/v2/silences")
            [silence] = [s for s in silences if s["status"]["state"] == "active"]
            assert silence["id"] in reply.text
            assert silence["createdBy"] == "Alice (u-alice)"
            assert sorted((m["name"], m["value"], m["isEqual"]) for m in silence["matchers"]) == [
                ("alertname", "HighLatency", True),
                ("service", "api", True),
            ]
            ends = datetime.fromisoformat(silence["endsAt"].replace("Z", "+00:00"))
            assert 3590 < (ends - datetime.now(UTC)).total_seconds() <= 3600
            assert "Silenced: by Alice" in card.text
            # A third alert of the silenced group: Alertmanager suppresses it, the card stays.
            edits = card.edits
            await api(am, "POST", f"{am_url}/api/v2/alerts", [alert("api-3:9090")])
            await asyncio.sleep(1.5)  # several group intervals
            states = {
                a["labels"]["instance"]: (a["status"]["state"], a["status"]["silencedBy"])
                for a in await api(am, "GET", f"{am_url}/api/v2/alerts")
            }
            assert states["api-3:9090"] == ("suppressed", [silence["id"]])
            assert (card.edits, len(cards(bot))) == (edits, 1)
            assert card.text.startswith("🔥 FIRING: 2")
            # Unsilence: Alertmanager expires it, and its next notification brings the third.
            await bot.click(card, "Unsilence", user="bob")
            after = await api(am, "GET", f"{am_url}/api/v2/silences")
            assert [s["status"]["state"] for s in after if s["id"] == silence["id"]] == ["expired"]
            await wait_for(lambda: card.text.startswith("🔥 FIRING: 3"), "the unsilenced alert")
            # Everything resolves: the same card turns green.
            now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
            resolved = [alert(f"api-{n}:9090", endsAt=now) for n in (1, 2, 3)]
            await api(am, "POST", f"{am_url}/api/v2/alerts", resolved)
            await wait_for(lambda: card.text.startswith("✅ RESOLVED"), "the resolved card")
            assert card.content["head"]["style"]["color"] == "#1F9D55"
            assert len(cards(bot)) == 1
            assert time.monotonic() - started < 30


async def test_silence_commands_against_alertmanager(tmp_path: Path) -> None:
    """Typed matchers of all four kinds as Alertmanager stores them; listing; expiring; and
    Alertmanager's own refusals passed on to the user."""
    alertmanager_process.binary()
    port = free_port()
    am_url = f"http://127.0.0.1:{port}"
    async with BotHarness(clock=SystemClock(), config=settings(am_url)) as bot:
        hook = str(bot.client.make_url("/hooks/alerts"))
        async with (
            running(tmp_path, port=port, receiver_url=hook, token=TOKEN),
            aiohttp.ClientSession() as am,
        ):
            made = (
                await bot.command(
                    "alerts silence "
                    "'alertname=HighLatency,severity=~crit.*,env!=dev,job!~\"a, b\"' "
                    "30m deploying the fix",
                    user="bob",
                )
            ).only()
            assert made.text.startswith(
                '🔕 Bob silenced alertname=HighLatency,severity=~crit.*,env!=dev,job!~"a, b" '
                "for 30m, until "
            )
            [silence] = await api(am, "GET", f"{am_url}/api/v2/silences")
            assert silence["id"] in made.text
            assert (silence["createdBy"], silence["comment"]) == (
                "Bob (u-bob)",
                "deploying the fix",
            )
            assert sorted(
                (m["name"], m["value"], m["isRegex"], m["isEqual"]) for m in silence["matchers"]
            ) == [
                ("alertname", "HighLatency", False, True),
                ("env", "dev", False, False),
                ("job", "a, b", True, False),
                ("severity", "crit.*", True, True),
            ]
            listing = (await bot.command("alerts silences")).only().text.splitlines()
            assert listing[0] == "Silences:"
            assert listing[1].startswith(f"{silence['id']} · alertname=HighLatency,")
            assert listing[1].endswith("· by Bob (u-bob) · deploying the fix")
            expired = (await bot.command(f"alerts expire {silence['id']}")).only()
            assert expired.text == f"🔔 Alice expired silence {silence['id']}."
            [after] = await api(am, "GET", f"{am_url}/api/v2/silences")
            assert after["status"]["state"] == "expired"
            assert (await bot.command("alerts silences")).only().text == "No active silences."
            # Alertmanager 0.25 answers 200 to expiring an expired silence: so does the bot.
            again = (await bot.command(f"alerts expire {silence['id']}")).only()
            assert again.text == expired.text
            unknown = (
                await bot.command("alerts expire 00000000-0000-0000-0000-000000000000")
            ).only()
            assert unknown.visible_to_user == "u-alice"
            assert unknown.text.startswith("Could not expire silence 00000000-")
            assert "silence not found" in unknown.text


DOCS = Path(__file__).resolve().parents[2] / "docs" / "alerts.md"


def test_the_documented_bot_config_reads() -> None:
    from chatopsbot.config import parse_settings

    [table] = re.findall(r"```toml\n(.*?)```", DOCS.read_text(), re.S)
    data = {
        "zoom": {"client_id": "a", "client_secret": "b", "bot_jid": "c", "secret_token": "d"},
        **tomllib.loads(table),
    }
    parse_settings(data, environ={"ALERTS_WEBHOOK_TOKEN": "t"})
    settings = read_settings(data["plugins"]["alerts"])
    assert [r for r in settings.routes] == ["pages", "db"]
    where = settings.destination({"severity": "critical", "team": "db"})
    assert where is not None
    assert where.jid == "pages@conference.xmpp.zoom.us"


def test_the_documented_receiver_blocks_pass_amtool(tmp_path: Path) -> None:
    """Both documented ``http_config`` forms, as Alertmanager's own checker reads them."""
    alertmanager_process.binary()
    amtool = shutil.which("amtool")
    if amtool is None:
        pytest.skip("no amtool beside the Alertmanager binary")
    blocks = re.findall(r"```yaml\n(.*?)```", DOCS.read_text(), re.S)
    receiver, basic = blocks
    basic_config = receiver.replace(
        receiver[receiver.index("        http_config:") :], basic.rstrip() + "\n"
    )
    for n, text in enumerate([receiver, basic_config]):
        path = tmp_path / f"am{n}.yml"
        path.write_text(text.replace("<the webhook_token>", "s3cret"))
        done = subprocess.run(  # noqa: S603 - amtool, on our own docs
            [amtool, "check-config", str(path)], capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "SUCCESS" in done.stdout + done.stderr
