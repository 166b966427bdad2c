"""Query plans of the hot SQLite statements: a lane's next message must not cost a sort of the
lane (with 100,000 replies queued in one conversation it cost 8 ms per send)."""

from __future__ import annotations

import sqlite3

from chatopsbot.storage import open_backend
from chatopsbot.storage.sqlite import _HEAD


async def test_a_lanes_next_message_is_read_through_an_index_in_order(tmp_path):
    path = tmp_path / "bot.db"
    backend = await open_backend(str(path))
    await backend.close()
    with sqlite3.connect(path) as db:
        plan = " | ".join(row[3] for row in db.execute("EXPLAIN QUERY PLAN " + _HEAD, ("lane",)))
    assert "USING INDEX outbox_head" in plan, plan
    assert "TEMP B-TREE" not in plan, plan
