"""The Zoom side of the outbound path: what a queued message means to Zoom, and Zoom's answers.

The outbox stores each message as the rendered :class:`~chatopsbot.zoom.cards.ApiCall` (JSON);
:class:`ZoomSender` makes the call and turns Zoom's answer into an outcome the outbox knows:
delivered (with the message id, and which plugin drew the card), retry later (5xx, timeouts,
refused connections, the token endpoint failing), throttled (429) or rejected for good.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import aiohttp

from chatopsbot.clock import Clock
from chatopsbot.metrics import Metrics
from chatopsbot.outbound.outbox import Delivery
from chatopsbot.outbound.policy import Rejected, RetryLater, Throttled
from chatopsbot.storage import CARD_AUTHORS, QueuedMessage, Write
from chatopsbot.zoom.auth import TokenError
from chatopsbot.zoom.cards import ApiCall
from chatopsbot.zoom.client import ApiResult, ZoomApiError

__all__ = ["AUTHORS", "AUTHOR_DAYS", "ApiCaller", "ZoomSender", "decode_call", "encode_call"]

AUTHORS = CARD_AUTHORS
#: How long a card's author is remembered: form edits on older cards are not routed.
AUTHOR_DAYS = 90


class ApiCaller(Protocol):
    """What the sender calls: :class:`chatopsbot.zoom.client.ZoomApi` in production."""

    async def call(self, call: ApiCall) -> ApiResult:
        """Make one request and return Zoom's 2xx answer, or raise."""
        ...


def encode_call(call: ApiCall) -> str:
    """The call as the JSON text the outbox stores; fails on values JSON cannot carry."""
    return json.dumps(
        {
            "method": call.method,
            "path": call.path,
            "account_id": call.account_id,
            "body": call.body,
            "params": call.params,
        },
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    )


def decode_call(payload: str) -> ApiCall:
    """The call stored by :func:`encode_call`."""
    data = json.loads(payload)
    return ApiCall(
        data["method"], data["path"], data["account_id"], data.get("body"), data.get("params")
    )


class ZoomSender:
    """Delivers outbox messages to Zoom's chatbot API."""

    def __init__(self, api: ApiCaller, clock: Clock, metrics: Metrics | None = None) -> None:
        self._api = api
        self._clock = clock
        self._metrics = metrics or Metrics()

    async def deliver(self, message: QueuedMessage) -> Delivery:
        """Make the call; raise the outcome the outbox acts on."""
        call = decode_call(message.payload)
        count = self._metrics.outbound.labels
        try:
            result = await self._api.call(call)
        except ZoomApiError as exc:
            count(str(exc.status)).inc()
            detail = f"Zoom answered {exc.status}, code {exc.code}: {exc.message}"
            if exc.tracking_id:
                detail += f" [tracking {exc.tracking_id}]"
            if exc.status == 429:
                wait = exc.retry_after
                if wait is None:
                    wait = _seconds_to_utc_midnight() if exc.daily_limit else 1.0
                raise Throttled(wait, detail, daily=exc.daily_limit) from exc
            if exc.status >= 500:
                raise RetryLater("5xx", detail) from exc
            raise Rejected("rejected", detail) from exc
        except TokenError as exc:
            count("token_error").inc()
            # Even refused credentials are held, not dropped: an operator can fix them.
            raise RetryLater("token", str(exc)) from exc
        except TimeoutError as exc:
            count("timeout").inc()
            raise RetryLater("timeout", f"{call.method} {call.path} timed out") from exc
        except aiohttp.ClientError as exc:
            count("connection_error").inc()
            raise RetryLater("connection", f"{type(exc).__name__}: {exc}") from exc
        count(str(result.status)).inc()
        writes: tuple[Write, ...] = ()
        author = _meta(message).get("author")
        if author and call.method == "POST" and result.message_id:
            expires = self._clock.timestamp() + AUTHOR_DAYS * 86400
            writes = (Write(AUTHORS, result.message_id, str(author), expires),)
        record = json.dumps(
            {"status": result.status, "data": dict(result.data), "tracking_id": result.tracking_id}
        )
        return Delivery(result, writes, record)

    def restore(self, record: str) -> ApiResult:
        """The :class:`ApiResult` a delivery record stands for."""
        data = json.loads(record)
        return ApiResult(int(data["status"]), data["data"], str(data["tracking_id"]))

    def describe(self, message: QueuedMessage) -> dict[str, Any]:
        """The log fields recorded when the message was decided."""
        fields = _meta(message).get("log")
        return dict(fields) if isinstance(fields, Mapping) else {}


def _meta(message: QueuedMessage) -> dict[str, Any]:
    try:
        meta = json.loads(message.meta)
    except ValueError:
        return {}
    return meta if isinstance(meta, dict) else {}


def _seconds_to_utc_midnight() -> float:
    # Zoom resets daily quotas at 00:00 UTC; used only if the 429 lacks a Retry-After.
    now = datetime.now(UTC)
    midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return (midnight - now).total_seconds()
