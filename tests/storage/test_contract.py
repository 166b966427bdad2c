"""The storage contract, run on every backend: inbox, outbox, dead letters, ids and ordering,
the audit log.

The same test on SQLite and on PostgreSQL, so a behaviour cannot differ between them.
"""

from __future__ import annotations

import asyncio

import pytest

from chatopsbot.audit import AuditEntry, AuditQuery
from chatopsbot.storage import Added, NewMessage, StorageError, Write


def msg(lane: str, n: int, account: str = "a1") -> NewMessage:
    return NewMessage(lane, account, f'{{"n":{n}}}', "{}")


async def test_inbox_accepts_a_key_once_until_it_expires(any_backend):
    b = any_backend
    assert await b.inbox_accept("k1", b"body-1", 100.0) is True
    assert await b.inbox_accept("k1", b"body-1 again", 101.0) is False  # pending: duplicate
    assert await b.inbox_pending() == [("k1", b"body-1")]
    await b.inbox_settle("k1", 200.0)
    assert await b.inbox_pending() == []
    assert await b.inbox_accept("k1", b"x", 150.0) is False  # handled, still remembered
    assert await b.inbox_accept("k1", b"new", 250.0) is True  # forgotten after expiry
    assert await b.inbox_pending() == [("k1", b"new")]


async def test_inbox_pending_keeps_arrival_order_and_purge_forgets_expired_keys(any_backend):
    b = any_backend
    for n in range(5):
        assert await b.inbox_accept(f"k{n}", bytes([n]), 100.0 + n)
    await b.inbox_settle("k2", 110.0)
    assert [k for k, _ in await b.inbox_pending()] == ["k0", "k1", "k3", "k4"]
    assert await b.purge(111.0) == 1
    assert await b.inbox_accept("k2", b"again", 112.0) is True


async def test_simultaneous_accepts_of_one_key_record_it_once(any_backend):
    results = await asyncio.gather(
        *(any_backend.inbox_accept("same", b"b", 100.0) for _ in range(50))
    )
    assert results.count(True) == 1


async def test_outbox_ids_ascend_and_lanes_keep_their_order(any_backend):
    b = any_backend
    first = (await b.outbox_add([msg("c1", 1), msg("c2", 2), msg("c1", 3)], 100.0)).ids
    second = (await b.outbox_add([msg("c1", 4)], 101.0)).ids
    assert first == tuple(sorted(first))
    assert second[0] > first[-1]
    assert await b.outbox_lanes() == [("c1", "a1"), ("c2", "a1")]
    head = await b.outbox_head("c1")
    assert head is not None
    assert (head.id, head.payload, head.created_at) == (
        first[0],
        '{"n":1}',
        100.0,
    )
    await b.outbox_sent(first[0])
    head = await b.outbox_head("c1")
    assert head is not None
    assert head.id == first[2]
    assert await b.outbox_stats() == (3, 100.0)


async def test_adding_messages_settles_their_event_in_the_same_transaction(any_backend):
    b = any_backend
    await b.inbox_accept("ev", b"body", 100.0)
    await b.outbox_add([msg("c1", 1)], 100.0, settle=("ev", 4000.0))
    assert await b.inbox_pending() == []
    assert await b.inbox_accept("ev", b"body", 200.0) is False
    # Settling alone, with nothing to send:
    await b.inbox_accept("ev2", b"body", 100.0)
    assert await b.outbox_add([], 100.0, settle=("ev2", 4000.0)) == Added()
    assert await b.inbox_pending() == []


