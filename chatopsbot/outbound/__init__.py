"""The outbound path: a durable outbox (Zoom-neutral) and the Zoom sender behind it."""

from __future__ import annotations

from chatopsbot.outbound.outbox import (
    Deliverer,
    Delivery,
    MessageGone,
    Outbox,
    OutboxClosed,
    SendFailed,
)
from chatopsbot.outbound.pacer import Pacer
from chatopsbot.outbound.policy import Rejected, RetryLater, RetryPolicy, Throttled
from chatopsbot.outbound.sender import ZoomSender

__all__ = [
    "Deliverer",
    "Delivery",
    "MessageGone",
    "Outbox",
    "OutboxClosed",
    "Pacer",
    "Rejected",
    "RetryLater",
    "RetryPolicy",
    "SendFailed",
    "Throttled",
    "ZoomSender",
]
