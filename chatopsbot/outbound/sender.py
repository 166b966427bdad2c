"""The Zoom side of the outbound path: what a queued message means to Zoom, and Zoom's answers.

The outbox stores each message as the rendered :class:`~chatopsbot.zoom.cards.ApiCall` (JSON);
:class:`ZoomSender` makes the call and turns Zoom's answer into an outcome the outbox knows:
delivered (with the message id, and which plugin drew the card), retry later (5xx, timeouts,
refused connections, the token endpoint failing), throttled (429) or rejected for good.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import aiohttp
from attrs import field, frozen

from chatopsbot.clock import Clock
from chatopsbot.metrics import Metrics
from chatopsbot.outbound.outbox import GONE, GONE_PREFIX, Delivery
from chatopsbot.outbound.policy import Rejected, RetryLater, Throttled
from chatopsbot.storage import CARD_AUTHORS, QueuedMessage, Write
from chatopsbot.zoom.auth import TokenError
from chatopsbot.zoom.cards import ApiCall
from chatopsbot.zoom.client import ApiResult, ZoomApiError

__all__ = [
    "AUTHORS",
    "AUTHOR_DAYS",
    "ApiCaller",
    "CardRecord",
    "ZoomSender",
    "card_versions",
    "decode_call",
    "encode_call",
    "value_digest",
]

AUTHORS = CARD_AUTHORS
#: How long a card's author is remembered: form edits on older cards are not routed.
AUTHOR_DAYS = 90


class ApiCaller(Protocol):
    """What the sender calls: :class:`chatopsbot.zoom.client.ZoomApi` in production."""

    async def call(self, call: ApiCall) -> ApiResult:
        """Make one request and return Zoom's 2xx answer, or raise."""
        ...

    async def ready(self) -> None:
        """Have what a request needs before it goes (a token); raise as :meth:`call` would."""
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

    async def prepare(self, message: QueuedMessage) -> None:
        """Fetch a token now, if one is due, so the request goes out in its slot."""
        # A failure here comes again in deliver, which turns it into an outcome.
        with contextlib.suppress(TokenError, TimeoutError, aiohttp.ClientError):
            await self._api.ready()

    async def deliver(self, message: QueuedMessage) -> Delivery:
        """Make the call; raise the outcome the outbox acts on."""
        call = decode_call(message.payload)
        count = functools.partial(self._metrics.count, self._metrics.outbound)
        try:
            result = await self._api.call(call)
        except ZoomApiError as exc:
            count(str(exc.status))
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
            if exc.status == 404 and call.method in ("PUT", "PATCH", "DELETE"):
                raise Rejected(GONE, f"{GONE_PREFIX} ({detail})") from exc
            raise Rejected("rejected", detail) from exc
        except TokenError as exc:
            count("token_error")
            # Even refused credentials are held, not dropped: an operator can fix them.
            raise RetryLater("token", str(exc)) from exc
        except TimeoutError as exc:
            count("timeout")
            raise RetryLater("timeout", f"{call.method} {call.path} timed out") from exc
        except aiohttp.ClientError as exc:
            count("connection_error")
            raise RetryLater("connection", f"{type(exc).__name__}: {exc}") from exc
        count(str(result.status))
        writes: tuple[Write, ...] = ()
        author = _meta(message).get("author")
        key = result.message_id if call.method == "POST" else _version_key(call)
        if author and key:
            # Written with the delivery, in one transaction: a click can only ever find the
            # card as Zoom shows it (or showed it: a client may still show an older version).
            card = CardRecord.of(str(author), call, _meta(message).get("routes"))
            expires = self._clock.timestamp() + AUTHOR_DAYS * 86400
            writes = (Write(AUTHORS, key, card.to_json(), expires),)
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


@frozen
class CardRecord:
    """What the bot remembers of a card it sent: which plugin drew it, for whom, with which
    button and option values (as digests). A click is honoured only with a value the card
    carries, so a value cannot be reused on another card, in another conversation, or after
    the card was deleted.
    """

    plugin: str
    viewer: str | None = None
    values: frozenset[str] | None = None
    deleted: bool = False
    #: Signed action ids of what Zoom fills in (member and channel selects, editable fields
    #: and texts), by what the event names: see :func:`chatopsbot.zoom.cards.routes`.
    routes: Mapping[str, str] = field(factory=dict)
    #: The Zoom account the card was sent in: its records go when the account removes the app.
    account: str = ""

    @classmethod
    def of(cls, plugin: str, call: ApiCall, routes: object = None) -> CardRecord:
        """The record for ``call`` (a send, an edit or a delete) of ``plugin``'s card."""
        body = call.body or {}
        account = call.account_id
        if call.method == "DELETE":
            return cls(plugin, deleted=True, account=account)
        viewer = body.get("visible_to_user")
        values = frozenset(value_digest(v) for v in _values(body.get("content")))
        kept = {str(k): str(v) for k, v in routes.items()} if isinstance(routes, Mapping) else {}
        return cls(plugin, str(viewer) if viewer else None, values, routes=kept, account=account)

    def admits(self, value: str) -> bool:
        """Whether ``value`` is one the card carries (cards recorded before values were
        remembered admit any value their plugin signed)."""
        return not self.deleted and (self.values is None or value_digest(value) in self.values)

    def to_json(self) -> str:
        """The stored form."""
        data: dict[str, Any] = {"plugin": self.plugin}
        if self.viewer:
            data["viewer"] = self.viewer
        if self.values is not None:
            data["values"] = sorted(self.values)
        if self.deleted:
            data["deleted"] = True
        if self.routes:
            data["routes"] = dict(self.routes)
        if self.account:
            data["account"] = self.account
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> CardRecord:
        """Read a stored record; a bare plugin name is what earlier versions stored."""
        if not text.startswith("{"):
            return cls(text)
        data = json.loads(text)
        values = data.get("values")
        return cls(
            str(data["plugin"]),
            data.get("viewer"),
            None if values is None else frozenset(values),
            bool(data.get("deleted", False)),
            routes=dict(data.get("routes") or {}),
            account=str(data.get("account") or ""),
        )

    def merge(self, later: CardRecord) -> CardRecord:
        """This card after ``later`` (an edit or a delete): values of every version count."""
        values = None if self.values is None else self.values | (later.values or frozenset())
        deleted = self.deleted or later.deleted
        return CardRecord(
            self.plugin,
            self.viewer,
            values,
            deleted,
            routes={**self.routes, **later.routes},
            account=self.account or later.account,
        )


def card_versions(message_id: str) -> str:
    """The key prefix under which edits and the delete of ``message_id`` are recorded."""
    return f"{message_id}/"


def _version_key(call: ApiCall) -> str:
    message_id = call.path.rsplit("/", 1)[-1]
    if call.method == "DELETE":
        return card_versions(message_id) + "deleted"
    content = json.dumps(call.body, sort_keys=True, default=str).encode()
    return card_versions(message_id) + hashlib.sha256(content).hexdigest()[:16]


def value_digest(value: str) -> str:
    """A short digest of a button or option value (the value itself need not be kept)."""
    return hashlib.sha256(value.encode()).hexdigest()[:24]


def _values(node: Any) -> list[str]:
    """Every ``value`` in a card's content (buttons, dropdown options, form fields) and every
    ``action_id`` (pickers, inputs)."""
    found: list[str] = []
    if isinstance(node, Mapping):
        for key, item in node.items():
            if key in ("value", "action_id") and isinstance(item, str):
                found.append(item)
            else:
                found.extend(_values(item))
    elif isinstance(node, list):
        for item in node:
            found.extend(_values(item))
    return found


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