async def test_an_add_names_the_messages_that_head_their_lane(any_backend):
    # The sender takes such a message as written instead of reading it back: a message
    # with anything older queued in its lane must never be named.
    b = any_backend
    first = await b.outbox_add([msg("c1", 1), msg("c2", 2), msg("c1", 3)], 100.0)
    assert first.heads == {first.ids[0], first.ids[1]}
    behind = await b.outbox_add([msg("c1", 4), msg("c3", 5)], 101.0)
    assert behind.heads == {behind.ids[1]}
    # A dead letter holds no place until it is requeued.
    await b.outbox_dead(first.ids[1], "rejected", "Zoom answered 400", 102.0)
    again = await b.outbox_add([msg("c2", 6)], 103.0)
    assert again.heads == {again.ids[0]}
    await b.outbox_requeue([first.ids[1]], 104.0)
    assert (await b.outbox_add([msg("c2", 7)], 105.0)).heads == frozenset()
    # Sent away, the lane is empty again.
    for i in (*first.ids, *behind.ids, *again.ids):
        await b.outbox_sent(i)
    assert (await b.outbox_add([msg("c1", 8)], 106.0)).heads != frozenset()


async def test_sent_writes_go_with_the_deletion(any_backend):
    b = any_backend
    [i] = (await b.outbox_add([msg("c1", 1)], 100.0)).ids
    await b.outbox_sent(i, [Write("chatopsbot:card-authors", "m1", "polls", 999.0)])
    assert await b.outbox_stats() == (0, None)
    assert await b.get("chatopsbot:card-authors", "m1", 100.0) == "polls"


async def test_attempts_dead_letters_requeue_and_drop(any_backend):
    b = any_backend
    ids = (await b.outbox_add([msg("c1", n) for n in range(4)], 100.0)).ids
    await b.outbox_attempted(ids[0], "Zoom answered 503")
    head = await b.outbox_head("c1")
    assert head is not None
    assert (head.attempts, head.error) == (1, "Zoom answered 503")
    await b.outbox_dead(ids[0], "rejected", "Zoom answered 400", 150.0)
    await b.outbox_dead(ids[1], "expired", "never sent", 151.0)
    await b.outbox_dead(ids[2], "rejected", "Zoom answered 404", 152.0)
    dead = await b.outbox_list("dead")
    assert [(d.id, d.state, d.reason, d.attempts) for d in dead] == [
        (ids[0], "dead", "rejected", 2),
        (ids[1], "dead", "expired", 1),
        (ids[2], "dead", "rejected", 1),
    ]
    assert dead[0].failed_at == 150.0
    assert [m.id for m in await b.outbox_list("queued")] == [ids[3]]
    # Requeued in its original place: before the message decided after it.
    assert await b.outbox_requeue([ids[0], ids[3]], 300.0) == 1
    head = await b.outbox_head("c1")
    assert head is not None
    assert (head.id, head.attempts, head.created_at) == (ids[0], 0, 300.0)
    assert await b.outbox_drop([ids[1]]) == 1
    assert await b.outbox_drop(None) == 1
    assert await b.outbox_requeue(None, 300.0) == 0
    assert await b.outbox_stats() == (2, 100.0)


async def test_concurrent_updates_all_count(any_backend):
    b = any_backend

    def bump(old: str | None) -> str:
        return str(int(old or "0") + 1)

    await asyncio.gather(*(b.update("ns", "n", bump, 0.0, None) for _ in range(100)))
    assert await b.get("ns", "n", 0.0) == "100"


async def test_an_update_may_refuse_and_changes_nothing(any_backend):
    b = any_backend
    await b.put("ns", "k", "1", None)

    def refuse(old: str | None) -> str:
        raise ValueError("no")

    with pytest.raises(ValueError, match="no"):
        await b.update("ns", "k", refuse, 0.0, None)
    assert await b.get("ns", "k", 0.0) == "1"


async def test_reclaim_takes_over_old_pending_events_once(any_backend):
    b = any_backend
    await b.inbox_accept("old", b"1", 100.0)
    await b.inbox_accept("new", b"2", 190.0)
    assert await b.inbox_reclaim(before=150.0, now=200.0) == [("old", b"1")]
    # Taken over "now": not old any more, so not taken twice.
    assert await b.inbox_reclaim(before=150.0, now=201.0) == []
    assert [k for k, _ in await b.inbox_pending()] == ["old", "new"]


