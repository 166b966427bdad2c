"""The command line on the way to production: --version, every config problem at once, rules
that name nothing, a missing file, a port already in use."""

from __future__ import annotations

import importlib.metadata
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from chatopsbot.cli import main

GOOD = """
[zoom]
client_id = "cid"
client_secret = "${ZOOM_CLIENT_SECRET}"
bot_jid = "bot@xmpp.zoom.us"
secret_token = "${ZOOM_SECRET_TOKEN}"
"""
ENV = {"ZOOM_CLIENT_SECRET": "hunter2-secret", "ZOOM_SECRET_TOKEN": "tok-secret"}


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return str(path)


def test_version_is_the_installed_distributions(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == (
        f"chatopsbot {importlib.metadata.version('chatopsbot')}"
    )


BROKEN = """
[zoom]
client_id = "cid"
clinet_secret = "x"
secret_token = 12345
bot_jid = "bot@xmpp.zoom.us"

[server]
prot = 8080

[outbound]
rate_limit = -1
"""


def test_check_config_lists_every_problem_and_run_prints_the_same(tmp_path, capsys):
    path = write(tmp_path, BROKEN)
    assert main(["check-config", "--config", path], ENV) == 1
    err = capsys.readouterr().err
    assert err.splitlines() == [
        f"{path}: zoom.client_secret: required",
        f"{path}: zoom.secret_token: expected a string, got an integer",
        f"{path}: zoom.clinet_secret: unknown key (did you mean client_secret?)",
        f"{path}: server.prot: unknown key (did you mean port?)",
        f"{path}: outbound.rate_limit: must be greater than 0",
    ]
    assert "12345" not in err
    assert main(["run", "--config", path], ENV) == 1
    assert capsys.readouterr().err == err


RULES = """
[access.commands."deplyo"]
admin_only = true

[access.commands."pol close"]
deny_users = ["u-bob"]

[access.commands."polls:vot"]
deny_users = ["u-bob"]

[access.commands."ping"]
deny_users = ["u-bob"]
"""


def test_rules_for_what_does_not_exist_are_all_errors_with_did_you_mean(tmp_path, capsys):
    path = write(tmp_path, GOOD + RULES)
    assert main(["check-config", "--config", path], ENV) == 1
    assert capsys.readouterr().err.splitlines() == [
        f'{path}: access.commands."deplyo": no command, group or action by that name '
        '(did you mean "deploy"?)',
        f'{path}: access.commands."pol close": no command, group or action by that name '
        '(did you mean "poll close"?)',
        f'{path}: access.commands."polls:vot": no command, group or action by that name '
        '(did you mean "polls:vote"?)',
    ]
    assert main(["run", "--config", path], ENV) == 1
    assert 'access.commands."deplyo"' in capsys.readouterr().err


def test_problems_in_several_plugin_tables_are_reported_together(tmp_path, capsys):
    path = write(
        tmp_path,
        GOOD
        + "\n[plugins.core]\nx = 1\n[plugins.pols]\ny = 2\n[plugins.deploy]\nwebhok_token = 'z'\n",
    )
    assert main(["check-config", "--config", path], ENV) == 1
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith(
        f"{path}: plugins.pols: no installed plugin named 'pols' (did you mean polls? installed:"
    )
    assert lines[1:] == [
        f"{path}: plugins.core: this plugin takes no configuration",
        f"{path}: plugins.deploy.webhok_token: unknown key (did you mean webhook_token?)",
    ]


@pytest.mark.parametrize(
    "table",
    [
        GOOD.replace('"${ZOOM_SECRET_TOKEN}"', "['tok-0815']"),
        GOOD + "[storage]\nurl = 'mysql://bot:pw-0815@db/bot'\n",
        GOOD + "[plugins.deploy]\nwebhook_token = ['tok-0815']\n",
        GOOD + "[plugins.deploy]\nwebhook_token = { value = 'tok-0815' }\n",
        GOOD + "[server]\nmetrics_token = 8150815\n",
    ],
)
def test_config_errors_never_echo_a_value_that_may_be_secret(tmp_path, capsys, table):
    path = write(tmp_path, table)
    assert main(["check-config", "--config", path], ENV) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"{path}: ")
    assert "0815" not in err


def test_a_missing_config_file_says_how_to_start_one(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["check-config"], ENV) == 1
    assert capsys.readouterr().err.strip() == (
        "config.toml: file: not found (start from the example: cp config.example.toml config.toml)"
    )


def test_a_port_in_use_is_one_line_and_exit_1_before_serving(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        path = write(tmp_path, GOOD + f'\n[server]\nhost = "127.0.0.1"\nport = {port}\n')
        result = subprocess.run(  # noqa: S603 - our own CLI
            [sys.executable, "-m", "chatopsbot.cli", "run", "--config", path],
            env={**ENV, "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 1
    # Log lines of the plugins loading come first; then the one line, and nothing after it.
    assert result.stderr.splitlines()[-1] == (
        f"{path}: server.port: 127.0.0.1:{port} is already in use (another chatopsbot? "
        "set [server] port or stop the other process)"
    )
    assert "Traceback" not in result.stderr
    assert "serving" not in result.stderr
    assert "starting on" not in result.stderr


def test_the_files_own_problems_come_with_its_plugin_tables_and_rules(tmp_path, capsys):
    no_jid = GOOD.replace('bot_jid = "bot@xmpp.zoom.us"\n', "")
    path = write(tmp_path, no_jid + '\n[access.commands."deplyo"]\nadmin_only = true\n')
    assert main(["check-config", "--config", path], ENV) == 1
    err = capsys.readouterr().err
    assert err.splitlines() == [
        f"{path}: zoom.bot_jid: required",
        f'{path}: access.commands."deplyo": no command, group or action by that name '
        '(did you mean "deploy"?)',
    ]
    assert main(["run", "--config", path], ENV) == 1
    assert capsys.readouterr().err == err
    # A plugin table with a problem: listed too (the rules are checked once the plugins load).
    path = write(tmp_path, no_jid + '\n[plugins.deploy]\nwebhok_token = "z"\n')
    assert main(["check-config", "--config", path], ENV) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"{path}: zoom.bot_jid: required",
        f"{path}: plugins.deploy.webhok_token: unknown key (did you mean webhook_token?)",
    ]


def test_a_port_taken_after_the_check_is_the_same_one_line(tmp_path, capsys, monkeypatch):
    import chatopsbot.cli

    # Another process takes the port between the check and the bind.
    monkeypatch.setattr(chatopsbot.cli, "_port_taken", lambda host, port: None)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        path = write(
            tmp_path,
            GOOD + f'\n[server]\nhost = "127.0.0.1"\nport = {port}\n[storage]\npath = "b.db"\n',
        )
        assert main(["run", "--config", path], ENV) == 1
    err = capsys.readouterr().err
    assert err.splitlines()[-1] == (
        f"{path}: server.port: 127.0.0.1:{port} is already in use (another chatopsbot? "
        "set [server] port or stop the other process)"
    )
    assert "Traceback" not in err
