"""Zoom's team_chat and deauthorization samples, mutated at every depth and correctly signed,
never produce a 5xx or a crash in the dispatcher (only 200 or a 400 that names the field)."""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path
from typing import Any

from chatopsbot.zoom.signature import sign
from tests.conftest import SECRET
from tests.sample import Sample
from tests.test_webhook_fuzz import ODD_VALUES
from tests.zoom.test_chatbot_events import Hooks

SAMPLES = Path(__file__).parent / "samples"
BASES = [
    "zoomdocs_team_chat.app_mention_json-example.json",
    "zoomdocs_team_chat.link_shared_json-example.json",
    "zoomdocs_team_chat.channel_app_added_json-example.json",
    "zoomdocs_team_chat.channel_app_removed_json-example.json",
    "zoomdocs_app_deauthorized_json-example.json",
    "zoomdocs_interactive_message_actions_json-example.json",
]


def _nodes(node: Any) -> list[dict[str, Any]]:
    """Every object inside ``node`` (itself included)."""
    found = [node] if isinstance(node, dict) else []
    children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else []
    for child in children:
        found.extend(_nodes(child))
    return found


def mutations(seed: int, count: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    bases = [json.loads((SAMPLES / name).read_text())["event"] for name in BASES]
    out = []
    for _ in range(count):
        event = copy.deepcopy(rng.choice(bases))
        for _ in range(rng.randint(1, 3)):
            targets = [n for n in _nodes(event) if n]
            if not targets:
                break
            target = rng.choice(targets)
            key = rng.choice(sorted(target))
            if rng.random() < 0.3:
                del target[key]
            else:
                target[key] = rng.choice(ODD_VALUES)
        out.append(event)
    return out


async def test_mutated_team_chat_events_get_2xx_or_4xx_never_5xx(start_bot, caplog):
    bot = await start_bot(extra={"hooks": Hooks(), "sample": Sample()})
    statuses = set()
    for event in mutations(seed=14, count=400):
        body = json.dumps(event).encode("utf-8", "surrogatepass")
        timestamp = str(int(bot.clock.timestamp()))
        headers = {
            "Content-Type": "application/json",
            "x-zm-request-timestamp": timestamp,
            "x-zm-signature": sign(SECRET, timestamp, body),
        }
        resp = await bot.client.post(bot.path, data=body, headers=headers)
        statuses.add(resp.status)
        assert resp.status < 500, (resp.status, event)
    await bot.settle()
    assert statuses == {200, 400}
    # Accepted ones were dispatched without the dispatcher's catch-all firing.
    assert "dispatching" not in caplog.text
    assert " failed [ref " not in caplog.text
