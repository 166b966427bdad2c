"""Plugin storage on both backends: namespaces, expiry, prefixes, atomic updates, restarts."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from chatopsbot.storage import Backend, StorageError, open_backend
from chatopsbot.storage.sqlite import SqliteBackend
from chatopsbot.store import Store


class FixedClock:
    def __init__(self) -> None:
        self.t = 1_000_000.0

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.t, UTC)

    def timestamp(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.t += seconds


@pytest.fixture
def backend(any_backend: Backend) -> Backend:
    return any_backend


async def test_get_set_delete_exists(backend):
    store = Store(backend, "polls", FixedClock())
    assert await store.get("p1") is None
    assert await store.get("p1", {"n": 0}) == {"n": 0}
    await store.set("p1", {"q": "Lunch?", "options": ["Pizza", "Sushi"], "n": 2.5, "open": True})
    assert await store.get("p1") == {
        "q": "Lunch?",
        "options": ["Pizza", "Sushi"],
        "n": 2.5,
        "open": True,
    }
    assert await store.exists("p1")
    assert await store.delete("p1") is True
    assert await store.delete("p1") is False
    assert not await store.exists("p1")


async def test_namespaces_are_separate(backend):
    clock = FixedClock()
    await Store(backend, "polls", clock).set("k", 1)
    assert await Store(backend, "deploy", clock).get("k") is None
    assert await Store(backend, "deploy", clock).list() == []


async def test_expiry(backend):
    clock = FixedClock()
    store = Store(backend, "x", clock)
    await store.set("short", "v", ttl=10)
    await store.set("long", "v", ttl=timedelta(hours=1))
    clock.t += 11
    assert await store.get("short") is None
    assert not await store.exists("short")
    assert [k for k, _ in await store.list()] == ["long"]
    with pytest.raises(ValueError, match="ttl must be positive"):
        await store.set("k", 1, ttl=0)


async def test_list_by_prefix_in_key_order_with_literal_wildcards(backend):
    store = Store(backend, "x", FixedClock())
    for key in ["poll:2", "poll:10", "poll:1", "vote:1", "poll%x", "pol"]:
        await store.set(key, key)
    assert [k for k, _ in await store.list("poll:")] == ["poll:1", "poll:10", "poll:2"]
    assert [k for k, _ in await store.list("poll%")] == ["poll%x"]
    assert len(await store.list()) == 6


async def test_concurrent_updates_all_count(backend):
    store = Store(backend, "polls", FixedClock())

    async def vote(user: int) -> None:
        await store.update("votes", lambda v: {**v, str(user): "Sushi"}, default={})

    await asyncio.gather(*(vote(n) for n in range(50)))
    assert len(await store.get("votes")) == 50
    assert await store.update("votes", lambda v: None) is None
    assert not await store.exists("votes")


async def test_values_must_be_json(backend):
    store = Store(backend, "x", FixedClock())
    with pytest.raises(TypeError, match="store values must be JSON data"):
        await store.set("k", {1, 2})
    with pytest.raises(TypeError, match="JSON"):
        await store.set("k", float("nan"))


async def test_a_failing_update_changes_nothing(backend):
    store = Store(backend, "x", FixedClock())
    await store.set("k", 1)

    def boom(value: int) -> int:
        raise RuntimeError("no")

    with pytest.raises(RuntimeError):
        await store.update("k", boom)
    assert await store.get("k") == 1
    await store.update("k", lambda v: v + 1)
    assert await store.get("k") == 2


async def test_sqlite_survives_a_restart_and_uses_wal(tmp_path):
    path = str(tmp_path / "bot.db")
    first = await SqliteBackend.open(path)
    await Store(first, "x", FixedClock()).set("k", [1, 2])
    await first.close()
    second = await open_backend(path)
    assert await Store(second, "x", FixedClock()).get("k") == [1, 2]
    await second.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_memory_path_gives_a_throwaway_sqlite_database():
    backend = await open_backend(":memory:")
    assert isinstance(backend, SqliteBackend)
    await backend.put("ns", "k", "v", None)
    assert await backend.get("ns", "k", 0) == "v"
    await backend.close()


async def test_a_corrupt_file_fails_with_path_and_cause(tmp_path):
    path = tmp_path / "bot.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StorageError) as info:
        await SqliteBackend.open(str(path))
    assert str(info.value).startswith(f"{path}: ")
    assert "not a database" in str(info.value)


async def test_a_missing_directory_fails_with_path(tmp_path):
    path = tmp_path / "nope" / "bot.db"
    with pytest.raises(StorageError, match=r"nope/bot\.db: cannot open the storage file"):
        await SqliteBackend.open(str(path))


async def test_a_locked_file_fails_with_path(tmp_path):
    path = tmp_path / "bot.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("PRAGMA locking_mode=EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    holder.execute("CREATE TABLE t (x)")
    try:
        with pytest.raises(StorageError, match="locked"):
            await asyncio.wait_for(SqliteBackend.open(str(Path(path))), 30)
    finally:
        holder.close()


async def test_plugin_data_survives_an_app_restart(start_bot, tmp_path):
    from chatopsbot import Context, Text, command, hookimpl

    @command("count", help="Counts")
    async def count(ctx: Context) -> Text:
        n = await ctx.store.update("n", lambda v: v + 1, default=0)
        return Text(f"count {n}")

    class Counter:
        @hookimpl
        def chatops_commands(self) -> list[object]:
            return [count]

    db = str(tmp_path / "bot.db")
    first = await start_bot(extra={"counter": Counter()}, storage={"path": db})
    await first.command("count")
    [reply] = await first.command("count")
    assert reply.text == "count 2"
    await first.client.close()
    second = await start_bot(extra={"counter": Counter()}, storage={"path": db})
    [reply] = await second.command("count")
    assert reply.text == "count 3"


async def test_purge_deletes_only_what_expired(backend):
    clock = FixedClock()
    store = Store(backend, "x", clock)
    await store.set("short", 1, ttl=5)
    await store.set("forever", 2)
    clock.t += 6
    assert await backend.purge(clock.t) == 1
    assert await backend.purge(clock.t) == 0
    assert [k for k, _ in await store.list()] == ["forever"]


async def test_attempt_applies_or_refuses_with_the_reason_and_values(backend):
    from chatopsbot.store import Outcome, Refused

    store = Store(backend, "x", FixedClock())

    def take(current: dict[str, str] | None) -> dict[str, str]:
        if current is not None:
            raise Refused("taken", detail=current["by"])
        return {"by": "alice"}

    assert await store.attempt("lock", take) == Outcome(True, None, {"by": "alice"})
    assert await store.attempt("lock", take) == Outcome(
        False, {"by": "alice"}, {"by": "alice"}, "taken", "alice"
    )
    with pytest.raises(Refused):
        await store.update("lock", lambda v: take(v))  # update lets the refusal propagate
    assert await store.get("lock") == {"by": "alice"}


async def test_compare_and_set_only_from_the_expected_value(backend):
    store = Store(backend, "x", FixedClock())
    assert (await store.compare_and_set("k", None, 1)).applied  # None: absent
    refused = await store.compare_and_set("k", None, 2)
    assert (refused.applied, refused.old) == (False, 1)
    assert (await store.compare_and_set("k", 1, {"a": [1]})).applied
    assert (await store.compare_and_set("k", {"a": [1]}, None)).applied  # None deletes
    assert not await store.exists("k")
    with pytest.raises(TypeError, match="JSON"):
        await store.compare_and_set("k", None, {1})


async def test_compare_and_set_races_let_exactly_one_through(backend):
    store = Store(backend, "x", FixedClock())
    await store.set("v", 0)
    outcomes = await asyncio.gather(*(store.compare_and_set("v", 0, n) for n in range(1, 101)))
    winners = [o.new for o in outcomes if o.applied]
    assert len(winners) == 1
    assert await store.get("v") == winners[0]


async def test_update_many_in_a_namespace_with_outcomes(backend):
    from chatopsbot.store import Refused

    store = Store(backend, "polls", FixedClock())
    other = Store(backend, "other", FixedClock())
    await store.set("poll", {"closed": False})
    await other.set("votes", {"eve": 1})

    def vote(current: dict[str, object]) -> dict[str, object]:
        if current["poll"] == {"closed": True}:
            raise Refused("closed")
        votes = dict(current.get("votes", {}))  # type: ignore[call-overload]
        votes["bob"] = 1
        return {"votes": votes}

    done = await store.update_many(["poll", "votes"], vote)
    assert done.applied
    assert done.old == {"poll": {"closed": False}}
    assert done.new == {"poll": {"closed": False}, "votes": {"bob": 1}}
    await store.update_many(["poll"], lambda c: {"poll": {"closed": True}})
    refused = await store.update_many(["poll", "votes"], vote)
    assert (refused.applied, refused.reason) == (False, "closed")
    assert refused.new == refused.old == {"poll": {"closed": True}, "votes": {"bob": 1}}
    assert await store.get_many(["votes", "nothing"]) == {"votes": {"bob": 1}}
    assert await other.get("votes") == {"eve": 1}  # namespaces stay apart


async def test_update_many_with_a_ttl_expires_every_key_written(backend):
    clock = FixedClock()
    store = Store(backend, "x", clock)
    await store.update_many(["a", "b"], lambda c: {"a": 1, "b": 2}, ttl=60)
    clock.t += 61
    assert await store.get_many(["a", "b"]) == {}


async def test_an_update_many_change_must_say_what_to_write(tmp_path):
    from chatopsbot.clock import ManualClock
    from chatopsbot.storage import open_backend
    from chatopsbot.store import Store

    backend = await open_backend(str(tmp_path / "s.db"))
    try:
        store = Store(backend, "p", ManualClock())
        with pytest.raises(TypeError, match=r"returns \{key: new value\}"):
            await store.update_many(["a"], lambda current: None)  # type: ignore[arg-type,return-value]
        assert await store.get("a") is None
    finally:
        await backend.close()
