"""The config file: defaults, ${VAR} expansion, precise errors, secrets never shown."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from chatopsbot.config import (
    ConfigError,
    Secret,
    config_path,
    load_settings,
    parse_settings,
)

ROOT = Path(__file__).resolve().parent.parent
ENV = {"ZOOM_CLIENT_SECRET": "s3cret-client", "ZOOM_SECRET_TOKEN": "s3cret-token"}


def minimal(**zoom: Any) -> dict[str, Any]:
    return {
        "zoom": {
            "client_id": "cid",
            "client_secret": "s3cret-client",
            "bot_jid": "bot@xmpp.zoom.us",
            "secret_token": "s3cret-token",
            **zoom,
        }
    }


def error(data: dict[str, Any], environ: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        parse_settings(data, source="c.toml", environ=environ or {})
    return str(info.value)


def test_the_example_file_parses_to_the_defaults():
    settings = load_settings(ROOT / "config.example.toml", ENV)
    assert settings.zoom.client_id == "your-client-id"
    assert settings.zoom.client_secret.reveal() == "s3cret-client"
    assert settings.zoom.secret_token.reveal() == "s3cret-token"
    assert settings.zoom.api_base_url == "https://api.zoom.us/v2"
    defaults = parse_settings(minimal(), environ={})
    assert settings.server == defaults.server
    assert settings.outbound == defaults.outbound
    assert settings.commands == defaults.commands
    assert settings.logging == defaults.logging
    assert settings.audit == defaults.audit
    assert settings.plugins.disabled == defaults.plugins.disabled
    assert dict(settings.plugins.tables) == {"polls": {"timezone": "UTC"}}
    assert settings.storage.path == str(ROOT / "chatopsbot.db")


def test_defaults():
    s = parse_settings(minimal(), environ={})
    assert (s.server.host, s.server.port, s.server.webhook_path) == (
        "0.0.0.0",
        8080,
        "/zoom/webhook",
    )
    assert (s.outbound.rate_limit, s.outbound.max_attempts) == (20.0, 5)
    assert (s.outbound.drain_timeout, s.outbound.request_timeout) == (30.0, 10.0)
    assert s.commands.timeout == 30.0
    assert (s.logging.format, s.logging.level) == ("plain", "INFO")
    assert s.storage.path == "chatopsbot.db"
    assert s.plugins.disabled == ()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, "c.toml: zoom: required: the [zoom] section with the app's credentials"),
        (
            {"zoom": {"client_id": "x"}},
            "c.toml: zoom.client_secret: required\n"
            "c.toml: zoom.bot_jid: required\n"
            "c.toml: zoom.secret_token: required",
        ),
        (
            minimal(bot_jid=None) | {"zoom": {**minimal()["zoom"], "bot_jid": " "}},
            "c.toml: zoom.bot_jid: must not be empty",
        ),
        (minimal(clinet_id="x"), "c.toml: zoom.clinet_id: unknown key (did you mean client_id?)"),
        (
            minimal(api_base_url="api.zoom.us"),
            "c.toml: zoom.api_base_url: must start with http:// or https://",
        ),
        (minimal(oauth_url="https:///token"), "c.toml: zoom.oauth_url: must name a host"),
        (minimal(secret_token=""), "c.toml: zoom.secret_token: must not be empty"),
        (
            minimal() | {"nope": {}},
            "c.toml: nope: unknown section "
            "(known: access, audit, commands, logging, outbound, plugins, server, storage, zoom)",
        ),
        (
            minimal() | {"server": {"port": "80"}},
            "c.toml: server.port: expected an integer, got a string",
        ),
        (
            minimal() | {"server": {"port": True}},
            "c.toml: server.port: expected an integer, got a boolean",
        ),
        (
            minimal() | {"server": {"port": 70000}},
            "c.toml: server.port: must be between 0 and 65535",
        ),
        (
            minimal() | {"server": {"webhook_path": "zoom"}},
            "c.toml: server.webhook_path: must start with /",
        ),
        (minimal() | {"server": 5}, "c.toml: server: expected a table [server], got an integer"),
        (
            minimal() | {"outbound": {"rate_limit": 0}},
            "c.toml: outbound.rate_limit: must be greater than 0",
        ),
        (
            minimal() | {"outbound": {"max_attempts": 0}},
            "c.toml: outbound.max_attempts: must be at least 1",
        ),
        (
            minimal() | {"outbound": {"drain_timeout": -1}},
            "c.toml: outbound.drain_timeout: must be at least 0",
        ),
        (
            minimal() | {"outbound": {"request_timeout": 0}},
            "c.toml: outbound.request_timeout: must be greater than 0",
        ),
        (
            minimal() | {"outbound": {"rate_limit": float("nan")}},
            "c.toml: outbound.rate_limit: must be a finite number",
        ),
        (
            minimal() | {"outbound": {"rate_limit": True}},
            "c.toml: outbound.rate_limit: expected a number, got a boolean",
        ),
        (
            minimal() | {"commands": {"timeout": float("inf")}},
            "c.toml: commands.timeout: must be a finite number",
        ),
        (
            minimal() | {"commands": {"timeout": -0.5}},
            "c.toml: commands.timeout: must be greater than 0",
        ),
        (
            minimal() | {"logging": {"level": "trace"}},
            "c.toml: logging.level: must be one of DEBUG, ERROR, INFO, WARNING",
        ),
        (
            minimal() | {"storage": {"path": ""}},
            "c.toml: storage.path: must not be empty",
        ),
        (
            minimal() | {"server": {"host": 1}},
            "c.toml: server.host: expected a string, got an integer",
        ),
        (
            minimal() | {"logging": {"format": "xml"}},
            "c.toml: logging.format: must be one of json, plain",
        ),
        (
            minimal() | {"plugins": {"disabled": "core"}},
            "c.toml: plugins.disabled: expected an array, got a string",
        ),
        (
            minimal() | {"plugins": {"disabled": [1]}},
            "c.toml: plugins.disabled[0]: expected a string, got an integer",
        ),
        (
            minimal() | {"plugins": {"deploy": "x"}},
            "c.toml: plugins.deploy: expected a table [plugins.deploy], got a string",
        ),
    ],
)
def test_precise_errors(data, message):
    assert error(data) == message


def test_config_error_carries_its_parts():
    with pytest.raises(ConfigError) as info:
        parse_settings({"zoom": {"client_id": "x"}, "server": {"port": -1}}, source="bot.toml")
    # Several problems: the first one's parts, and each problem with its own.
    assert (info.value.source, info.value.key, info.value.message) == (
        "bot.toml",
        "zoom.client_secret",
        "required",
    )
    assert [(p.key, p.message) for p in info.value.problems] == [
        ("zoom.client_secret", "required"),
        ("zoom.bot_jid", "required"),
        ("zoom.secret_token", "required"),
        ("server.port", "must be between 0 and 65535"),
    ]
    with pytest.raises(ConfigError) as one:
        parse_settings(minimal(client_id=""), source="bot.toml", environ={})
    assert one.value.problems == (one.value,)
    assert str(one.value) == "bot.toml: zoom.client_id: must not be empty"


def test_every_problem_is_reported_at_once():
    data = {
        "zoom": {"client_id": "x", "client_secret": "${NOT_SET}", "clinet_id": "y"},
        "server": {"port": "80", "prot": 80},
        "outbound": {"rate_limit": 0},
        "storage": {"path": ""},
        "access": {"admins": ["a@example.com"], "commands": {"deploy": {"deny_users": [1]}}},
        "plugins": {"disabled": [3], "deploy": "x"},
        "nope": {},
    }
    assert error(data).splitlines() == [
        "c.toml: nope: unknown section "
        "(known: access, audit, commands, logging, outbound, plugins, server, storage, zoom)",
        "c.toml: zoom.client_secret: environment variable NOT_SET is not set",
        "c.toml: zoom.bot_jid: required",
        "c.toml: zoom.secret_token: required",
        # An unknown key beside a missing required one: both, not only the first.
        "c.toml: zoom.clinet_id: unknown key (did you mean client_id?)",
        "c.toml: server.port: expected an integer, got a string",
        "c.toml: server.prot: unknown key (did you mean port?)",
        "c.toml: outbound.rate_limit: must be greater than 0",
        "c.toml: storage.path: must not be empty",
        "c.toml: access.admins[0]: e-mail addresses cannot be matched (Zoom's chatbot events "
        "carry no e-mail); use the user id or the JID (...@xmpp.zoom.us)",
        'c.toml: access.commands."deploy".deny_users[0]: expected a user id or JID, got an integer',
        "c.toml: plugins.disabled[0]: expected a string, got an integer",
        "c.toml: plugins.deploy: expected a table [plugins.deploy], got a string",
    ]


@pytest.mark.parametrize(
    "zoom",
    [
        {"secret_token": 4711_0815_2342},
        {"secret_token": ["tok-in-a-list-0815"]},
        {"client_secret": {"value": "tok-in-a-table-0815"}},
        {"api_base_url": "ftp://admin:tok-in-a-url-0815@api.example.com/v2"},
        {"oauth_url": "zoom.us/oauth?password=tok-in-a-url-0815"},
    ],
)
def test_a_wrong_value_that_may_be_a_secret_is_never_echoed(zoom):
    message = error(minimal(**zoom))
    assert "0815" not in message
    assert message.startswith("c.toml: zoom.")


@pytest.mark.parametrize(
    "storage",
    [
        {"url": "mysql://bot:pw-0815@db/bot"},
        {"url": "postgresql://bot:pw-0815@db/bot", "path": "x.db"},
        {"url": 8150815},
    ],
)
def test_a_wrong_storage_url_never_shows_its_password(storage):
    message = error(minimal() | {"storage": storage})
    assert message.startswith("c.toml: storage.url: ")
    assert "0815" not in message


def test_edge_values_are_allowed():
    s = parse_settings(
        minimal(api_base_url="http://localhost:9000/v2/")
        | {"server": {"port": 0}, "outbound": {"drain_timeout": 0}},
        environ={},
    )
    assert s.zoom.api_base_url == "http://localhost:9000/v2"
    assert (s.server.port, s.outbound.drain_timeout) == (0, 0.0)


def test_empty_after_expansion_is_empty():
    assert error(minimal(client_id="${ID}"), {"ID": ""}) == (
        "c.toml: zoom.client_id: must not be empty"
    )


def test_numbers_accept_integers_and_levels_are_case_insensitive():
    s = parse_settings(
        minimal()
        | {"outbound": {"rate_limit": 2}, "logging": {"level": "debug", "format": "JSON"}},
        environ={},
    )
    assert s.outbound.rate_limit == 2.0
    assert (s.logging.level, s.logging.format) == ("DEBUG", "json")


def test_environment_variables_expand_everywhere():
    data = minimal(client_secret="${SECRET}") | {
        "plugins": {"deploy": {"token": "tok-${T}", "teams": {"a": {"members": ["${WHO}", "b"]}}}}
    }
    s = parse_settings(data, environ={"SECRET": "abc", "T": "1", "WHO": "Alice"})
    assert s.zoom.client_secret.reveal() == "abc"
    assert s.plugins.tables["deploy"]["token"] == "tok-1"
    assert s.plugins.tables["deploy"]["teams"]["a"]["members"] == ("Alice", "b")


def test_unset_variable_and_malformed_reference_are_named():
    assert error(minimal(client_secret="${NOPE}")) == (
        "c.toml: zoom.client_secret: environment variable NOPE is not set"
    )
    assert error(minimal() | {"plugins": {"x": {"list": ["${A"]}}}) == (
        "c.toml: plugins.x.list[0]: malformed ${...}: write ${NAME}, or $${ for a literal"
    )


def test_double_dollar_is_a_literal():
    s = parse_settings(minimal(client_id="a$${B}"), environ={"B": "no"})
    assert s.zoom.client_id == "a${B}"


def test_plugin_tables_are_read_only():
    s = parse_settings(minimal() | {"plugins": {"x": {"a": 1}}}, environ={})
    with pytest.raises(TypeError):
        s.plugins.tables["x"]["a"] = 2  # type: ignore[index]


def test_secrets_never_show():
    s = parse_settings(
        minimal() | {"plugins": {"deploy": {"webhook_token": "s3cret-hook"}}}, environ={}
    )
    assert s.zoom.client_secret.reveal() == "s3cret-client"
    for text in (repr(s), str(s), repr(s.zoom), repr(s.plugins)):
        assert "s3cret" not in text
    assert "tables=<deploy>" in repr(s.plugins)
    assert repr(Secret("x")) == "Secret('********')"
    assert str(Secret("x")) == "********"
    assert bool(Secret("x"))
    assert not Secret("")


@pytest.mark.parametrize(
    "data",
    [
        minimal(client_secret=["s3cret-x"]),
        minimal(secret_tokn="s3cret-x"),
        minimal(api_base_url="s3cret-x"),
        minimal() | {"server": {"port": "s3cret-x"}},
        minimal() | {"logging": {"level": "s3cret-x"}},
        minimal() | {"plugins": {"deploy": "s3cret-x"}},
        minimal(client_secret="${S}-${MISSING}"),
        minimal(client_secret="${S}${"),
    ],
)
def test_errors_never_quote_a_value(data):
    message = error(data, {"S": "s3cret-env"})
    assert "s3cret" not in message
    assert message.startswith("c.toml: ")


def load_error(path: Path | str) -> str:
    with pytest.raises(ConfigError) as info:
        load_settings(path, {})
    return str(info.value)


def test_file_errors(tmp_path):
    assert load_error(tmp_path / "missing.toml") == (
        f"{tmp_path}/missing.toml: file: not found "
        f"(start from the example: cp config.example.toml {tmp_path}/missing.toml)"
    )
    assert load_error(tmp_path / "config.toml") == (
        f"{tmp_path}/config.toml: file: not found "
        "(start from the example: cp config.example.toml config.toml)"
    )
    assert load_error(tmp_path) == f"{tmp_path}: file: cannot read: Is a directory"
    broken = tmp_path / "broken.toml"
    broken.write_text("[zoom]\nclient_secret = 's3cret'\nbot_jid\n")
    assert load_error(broken) == (
        f"{broken}: syntax: Expected '=' after a key in a key/value pair (at line 3, column 8)"
    )
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe")
    assert load_error(binary) == f"{binary}: file: not UTF-8 text"


def test_a_byte_order_mark_is_accepted(tmp_path):
    path = tmp_path / "bom.toml"
    path.write_bytes(
        b'\xef\xbb\xbf[zoom]\nclient_id="a"\nclient_secret="b"\nbot_jid="c"\nsecret_token="d"\n'
    )
    assert load_settings(path, {}).zoom.client_id == "a"


def test_relative_storage_path_is_relative_to_the_config_file(tmp_path):
    path = tmp_path / "conf" / "bot.toml"
    path.parent.mkdir()
    path.write_text(
        '[zoom]\nclient_id="a"\nclient_secret="b"\nbot_jid="c"\nsecret_token="d"\n'
        '[storage]\npath="data/bot.db"\n'
    )
    assert load_settings(path, {}).storage.path == str(tmp_path / "conf" / "data" / "bot.db")
    absolute = str(tmp_path / "elsewhere.db")
    path.write_text(path.read_text().replace("data/bot.db", absolute))
    assert load_settings(path, {}).storage.path == absolute
    assert parse_settings(minimal() | {"storage": {"path": "x.db"}}, environ={}).storage.path == (
        "x.db"
    )
    assert (
        parse_settings(minimal() | {"storage": {"path": ":memory:"}}, environ={}).storage.path
        == ":memory:"
    )


def test_config_path_precedence():
    assert config_path("a.toml", {"CHATOPSBOT_CONFIG": "b.toml"}) == "a.toml"
    assert config_path(None, {"CHATOPSBOT_CONFIG": "b.toml"}) == "b.toml"
    assert config_path(None, {}) == "config.toml"


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(90, 90.0), (2.5, 2.5), ("90s", 90.0), ("15m", 900.0), ("24h", 86400.0), ("2d", 172800.0)],
)
def test_durations_take_seconds_or_units(value, seconds):
    s = parse_settings(minimal() | {"outbound": {"retry_max_delay": value}}, source="c.toml")
    assert s.outbound.retry_max_delay == seconds


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (
            {"outbound": {"give_up_after": "soon"}},
            "c.toml: outbound.give_up_after: expected seconds",
        ),
        ({"outbound": {"give_up_after": 5}}, "c.toml: outbound.give_up_after: must be at least 60"),
        (
            {"outbound": {"degraded_after": True}},
            "c.toml: outbound.degraded_after: expected seconds",
        ),
        ({"server": {"body_timeout": "0s"}}, "c.toml: server.body_timeout: must be at least 0.1"),
    ],
)
def test_bad_durations_name_the_key(data, error):
    with pytest.raises(ConfigError) as info:
        parse_settings(minimal() | data, source="c.toml")
    assert str(info.value).startswith(error)


def test_audit_keep_defaults_to_90_days_and_takes_a_duration():
    assert parse_settings(minimal(), environ={}).audit.keep == 90 * 86400.0
    s = parse_settings(minimal() | {"audit": {"keep": "30d"}}, environ={})
    assert s.audit.keep == 30 * 86400.0
    assert parse_settings(minimal() | {"audit": {"keep": 7200}}, environ={}).audit.keep == 7200.0


@pytest.mark.parametrize(
    ("audit", "message"),
    [
        ({"keep": "forever"}, "c.toml: audit.keep: expected seconds or a duration such as 24h"),
        ({"keep": "30m"}, "c.toml: audit.keep: must be at least 3600 seconds"),
        ({"keep": [1]}, "c.toml: audit.keep: expected seconds or a duration such as 24h"),
        ({"kept": "90d"}, "c.toml: audit.kept: unknown key (did you mean keep?)"),
        ([], "c.toml: audit: expected a table [audit]"),
    ],
)
def test_bad_audit_settings_name_the_key(audit, message):
    assert error(minimal() | {"audit": audit}).startswith(message)
