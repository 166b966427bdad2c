"""The audit log's pure parts (entries, queries, time parsing, the table) and its purge."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest

from chatopsbot import ActionContext, Actions, Card, Context, Text, action, command, hookimpl
from chatopsbot.audit import (
    DETAIL_LIMIT,
    AuditEntry,
    AuditLog,
    AuditQuery,
    AuditQueryError,
    format_table,
    parse_duration,
    parse_time,
)
from chatopsbot.clock import ManualClock
from chatopsbot.storage import open_backend
from chatopsbot.zoom.payloads import button_clicked

NOW = dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC).timestamp()


def entry(at: float = NOW, what: str = "deploy unlock", **fields: str) -> AuditEntry:
    values = {
        "kind": "command",
        "actor_id": "u-alice",
        "actor_name": "Alice",
        "actor_jid": "alice@xmpp.zoom.us",
        "account_id": "acct-1",
        "conversation": "ops@conference.xmpp.zoom.us",
        "conversation_name": "ops",
        "detail": "deploy unlock api",
        "result": "ok",
        "ref": "ev-1",
        **fields,
    }
    return AuditEntry(at=at, what=what, **values)


# Entries and JSON lines.


def test_an_entry_round_trips_through_one_json_line():
    original = entry(NOW + 0.25, detail='say "hi"\nthen ünïcode')
    line = original.to_json()
    assert "\n" not in line
    data = json.loads(line)
    assert data["time"] == "2026-11-25T12:00:00Z"
    assert data["detail"] == 'say "hi"\nthen ünïcode'
    assert AuditEntry.from_json(line) == original


def test_a_long_detail_is_cut_to_the_limit():
    long = entry(detail="x" * 5000)
    assert len(long.detail) == DETAIL_LIMIT
    assert long.detail.endswith("…")
    assert entry(detail="y" * DETAIL_LIMIT).detail == "y" * DETAIL_LIMIT


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("[1]", "a JSON object"),
        ('{"at": 1}', "without 'kind'"),
        (entry().to_json().replace('"kind"', '"sort"'), "unknown audit field(s): sort"),
        (entry().to_json().replace(f'"at":{NOW}', '"at":"noon"'), "'at' must be a number"),
        (entry().to_json().replace('"result":"ok"', '"result":200'), "'result' must be a string"),
    ],
)
def test_a_bad_json_line_is_refused_with_the_reason(text, error):
    with pytest.raises(ValueError, match=re.escape(error)):
        AuditEntry.from_json(text)


# Time and duration parsing.


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("30m", 1800), ("24h", 86400), ("7d", 604800), ("2w", 1209600), ("1.5h", 5400)],
)
def test_durations(text, seconds):
    assert parse_duration(text) == seconds
    assert parse_time(text, NOW) == NOW - seconds


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-25T09:00Z", dt.datetime(2026, 11, 25, 9, tzinfo=dt.UTC)),
        ("2026-11-25T09:00:00+02:00", dt.datetime(2026, 11, 25, 7, tzinfo=dt.UTC)),
        ("2026-11-25 09:00", dt.datetime(2026, 11, 25, 9, tzinfo=dt.UTC)),  # no offset: UTC
        ("2026-11-25", dt.datetime(2026, 11, 25, tzinfo=dt.UTC)),
    ],
)
def test_iso_times_are_utc_unless_they_say_otherwise(text, expected):
    assert parse_time(text, NOW) == expected.timestamp()


@pytest.mark.parametrize("text", ["yesterday", "24", "-1h", "3 days", "", "2026-13-01"])
def test_a_bad_time_names_the_option_and_the_forms_expected(text):
    with pytest.raises(AuditQueryError, match=r"^--until: expected a duration such as 30m"):
        parse_time(text, NOW, option="--until")


def test_parsing_a_query_from_option_text():
    query = AuditQuery.parse(
        now=NOW, since="24h", until="2026-11-25T11:00Z", user=" Alice ", command="deploy  unlock"
    )
    assert query == AuditQuery(
        since=NOW - 86400, until=NOW - 3600, user="Alice", command="deploy unlock", limit=100
    )
    assert AuditQuery.parse(now=NOW) == AuditQuery()


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"since": "1h", "until": "2h"}, "--since: must be earlier than --until"),
        ({"user": "  "}, "--user: must not be empty"),
        ({"command": ""}, "--command: must not be empty"),
        ({"limit": 0}, "--limit: must be a whole number of at least 1"),
        ({"since": "soon"}, "--since: expected a duration"),
    ],
)
def test_a_bad_query_names_its_option(options, error):
    with pytest.raises(AuditQueryError, match=f"^{re.escape(error)}"):
        AuditQuery.parse(now=NOW, **options)


# Filtering semantics.


def test_user_matches_id_jid_or_name_in_any_case():
    alice = entry()
    for who in ("u-alice", "alice@xmpp.zoom.us", "Alice", "ALICE", "alice"):
        assert AuditQuery(user=who).matches(alice), who
    for who in ("u-ali", "Alic", "bob", "xmpp.zoom.us"):
        assert not AuditQuery(user=who).matches(alice), who
    # Ids and JIDs are exact: case matters there.
    assert not AuditQuery(user="U-ALICE").matches(alice)
    hook = entry(kind="hook", actor_id="10.0.0.7", actor_name="", actor_jid="")
    assert AuditQuery(user="10.0.0.7").matches(hook)


def test_command_matches_exactly_or_as_a_leading_word():
    def hits(command: str) -> list[str]:
        names = ["deploy", "deploy unlock", "deployment list", "polls:vote", "POST /hooks/deploy"]
        return [n for n in names if AuditQuery(command=command).matches(entry(what=n))]

    assert hits("deploy") == ["deploy", "deploy unlock"]
    assert hits("deploy unlock") == ["deploy unlock"]
    assert hits("dep") == []
    assert hits("polls") == ["polls:vote"]
    assert hits("polls:vote") == ["polls:vote"]
    assert hits("POST") == ["POST /hooks/deploy"]


def test_time_bounds_are_since_inclusive_until_exclusive():
    assert AuditQuery(since=NOW).matches(entry(NOW))
    assert not AuditQuery(since=NOW + 1).matches(entry(NOW))
    assert not AuditQuery(until=NOW).matches(entry(NOW))
    assert AuditQuery(until=NOW + 1).matches(entry(NOW))


def test_apply_gives_newest_first_then_last_written_and_keeps_the_limit():
    a, b, c = entry(NOW, ref="a"), entry(NOW + 1, ref="b"), entry(NOW, ref="c")
    assert [e.ref for e in AuditQuery().apply([a, b, c])] == ["b", "c", "a"]
    assert [e.ref for e in AuditQuery(limit=2).apply([a, b, c])] == ["b", "c"]


# The table.


def test_the_table_shows_time_who_where_what_result_and_ref():
    lines = format_table(
        [
            entry(),
            entry(
                NOW - 60,
                "POST /hooks/deploy",
                kind="hook",
                actor_id="10.0.0.7",
                actor_name="",
                actor_jid="",
                conversation="",
                conversation_name="",
                result="401",
                ref="",
            ),
        ]
    )
    assert lines[0].split() == ["time", "(UTC)", "who", "where", "what", "result", "ref"]
    assert lines[1].split() == [
        "2026-11-25T12:00:00Z",
        "Alice",
        "(u-alice)",
        "ops",
        "deploy",
        "unlock",
        "ok",
        "ev-1",
    ]
    assert lines[2].split() == [
        "2026-11-25T11:59:00Z",
        "10.0.0.7",
        "http",
        "POST",
        "/hooks/deploy",
        "401",
        "-",
    ]
    # Columns line up.
    assert len({line.index("ok" if i == 1 else "result") for i, line in enumerate(lines[:2])}) == 1


def test_a_long_cell_is_cut_and_newlines_never_break_a_row():
    [_, row] = format_table([entry(conversation_name="x" * 100 + "\nsecond line")])
    assert "\n" not in row
    assert "x" * 39 + "…" in row


# The AuditLog door and the running bot's purge.


async def test_the_audit_log_records_queries_and_purges(tmp_path):
    backend = await open_backend(str(tmp_path / "bot.db"))
    try:
        log = AuditLog(backend)
        await log.record([])  # nothing to write: no transaction at all
        await log.record([entry(NOW - 10, ref="old"), entry(NOW, ref="new")])
        assert [e.ref for e in await log.query(AuditQuery())] == ["new", "old"]
        assert await log.purge(NOW - 5) == 1
        assert [e.ref for e in await log.query(AuditQuery())] == ["new"]
    finally:
        await backend.close()


async def test_the_running_bot_purges_entries_older_than_audit_keep(start_bot):
    clock = ManualClock(dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC))
    bot = await start_bot(clock=clock, audit={"keep": "2h"})
    log = AuditLog(bot.runtime.backend)
    now = clock.timestamp()
    await log.record([entry(now - 3 * 3600, ref="old"), entry(now - 3600, ref="recent")])
    await bot.advance(601)  # the purge job runs every 10 minutes
    assert [e.ref for e in await log.query(AuditQuery())] == ["recent"]


async def test_a_units_entries_pass_through_the_messenger_with_its_settle(start_bot):
    bot = await start_bot()
    runtime = bot.runtime
    now = runtime.clock.timestamp()
    assert await runtime.backend.inbox_accept("ev-9", b"{}", now)
    unit = {"settle": ("ev-9", now + 3600), "audit": [entry(now, ref="ev-9")]}
    await runtime.messenger.commit([], **unit)
    await runtime.messenger.commit([], **unit)  # a retried write
    assert [e.ref for e in await AuditLog(runtime.backend).query(AuditQuery())] == ["ev-9"]
    assert await runtime.backend.inbox_pending() == []


# Recorded through the real path: signed webhooks in, entries out.


@command("wipe", help="Wipes", confirm="Wipe it all?")
async def wipe(ctx: Context) -> Text:
    return Text("wiped")


@command("board", help="A card")
async def board(ctx: Context) -> Card:
    return Card(head="Board", body=[Actions((ctx.button("Go", "go", "p1"),))])


@action("go")
async def go(ctx: ActionContext) -> Text:
    return Text("went")


class Acts:
    @hookimpl
    def chatops_commands(self) -> list[object]:
        return [wipe, board]

    @hookimpl
    def chatops_actions(self) -> list[object]:
        return [go]


async def _entries(bot: object) -> list[AuditEntry]:
    log = AuditLog(bot.runtime.backend)  # type: ignore[attr-defined]
    return list(reversed(await log.query(AuditQuery(limit=100))))


async def test_commands_clicks_confirmations_and_denials_are_recorded(start_bot):
    rules = {"admins": ["u-alice"], "commands": {"board": {"deny_users": ["u-bob"]}}}
    bot = await start_bot(extra={"acts": Acts()}, access=rules)
    await bot.command("ping")
    await bot.command("board", user_id="u-bob", user_name="Bob")
    [card] = await bot.command("board")
    await bot.click(card, "Go", user_id="u-carol", user_name="Carol")
    await bot.deliver(button_clicked("cob1:acts:go:p1:forged", message_id=card.message_id))
    [question] = await bot.command("wipe")
    await bot.click(question, "Confirm")
    rows = [(e.kind, e.actor_id, e.what, e.detail, e.result) for e in await _entries(bot)]
    assert rows == [
        ("command", "u-alice", "ping", "ping", "ok"),
        ("command", "u-bob", "board", "board", "denied"),
        ("command", "u-alice", "board", "board", "ok"),
        ("action", "u-carol", "acts:go", "", "ok"),
        ("action", "u-alice", "(unknown)", "signature does not match", "stale"),
        ("command", "u-alice", "wipe", "wipe", "proposed"),
        ("confirm", "u-alice", "wipe", "", "ok"),
    ]
    entry = (await _entries(bot))[0]
    assert entry.conversation.endswith("@conference.xmpp.zoom.us")
    assert entry.actor_name == "Alice"


async def test_admins_read_the_log_in_chat_and_others_may_not(start_bot):
    bot = await start_bot(access={"admins": ["u-alice"]})
    await bot.command("ping", user_id="u-bob", user_name="Bob")
    [refused] = await bot.command("audit", user_id="u-bob")
    assert refused.text.startswith("Only the bot's admins may run audit.")
    [shown] = await bot.command("audit --command ping")
    assert shown.visible_to_user == "u-alice"
    lines = shown.text.splitlines()
    assert len(lines) == 2  # the heading and Bob's ping: the audit calls are not pings
    assert lines[1].split()[1:6] == ["Bob", "(u-bob)", "ops", "ping", "ok"]
    [bad] = await bot.command("audit --since yesterday")
    assert bad.text.startswith("--since:")


async def test_hook_calls_that_may_change_state_are_recorded(start_bot):
    bot = await start_bot(plugins={"deploy": {"webhook_token": "t0ken"}})
    auth = {"Authorization": "Bearer t0ken", "X-Delivery-Id": "d-1"}
    await bot.hook("POST", "deploy", "?token=s3cret", json={"bad": 1}, headers=auth)
    await bot.hook("GET", "deploy", "/lock?service=api&environment=prod", headers=auth)
    # Refused credentials are logged, not recorded: anyone could fill the table with them.
    for _ in range(5):
        await bot.hook("POST", "deploy", json={}, headers={"X-Delivery-Id": "junk"})
    [entry] = [e for e in await _entries(bot) if e.kind == "hook"]
    assert (entry.what, entry.result, entry.ref) == ("POST /hooks/deploy", "400", "d-1")
    assert entry.actor_id == "127.0.0.1"
    assert "s3cret" not in entry.to_json()


async def test_an_anonymous_vote_leaves_no_link_from_voter_to_choice(start_bot):
    bot = await start_bot()
    [card] = await bot.command("poll Raise? yes no --anonymous")
    buttons = [i for b in card.content["body"] if b.get("type") == "actions" for i in b["items"]]
    value = next(b["value"] for b in buttons if b["text"] == "yes")
    await bot.click(card, "yes", user_id="u-bob", user_name="Bob")
    votes = [e for e in await _entries(bot) if e.what == "polls:vote"]
    assert [(e.actor_id, e.result) for e in votes] == [("u-bob", "ok")]
    payload = value.split(":", 3)[3].rsplit(":", 1)[0]  # "<poll id>:<option index>"
    for entry in await _entries(bot):
        assert payload not in entry.to_json(), entry
