"""The release path: ``python -m build`` makes a wheel and an sdist; the wheel installs into a
clean venv and the bot runs from there (demo, plugins, version); the container image's command
and health check work against that install; a generated plugin installs beside it from a
wheel or from a path. The image itself is built and started only where a Docker daemon is
reachable.

Slow (builds, venvs, installs from the package index): ``-m "not slow"`` leaves it out.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import time
import venv
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from chatopsbot.config import ServerSettings
from tests.test_deploy_files import DOCKERFILE, image

ROOT = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

CONFIG = """
[zoom]
client_id = "cid"
client_secret = "${ZOOM_CLIENT_SECRET}"
bot_jid = "bot@xmpp.zoom.us"
secret_token = "${ZOOM_SECRET_TOKEN}"
api_base_url = "http://127.0.0.1:9/v2"
oauth_url = "http://127.0.0.1:9/oauth/token"

[server]
host = "127.0.0.1"
port = PORT
"""
SECRETS = {"ZOOM_CLIENT_SECRET": "client-secret", "ZOOM_SECRET_TOKEN": "secret-token"}


def run(*argv: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(  # noqa: S603 - our own tools
        [str(a) for a in argv],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, f"{argv}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sdist and, built from it (what ``python -m build`` does), the wheel."""
    out = tmp_path_factory.mktemp("dist")
    run(sys.executable, "-m", "build", "--outdir", out, ROOT)
    return out


def wheel_of(dist: Path) -> Path:
    [wheel] = dist.glob("chatopsbot-*.whl")
    return wheel


def new_venv(where: Path) -> Path:
    """A venv with nothing but pip; its bin directory."""
    venv.EnvBuilder(with_pip=True).create(where)
    return where / "bin"


