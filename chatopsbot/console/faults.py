"""Zoom faults the console can arm on the fake Zoom: which statuses, and the answer for each."""

from __future__ import annotations

from chatopsbot.zoom.fake import UNAVAILABLE, Fault

__all__ = ["FAULT_STATUSES", "MAX_FAULTS", "describe", "fault"]

#: A fault's status: 0 drops the connection, else an HTTP error status.
FAULT_STATUSES = (0, 400, 401, 404, 429, 500, 502, 503, 504)
#: The most faults one request may queue.
MAX_FAULTS = 50


def fault(status: int) -> Fault:
    """What the fake Zoom answers for ``status``, shaped like Zoom's own answer."""
    if status == 429:
        return Fault(
            429,
            {"code": 429, "message": "You have reached the maximum per-second rate limit."},
            {"Retry-After": "1", "X-RateLimit-Type": "QPS"},
        )
    if status >= 500:
        return Fault(status, UNAVAILABLE if status == 503 else {"code": status, "message": "error"})
    return Fault(status, {"code": status, "message": f"console fault {status}"})


def describe(status: int) -> str:
    """How a fault's status reads in the log."""
    return "by dropping the connection" if status == 0 else str(status)
