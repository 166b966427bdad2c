"""The outbox against a scripted API caller: ordering, retries, 429s, giving up, draining."""

from __future__ import annotations

import asyncio
import itertools
import logging
import random

import aiohttp
import pytest

from chatopsbot.metrics import Metrics
from chatopsbot.outbound import Outbox, OutboxClosed, SendFailed
from chatopsbot.zoom.auth import TokenError
from chatopsbot.zoom.cards import ApiCall
from chatopsbot.zoom.client import ApiResult, ZoomApiError


def call(n: int, account: str = "a1", to: str = "c1") -> ApiCall:
    return ApiCall("POST", "/im/chat/messages", account, body={"n": n, "to_jid": to})


class Script:
    """Answers calls with scripted outcomes (exceptions or None for success), then succeeds."""

    def __init__(self, *outcomes: Exception | None, delay: float = 0.0) -> None:
        self.outcomes = list(outcomes)
        self.calls: list[tuple[float, ApiCall]] = []
        self.delay = delay

    async def call(self, api_call: ApiCall) -> ApiResult:
        self.calls.append((asyncio.get_running_loop().time(), api_call))
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.outcomes:
            outcome = self.outcomes.pop(0)
            if outcome is not None:
                raise outcome
        assert api_call.body is not None
        return ApiResult(201, {"message_id": f"m{api_call.body['n']}"}, "t")


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return value or 0.0


def fast_outbox(api: Script, **kwargs: object) -> Outbox:
    options: dict[str, object] = {
        "rate_limit": 1000.0,
        "max_attempts": 3,
        "backoff_base": 0.001,
        "rng": random.Random(1),
    }
    options.update(kwargs)
    return Outbox(api, **options)  # type: ignore[arg-type]


async def test_keeps_order_per_conversation_and_returns_message_ids():
    api = Script(delay=0.001)
    outbox = fast_outbox(api)
    futures = [outbox.submit(call(n, to=f"c{n % 2}"), key=f"c{n % 2}") for n in range(10)]
    results = await asyncio.gather(*futures)
    assert [r.message_id for r in results] == [f"m{n}" for n in range(10)]
    for key in (0, 1):
        sent = [c.body["n"] for _, c in api.calls if c.body and c.body["to_jid"] == f"c{key}"]
        assert sent == [n for n in range(10) if n % 2 == key]
    assert outbox.depth == 0


async def test_a_failed_message_does_not_overtake_or_block_the_next():
    api = Script(ZoomApiError(500, None, "boom", "t1"), None)
    outbox = fast_outbox(api)
    first = outbox.submit(call(1), key="c")
    second = outbox.submit(call(2), key="c")
    assert (await first).message_id == "m1"
    assert (await second).message_id == "m2"
    assert [c.body["n"] for _, c in api.calls if c.body] == [1, 1, 2]


@pytest.mark.parametrize(
    "error",
    [
        ZoomApiError(503, None, "unavailable", "t"),
        TimeoutError(),
        aiohttp.ServerDisconnectedError(),
        TokenError("oauth down", retryable=True),
    ],
    ids=["5xx", "timeout", "disconnect", "token-5xx"],
)
async def test_retries_transient_failures_with_backoff(error):
    metrics = Metrics()
    api = Script(error, error)
    outbox = fast_outbox(api, metrics=metrics)
    result = await outbox.submit(call(7), key="c")
    assert result.message_id == "m7"
    assert len(api.calls) == 3


async def test_gives_up_after_max_attempts_and_logs_it(caplog):
    metrics = Metrics()
    api = Script(*[ZoomApiError(502, None, "bad gateway", "trk-9")] * 5)
    outbox = fast_outbox(api, metrics=metrics, max_attempts=3)
    with (
        caplog.at_level(logging.ERROR, "chatopsbot.outbound"),
        pytest.raises(SendFailed, match="502"),
    ):
        await outbox.submit(call(1), key="c", log_extra={"command": "ping"})
    assert len(api.calls) == 3
    assert sample(metrics, "chatopsbot_outbound_dropped_total", reason="gave_up") == 1
    record = next(r for r in caplog.records if r.levelno == logging.ERROR)
    assert "after 3 attempt(s)" in record.getMessage()
    assert record.command == "ping"
    assert record.tracking_id == "trk-9"