async def test_a_waited_for_result_is_kept_for_the_waiter_and_purged_later(any_backend):
    b = any_backend
    added = await b.outbox_add(
        [msg("c1", 1), NewMessage("c1", "a1", "{}", "{}", waited=True), msg("c2", 3)], 100.0
    )
    queued, waited, dead = added.ids
    assert await b.outbox_result(waited) is None  # still queued
    await b.outbox_sent(queued)
    await b.outbox_sent(waited, result='{"message_id":"m2"}')
    await b.outbox_dead(dead, "rejected", "Zoom answered 400", 100.0)
    assert await b.outbox_result(queued) is None
    assert await b.outbox_result(waited) == ("sent", '{"message_id":"m2"}')
    assert await b.outbox_result(dead) == ("dead", "Zoom answered 400")
    # Sent messages are neither queued nor dead letters.
    assert await b.outbox_stats() == (0, None)
    assert [m.id for m in await b.outbox_list("dead")] == [dead]
    assert await b.outbox_head("c1") is None
    import time

    await b.purge(time.time() + 3601)
    assert await b.outbox_result(waited) is None


async def test_notifications_reach_listeners(any_backend):
    got: asyncio.Queue[str] = asyncio.Queue()
    await any_backend.listen("chatopsbot_test", got.put_nowait)
    await any_backend.notify("chatopsbot_test", "hello")
    assert await asyncio.wait_for(got.get(), 5) == "hello"


async def test_sqlite_holds_every_lease(tmp_path):
    from chatopsbot.storage import open_backend

    b = await open_backend(str(tmp_path / "bot.db"))
    try:
        assert b.shared is False
        assert await b.hold_lease("chatopsbot:leader") is True
        assert b.holds("chatopsbot:leader")
    finally:
        await b.close()


async def test_a_postgres_lease_has_one_holder_and_passes_on_when_it_goes(postgres_schema):
    from chatopsbot.storage.postgres import PostgresBackend
    from tests.conftest import POSTGRES_URL

    first = await PostgresBackend.open(POSTGRES_URL, schema=postgres_schema)
    second = await PostgresBackend.open(POSTGRES_URL, schema=postgres_schema)
    try:
        assert first.shared is True
        assert await first.hold_lease("leader") is True
        assert await first.hold_lease("leader") is True  # confirmed, still held
        assert await second.hold_lease("leader") is False
        assert await second.hold_lease("other") is True
        await first.release_lease("leader")
        assert await second.hold_lease("leader") is True
        assert await first.hold_lease("leader") is False
        # The holder's connection dies (its process was killed): the server frees the lock.
        assert second._session is not None
        assert second.holds("leader")
        second._session.terminate()
        await asyncio.sleep(0.2)
        # Known lost at once, without a round trip: its sender stops before the next send.
        assert not second.holds("leader")
        assert await first.hold_lease("leader") is True
        assert first.holds("leader")
        # Notifications cross between replicas.
        got: asyncio.Queue[str] = asyncio.Queue()
        await first.listen("chatopsbot_x", got.put_nowait)
        await second.notify("chatopsbot_x", "from second")
        assert await asyncio.wait_for(got.get(), 5) == "from second"
        # A redelivery landing on the other replica is a duplicate.
        assert await first.inbox_accept("k", b"b", 1.0) is True
        assert await second.inbox_accept("k", b"b", 1.0) is False
    finally:
        await first.close()
        await second.close()


async def test_replicas_starting_together_migrate_the_schema_once(postgres_schema):
    import asyncpg

    from chatopsbot.storage.postgres import SCHEMA_VERSION, PostgresBackend
    from tests.conftest import POSTGRES_URL

    backends = await asyncio.gather(
        *(PostgresBackend.open(POSTGRES_URL, schema=postgres_schema) for _ in range(4))
    )
    for backend in backends:
        await backend.close()
    conn = await asyncpg.connect(POSTGRES_URL, server_settings={"search_path": postgres_schema})
    try:
        versions = await conn.fetch("SELECT version FROM chatopsbot_schema")
    finally:
        await conn.close()
    assert [r["version"] for r in versions] == list(range(1, SCHEMA_VERSION + 1))


