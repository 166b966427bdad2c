"""Debian's ``prometheus-alertmanager``, started on loopback for one test.

Clustering off (``--cluster.listen-address=``), storage in the test's tmp_path, short
``group_wait``/``group_interval`` so that grouping shows within a second, and one receiver: the
bot's ``/hooks/alerts`` with the token as ``http_config.authorization.credentials`` (Alertmanager
sends ``Authorization: Bearer <credentials>``). Missing binary: skipped with the reason, or a
failure where ``CHATOPSBOT_REQUIRE_ALERTMANAGER`` is set (CI).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

BINARIES = ("prometheus-alertmanager", "alertmanager")
#: How Alertmanager groups in these tests: fast enough for seconds-long tests.
GROUP_WAIT = "100ms"
GROUP_INTERVAL = "400ms"


def binary() -> str:
    """The Alertmanager binary; skips (or fails where required) without one."""
    for name in BINARIES:
        found = shutil.which(name)
        if found:
            return found
    reason = "no Alertmanager binary (apt-get install prometheus-alertmanager)"
    if os.environ.get("CHATOPSBOT_REQUIRE_ALERTMANAGER"):
        pytest.fail(f"Alertmanager is required here: {reason}")
    pytest.skip(reason)


def free_port() -> int:
    """A loopback port nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def config(receiver_url: str, token: str, *, basic_auth: bool = False) -> str:
    """Alertmanager's configuration: one route, one webhook receiver (the bot), sending the
    token as a bearer token or (``basic_auth``) as the basic-auth password."""
    auth = (
        f"basic_auth:\n            username: alertmanager\n            password: {token}"
        if basic_auth
        else f"authorization:\n            type: Bearer\n            credentials: {token}"
    )
    return f"""\
route:
  receiver: chatopsbot
  group_by: [alertname, service]
  group_wait: {GROUP_WAIT}
  group_interval: {GROUP_INTERVAL}
  repeat_interval: 1h
receivers:
  - name: chatopsbot
    webhook_configs:
      - url: {receiver_url}
        send_resolved: true
        http_config:
          {auth}
"""


@contextlib.asynccontextmanager
async def running(
    tmp_path: Path, *, port: int, receiver_url: str, token: str, basic_auth: bool = False
) -> AsyncIterator[str]:
    """Alertmanager on ``127.0.0.1:port`` until the block ends; yields its base URL."""
    path = binary()
    (tmp_path / "alertmanager.yml").write_text(config(receiver_url, token, basic_auth=basic_auth))
    log = (tmp_path / "alertmanager.log").open("wb")
    process = await asyncio.create_subprocess_exec(
        path,
        f"--config.file={tmp_path / 'alertmanager.yml'}",
        f"--storage.path={tmp_path / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",
        "--log.level=info",
        stdout=log,
        stderr=log,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        await _ready(url, process, tmp_path)
        yield url
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()
        log.close()


async def _ready(url: str, process: Any, tmp_path: Path) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(200):
            if process.returncode is not None:
                break
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(f"{url}/-/ready") as resp:
                    if resp.status == 200:
                        return
            await asyncio.sleep(0.05)
    output = (tmp_path / "alertmanager.log").read_text(errors="replace")[-2000:]
    raise AssertionError(f"Alertmanager did not start at {url}:\n{output}")
