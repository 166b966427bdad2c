"""The durable outbox with the Zoom sender, against a scripted API: order, retries, 429s,
one probe at a time while failing, dead letters, expiry, restarts and pacing."""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import random
import threading
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from chatopsbot.clock import ManualClock
from chatopsbot.metrics import Metrics
from chatopsbot.outbound import Outbox, OutboxClosed, RetryPolicy, SendFailed, ZoomSender
from chatopsbot.outbound.pacer import SLACK, Pacer
from chatopsbot.outbound.sender import AUTHORS, encode_call
from chatopsbot.storage import Added, Backend, NewMessage, QueuedMessage, open_backend
from chatopsbot.zoom.auth import TokenError
from chatopsbot.zoom.cards import ApiCall
from chatopsbot.zoom.client import ApiResult, ZoomApiError


def message(n: int, lane: str = "c1", account: str = "a1", author: str = "") -> NewMessage:
    call = ApiCall("POST", "/im/chat/messages", account, body={"n": n, "to_jid": lane})
    meta = f'{{"author":"{author}","log":{{"channel":"{lane}"}}}}' if author else "{}"
    return NewMessage(lane, account, encode_call(call), meta)


class Script:
    """Answers calls with scripted outcomes (exceptions or None for success), then succeeds."""

    def __init__(self, *outcomes: Exception | None, delay: float = 0.0) -> None:
        self.outcomes = list(outcomes)
        self.calls: list[tuple[float, ApiCall]] = []
        self.delay = delay
        self.in_flight = 0
        self.most_in_flight = 0
        self.gate: asyncio.Event | None = None
        self.spans: list[tuple[float, float, bool]] = []
        self.readied = 0

    async def ready(self) -> None:
        self.readied += 1

    async def call(self, api_call: ApiCall) -> ApiResult:
        loop = asyncio.get_running_loop()
        started = loop.time()
        self.calls.append((started, api_call))
        ok = False
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            if self.gate is not None:
                await self.gate.wait()
            if self.delay:
                await asyncio.sleep(self.delay)
            if self.outcomes:
                outcome = self.outcomes.pop(0)
                if outcome is not None:
                    raise outcome
            ok = True
        finally:
            self.in_flight -= 1
            self.spans.append((started, loop.time(), ok))
        assert api_call.body is not None
        return ApiResult(201, {"message_id": f"m{api_call.body['n']}"}, "t")

    def sent(self, lane: str | None = None) -> list[int]:
        return [
            c.body["n"]
            for _, c in self.calls
            if c.body is not None and (lane is None or c.body["to_jid"] == lane)
        ]


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return value or 0.0


@pytest.fixture
async def backend() -> AsyncIterator[Backend]:
    b = await open_backend(":memory:")
    yield b
    await b.close()


class Bench:
    """An outbox over a scripted API, with quick retries."""

    def __init__(self, backend: Backend, api: Script, **kwargs: object) -> None:
        self.backend = backend
        self.api = api
        self.clock = ManualClock()
        self.metrics = Metrics()
        options: dict[str, object] = {
            "rate_limit": 1000.0,
            "policy": RetryPolicy(give_up_after=3600, base=0.001, cap=0.01),
            "rng": random.Random(1),
            "metrics": self.metrics,
            "clock": self.clock,
            # Requests a test holds forever are cut off at stop after this long.
            "request_grace": 0.1,
        }
        options.update(kwargs)
        self.outbox = Outbox(
            backend,
            ZoomSender(api, self.clock, self.metrics),
            **options,  # type: ignore[arg-type]
        )

    async def __aenter__(self) -> Outbox:
        await self.outbox.start()
        await self.outbox.lead()
        return self.outbox

    async def __aexit__(self, *exc: object) -> None:
        await self.outbox.stop(0)


async def idle(outbox: Outbox, within: float = 5.0) -> None:
    async with asyncio.timeout(within):
        while outbox.busy:  # noqa: ASYNC110 - polling a plain property
            await asyncio.sleep(0.005)


