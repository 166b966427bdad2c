"""Hostile but correctly signed webhook bodies never produce a 5xx or a crash."""

from __future__ import annotations

import copy
import json
import random
from typing import Any

from chatopsbot.zoom.payloads import bot_installed, bot_notification, button_clicked, field_edited

ODD_VALUES: list[Any] = [
    None,
    0,
    -1,
    10**30,
    1.5,
    True,
    "",
    "x" * 5000,
    "\udc80",
    [],
    [1, "a"],
    {},
    {"text": 5},
    "cob1:a:b:c:d",
    "²",  # a digit to str.isdigit, not to int()
    "9" * 5000,  # past int()'s digit limit
    float("1e300"),
    1724371200123.0,
]


def mutations(seed: int, count: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    bases = [
        bot_notification("ping"),
        bot_installed(),
        button_clicked("cob1:x:y::sig", message_id="m1"),
        field_edited("k", "a", "b", message_id="m1"),
        {"event": "interactive_message_select", "payload": {}},
        {"event": "app_deauthorized", "payload": {"account_id": "a"}},
        {"event": "endpoint.url_validation", "payload": {"plainToken": "abc"}},
    ]
    out = []
    for _ in range(count):
        event = copy.deepcopy(rng.choice(bases))
        target = event if rng.random() < 0.2 else event["payload"]
        for _ in range(rng.randint(1, 3)):
            if isinstance(target, dict) and target:
                key = rng.choice(sorted(target))
                if rng.random() < 0.3:
                    del target[key]
                else:
                    target[key] = rng.choice(ODD_VALUES)
        out.append(event)
    return out


async def test_mutated_events_get_2xx_or_4xx_never_5xx(start_bot, caplog):
    bot = await start_bot()
    statuses = set()
    for event in mutations(seed=7, count=300):
        body = json.dumps(event).encode("utf-8", "surrogatepass")
        resp = await bot.client.post(bot.path, data=body, headers=_signed_headers(bot, body))
        statuses.add(resp.status)
        assert resp.status < 500, (resp.status, event)
    await bot.settle()
    assert statuses <= {200, 400}
    assert 400 in statuses
    resp = await bot.client.get("/healthz")
    assert resp.status == 200
    # Accepted ones were dispatched without the dispatcher's catch-all firing.
    assert "dispatching" not in caplog.text


def _signed_headers(bot: Any, body: bytes) -> dict[str, str]:
    from chatopsbot.zoom.signature import sign
    from tests.conftest import SECRET

    ts = str(int(bot.clock.timestamp()))
    return {"x-zm-request-timestamp": ts, "x-zm-signature": sign(SECRET, ts, body)}


async def test_odd_signature_headers_get_401_never_5xx(start_bot):
    bot = await start_bot()
    body = b"{}"
    for timestamp in ["9" * 400, "²", "-1", "1e9", " 1", "\u0661\u0662", ""]:
        for signature in ["v0=" + "0" * 64, "v0=\u00e9", ""]:
            headers = {"x-zm-request-timestamp": timestamp, "x-zm-signature": signature}
            resp = await bot.client.post(bot.path, data=body, headers=headers)
            assert resp.status == 401, (timestamp, signature)