async def test_a_newer_schema_is_refused_with_its_version(postgres_schema, tmp_path):
    import asyncpg

    from chatopsbot.storage import StorageError, open_backend
    from chatopsbot.storage.postgres import PostgresBackend
    from tests.conftest import POSTGRES_URL

    backend = await PostgresBackend.open(POSTGRES_URL, schema=postgres_schema)
    await backend.close()
    conn = await asyncpg.connect(POSTGRES_URL, server_settings={"search_path": postgres_schema})
    await conn.execute("INSERT INTO chatopsbot_schema VALUES (99)")
    await conn.close()
    with pytest.raises(StorageError, match="schema version 99 is newer"):
        await PostgresBackend.open(POSTGRES_URL, schema=postgres_schema)
    # The same on SQLite.
    path = tmp_path / "bot.db"
    await (await open_backend(str(path))).close()  # creates it
    import sqlite3

    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 99")
    with pytest.raises(StorageError, match="schema version 99 is newer"):
        await open_backend(str(path))


async def test_writing_an_events_replies_twice_writes_them_once(any_backend):
    # The first try committed but its answer was lost; the retry must not add them again.
    b = any_backend
    await b.inbox_accept("ev", b"body", 100.0)
    first = await b.outbox_add([msg("c1", 1)], 100.0, settle=("ev", 4000.0))
    again = await b.outbox_add([msg("c1", 1)], 101.0, settle=("ev", 4000.0))
    assert len(first.ids) == 1
    assert again == Added()
    assert await b.outbox_stats() == (1, 100.0)


# The audit log.


def entry(at: float, what: str = "deploy unlock", **fields: str) -> AuditEntry:
    values = {
        "kind": "command",
        "actor_id": "u-alice",
        "actor_name": "Alice Example",
        "actor_jid": "alice@xmpp.zoom.us",
        "account_id": "acct-1",
        "conversation": "ops@conference.xmpp.zoom.us",
        "conversation_name": "ops",
        "detail": f"{what} --now",
        "result": "ok",
        "ref": f"ev-{at:g}",
        **fields,
    }
    return AuditEntry(at=at, what=what, **values)


AUDIT_SAMPLE = (
    entry(100.0),
    entry(110.0, "deploy", result="denied"),
    entry(120.0, "deployment list"),
    entry(130.0, "polls:vote", kind="action", actor_id="u-bob", actor_name="BOB", actor_jid=""),
    entry(
        140.0,
        "POST /hooks/deploy",
        kind="hook",
        actor_id="10.0.0.7",
        actor_name="",
        actor_jid="",
        account_id="",
        conversation="",
        conversation_name="",
        result="401",
    ),
    entry(150.0, "deploy_50%", actor_name="Ünal Şahin"),
    entry(150.0, "polls vote", actor_id="u-carol", actor_name="carol", ref="same-second"),
)


async def test_audit_entries_come_back_newest_first_with_every_field(any_backend):
    b = any_backend
    await b.audit_add(AUDIT_SAMPLE[:3])
    await b.audit_add(AUDIT_SAMPLE[3:])
    got = await b.audit_query(AuditQuery())
    # Same second: the one written last comes first.
    assert got == list(reversed(AUDIT_SAMPLE))
    assert await b.audit_query(AuditQuery(limit=2)) == list(reversed(AUDIT_SAMPLE))[:2]


@pytest.mark.parametrize(
    "query",
    [
        AuditQuery(since=120.0),
        AuditQuery(until=120.0),
        AuditQuery(since=110.0, until=140.0),
        AuditQuery(user="u-bob"),
        AuditQuery(user="alice@xmpp.zoom.us"),
        AuditQuery(user="alice example"),
        AuditQuery(user="bob"),
        AuditQuery(user="ÜNAL ŞAHIN"),
        AuditQuery(user="10.0.0.7"),
        AuditQuery(user="nobody"),
        AuditQuery(command="deploy"),
        AuditQuery(command="deploy unlock"),
        AuditQuery(command="dep"),
        AuditQuery(command="polls"),
        AuditQuery(command="deploy_5"),
        AuditQuery(command="deploy_50%"),
        AuditQuery(command="POST"),
        AuditQuery(since=105.0, user="u-alice", command="deploy", limit=2),
    ],
    ids=repr,
)
async def test_audit_queries_filter_as_the_pure_query_says(any_backend, query):
    await any_backend.audit_add(AUDIT_SAMPLE)
    assert await any_backend.audit_query(query) == query.apply(AUDIT_SAMPLE)