async def test_keeps_order_per_lane_and_returns_message_ids(backend):
    api = Script(delay=0.001)
    async with Bench(backend, api) as outbox:
        futures = await outbox.add([message(n, lane=f"c{n % 2}") for n in range(10)], wait=True)
        results = await asyncio.gather(*futures)
    assert [r.message_id for r in results] == [f"m{n}" for n in range(10)]
    assert api.sent("c0") == [0, 2, 4, 6, 8]
    assert api.sent("c1") == [1, 3, 5, 7, 9]
    assert await backend.outbox_stats() == (0, None)


async def test_a_failed_message_is_retried_before_the_next_of_its_lane(backend):
    api = Script(ZoomApiError(500, None, "boom", "t1"), None)
    async with Bench(backend, api) as outbox:
        first, second = await outbox.add([message(1), message(2)], wait=True)
        assert (await first).message_id == "m1"
        assert (await second).message_id == "m2"
    assert api.sent() == [1, 1, 2]


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (ZoomApiError(503, None, "unavailable", "t"), "5xx"),
        (TimeoutError(), "timeout"),
        (aiohttp.ServerDisconnectedError(), "connection"),
        (aiohttp.ClientOSError(111, "Connect call failed"), "connection"),
        (TokenError("oauth down", retryable=True), "token"),
        # Refused credentials are held, not dropped: an operator can fix them.
        (TokenError("token request answered 401", retryable=False), "token"),
    ],
    ids=["5xx", "timeout", "disconnect", "refused", "token-5xx", "token-401"],
)
async def test_retries_what_may_pass_and_counts_each_retry(backend, error, reason):
    bench = Bench(backend, Script(error, error, error))
    async with bench as outbox:
        [future] = await outbox.add([message(7)], wait=True)
        assert (await future).message_id == "m7"
    assert len(bench.api.calls) == 4
    assert sample(bench.metrics, "chatopsbot_outbound_retries_total", reason=reason) == 3
    assert (await backend.outbox_list("dead")) == []


async def test_a_rejected_message_becomes_a_dead_letter_and_the_lane_moves_on(backend, caplog):
    invalid = ZoomApiError(400, 7010, "Invalid to_jid", "track-9")
    bench = Bench(backend, Script(invalid))
    async with bench as outbox:
        first, second = await outbox.add([message(1), message(2)], wait=True)
        with pytest.raises(SendFailed, match="Invalid to_jid"):
            await first
        assert (await second).message_id == "m2"
    [dead] = await backend.outbox_list("dead")
    assert (dead.reason, dead.attempts, dead.lane) == ("rejected", 1, "c1")
    assert "Zoom answered 400, code 7010: Invalid to_jid [tracking track-9]" in dead.error
    assert sample(bench.metrics, "chatopsbot_outbound_dead_letters_total", reason="rejected") == 1
    [line] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert f"gave up on message {dead.id} to c1 (rejected after 1 attempt(s)" in line.message
    assert "chatopsbot outbox list" in line.message


async def test_an_unexpected_error_is_a_dead_letter_and_the_lane_moves_on(backend):
    api = Script(RuntimeError("a bug"))
    async with Bench(backend, api) as outbox:
        first, second = await outbox.add([message(1), message(2)], wait=True)
        with pytest.raises(SendFailed):
            await first
        assert (await second).message_id == "m2"
    [dead] = await backend.outbox_list("dead")
    assert dead.reason == "error"
    assert "RuntimeError: a bug" in dead.error


class SlowToken(Script):
    """A request first needs a token, and the first token takes 0.1 s to come (as ZoomApi)."""

    def __init__(self) -> None:
        super().__init__()
        self.token = False

    async def ready(self) -> None:
        await super().ready()
        if not self.token:
            await asyncio.sleep(0.1)
            self.token = True

    async def call(self, api_call: ApiCall) -> ApiResult:
        await self.ready()
        return await super().call(api_call)


async def test_the_token_is_fetched_before_the_slot_so_the_first_request_keeps_its_spacing(
    backend,
):
    # Fetched inside the first request, the token made it arrive 0.1 s after its slot, and the
    # next two (on time) fell within one second with it: a 429 at 2/s.
    api = SlowToken()
    async with Bench(backend, api, rate_limit=2.0) as outbox:
        futures = await outbox.add([message(n, lane=f"c{n}") for n in range(3)], wait=True)
        await asyncio.gather(*futures)
    starts = [at for at, _ in api.calls]
    assert starts[2] - starts[0] >= 1.0
    assert api.readied >= 3


