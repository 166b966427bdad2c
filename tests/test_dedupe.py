"""Recognising redeliveries within the hour, with bounded memory."""

from __future__ import annotations

from chatopsbot.dedupe import RecentEvents


class Ticker:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_same_key_within_ttl_is_seen_and_after_it_is_new():
    clock = Ticker()
    recent = RecentEvents(ttl=3600, monotonic=clock)
    assert recent.seen("a") is False
    clock.now = 3599
    assert recent.seen("a") is True
    clock.now = 3601
    assert recent.seen("a") is False


def test_expired_keys_are_forgotten():
    clock = Ticker()
    recent = RecentEvents(ttl=10, monotonic=clock)
    for n in range(5):
        recent.seen(str(n))
    clock.now = 11
    recent.seen("new")
    assert len(recent) == 1


def test_memory_is_bounded_by_max_entries_oldest_first():
    recent = RecentEvents(ttl=3600, max_entries=3, monotonic=Ticker())
    for key in "abcd":
        assert recent.seen(key) is False
    assert len(recent) == 3
    assert recent.seen("d") is True
    assert recent.seen("a") is False  # pushed out by the bound