async def test_audit_filters_in_detail(any_backend):
    b = any_backend
    await b.audit_add(AUDIT_SAMPLE)

    async def refs(**options: object) -> list[str]:
        return [e.ref for e in await b.audit_query(AuditQuery(**options))]  # type: ignore[arg-type]

    assert await refs(command="deploy") == ["ev-110", "ev-100"]  # not "deployment list"
    assert await refs(command="polls") == ["same-second", "ev-130"]
    assert await refs(user="BOB") == ["ev-130"]
    assert await refs(user="ünal şahin") == ["ev-150"]
    assert await refs(since=150.0) == ["same-second", "ev-150"]
    assert await refs(until=110.0) == ["ev-100"]


async def test_audit_purge_deletes_what_is_older_than_before(any_backend):
    b = any_backend
    await b.audit_add(AUDIT_SAMPLE)
    assert await b.audit_purge(130.0) == 3
    assert [e.at for e in await b.audit_query(AuditQuery())] == [150.0, 150.0, 140.0, 130.0]
    assert await b.audit_purge(130.0) == 0
    # The general purge leaves the audit log alone: it has its own keep time.
    assert await b.purge(10_000.0) == 0
    assert len(await b.audit_query(AuditQuery())) == 4


async def test_audit_entries_are_written_with_the_units_replies_and_settle(any_backend):
    b = any_backend
    await b.inbox_accept("ev", b"body", 100.0)
    added = await b.outbox_add(
        [msg("c1", 1)], 100.0, settle=("ev", 4000.0), audit=[entry(100.0, ref="ev")]
    )
    assert len(added.ids) == 1
    assert await b.inbox_pending() == []
    assert [e.ref for e in await b.audit_query(AuditQuery())] == ["ev"]
    # Without a settle or messages: entries alone.
    assert await b.outbox_add([], 101.0, audit=[entry(101.0, ref="alone")]) == Added()
    assert [e.ref for e in await b.audit_query(AuditQuery())] == ["alone", "ev"]


async def test_an_events_audit_entries_written_twice_are_written_once(any_backend):
    # The first try committed but its answer was lost: the retry writes no second entry.
    b = any_backend
    await b.inbox_accept("ev", b"body", 100.0)
    unit = {"settle": ("ev", 4000.0), "audit": [entry(100.0, ref="ev")]}
    assert len((await b.outbox_add([msg("c1", 1)], 100.0, **unit)).ids) == 1
    assert await b.outbox_add([msg("c1", 1)], 101.0, **unit) == Added()
    assert await b.audit_query(AuditQuery()) == [entry(100.0, ref="ev")]


async def test_a_failed_unit_write_records_no_audit_entry(any_backend):
    # A unit whose write fails (here: a message without a payload breaks NOT NULL on both
    # backends) leaves no audit entry behind, and its event pending.
    b = any_backend
    await b.inbox_accept("ev", b"body", 100.0)
    bad = NewMessage("c1", "a1", None, "{}")  # type: ignore[arg-type]
    with pytest.raises(StorageError):
        await b.outbox_add([bad], 100.0, settle=("ev", 4000.0), audit=[entry(100.0)])
    assert await b.audit_query(AuditQuery()) == []
    assert [k for k, _ in await b.inbox_pending()] == ["ev"]