async def test_slow_answers_do_not_hold_an_account_under_its_quota(backend):
    # At 60/s with answers taking a second, 60 requests are in flight at once: a fixed cap of
    # 16 sent 16 a second.
    api = Script(delay=1.0)
    async with Bench(backend, api, rate_limit=60.0) as outbox:
        await outbox.add([message(n, lane=f"c{n}") for n in range(70)])
        await asyncio.sleep(1.1)
        started = len(api.calls)
        api.delay = 0.0
        await idle(outbox)
    assert started >= 55
    assert api.most_in_flight >= 55
    assert sorted(api.sent()) == list(range(70))


async def test_while_an_account_fails_it_sends_one_probe_at_a_time(backend):
    failures = [ZoomApiError(503, None, "down", "t")] * 12
    api = Script(*failures, delay=0.005)
    bench = Bench(backend, api, max_in_flight=8)
    async with bench as outbox:
        futures = await outbox.add([message(n, lane=f"c{n % 5}") for n in range(25)], wait=True)
        await asyncio.gather(*futures)
        # Once Zoom answers again, the lanes go out side by side.
        api.most_in_flight = 0
        more = await outbox.add([message(100 + n, lane=f"c{n}") for n in range(5)], wait=True)
        api.delay = 0.05
        await asyncio.gather(*more)
    spans = sorted(api.spans)
    first_failure = min(end for _, end, ok in spans if not ok)
    recovered = min(end for _, end, ok in spans if ok)
    probes = [s for s in spans if first_failure <= s[0] < recovered]
    assert len(probes) >= 5
    # Once a failure was seen, each probe waited for the one before it to end.
    assert all(b[0] >= a[1] for a, b in itertools.pairwise(probes)), probes
    assert api.most_in_flight > 1
    for lane in range(5):
        # Retries repeat the head only: first tries are in order, each message succeeds once.
        first_tries = list(dict.fromkeys(api.sent(f"c{lane}")))
        assert first_tries == [*range(lane, 25, 5), 100 + lane]
    assert len(set(api.sent())) == 30


async def test_429_pauses_the_whole_account_for_retry_after_but_not_other_accounts(backend):
    api = Script(ZoomApiError(429, 429, "slow down", "t", retry_after=0.3))
    # 10/s: the 429 is back before the account's next request is due.
    async with Bench(backend, api, rate_limit=10.0) as outbox:
        futures = await outbox.add(
            [message(1, lane="x"), message(2, lane="y"), message(3, lane="z", account="a2")],
            wait=True,
        )
        await asyncio.gather(*futures)
    times = {c.body["n"]: t for t, c in api.calls if c.body}
    first_try = api.calls[0][0]
    assert times[1] - first_try >= 0.29
    assert times[2] - first_try >= 0.29
    assert times[3] - first_try < 0.2


async def test_the_daily_limit_holds_the_account_and_logs_loudly(backend, caplog):
    daily = ZoomApiError(429, 429, "daily", "t", retry_after=0.2, daily_limit=True)
    async with Bench(backend, Script(daily)) as outbox:
        [future] = await outbox.add([message(1)], wait=True)
        assert (await future).message_id == "m1"
    assert any("ZOOM DAILY RATE LIMIT reached for account a1" in r.message for r in caplog.records)


async def test_messages_past_give_up_after_become_dead_letters(backend):
    api = Script()
    api.gate = asyncio.Event()
    bench = Bench(backend, api, policy=RetryPolicy(give_up_after=60, base=0.001, cap=0.01))
    async with bench as outbox:
        first, second = await outbox.add([message(1), message(2)], wait=True)
        await asyncio.sleep(0.05)  # the first is in flight, the second waits behind it
        await bench.clock.advance(61)
        api.gate.set()
        assert (await first).message_id == "m1"
        with pytest.raises(SendFailed, match="expired"):
            await second
    [dead] = await backend.outbox_list("dead")
    assert dead.reason == "expired"


