"""The code on docs/writing-plugins.md runs against the current API."""

from __future__ import annotations

import inspect
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from chatopsbot import Command, Job, Route, TimerHandler
from chatopsbot.actions import Action
from chatopsbot.config import parse_settings

PAGE = Path(__file__).resolve().parent.parent / "docs" / "writing-plugins.md"
BLOCKS = re.findall(r"```(python|toml)\n(.*?)```", PAGE.read_text(), re.S)


@pytest.mark.parametrize(
    "code",
    [c for kind, c in BLOCKS if kind == "python" and "BotHarness" not in c],
    ids=lambda c: c.split("\n")[0][:40],
)
def test_python_examples_build_what_they_say(code):
    namespace: dict[str, object] = {}
    exec(compile(code, str(PAGE), "exec"), namespace)  # noqa: S102 - our own documentation
    built = [
        v
        for v in namespace.values()
        if isinstance(v, Command | Action | Route | Job | TimerHandler)
    ]
    hooks = [k for k in namespace if k.startswith("chatops_")]
    assert built or hooks
    for name in hooks:
        hook = namespace[name]
        assert callable(hook)
        if inspect.signature(hook).parameters:
            continue  # hooks with arguments are checked by the tests below
        assert all(
            isinstance(item, Command | Action | Route | Job | TimerHandler) for item in hook()
        )


def test_the_access_example_is_a_valid_config():
    table = next(c for kind, c in BLOCKS if kind == "toml" and "[access]" in c)
    data = {
        "zoom": {"client_id": "a", "client_secret": "b", "bot_jid": "c", "secret_token": "d"},
        **tomllib.loads(table),
    }
    access = parse_settings(data, environ={}).access
    assert set(access.rules) == {"standup start", "standup", "standup skip", "standup:join"}


def test_the_config_hook_example_names_the_key():
    code = next(c for kind, c in BLOCKS if kind == "python" and "chatops_config" in c)
    namespace: dict[str, object] = {}
    exec(compile(code, str(PAGE), "exec"), namespace)  # noqa: S102
    hook = namespace["chatops_config"]
    assert hook({}) == {"default_minutes": 15}  # type: ignore[operator]
    with pytest.raises(Exception, match="default_minutes: expected a positive integer"):
        hook({"default_minutes": 0})  # type: ignore[operator]


async def test_the_testing_example_passes():
    code = next(c for kind, c in BLOCKS if kind == "python" and "BotHarness" in c)
    namespace: dict[str, Any] = {}
    exec(compile(code, str(PAGE), "exec"), namespace)  # noqa: S102 - our own documentation
    tests = [v for k, v in namespace.items() if k.startswith("test_")]
    assert tests
    for test in tests:
        await test()


async def test_the_lookup_example_answers_for_its_team_only():
    code = next(c for kind, c in BLOCKS if kind == "python" and "chatops_oncall_lookup" in c)
    namespace: dict[str, Any] = {}
    exec(compile(code, str(PAGE), "exec"), namespace)  # noqa: S102
    hook = namespace["chatops_oncall_lookup"]
    assert hook("data", None) is None
    assert await hook("platform", None) == ("Dana", None)


def test_the_deploy_config_loads_and_names_the_compose_services():
    from chatopsbot.config import load_settings

    deploy = PAGE.parent.parent / "deploy"
    env = {
        "ZOOM_CLIENT_ID": "id",
        "ZOOM_CLIENT_SECRET": "secret",
        "ZOOM_BOT_JID": "bot@xmpp.zoom.us",
        "ZOOM_SECRET_TOKEN": "token",
        "POSTGRES_PASSWORD": "pw",
    }
    settings = load_settings(str(deploy / "config.toml"), env)
    assert settings.storage.url.reveal() == "postgresql://chatopsbot:pw@postgres:5432/chatopsbot"
    compose = (deploy / "compose.yaml").read_text()
    for service in ("postgres:", "bot1: *bot", "bot2: *bot", "proxy:"):
        assert f"\n  {service}" in compose
    # Every variable the config reads is passed through by compose, and none else is needed.
    assert set(re.findall(r"\$\{(\w+)\}", compose)) == set(env)
    upstreams = re.findall(r"server (\w+):8080", (deploy / "nginx.conf").read_text())
    assert upstreams == ["bot1", "bot2"]


def test_the_typed_config_example_reads_and_refuses():
    from chatopsbot import PluginConfigError

    code = next(c for kind, c in BLOCKS if kind == "python" and "load_config" in c)
    namespace: dict[str, Any] = {}
    # dont_inherit: annotations stay real types, as in the reader's own module.
    exec(compile(code, str(PAGE), "exec", dont_inherit=True), namespace)  # noqa: S102
    settings = namespace["chatops_config"]({"reminder": "2h", "visibility": "private"})
    assert (settings.default_minutes, settings.reminder.total_seconds()) == (15, 7200)
    with pytest.raises(PluginConfigError, match="default_minute: unknown key"):
        namespace["chatops_config"]({"default_minute": 5})
