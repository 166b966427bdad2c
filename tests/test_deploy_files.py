"""deploy/chatopsbot.service: what systemd runs, how it restarts and what it may touch; checked
by systemd's own verifier where it is installed."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from chatopsbot.cli import main

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "deploy" / "chatopsbot.service"
GOOD = """
[zoom]
client_id = "cid"
client_secret = "${ZOOM_CLIENT_SECRET}"
bot_jid = "bot@xmpp.zoom.us"
secret_token = "${ZOOM_SECRET_TOKEN}"
"""


def unit() -> dict[str, dict[str, list[str]]]:
    """Section -> key -> values, in order (systemd keys may repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for raw in UNIT.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key, []).append(value)
    return sections


def test_the_unit_runs_the_bot_and_restarts_it():
    service = unit()["Service"]
    [start] = service["ExecStart"]
    argv = shlex.split(start)
    assert Path(argv[0]).name == "chatopsbot"
    assert argv[1:] == ["run", "--config", "/etc/chatopsbot/config.toml"]
    [check] = service["ExecStartPre"]
    assert shlex.split(check)[1:] == ["check-config", "--config", "/etc/chatopsbot/config.toml"]
    assert service["Restart"] == ["always"]
    assert service["User"] == ["chatopsbot"]
    assert service["KillSignal"] == ["SIGTERM"]
    # Longer than the default drain ([outbound] drain_timeout, 30 s).
    assert int(service["TimeoutStopSec"][0]) > 30
    assert service["StateDirectory"] == ["chatopsbot"]
    assert unit()["Install"]["WantedBy"] == ["multi-user.target"]
    for key, value in {
        "NoNewPrivileges": "true",
        "ProtectSystem": "strict",
        "ProtectHome": "true",
        "PrivateTmp": "true",
        "CapabilityBoundingSet": "",
    }.items():
        assert service[key] == [value], key


def test_the_units_commands_work_as_written(tmp_path, capsys):
    config = tmp_path / "config.toml"
    config.write_text(GOOD)
    service = unit()["Service"]
    env = {"ZOOM_CLIENT_SECRET": "s", "ZOOM_SECRET_TOKEN": "t"}
    argv = shlex.split(service["ExecStartPre"][0])[1:]
    argv[argv.index("--config") + 1] = str(config)
    assert main(argv, env) == 0
    assert capsys.readouterr().out.startswith(f"{config}: OK")


def test_systemd_accepts_the_unit(tmp_path):
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    # The unit names /opt/chatopsbot (where its comment installs the bot): point it at ours.
    ours = Path(sys.executable).with_name("chatopsbot")
    assert ours.exists()
    copy = tmp_path / "chatopsbot.service"
    copy.write_text(UNIT.read_text().replace("/opt/chatopsbot/bin/chatopsbot", str(ours)))
    result = subprocess.run(  # noqa: S603
        ["systemd-analyze", "verify", str(copy)],  # noqa: S607 - systemd's verifier on PATH
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    # Unknown keys, bad values and misplaced options are all reported on stderr.
    assert (result.returncode, result.stderr) == (0, "")