async def test_what_was_queued_goes_out_after_a_restart_in_order(tmp_path):
    path = str(tmp_path / "bot.db")
    first_backend = await open_backend(path)
    blocked = Script()
    blocked.gate = asyncio.Event()
    async with Bench(first_backend, blocked) as outbox:
        await outbox.add([message(n, lane=f"c{n % 3}") for n in range(12)])
        await asyncio.sleep(0.05)
    await first_backend.close()
    assert len(blocked.calls) == 3  # one in flight per lane when the process stopped

    backend = await open_backend(path)
    api = Script()
    async with Bench(backend, api) as outbox:
        assert outbox.depth == 12
        await idle(outbox)
    await backend.close()
    for lane in range(3):
        assert api.sent(f"c{lane}") == list(range(lane, 12, 3))


async def test_stop_sends_what_it_can_and_keeps_the_rest(backend, caplog):
    api = Script()
    api.gate = asyncio.Event()
    bench = Bench(backend, api)
    await bench.outbox.start()
    await bench.outbox.lead()
    [future] = await bench.outbox.add([message(1)], wait=True)
    assert await bench.outbox.stop(0.05) == 1
    with pytest.raises(OutboxClosed):
        await future
    assert "1 message(s) not sent within 0 s stay queued" in caplog.text
    assert (await backend.outbox_stats())[0] == 1


async def test_requeued_dead_letters_are_found_and_sent(backend):
    api = Script(ZoomApiError(400, 300, "bad", "t"))
    async with Bench(backend, api, rescan_every=0.05) as outbox:
        [future] = await outbox.add([message(1)], wait=True)
        with pytest.raises(SendFailed):
            await future
        assert await backend.outbox_requeue(None, 1e12) == 1  # as `chatopsbot outbox retry` does
        async with asyncio.timeout(5):
            while api.sent().count(1) < 2:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        await idle(outbox)
    assert await backend.outbox_list("dead") == []
    assert await backend.outbox_stats() == (0, None)


async def test_a_card_remembers_its_author_with_its_sending(backend):
    async with Bench(backend, Script()) as outbox:
        [future] = await outbox.add([message(5, author="polls")], wait=True)
        await future
    assert await backend.get(AUTHORS, "m5", 0) == '{"plugin":"polls","values":[],"account":"a1"}'


async def test_requests_are_spaced_per_account_from_the_first_one(backend):
    api = Script()
    async with Bench(backend, api, rate_limit=50.0) as outbox:
        futures = await outbox.add(
            [message(n, lane=f"c{n % 4}") for n in range(12)]
            + [message(100 + n, lane="d", account="a2") for n in range(3)],
            wait=True,
        )
        await asyncio.gather(*futures)
    interval = Pacer(50.0).interval
    for account in ("a1", "a2"):
        times = [t for t, c in api.calls if c.account_id == account]
        gaps = [b - a for a, b in itertools.pairwise(times)]
        # The pacer keeps to its schedule through timer lateness of up to SLACK, so a send can
        # follow a late one by that much less than the interval (never more in a second).
        assert min(gaps) >= interval - SLACK - 0.0005, gaps
        assert sum(gaps) >= (len(gaps) - 1) * interval, gaps


async def test_repeated_failures_are_logged_in_bounded_lines(backend, caplog):
    failures = [ZoomApiError(503, None, "down", "t")] * 40
    async with Bench(backend, Script(*failures), policy=RetryPolicy(base=0.001, cap=0.002)) as o:
        [future] = await o.add([message(1)], wait=True)
        await future
    lines = [
        r
        for r in caplog.records
        if r.name == "chatopsbot.outbound" and r.levelno >= logging.WARNING
    ]
    assert len(lines) <= 3, [r.message for r in lines]
    assert "work again after" in lines[-1].message
    assert "and 40 failed attempt(s)" in lines[-1].message