async def test_export_and_load_carry_the_audit_log_in_order(any_backend, tmp_path):
    from chatopsbot.storage import open_backend

    await any_backend.audit_add(AUDIT_SAMPLE)
    data = await any_backend.export()
    assert data.audit == AUDIT_SAMPLE
    target = await open_backend(str(tmp_path / "copy.db"))
    try:
        await target.load(data)
        assert await target.audit_query(AuditQuery()) == list(reversed(AUDIT_SAMPLE))
    finally:
        await target.close()


async def test_a_version_1_sqlite_file_gains_the_audit_table(tmp_path):
    import sqlite3

    from chatopsbot.storage import open_backend
    from chatopsbot.storage.sqlite import _MIGRATIONS, SCHEMA_VERSION

    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        for statement in _MIGRATIONS[0].split(";"):
            if statement.strip():
                db.execute(statement)
        db.execute("INSERT INTO kv VALUES ('polls', 'p1', 'v', NULL)")
        db.execute("PRAGMA user_version = 1")
    backend = await open_backend(str(path))
    try:
        assert await backend.get("polls", "p1", 0) == "v"
        await backend.audit_add([entry(1.0)])
        assert await backend.audit_query(AuditQuery()) == [entry(1.0)]
    finally:
        await backend.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 3


async def test_a_version_1_postgres_schema_gains_the_audit_table(postgres_schema):
    import asyncpg

    from chatopsbot.storage.postgres import _MIGRATIONS, PostgresBackend
    from tests.conftest import POSTGRES_URL

    conn = await asyncpg.connect(POSTGRES_URL)
    try:
        await conn.execute(f'CREATE SCHEMA "{postgres_schema}"')
        await conn.execute(f'SET search_path = "{postgres_schema}"')
        await conn.execute("CREATE TABLE chatopsbot_schema (version INTEGER NOT NULL)")
        await conn.execute(_MIGRATIONS[0])
        await conn.execute("INSERT INTO chatopsbot_schema VALUES (1)")
    finally:
        await conn.close()
    backend = await PostgresBackend.open(POSTGRES_URL, schema=postgres_schema)
    try:
        await backend.audit_add([entry(1.0)])
        assert await backend.audit_query(AuditQuery()) == [entry(1.0)]
    finally:
        await backend.close()


# Check-then-act in one step: multi-key updates, and refusals under contention.


async def test_update_many_reads_a_snapshot_writes_and_deletes_together(any_backend):
    b = any_backend
    await b.put("ns", "a", "1", None)
    await b.put("ns", "b", "2", None)
    await b.put("other", "a", "x", None)
    seen: list[dict[str, str]] = []

    def move(current: dict[str, str]) -> dict[str, str | None]:
        seen.append(current)
        return {"a": None, "c": str(int(current["a"]) + int(current["b"]))}

    after = await b.update_many("ns", ["a", "b", "c"], move, 0.0, None)
    assert seen == [{"a": "1", "b": "2"}]  # absent keys are missing, not None
    assert after == {"b": "2", "c": "3"}
    assert await b.get_many("ns", ["a", "b", "c", "d"], 0.0) == {"b": "2", "c": "3"}
    assert await b.get("other", "a", 0.0) == "x"  # another namespace is untouched


async def test_update_many_writes_nothing_when_the_change_raises(any_backend):
    b = any_backend
    await b.put("ns", "a", "1", None)

    def half(current: dict[str, str]) -> dict[str, str | None]:
        raise LookupError("refused")

    with pytest.raises(LookupError):
        await b.update_many("ns", ["a", "b"], half, 0.0, None)

    def stray(current: dict[str, str]) -> dict[str, str | None]:
        return {"a": "2", "elsewhere": "3"}

    with pytest.raises(ValueError, match="elsewhere"):
        await b.update_many("ns", ["a"], stray, 0.0, None)
    assert await b.get_many("ns", ["a", "b", "elsewhere"], 0.0) == {"a": "1"}


async def test_update_many_sees_expired_keys_as_absent_and_sets_expiry(any_backend):
    b = any_backend
    await b.put("ns", "old", "1", 50.0)
    got: list[dict[str, str]] = []

    def record(current: dict[str, str]) -> dict[str, str | None]:
        got.append(current)
        return {"old": "2"}

    await b.update_many("ns", ["old"], record, 100.0, 150.0)
    assert got == [{}]
    assert await b.get_many("ns", ["old"], 120.0) == {"old": "2"}
    assert await b.get_many("ns", ["old"], 160.0) == {}


