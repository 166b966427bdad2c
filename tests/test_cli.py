"""The command line: config errors as one line and exit 1, plugins listing, demo, run + SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

from chatopsbot.cli import main
from chatopsbot.demo import run_demo

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


def test_check_config_accepts_a_good_file(tmp_path, capsys):
    path = write(tmp_path, GOOD)
    assert main(["check-config", "--config", path], ENV) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{path}: OK")
    assert "hunter2" not in out


def test_check_config_names_file_and_key_and_exits_1(tmp_path, capsys):
    path = write(tmp_path, GOOD.replace('bot_jid = "bot@xmpp.zoom.us"\n', ""))
    assert main(["check-config", "--config", path], ENV) == 1
    assert capsys.readouterr().err.strip() == f"{path}: zoom.bot_jid: required"


def test_config_path_comes_from_the_environment(tmp_path, capsys):
    path = write(tmp_path, GOOD)
    assert main(["check-config"], {**ENV, "CHATOPSBOT_CONFIG": path}) == 0


def test_a_missing_variable_is_named_and_secrets_never_shown(tmp_path, capsys):
    path = write(tmp_path, GOOD)
    assert main(["check-config", "--config", path], {"ZOOM_SECRET_TOKEN": "tok-secret"}) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"{path}: zoom.client_secret: ")
    assert "ZOOM_CLIENT_SECRET" in err
    assert "tok-secret" not in err


def test_unknown_disabled_plugin_and_unknown_plugin_table_are_errors(tmp_path, capsys):
    path = write(tmp_path, GOOD + '\n[plugins]\ndisabled = ["nope"]\n')
    assert main(["check-config", "--config", path], ENV) == 1
    assert capsys.readouterr().err.startswith(
        f"{path}: plugins.disabled: no installed plugin named nope"
    )
    path = write(tmp_path, GOOD + "\n[plugins.pols]\nx = 1\n")
    assert main(["check-config", "--config", path], ENV) == 1
    assert capsys.readouterr().err.startswith(f"{path}: plugins.pols: no installed plugin named")


def test_core_takes_no_configuration(tmp_path, capsys):
    path = write(tmp_path, GOOD + "\n[plugins.core]\nx = 1\n")
    assert main(["check-config", "--config", path], ENV) == 1
    assert capsys.readouterr().err.strip() == (
        f"{path}: plugins.core: this plugin takes no configuration"
    )


def test_plugins_lists_core_and_its_commands(tmp_path, capsys):
    assert main(["plugins", "--config", str(tmp_path / "absent.toml")], {}) == 0
    out = capsys.readouterr().out
    assert "core" in out
    assert "enabled" in out
    assert "ping" in out
    assert "help" in out


def test_disabled_plugins_are_listed_as_disabled(tmp_path, capsys):
    path = write(tmp_path, GOOD + '\n[plugins]\ndisabled = ["core"]\n')
    assert main(["plugins", "--config", path], ENV) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("core"))
    assert "disabled" in line


async def test_demo_runs_the_real_path_and_prints_a_transcript(capsys):
    import io

    out = io.StringIO()
    assert await run_demo(["ping", "pnig"], out) == 0
    text = out.getvalue()
    assert "bot> pong" in text
    assert "(only u-alice sees this)> Unknown command 'pnig'. Did you mean 'ping'?" in text


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
async def test_run_serves_and_exits_0_on_sigterm(tmp_path):
    path = write(tmp_path, GOOD + '\n[server]\nhost = "127.0.0.1"\nport = 0\n')
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "chatopsbot.cli",
        "run",
        "--config",
        path,
        env={**os.environ, **ENV},
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stderr is not None
    lines: list[str] = []
    while True:
        line = (await asyncio.wait_for(proc.stderr.readline(), 30)).decode()
        assert line, "".join(lines)
        lines.append(line)
        if "serving webhooks" in line:
            break
    proc.send_signal(signal.SIGTERM)
    rest = (await asyncio.wait_for(proc.stderr.read(), 30)).decode()
    assert await proc.wait() == 0
    assert "shutdown: nothing left to send" in rest
    assert "hunter2" not in "".join(lines) + rest


def test_an_unusable_storage_file_stops_run_with_its_path(tmp_path, capsys):
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"junk" * 100)
    path = write(tmp_path, GOOD + f'\n[server]\nport = 0\n[storage]\npath = "{bad}"\n')
    assert main(["run", "--config", path], ENV) == 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"chatopsbot: {bad}: cannot use the storage file: file is not a database"
    )


async def _dead_letters(db: str, count: int) -> list[int]:
    from chatopsbot.outbound.sender import encode_call
    from chatopsbot.storage import NewMessage, open_backend
    from chatopsbot.zoom.cards import ApiCall

    backend = await open_backend(db)
    try:
        calls = [
            ApiCall(
                "POST",
                "/im/chat/messages",
                "acct-1",
                {"to_jid": "ops@x", "content": {"body": [{"type": "message", "text": f"hi {n}"}]}},
            )
            for n in range(count)
        ]
        messages = [NewMessage("ops@x", "acct-1", encode_call(c)) for c in calls]
        ids = list((await backend.outbox_add(messages, 1000.0)).ids)
        for i in ids:
            await backend.outbox_dead(i, "rejected", "Zoom answered 400, code 7001: bad", 2000.0)
        return ids
    finally:
        await backend.close()


def test_outbox_list_retry_and_drop(tmp_path, capsys):
    db = str(tmp_path / "bot.db")
    path = write(tmp_path, GOOD + f'\n[storage]\npath = "{db}"\n')
    ids = asyncio.run(_dead_letters(db, 3))
    assert main(["outbox", "list", "--config", path], ENV) == 0
    out = capsys.readouterr().out
    assert out.startswith("queued: 0 message(s)\ndead letters: 3\n")
    assert f"{ids[0]:>6} dead   rejected" in out
    assert "to=ops@x 'hi 0'" in out
    assert "Zoom answered 400, code 7001: bad" in out

    assert main(["outbox", "retry", str(ids[0]), "--config", path], ENV) == 0
    assert "requeued 1 dead letter(s)" in capsys.readouterr().out
    assert main(["outbox", "list", "--queued", "--config", path], ENV) == 0
    out = capsys.readouterr().out
    assert "queued: 1 message(s)" in out
    assert "dead letters: 2" in out
    assert f"{ids[0]:>6} queued -" in out

    # An id that is not a dead letter (queued now) is reported, not silently ignored.
    assert main(["outbox", "drop", str(ids[0]), str(ids[1]), "--config", path], ENV) == 1
    out = capsys.readouterr().out
    assert "dropped 1 dead letter(s)" in out
    assert "(1 of the ids named are not dead letters)" in out
    assert main(["outbox", "drop", "--all", "--config", path], ENV) == 0
    assert "dropped 1 dead letter(s)" in capsys.readouterr().out
    assert main(["outbox", "retry", "--config", path], ENV) == 2
    assert "name the message ids, or --all" in capsys.readouterr().out


def test_check_config_says_which_storage_and_connects_on_request(tmp_path, capsys):
    db = tmp_path / "bot.db"
    path = write(tmp_path, GOOD + f'\n[storage]\npath = "{db}"\n')
    assert main(["check-config", "--config", path], ENV) == 0
    assert f"storage: SQLite file {db}\n" in capsys.readouterr().out
    assert not db.exists()  # not opened without --connect
    assert main(["check-config", "--connect", "--config", path], ENV) == 0
    assert "storage: reachable; 0 queued message(s), 0 dead letter(s)" in capsys.readouterr().out
    assert db.exists()


def test_a_postgres_url_hides_its_password_and_an_unreachable_one_exits_1(tmp_path, capsys):
    url = "postgresql://bot:${PGPASSWORD}@127.0.0.1:1/bot"
    path = write(tmp_path, GOOD + f'\n[storage]\nurl = "{url}"\n')
    env = {**ENV, "PGPASSWORD": "s3cret-pw"}
    assert main(["check-config", "--config", path], env) == 0
    out = capsys.readouterr().out
    assert "storage: PostgreSQL at postgresql://bot:***@127.0.0.1:1/bot" in out
    assert main(["check-config", "--connect", "--config", path], env) == 1
    captured = capsys.readouterr()
    assert "s3cret-pw" not in captured.out + captured.err
    assert captured.err.startswith(
        "chatopsbot: postgresql://bot:***@127.0.0.1:1/bot: cannot connect"
    )


@pytest.mark.parametrize(
    ("storage", "error"),
    [
        ('url = "mysql://x/y"', "storage.url: must look like postgresql://"),
        ('url = "postgresql://h/db"\npath = "x.db"', "storage.url: give either path"),
    ],
)
def test_bad_storage_urls_name_the_key(tmp_path, capsys, storage, error):
    path = write(tmp_path, GOOD + f"\n[storage]\n{storage}\n")
    assert main(["check-config", "--config", path], ENV) == 1
    assert error in capsys.readouterr().err


async def test_migrate_copies_a_sqlite_bot_into_postgres(tmp_path, postgres_schema, capsys):
    import asyncpg

    from chatopsbot.storage import NewMessage, open_backend
    from chatopsbot.storage.postgres import PostgresBackend
    from tests.conftest import POSTGRES_URL

    db = str(tmp_path / "bot.db")
    ids = await _dead_letters(db, 2)
    source = await open_backend(db)
    await source.put("polls", "poll:1", '{"q": "Lunch?"}', None)
    await source.put("chatopsbot:timers", "t1", '{"plugin": "polls"}', None)
    await source.inbox_accept("ev", b"{}", 5.0)
    added = await source.outbox_add([NewMessage("ops@x", "acct-1", '{"method": "POST"}')], 7.0)
    [queued] = added.ids
    await source.close()
    conn = await asyncpg.connect(POSTGRES_URL)
    await conn.execute(f'CREATE SCHEMA "{postgres_schema}"')
    await conn.close()
    url = f"{POSTGRES_URL}?search_path={postgres_schema}"

    code = await asyncio.to_thread(
        main, ["migrate", "--from", db, "--to", "${PGURL}"], {"PGURL": url}
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "copied 2 value(s) (plugin data and timers), 1 unfinished event(s), 1 queued " in out
    assert "and 2 dead letter(s)" in out
    target = await PostgresBackend.open(POSTGRES_URL, schema=postgres_schema)
    try:
        assert await target.get("polls", "poll:1", 0) == '{"q": "Lunch?"}'
        assert await target.inbox_pending() == [("ev", b"{}")]
        [message] = await target.outbox_list("queued")
        assert (message.lane, message.created_at) == ("ops@x", 7.0)
        assert [d.reason for d in await target.outbox_list("dead")] == ["rejected"] * len(ids)
    finally:
        await target.close()
    # A second copy into a database that holds messages is refused.
    code = await asyncio.to_thread(main, ["migrate", "--from", db, "--to", url], {})
    assert code == 1
    assert "copy into an empty database" in capsys.readouterr().err
    assert queued > 0


OPS_JID = "ops@conference.xmpp.zoom.us"
RULES = f"""
[access]
admins = ["u-alice"]
[access.commands."deploy"]
allow_channels = ["{OPS_JID}"]
[access.commands."deploy unlock"]
deny_users = ["u-dave"]
"""


@pytest.mark.parametrize(
    ("name", "user", "channel", "status", "lines"),
    [
        (
            "deploy unlock",
            "u-dave",
            OPS_JID,
            3,
            [
                f"deploy unlock, for u-dave in {OPS_JID}:",
                "  - declared open to everyone",
                '  - access.commands."deploy" admits',
                '  - access.commands."deploy unlock".deny_users lists the user',
                'verdict: denied: access.commands."deploy unlock".deny_users lists the user',
            ],
        ),
        (
            "Deploy  Lock",
            "u-bob",
            "random@conference.xmpp.zoom.us",
            3,
            [
                "deploy lock, for u-bob in random@conference.xmpp.zoom.us:",
                "  - declared open to everyone",
                '  - access.commands."deploy".allow_channels does not list the conversation',
                'verdict: denied: access.commands."deploy".allow_channels does not list the '
                "conversation",
            ],
        ),
        (
            "deploy unlock",
            "u-alice",
            "random@conference.xmpp.zoom.us",
            0,
            [
                "deploy unlock, for u-alice in random@conference.xmpp.zoom.us:",
                "  - declared open to everyone",
                "  - the user is an admin ([access] admins): admins may run everything",
                "verdict: allowed",
            ],
        ),
    ],
)
def test_access_explain_prints_each_rule_and_the_verdict(
    tmp_path, capsys, name, user, channel, status, lines
):
    path = write(tmp_path, GOOD + RULES)
    argv = ["access", "explain", name, "--user", user, "--channel", channel, "--config", path]
    assert main(argv, ENV) == status
    assert capsys.readouterr().out.splitlines() == lines


def test_access_explain_names_an_unknown_command(tmp_path, capsys):
    path = write(tmp_path, GOOD)
    argv = ["access", "explain", "launch", "--user", "u", "--channel", OPS_JID, "--config", path]
    assert main(argv, ENV) == 1
    assert capsys.readouterr().err.strip() == (
        "chatopsbot access: no command 'launch' (see: chatopsbot plugins)"
    )


async def _audited(db: str) -> None:
    import time

    from chatopsbot.audit import AuditEntry
    from chatopsbot.storage import open_backend

    now = time.time()
    common = {
        "actor_jid": "",
        "account_id": "acct-1",
        "conversation": "ops@conference.xmpp.zoom.us",
        "conversation_name": "ops",
    }
    backend = await open_backend(db)
    try:
        await backend.audit_add(
            [
                AuditEntry(
                    now - 3 * 86400,
                    "command",
                    "u-1",
                    "Alice",
                    what="deploy unlock",
                    detail="deploy unlock api",
                    result="ok",
                    ref="ev-old",
                    **common,
                ),
                AuditEntry(
                    now - 3600,
                    "action",
                    "u-2",
                    "Bob",
                    what="polls:vote",
                    detail="Pizza",
                    result="ok",
                    ref="ev-vote",
                    **common,
                ),
                AuditEntry(
                    now - 60,
                    "command",
                    "u-1",
                    "Alice",
                    what="deploy",
                    detail="deploy api --force",
                    result="denied",
                    ref="ev-new",
                    **common,
                ),
            ]
        )
    finally:
        await backend.close()


def test_audit_shows_a_table_newest_first_and_filters(tmp_path, capsys):
    db = str(tmp_path / "bot.db")
    path = write(tmp_path, GOOD + f'\n[storage]\npath = "{db}"\n')
    asyncio.run(_audited(db))
    assert main(["audit", "--config", path], ENV) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["time", "(UTC)", "who", "where", "what", "result", "ref"]
    assert [line.split()[-1] for line in lines[1:]] == ["ev-new", "ev-vote", "ev-old"]
    assert "Alice (u-1)  ops" in lines[1]
    assert " denied " in lines[1]

    assert main(["audit", "--since", "24h", "--config", path], ENV) == 0
    assert [ln.split()[-1] for ln in capsys.readouterr().out.splitlines()[1:]] == [
        "ev-new",
        "ev-vote",
    ]
    assert main(["audit", "--user", "alice", "--command", "deploy", "--config", path], ENV) == 0
    assert [ln.split()[-1] for ln in capsys.readouterr().out.splitlines()[1:]] == [
        "ev-new",
        "ev-old",
    ]
    assert main(["audit", "--command", "polls", "--limit", "1", "--config", path], ENV) == 0
    assert [ln.split()[-1] for ln in capsys.readouterr().out.splitlines()[1:]] == ["ev-vote"]
    assert main(["audit", "--user", "nobody", "--config", path], ENV) == 0
    assert capsys.readouterr().out == "no audit entries match\n"


def test_audit_json_lines_are_one_entry_each_and_read_back(tmp_path, capsys):
    import json

    from chatopsbot.audit import AuditEntry

    db = str(tmp_path / "bot.db")
    path = write(tmp_path, GOOD + f'\n[storage]\npath = "{db}"\n')
    asyncio.run(_audited(db))
    assert main(["audit", "--json", "--until", "30m", "--config", path], ENV) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(line)["ref"] for line in lines] == ["ev-vote", "ev-old"]
    vote = AuditEntry.from_json(lines[0])
    assert (vote.actor_name, vote.what, vote.detail) == ("Bob", "polls:vote", "Pizza")
    assert json.loads(lines[0])["time"].endswith("Z")
    assert main(["audit", "--json", "--user", "nobody", "--config", path], ENV) == 0
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize(
    ("options", "error"),
    [
        (["--since", "yesterday"], "chatopsbot audit: --since: expected a duration such as 30m"),
        (["--until", "2026-02-30"], "chatopsbot audit: --until: expected a duration"),
        (["--since", "1h", "--until", "2h"], "chatopsbot audit: --since: must be earlier"),
        (["--limit", "0"], "chatopsbot audit: --limit: must be a whole number of at least 1"),
        (["--user", ""], "chatopsbot audit: --user: must not be empty"),
    ],
)
def test_audit_refuses_bad_options_with_exit_1_before_opening_storage(
    tmp_path, capsys, options, error
):
    db = tmp_path / "bot.db"
    path = write(tmp_path, GOOD + f'\n[storage]\npath = "{db}"\n')
    assert main(["audit", *options, "--config", path], ENV) == 1
    assert capsys.readouterr().err.startswith(error)
    assert not db.exists()


def test_audit_on_unusable_or_unreachable_storage_exits_1(tmp_path, capsys):
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"junk" * 100)
    path = write(tmp_path, GOOD + f'\n[storage]\npath = "{bad}"\n')
    assert main(["audit", "--config", path], ENV) == 1
    assert capsys.readouterr().err.strip() == (
        f"chatopsbot: {bad}: cannot use the storage file: file is not a database"
    )
    url = "postgresql://bot:${PGPASSWORD}@127.0.0.1:1/bot"
    path = write(tmp_path, GOOD + f'\n[storage]\nurl = "{url}"\n')
    assert main(["audit", "--config", path], {**ENV, "PGPASSWORD": "s3cret-pw"}) == 1
    err = capsys.readouterr().err
    assert err.startswith("chatopsbot: postgresql://bot:***@127.0.0.1:1/bot: cannot connect")
    assert "s3cret-pw" not in err


async def test_audit_reads_postgres_and_migrate_copies_the_audit_log(
    tmp_path, postgres_schema, capsys
):
    import json

    import asyncpg

    from tests.conftest import POSTGRES_URL

    db = str(tmp_path / "bot.db")
    await _audited(db)
    conn = await asyncpg.connect(POSTGRES_URL)
    await conn.execute(f'CREATE SCHEMA "{postgres_schema}"')
    await conn.close()
    url = f"{POSTGRES_URL}?search_path={postgres_schema}"
    assert await asyncio.to_thread(main, ["migrate", "--from", db, "--to", url], {}) == 0
    capsys.readouterr()
    path = write(tmp_path, GOOD + f'\n[storage]\nurl = "{url}"\n')
    code = await asyncio.to_thread(main, ["audit", "--json", "--config", path], ENV)
    assert code == 0
    refs = [json.loads(line)["ref"] for line in capsys.readouterr().out.splitlines()]
    assert refs == ["ev-new", "ev-vote", "ev-old"]


def test_access_explain_checks_the_users_id_and_jid_together(tmp_path, capsys):
    rules = GOOD + '[access.commands."deploy"]\ndeny_users = ["dave@xmpp.zoom.us"]\n'
    path = write(tmp_path, rules)
    base = ["access", "explain", "deploy status", "--user", "u-dave", "--channel", OPS_JID]
    assert main([*base, "--config", path], ENV) == 0  # the id alone is not listed
    capsys.readouterr()
    assert main([*base, "--jid", "dave@xmpp.zoom.us", "--config", path], ENV) == 3
    assert "deny_users lists the user" in capsys.readouterr().out