async def test_other_4xx_is_not_retried_and_logs_code_message_tracking(caplog):
    api = Script(ZoomApiError(400, 7001, "Invalid request body format.", "trk-1"))
    outbox = fast_outbox(api)
    with caplog.at_level(logging.ERROR, "chatopsbot.outbound"), pytest.raises(SendFailed):
        await outbox.submit(call(1), key="c")
    assert len(api.calls) == 1
    record = caplog.records[-1]
    assert "code 7001: Invalid request body format." in record.getMessage()
    assert record.tracking_id == "trk-1"


async def test_non_retryable_token_error_fails_at_once():
    api = Script(TokenError("bad credentials", retryable=False))
    outbox = fast_outbox(api)
    with pytest.raises(SendFailed, match="bad credentials"):
        await outbox.submit(call(1), key="c")
    assert len(api.calls) == 1


async def test_429_pauses_the_whole_account_for_retry_after():
    limited = ZoomApiError(429, 429, "slow down", "t", retry_after=0.5)
    api = Script(limited)
    metrics = Metrics()
    outbox = fast_outbox(api, metrics=metrics)
    a = outbox.submit(call(1, to="x"), key="x")
    await asyncio.sleep(0.02)
    b = outbox.submit(call(2, to="y"), key="y")
    other_account = outbox.submit(call(3, account="a2", to="z"), key="z")
    await asyncio.gather(a, b, other_account)
    times = {c.body["n"]: t for t, c in api.calls[1:] if c.body}
    first = api.calls[0][0]
    assert times[1] - first >= 0.49
    assert times[2] - first >= 0.49  # same account: held too
    assert times[3] - first < 0.4  # another account: not held
    assert sample(metrics, "chatopsbot_outbound_rate_limited_total", kind="rate") == 1


async def test_daily_limit_holds_until_reset_without_losing_and_logs_loudly(caplog):
    daily = ZoomApiError(429, 429, "daily", "t", retry_after=0.3, daily_limit=True)
    api = Script(daily)
    outbox = fast_outbox(api, max_attempts=1)
    with caplog.at_level(logging.ERROR, "chatopsbot.outbound"):
        result = await outbox.submit(call(1), key="c")
    assert result.message_id == "m1"
    assert api.calls[1][0] - api.calls[0][0] >= 0.29
    assert any("DAILY RATE LIMIT" in r.getMessage() for r in caplog.records)


async def test_rate_limit_spaces_requests_per_account():
    api = Script()
    outbox = Outbox(api, rate_limit=20, max_attempts=1, headroom=1.0)
    await asyncio.gather(*(outbox.submit(call(n, to=f"c{n}"), key=f"c{n}") for n in range(11)))
    times = [t for t, _ in api.calls]
    # 11 requests at 20/s with no burst allowance take at least 10 intervals of 50 ms.
    assert times[-1] - times[0] >= 0.5 - 0.01
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= 0.045


async def test_drain_sends_what_it_can_then_counts_the_rest(caplog):
    api = Script(delay=0.05)
    outbox = fast_outbox(api)
    futures = [outbox.submit(call(n), key="c") for n in range(10)]
    with caplog.at_level(logging.ERROR, "chatopsbot.outbound"):
        unsent = await outbox.drain(0.3)
    assert 0 < unsent < 10
    assert sum(f.done() and not f.exception() for f in futures) == 10 - unsent
    assert isinstance(futures[-1].exception(), OutboxClosed)
    assert f"{unsent} message(s) could not be sent" in caplog.text
    with pytest.raises(OutboxClosed):
        outbox.submit(call(99), key="c")


async def test_drain_with_everything_sent_reports_zero():
    api = Script()
    outbox = fast_outbox(api)
    future = outbox.submit(call(1), key="c")
    assert await outbox.drain(5) == 0
    assert future.result().message_id == "m1"


async def test_an_unexpected_error_fails_that_message_and_the_queue_moves_on(caplog):
    api = Script(TypeError("Object of type date is not JSON serializable"), None)
    outbox = fast_outbox(api)
    first = outbox.submit(call(1), key="c")
    second = outbox.submit(call(2), key="c")
    with pytest.raises(SendFailed, match="not JSON serializable"):
        await first
    assert (await second).message_id == "m2"
    assert outbox.depth == 0
    assert len(api.calls) == 2  # no retry of what cannot improve


async def test_429s_are_waited_out_however_many_come():
    limited = ZoomApiError(429, 429, "slow down", "t", retry_after=0.001)
    api = Script(*[limited] * 30)
    outbox = fast_outbox(api, max_attempts=1)
    assert (await outbox.submit(call(1), key="c")).message_id == "m1"
    assert len(api.calls) == 31