@pytest.fixture(scope="module")
def installed(dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clean venv with the wheel (and its dependencies) installed; its bin directory."""
    bin_dir = new_venv(tmp_path_factory.mktemp("venv"))
    run(bin_dir / "pip", "install", "-q", wheel_of(dist))
    return bin_dir


#: What pip needs from this machine's environment to reach the package index.
PASSED = re.compile(r"PIP_\w+|(?i:https?_proxy|no_proxy)|SSL_CERT_\w+|REQUESTS_CA_BUNDLE|HOME")


def clean_env(bin_dir: Path, **extra: str) -> dict[str, str]:
    """No variables of this test run (no PYTHONPATH, no checkout on the path) but pip's own."""
    passed = {k: v for k, v in os.environ.items() if PASSED.fullmatch(k)}
    return {**passed, "PATH": f"{bin_dir}:/usr/bin:/bin", **extra}


def test_the_wheel_and_sdist_hold_what_a_release_needs(dist):
    with zipfile.ZipFile(wheel_of(dist)) as wheel:
        names = set(wheel.namelist())
        entry_points = wheel.read("chatopsbot-0.1.0.dist-info/entry_points.txt").decode()
    for package in ("chatopsbot", "chatopsbot_core", "chatopsbot_polls", "chatopsbot_deploy"):
        assert f"{package}/__init__.py" in names
    assert "chatopsbot/py.typed" in names
    assert "chatopsbot-0.1.0.dist-info/licenses/LICENSE" in names
    assert not any(n.startswith("tests/") for n in names)
    assert "chatopsbot = chatopsbot.cli:main" in entry_points
    assert "[chatopsbot]\ncore = chatopsbot_core" in entry_points
    [sdist] = dist.glob("chatopsbot-*.tar.gz")
    with tarfile.open(sdist) as tar:
        members = {m.name.split("/", 1)[1] for m in tar.getmembers() if "/" in m.name}
    assert {"LICENSE", "README.md", "pyproject.toml", "config.example.toml"} <= members
    assert "deploy/Dockerfile" in members
    assert not any(m.startswith((".hypothesis", ".venv")) for m in members)


def test_the_installed_wheel_runs_the_demo(installed, tmp_path):
    env = clean_env(installed)
    out = run(installed / "chatopsbot", "demo", cwd=tmp_path, env=env)
    assert "Alice in #ops> /opsbot ping\n  bot> pong" in out
    assert run(installed / "chatopsbot", "--version", env=env).strip() == "chatopsbot 0.1.0"
    listed = run(installed / "chatopsbot", "plugins", cwd=tmp_path, env=env)
    for plugin in ("core", "polls", "deploy", "oncall"):
        assert re.search(rf"^{plugin}\s+enabled\s+chatopsbot 0\.1\.0\s", listed, re.M), listed
    # Imported from the venv, not from this checkout.
    where = run(
        installed / "python",
        "-c",
        "import chatopsbot; print(chatopsbot.__file__)",
        cwd=tmp_path,
        env=env,
    )
    assert where.startswith(str(installed.parent))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def image_command(installed: Path, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """The image's CMD, run from the clean venv with the config where the image keeps it
    (/data/config.toml, here a temporary /data)."""
    data = tmp_path / "data"
    data.mkdir()
    port = free_port()
    (data / "config.toml").write_text(CONFIG.replace("PORT", str(port)))
    argv = [a.replace("/data", str(data)) for a in image().command]
    assert argv[:3] == ["chatopsbot", "run", "--config"]
    proc = subprocess.Popen(  # noqa: S603 - the image's own command
        [str(installed / argv[0]), *argv[1:]],
        cwd=data,
        env=clean_env(installed, **SECRETS),
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    seen: list[str] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        assert line, "".join(seen)
        seen.append(line)
        if "serving webhooks" in line:
            break
    try:
        yield proc, port
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()


def test_the_health_check_passes_while_the_image_command_serves(installed, image_command, tmp_path):
    proc, port = image_command
    defaults = image().env
    # The image's default URL is the bot's default port; this bot is on another.
    assert defaults["CHATOPSBOT_HEALTH_URL"] == (
        f"http://127.0.0.1:{ServerSettings().port}/healthz"
    )
    assert defaults["CHATOPSBOT_CONFIG"] == "/data/config.toml"
    check = image().healthcheck
    assert check[0] == "python"
    env = clean_env(installed, CHATOPSBOT_HEALTH_URL=f"http://127.0.0.1:{port}/healthz")
    status = subprocess.run(  # noqa: S603 - the image's own health check
        [str(installed / check[0]), *check[1:]], env=env, timeout=30, check=False
    )
    assert status.returncode == 0
    # The SQLite file is next to the config, on the volume.
    assert (tmp_path / "data" / "chatopsbot.db").exists()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
    stopped = subprocess.run(  # noqa: S603
        [str(installed / check[0]), *check[1:]],
        env=env,
        timeout=30,
        check=False,
        capture_output=True,
    )
    assert stopped.returncode != 0


@pytest.mark.parametrize("source", ["wheel", "find-links"])
def test_a_generated_plugin_installs_beside_a_wheel_and_passes_its_tests(dist, tmp_path, source):
    run(sys.executable, "-m", "chatopsbot.cli", "new-plugin", "hello", "--into", tmp_path)
    plugin = tmp_path / "chatopsbot-hello"
    fresh = new_venv(tmp_path / "venv")
    env = clean_env(fresh)
    # chatopsbot is on no index yet: the wheel (or its folder) in the same pip command
    # satisfies the plugin's dependency, as the guide says.
    where = [str(wheel_of(dist))] if source == "wheel" else ["--find-links", str(dist)]
    run(fresh / "pip", "install", "-q", *where, "-e", f"{plugin}[test]", env=env)
    out = run(fresh / "python", "-m", "pytest", "-q", "-p", "no:cacheprovider", cwd=plugin, env=env)
    assert "2 passed" in out
    listed = run(fresh / "chatopsbot", "plugins", cwd=tmp_path, env=env)
    assert re.search(r"^hello\s+enabled\s+chatopsbot-hello 0\.1\.0\s", listed, re.M), listed
    assert re.search(r"^core\s+enabled\s+chatopsbot 0\.1\.0\s", listed, re.M), listed


def test_a_generated_plugin_installs_beside_chatopsbot_from_a_path(tmp_path):
    plugin_parent = tmp_path / "plugins"
    plugin_parent.mkdir()
    run(sys.executable, "-m", "chatopsbot.cli", "new-plugin", "hello", "--into", plugin_parent)
    plugin = plugin_parent / "chatopsbot-hello"
    fresh = new_venv(tmp_path / "venv")
    # A checkout of chatopsbot and the plugin in one pip command: the path satisfies the
    # plugin's "chatopsbot" dependency.
    run(fresh / "pip", "install", "-q", ROOT, "-e", f"{plugin}[test]", env=clean_env(fresh))
    out = run(
        fresh / "python",
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        cwd=plugin,
        env=clean_env(fresh),
    )
    assert "2 passed" in out


def docker_unreachable() -> str | None:
    if shutil.which("docker") is None:
        return "no docker client"
    probe = subprocess.run(
        ["docker", "info"],  # noqa: S607 - the docker client on PATH
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if probe.returncode != 0:
        return "no Docker daemon reachable: " + (probe.stderr.strip().splitlines() or ["?"])[-1]
    return None


def test_the_image_builds_starts_and_turns_healthy(tmp_path):
    reason = docker_unreachable()
    if reason is not None:
        pytest.skip(reason)
    tag = f"chatopsbot-test:{os.getpid()}"
    run("docker", "build", "-q", "-f", DOCKERFILE, "-t", tag, ROOT)
    config = tmp_path / "config.toml"
    config.write_text(CONFIG.replace("PORT", "8080").replace('"127.0.0.1"\n', '"0.0.0.0"\n', 1))
    config.chmod(0o644)
    name = f"chatopsbot-test-{os.getpid()}"
    run(
        "docker",
        "run",
        "-d",
        "--name",
        name,
        "-e",
        "ZOOM_CLIENT_SECRET=s",
        "-e",
        "ZOOM_SECRET_TOKEN=t",
        "-v",
        f"{config}:/data/config.toml:ro",
        tag,
    )
    try:
        deadline = time.monotonic() + 120
        health = ""
        while time.monotonic() < deadline:
            health = run("docker", "inspect", "-f", "{{.State.Health.Status}}", name).strip()
            if health == "healthy":
                break
            time.sleep(2)
        assert health == "healthy", run("docker", "logs", name)
        assert run("docker", "exec", name, "id", "-u").strip() != "0"
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)  # noqa: S603, S607
        subprocess.run(["docker", "rmi", tag], capture_output=True, check=False)  # noqa: S603, S607