async def test_a_new_sender_waits_out_the_second_of_the_last_send_even_if_a_reply_races_it(
    backend,
):
    import time

    from chatopsbot.storage import LAST_SENT

    api = Script()
    bench = Bench(backend, api)
    await backend.put(LAST_SENT, "a1", repr(time.time()), None)
    sent_at = asyncio.get_running_loop().time()
    await bench.outbox.start()
    # A reply written while the outbox is taking up the lead.
    adding = asyncio.ensure_future(bench.outbox.add([message(1)], wait=True))
    await bench.outbox.lead()
    [future] = await adding
    await future
    assert api.calls[0][0] - sent_at >= 0.95
    await bench.outbox.stop(0)


async def test_a_new_sender_waits_out_a_record_written_a_slot_ahead_but_not_a_wrong_clock(
    backend,
):
    import time

    from chatopsbot.storage import LAST_SENT

    # At 2/s the last sender wrote its record before waiting for a slot 0.5 s ahead: it
    # reaches 0.5 s + 0.25 s past the write. Another account's record is an hour ahead
    # (a clock that was wrong): held for at most the longest a true record asks.
    api = Script()
    bench = Bench(backend, api, rate_limit=2.0)
    await backend.put(LAST_SENT, "a1", repr(time.time() + 0.75), None)
    await backend.put(LAST_SENT, "a2", repr(time.time() + 3600), None)
    started = asyncio.get_running_loop().time()
    async with bench as outbox:
        futures = await outbox.add([message(1), message(2, lane="c2", account="a2")], wait=True)
        await asyncio.gather(*futures)
    first, second = sorted(at - started for at, _ in api.calls)
    assert 1.7 <= first <= 1.9
    assert 1.7 <= second <= 1.9


class SharedFailingNotify:
    """A backend that claims to be shared, whose notifications fail once."""

    def __init__(self, inner: Backend) -> None:
        self._inner = inner
        self.failures = 1
        self.shared = True

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)

    async def notify(self, channel: str, payload: str) -> None:
        from chatopsbot.storage import StorageError

        if self.failures:
            self.failures -= 1
            raise StorageError("connection lost")
        await self._inner.notify(channel, payload)


async def test_a_follower_whose_notification_fails_writes_its_messages_once(backend, caplog):
    shared = SharedFailingNotify(backend)
    bench = Bench(shared, Script())  # type: ignore[arg-type]
    await bench.outbox.start()  # a follower: it does not lead
    await bench.outbox.add([message(1), message(2, lane="c2")])
    assert (await backend.outbox_stats())[0] == 2
    assert "could not notify the sender" in caplog.text
    await bench.outbox.stop(0)


async def test_a_sender_that_loses_its_lease_sends_nothing_more(backend):
    api = Script()
    held = [True]
    async with Bench(backend, api, lease=lambda: held[0], rate_limit=20.0) as outbox:
        [first] = await outbox.add([message(1)], wait=True)
        await first
        held[0] = False  # the connection holding the lease is gone
        await outbox.add([message(2), message(3, lane="c2")])
        await asyncio.sleep(0.3)
    assert api.sent() == [1]
    assert (await backend.outbox_stats())[0] == 2  # left for the next sender


class Watched:
    """A backend that notes the outbox's reads of a lane's head, and holds the answer of an
    add (once written) while ``gate`` is set and not yet open."""

    def __init__(self, inner: Backend) -> None:
        self._inner = inner
        self.head_reads: list[str] = []
        self.gate: asyncio.Event | None = None
        self.written = asyncio.Event()

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)

    async def outbox_head(self, lane: str) -> QueuedMessage | None:
        self.head_reads.append(lane)
        return await self._inner.outbox_head(lane)

    async def outbox_add(self, *args: Any, **kwargs: Any) -> Added:
        added = await self._inner.outbox_add(*args, **kwargs)
        self.written.set()
        if self.gate is not None:
            await self.gate.wait()
        return added


async def release_and_settle(watched: Watched, adding: asyncio.Future[Any], outbox: Outbox) -> None:
    """Let the held add return, then give the sender time to act on what it was handed."""
    assert watched.gate is not None
    watched.gate.set()
    await adding
    await idle(outbox)
    await asyncio.sleep(0.05)


