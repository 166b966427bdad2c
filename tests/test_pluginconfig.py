"""Typed plugin config: an attrs class in, a validated instance or `key: problem` out."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal
from zoneinfo import ZoneInfo

import pytest
from attrs import field, frozen, validators

from chatopsbot import PluginConfigError, hookimpl
from chatopsbot.config import ConfigError
from chatopsbot.pluginconfig import load_config
from chatopsbot.testing import BotHarness


@frozen
class Team:
    members: tuple[str, ...]
    timezone: ZoneInfo = field(factory=lambda: ZoneInfo("UTC"))
    handoff: dt.time = dt.time(9, 0)


@frozen
class Settings:
    webhook_token: str = ""
    lock_reminder: dt.timedelta = dt.timedelta(hours=4)
    force_unlock: Literal["admins", "anyone"] = "admins"
    retries: int = field(default=3, validator=validators.ge(0))
    teams: dict[str, Team] = field(factory=dict)


def test_a_table_becomes_the_class_with_durations_times_and_zones():
    settings = load_config(
        Settings,
        {
            "lock_reminder": "1d12h",
            "force_unlock": "anyone",
            "teams": {"platform": {"members": ["ann", "bob"], "timezone": "Europe/Paris",
                                   "handoff": "17:30"}},
        },
    )  # fmt: skip
    assert settings.lock_reminder == dt.timedelta(hours=36)
    assert settings.force_unlock == "anyone"
    assert settings.teams["platform"] == Team(
        ("ann", "bob"), ZoneInfo("Europe/Paris"), dt.time(17, 30)
    )
    assert load_config(Settings, {}) == Settings()


@pytest.mark.parametrize(
    ("table", "key", "problem"),
    [
        ({"lock_remider": "4h"}, "lock_remider", "unknown key (did you mean lock_reminder?)"),
        ({"lock_reminder": "soon"}, "lock_reminder", "expected a duration such as 30m"),
        ({"lock_reminder": 0}, "lock_reminder", "must be more than 0 seconds"),
        ({"retries": "3"}, "retries", "expected an integer, got str"),
        ({"retries": -1}, "retries", "'retries' must be >= 0: -1"),
        ({"webhook_token": 5}, "webhook_token", "expected a string, got int"),
        ({"force_unlock": "everyone"}, "force_unlock", "everyone"),
        ({"teams": {"platform": {}}}, "teams.platform.members", "required"),
        ({"teams": {"platform": {"members": [], "zone": "UTC"}}}, "teams.platform.zone",
         "unknown key (did you mean timezone?)"),
        ({"teams": {"platform": {"members": [], "timezone": "Mars/Base"}}},
         "teams.platform.timezone", "unknown time zone 'Mars/Base'"),
        ({"teams": {"platform": {"members": [], "handoff": "5pm"}}}, "teams.platform.handoff",
         "expected a time of day such as 09:30 or 17:00, got '5pm'"),
    ],
)  # fmt: skip
def test_each_problem_names_its_key(table, key, problem):
    with pytest.raises(PluginConfigError) as info:
        load_config(Settings, table)
    assert info.value.key == key
    assert problem in info.value.message, info.value.message


class Configured:
    @hookimpl
    def chatops_config(self, config: Any) -> Settings:
        return load_config(Settings, config)


async def test_a_bad_table_stops_the_bot_with_file_key_and_problem():
    bot = BotHarness(
        {"configured": Configured()}, config={"plugins": {"configured": {"retries": "x"}}}
    )
    with pytest.raises(ConfigError, match=r"plugins\.configured\.retries: expected an integer"):
        await bot.start()