async def test_concurrent_update_many_over_overlapping_keys_all_count(any_backend):
    """Transfers between three keys racing: none lost, the total kept, no deadlock."""
    b = any_backend
    for key in "xyz":
        await b.put("ns", key, "100", None)

    def transfer(src: str, dst: str):
        def move(current: dict[str, str]) -> dict[str, str | None]:
            return {src: str(int(current[src]) - 1), dst: str(int(current[dst]) + 1)}

        return move

    pairs = [("x", "y"), ("y", "z"), ("z", "x"), ("y", "x")] * 25
    await asyncio.gather(
        *(b.update_many("ns", [s, d], transfer(s, d), 0.0, None) for s, d in pairs)
    )
    values = await b.get_many("ns", ["x", "y", "z"], 0.0)
    assert sum(int(v) for v in values.values()) == 300
    # Per round of four: x gains two and loses one, y the other way round, z breaks even.
    assert values == {"x": "125", "y": "75", "z": "100"}


async def test_single_and_multi_key_updates_of_one_key_serialise(any_backend):
    b = any_backend

    def bump(old: str | None) -> str:
        return str(int(old or "0") + 1)

    def bump_both(current: dict[str, str]) -> dict[str, str | None]:
        return {k: str(int(current.get(k, "0")) + 1) for k in ("n", "m")}

    await asyncio.gather(
        *(b.update("ns", "n", bump, 0.0, None) for _ in range(50)),
        *(b.update_many("ns", ["n", "m"], bump_both, 0.0, None) for _ in range(50)),
    )
    assert await b.get_many("ns", ["n", "m"], 0.0) == {"n": "100", "m": "50"}


def _claim_once(old: str | None) -> str:
    """A refusing change: the first claim wins, every later one is refused."""
    if old is not None:
        raise LookupError(f"taken by {old}")
    return "claimed"


async def test_hundreds_of_refusing_updates_on_one_key_let_one_through(any_backend):
    async def claim() -> bool:
        try:
            await any_backend.update("ns", "slot", _claim_once, 0.0, None)
        except LookupError:
            return False
        return True

    results = await asyncio.gather(*(claim() for _ in range(300)))
    assert results.count(True) == 1


async def test_two_replicas_racing_refusing_updates_never_both_succeed(postgres_schema):
    """Two pools on one schema are two replicas: of 2 x 200 claims on each of 5 keys (single
    and multi-key alike), exactly one per key gets through."""
    from chatopsbot.storage.postgres import PostgresBackend
    from tests.conftest import POSTGRES_URL

    one = await PostgresBackend.open(POSTGRES_URL, schema=postgres_schema)
    two = await PostgresBackend.open(POSTGRES_URL, schema=postgres_schema)
    try:

        def claim_many(key: str):
            def change(current: dict[str, str]) -> dict[str, str | None]:
                if key in current:
                    raise LookupError("taken")
                return {key: "claimed", "by:" + key: "multi"}

            return change

        async def claim(backend: PostgresBackend, key: str, n: int) -> bool:
            try:
                if n % 2:
                    await backend.update("ns", key, _claim_once, 0.0, None)
                else:
                    await backend.update_many("ns", [key, "by:" + key], claim_many(key), 0.0, None)
            except LookupError:
                return False
            return True

        keys = [f"slot{k}" for k in range(5)]
        tries = [(b, key, n) for n in range(200) for key in keys for b in (one, two)]
        results = await asyncio.gather(*(claim(b, key, n) for b, key, n in tries))
        for key in keys:
            won = [ok for (_, k, _), ok in zip(tries, results, strict=True) if k == key]
            assert won.count(True) == 1, key
        assert await one.get_many("ns", keys, 0.0) == dict.fromkeys(keys, "claimed")
    finally:
        await one.close()
        await two.close()