async def test_a_message_written_to_an_empty_lane_is_sent_without_reading_it_back(backend):
    watched = Watched(backend)
    api = Script()
    async with Bench(watched, api) as outbox:  # type: ignore[arg-type]
        for n in range(5):
            [future] = await outbox.add([message(n, lane=f"c{n}")], wait=True)
            assert (await future).message_id == f"m{n}"
        await idle(outbox)
    assert api.sent() == [0, 1, 2, 3, 4]
    assert [call.body for _, call in api.calls] == [{"n": n, "to_jid": f"c{n}"} for n in range(5)]
    # Each add said its message headed its lane, and the record of each send said nothing
    # was queued behind it: no read for either.
    assert watched.head_reads == []
    assert await backend.outbox_stats() == (0, None)


async def test_messages_queued_behind_come_with_the_record_of_the_one_before(backend):
    watched = Watched(backend)
    api = Script()
    async with Bench(watched, api) as outbox:  # type: ignore[arg-type]
        await outbox.add([message(n) for n in range(4)])
        await idle(outbox)
    assert api.sent() == [0, 1, 2, 3]
    assert watched.head_reads == []
    assert await backend.outbox_stats() == (0, None)


async def test_a_message_sent_before_its_add_returned_is_not_sent_again(backend):
    # The rescan found the committed message and sent it while the add's answer was still
    # on its way: the add must not hand the sender that message again.
    watched = Watched(backend)
    watched.gate = asyncio.Event()
    api = Script()
    async with Bench(watched, api, rescan_every=0.01) as outbox:  # type: ignore[arg-type]
        adding = asyncio.ensure_future(outbox.add([message(1)]))
        async with asyncio.timeout(5):
            while api.sent() != [1]:  # noqa: ASYNC110 - polling a plain list
                await asyncio.sleep(0.005)
        await asyncio.sleep(0.05)  # recorded, and the lane emptied
        await release_and_settle(watched, adding, outbox)
    assert api.sent() == [1]
    assert await backend.outbox_stats() == (0, None)


async def test_a_message_forgotten_before_its_add_returned_is_not_sent(backend):
    watched = Watched(backend)
    watched.gate = asyncio.Event()
    api = Script()
    # The rescan corrects the queue's count, which the add raised for a message now gone.
    async with Bench(watched, api, rescan_every=0.02) as outbox:  # type: ignore[arg-type]
        adding = asyncio.ensure_future(outbox.add([message(1)]))
        await watched.written.wait()
        assert await outbox.forget("a1", "c1") == 1  # the bot left the channel
        await release_and_settle(watched, adding, outbox)
    assert api.sent() == []


async def test_a_message_queued_behind_the_senders_back_still_goes_first(backend):
    # `chatopsbot outbox retry` requeues from another process; SQLite tells the bot nothing
    # until its rescan. A reply added meanwhile to that conversation must not overtake it.
    api = Script()
    bench = Bench(backend, api)
    async with bench as outbox:
        await backend.outbox_add([message(1)], bench.clock.timestamp())
        await outbox.add([message(2)])
        await idle(outbox)
    assert api.sent() == [1, 2]
    assert await backend.outbox_stats() == (0, None)


async def test_replies_go_out_while_the_disk_takes_its_time(tmp_path, monkeypatch):
    # A command's replies (written with its event's settlement), the pacing record and the
    # sent records are committed without waiting for an fsync: a disk that stalls (half a
    # second now and then, seen on these VMs) does not hold replies back or cost quota.
    backend = await open_backend(str(tmp_path / "bot.db"))
    release = threading.Event()
    try:
        assert await backend.inbox_accept("e1", b"{}", 1.0)
        api = Script()
        async with Bench(backend, api) as outbox:
            fsync = os.fsync

            def stalled(fd: int) -> None:
                release.wait(10)
                fsync(fd)

            monkeypatch.setattr(os, "fsync", stalled)
            await outbox.add([message(n) for n in range(5)], settle=("e1", 99.0))
            async with asyncio.timeout(5):
                while len(api.sent()) < 5:  # noqa: ASYNC110 - the scripted API records
                    await asyncio.sleep(0.01)
            release.set()
        assert api.sent() == [0, 1, 2, 3, 4]
    finally:
        release.set()
        await backend.close()
