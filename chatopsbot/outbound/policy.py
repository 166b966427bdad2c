"""What a delivery attempt can end in, and how long to wait before the next one: pure logic.

A :class:`~chatopsbot.outbound.outbox.Deliverer` raises one of the outcomes below; the outbox
asks the :class:`RetryPolicy` what to do about it. Nothing here knows Zoom.
"""

from __future__ import annotations

import random

from attrs import frozen

__all__ = ["Rejected", "RetryLater", "RetryPolicy", "Throttled"]


class RetryLater(Exception):
    """A failure that may pass (5xx, timeout, refused connection, token endpoint down).

    ``reason`` is a short label for metrics and logs (``"5xx"``, ``"timeout"``, ...).
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class Throttled(Exception):
    """The account is over its quota: wait ``wait`` seconds (``daily``: until the daily reset)."""

    def __init__(self, wait: float, detail: str, *, daily: bool = False) -> None:
        super().__init__(detail)
        self.wait = wait
        self.detail = detail
        self.daily = daily


class Rejected(Exception):
    """A failure no retry can fix (invalid JID, bot removed, bad request): a dead letter."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@frozen
class RetryPolicy:
    """Capped exponential backoff with jitter, until ``give_up_after`` seconds from the decision.

    ``base`` is the first delay, doubled after each failure up to ``cap``; each delay is drawn
    from its upper half, so replicas and accounts that failed together do not retry in step.
    """

    give_up_after: float = 86400.0
    base: float = 0.5
    cap: float = 30.0

    def delay(self, failures: int, rng: random.Random) -> float:
        """Seconds to wait after the ``failures``-th failure in a row (1 for the first)."""
        ceiling = min(self.cap, self.base * 2 ** min(failures - 1, 60))
        return float(ceiling * rng.uniform(0.5, 1.0))

    def expired(self, decided_at: float, now: float) -> bool:
        """Whether a message decided at ``decided_at`` has been retried long enough."""
        return now - decided_at >= self.give_up_after
