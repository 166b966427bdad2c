"""``chatops_cleanup``: each plugin releases what it opened when the bot stops."""

from __future__ import annotations

import logging

import pytest

from chatopsbot import hookimpl
from chatopsbot.testing import BotHarness


class Closes:
    def __init__(self, log: list[str], name: str, *, fail: bool = False) -> None:
        self.log, self.name, self.fail = log, name, fail

    @hookimpl
    async def chatops_cleanup(self) -> None:
        self.log.append(self.name)
        if self.fail:
            raise RuntimeError("cannot close")


class ClosesSync:
    def __init__(self, log: list[str]) -> None:
        self.log = log

    @hookimpl
    def chatops_cleanup(self) -> None:
        self.log.append("sync")


async def test_every_plugin_is_shut_down_once_even_when_one_fails(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="chatopsbot.runtime")
    closed: list[str] = []
    plugins = {
        "one": Closes(closed, "one", fail=True),
        "two": Closes(closed, "two"),
        "three": ClosesSync(closed),
    }
    async with BotHarness(plugins, installed=False):
        assert closed == []
    assert sorted(closed) == ["one", "sync", "two"]
    failed = "shutdown: plugin one: chatops_cleanup failed"
    assert any(failed in r.getMessage() for r in caplog.records)
