"""``app_deauthorized``: an account that removes the app leaves nothing behind (Zoom's
Marketplace requires it), unless Zoom says its user chose to keep their data. On SQLite and on
PostgreSQL, end to end and at the storage contract."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from chatopsbot.audit import AuditEntry, AuditQuery
from chatopsbot.storage import Backend, NewMessage
from chatopsbot.zoom.fake import Fault
from tests.conftest import POSTGRES_URL
from tests.sample import Sample
from tests.zoom.test_chatbot_events import Hooks


@pytest.fixture(params=["sqlite", "postgres"])
def storage(request: pytest.FixtureRequest, tmp_path: Any) -> dict[str, str]:
    if request.param == "sqlite":
        return {"path": str(tmp_path / "bot.db")}
    schema = request.getfixturevalue("postgres_schema")
    return {"url": f"{POSTGRES_URL}?search_path={schema}"}


async def _two_accounts(start_bot: Any, hooks: Hooks, storage: dict[str, str]) -> Any:
    bot = await start_bot(extra={"hooks": hooks, "sample": Sample()}, storage=storage)
    await bot.command("remember")
    await bot.command("remember", account_id="acct-2")
    # A dead letter of each account: Zoom refused the reply for good.
    for account in ("acct-1", "acct-2"):
        bot.zoom.inject(Fault(400, {"code": 7001, "message": "Invalid request body format."}))
        await bot.command("echo x", account_id=account)
    return bot


async def _notes(bot: Any) -> list[str]:
    now = bot.clock.timestamp()
    return [key for key, _ in await bot.runtime.backend.scan("hooks", "note:", now)]


async def _card_accounts(bot: Any) -> list[str]:
    from chatopsbot.outbound.sender import AUTHORS, CardRecord

    rows = await bot.runtime.backend.scan(AUTHORS, "", bot.clock.timestamp())
    return sorted(CardRecord.from_json(text).account for _, text in rows)


async def _audited(bot: Any) -> set[str]:
    entries = await bot.runtime.backend.audit_query(AuditQuery())
    return {e.account_id for e in entries}


async def test_an_account_removing_the_app_is_forgotten(start_bot, storage, caplog):
    hooks = Hooks()
    bot = await _two_accounts(start_bot, hooks, storage)
    assert await _notes(bot) == ["note:acct-1:u-alice", "note:acct-2:u-alice"]
    assert await _audited(bot) == {"acct-1", "acct-2"}
    # A card in each account: the bot remembers its plugin, values and viewer.
    for account in ("acct-1", "acct-2"):
        await bot.command('poll "Lunch?" Pizza Sushi', account_id=account)
    assert await _card_accounts(bot) == ["acct-1", "acct-2"]
    tokens = bot.zoom.token_requests
    caplog.set_level(logging.INFO, "chatopsbot.dispatch")

    await bot.deauthorize("acct-1")

    assert hooks.removed == ["acct-1"]
    assert await _notes(bot) == ["note:acct-2:u-alice"]
    assert await _audited(bot) == {"acct-2"}
    dead = await bot.runtime.backend.outbox_list("dead")
    assert [m.account for m in dead] == ["acct-2"]
    # One line: each plugin's count (the built-in plugins' too), then the bot's own.
    [line] = [r.getMessage() for r in caplog.records if "removed the app" in r.getMessage()]
    assert line.startswith("account acct-1 removed the app: deleted hooks: 1, ")
    assert "deploy: 0" in line
    assert line.endswith(", 3 audit entries, 1 card record(s), 1 queued or dead message(s)")
    assert await _card_accounts(bot) == ["acct-2"]
    # The token cache was cleared: the next send fetches a fresh token.
    await bot.command("echo still here", account_id="acct-2")
    assert bot.zoom.token_requests == tokens + 1


async def test_zooms_retention_flag_keeps_the_data(start_bot, storage, caplog):
    hooks = Hooks()
    bot = await _two_accounts(start_bot, hooks, storage)
    caplog.set_level(logging.INFO, "chatopsbot.dispatch")

    await bot.deauthorize("acct-1", keep_data=True)

    assert hooks.removed == []
    assert await _notes(bot) == ["note:acct-1:u-alice", "note:acct-2:u-alice"]
    assert await _audited(bot) == {"acct-1", "acct-2"}
    assert "Zoom says its data is to be kept (user_data_retention)" in caplog.text


@pytest.mark.parametrize("retention", [None, False])
async def test_without_retention_or_with_it_false_the_data_goes(start_bot, retention):
    hooks = Hooks()
    bot = await start_bot(extra={"hooks": hooks, "sample": Sample()})
    await bot.command("remember")
    await bot.deauthorize("acct-1", keep_data=retention)
    assert await _notes(bot) == []


async def test_a_failing_plugin_does_not_stop_the_others(start_bot, caplog):
    from chatopsbot import hookimpl

    class Broken:
        @hookimpl
        async def chatops_account_removed(self, account_id: str) -> int:
            raise RuntimeError("no")

    hooks = Hooks()
    bot = await start_bot(extra={"hooks": hooks, "broken": Broken(), "sample": Sample()})
    await bot.command("remember")
    await bot.deauthorize("acct-1")
    assert await _notes(bot) == []
    assert "broken: chatops_account_removed failed" in caplog.text


def _message(account: str, lane: str, state: str = "queued") -> NewMessage:
    return NewMessage(lane=lane, account=account, payload="{}")


def _entry(account: str) -> AuditEntry:
    return AuditEntry(1.0, "command", "u", "U", "u@x", account, "c", "", "echo", "", "ok", "r")


async def test_outbox_forget_by_account_and_by_lane(any_backend: Backend):
    backend = any_backend
    added = await backend.outbox_add(
        [
            _message("a1", "ops"),
            _message("a1", "ops"),
            _message("a1", "dev"),
            _message("a2", "ops"),
        ],
        10.0,
    )
    ids = added.ids
    await backend.outbox_dead(ids[2], "rejected", "no", 11.0)
    # A lane (without case, as JIDs compare): its queued messages only (a dead letter stays
    # for the operator).
    assert await backend.outbox_forget("a1", "OPS") == 2
    assert [m.lane for m in await backend.outbox_list("queued")] == ["ops"]
    assert [m.account for m in await backend.outbox_list("queued")] == ["a2"]
    assert [m.id for m in await backend.outbox_list("dead")] == [ids[2]]
    # An account: everything of it, dead letters too.
    assert await backend.outbox_forget("a1") == 1
    assert await backend.outbox_list("dead") == []
    assert await backend.outbox_forget("a1") == 0
    assert len(await backend.outbox_list("queued")) == 1


async def test_audit_forget_by_account(any_backend: Backend):
    await any_backend.audit_add([_entry("a1"), _entry("a2"), _entry("a1")])
    assert await any_backend.audit_forget("a1") == 2
    assert [e.account_id for e in await any_backend.audit_query(AuditQuery())] == ["a2"]
    assert await any_backend.audit_forget("a1") == 0
