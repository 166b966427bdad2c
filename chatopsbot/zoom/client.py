"""One HTTP call to Zoom's chatbot API, with its answer classified; retry policy lives elsewhere.

:meth:`ZoomApi.call` adds the bearer token, refreshes it once when Zoom says it is invalid
(401 with code 124 or 7010), and turns any other non-2xx answer into :class:`ZoomApiError`
carrying Zoom's code, message, tracking id and, for 429s, how long to wait.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
from attrs import frozen

from chatopsbot.clock import Clock, SystemClock
from chatopsbot.errors import ChatopsbotError
from chatopsbot.zoom.auth import TokenCache
from chatopsbot.zoom.cards import ApiCall

log = logging.getLogger("chatopsbot.zoom.client")

#: Zoom's codes for a token it does not accept: expired or otherwise invalid.
TOKEN_REJECTED_CODES = frozenset({124, 7010})


@frozen
class ApiResult:
    """A 2xx answer: its status, its JSON body (empty when there was none) and tracking id."""

    status: int
    data: Mapping[str, Any]
    tracking_id: str

    @property
    def message_id(self) -> str | None:
        """The id of the message sent or edited, when Zoom included one."""
        value = self.data.get("message_id")
        return value if isinstance(value, str) and value else None


class ZoomApiError(ChatopsbotError):
    """A non-2xx answer from Zoom."""

    def __init__(
        self,
        status: int,
        code: int | None,
        message: str,
        tracking_id: str,
        *,
        retry_after: float | None = None,
        daily_limit: bool = False,
    ) -> None:
        super().__init__(
            f"Zoom answered {status} (code {code}): {message} [tracking {tracking_id}]"
        )
        self.status = status
        self.code = code
        self.message = message
        self.tracking_id = tracking_id
        self.retry_after = retry_after
        self.daily_limit = daily_limit


class ZoomApi:
    """Makes authenticated calls against ``api_base_url``."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        base_url: str,
        tokens: TokenCache,
        timeout: float = 10.0,
        clock: Clock | None = None,
    ) -> None:
        self._session = session
        self._base = base_url.rstrip("/")
        self._tokens = tokens
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._clock = clock or SystemClock()

    async def ready(self) -> None:
        """Fetch a token if none is held (or it is about to expire)."""
        await self._tokens.get()

    async def call(self, call: ApiCall) -> ApiResult:
        """Make the call; raise :class:`ZoomApiError`, :class:`~chatopsbot.zoom.auth.TokenError`,
        ``aiohttp.ClientError`` or ``TimeoutError``."""
        token = await self._tokens.get()
        try:
            return await self._once(call, token)
        except ZoomApiError as exc:
            if exc.status != 401 or exc.code not in TOKEN_REJECTED_CODES:
                raise
            log.warning("Zoom rejected the token (code %s); fetching a new one", exc.code)
            self._tokens.invalidate(token)
            return await self._once(call, await self._tokens.get())

    async def _once(self, call: ApiCall, token: str) -> ApiResult:
        async with self._session.request(
            call.method,
            self._base + call.path,
            json=call.body,
            params=call.params,
            headers={"Authorization": f"Bearer {token}"},
            timeout=self._timeout,
        ) as resp:
            # Zoom answers JSON in UTF-8: read as bytes (json reads those), skipping the
            # charset detection of resp.text(); text only for an error's message.
            raw = await resp.read()
            tracking_id = resp.headers.get("x-zm-trackingid", "")
            if 200 <= resp.status < 300:
                return ApiResult(resp.status, _json_object(raw), tracking_id)
            body = _json_object(raw)
            text = raw.decode(errors="replace")
            code = body.get("code")
            retry_after = None
            daily = False
            if resp.status == 429:
                daily = resp.headers.get("X-RateLimit-Type", "").lower() == "daily-limit"
                retry_after = parse_retry_after(
                    resp.headers.get("Retry-After"), self._clock.timestamp()
                )
            raise ZoomApiError(
                resp.status,
                code if isinstance(code, int) else None,
                str(body.get("message") or text[:200] or resp.reason or ""),
                tracking_id,
                retry_after=retry_after,
                daily_limit=daily,
            )


def _json_object(raw: bytes) -> dict[str, Any]:
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: a number of seconds, or a date.

    Zoom's daily limit sends an ISO-8601 time (``2025-08-23T00:00:00Z``); HTTP allows an
    RFC 7231 date too. Returns ``None`` when the header is absent or unreadable.
    """
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        # "inf" or "nan" would pause an account for ever (or not at all): unreadable.
        return max(0.0, seconds) if math.isfinite(seconds) else None
    when: datetime | None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now)
