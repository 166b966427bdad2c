"""Alertmanager's HTTP API v2, the parts the bot uses: make, list and expire silences.

One :class:`aiohttp.ClientSession` per plugin instance, opened on first use (so on the running
loop) and closed by :meth:`Alertmanager.close` when the bot stops. Every failure, unreachable or
an error answer, becomes :class:`AlertmanagerError` with a message fit for chat.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import aiohttp
from attrs import frozen

from chatopsbot_alerts.matchers import Matcher

#: Seconds before a call to Alertmanager is given up.
TIMEOUT = 10.0


class AlertmanagerError(Exception):
    """Alertmanager could not be reached or refused; ``str()`` says which and why.

    ``status`` is Alertmanager's HTTP status (0 when it could not be reached), ``reason`` its
    error text.
    """

    def __init__(self, message: str, *, status: int = 0, reason: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason

    @property
    def gone(self) -> bool:
        """Whether the silence asked about does not exist (Alertmanager 0.25 answers 500
        "silence not found" to expiring an unknown one, and 200 to expiring an expired one)."""
        return self.status in (404, 500) and (
            "not found" in self.reason or "expired" in self.reason
        )


@frozen
class Silence:
    """A silence as Alertmanager lists it."""

    id: str
    state: str
    matchers: tuple[Matcher, ...]
    starts_at: str
    ends_at: str
    created_by: str
    comment: str


def rfc3339(moment: datetime) -> str:
    """A time as Alertmanager's API reads it."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Alertmanager:
    """Calls to one Alertmanager at ``base_url`` (empty: not configured)."""

    def __init__(self, base_url: str, *, timeout: float = TIMEOUT) -> None:
        self.base_url = base_url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        """Close the session, if one was opened."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def create_silence(
        self,
        matchers: Sequence[Matcher],
        *,
        starts: datetime,
        ends: datetime,
        created_by: str,
        comment: str,
    ) -> str:
        """Make a silence; its id."""
        body = {
            "matchers": [m.to_api() for m in matchers],
            "startsAt": rfc3339(starts),
            "endsAt": rfc3339(ends),
            "createdBy": created_by,
            "comment": comment,
        }
        answer = await self._call("POST", "/api/v2/silences", body)
        silence_id = answer.get("silenceID") if isinstance(answer, dict) else None
        if not isinstance(silence_id, str) or not silence_id:
            raise AlertmanagerError("Alertmanager made the silence but sent back no id")
        return silence_id

    async def silences(self) -> list[Silence]:
        """Every silence Alertmanager knows (active, pending and expired)."""
        answer = await self._call("GET", "/api/v2/silences")
        if not isinstance(answer, list):
            raise AlertmanagerError("Alertmanager answered GET /api/v2/silences with no list")
        found = []
        for item in answer:
            if not isinstance(item, dict):
                continue
            found.append(
                Silence(
                    id=str(item.get("id", "")),
                    state=str((item.get("status") or {}).get("state", "")),
                    matchers=tuple(
                        Matcher.from_api(m)
                        for m in item.get("matchers") or ()
                        if isinstance(m, dict)
                    ),
                    starts_at=str(item.get("startsAt", "")),
                    ends_at=str(item.get("endsAt", "")),
                    created_by=str(item.get("createdBy", "")),
                    comment=str(item.get("comment", "")),
                )
            )
        return found

    async def expire(self, silence_id: str) -> None:
        """Expire a silence (Alertmanager's ``DELETE /api/v2/silence/{id}``)."""
        await self._call("DELETE", f"/api/v2/silence/{quote(silence_id, safe='')}")

    async def _call(self, method: str, path: str, body: Any = None) -> Any:
        if not self.base_url:
            raise AlertmanagerError(
                "no Alertmanager configured: set [plugins.alerts] alertmanager_url"
            )
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        url = self.base_url + path
        try:
            async with self._session.request(method, url, json=body) as resp:
                text = await resp.text()
                if resp.status >= 400:
                    reason = _reason(text) or resp.reason or "no reason given"
                    raise AlertmanagerError(
                        f"Alertmanager answered {resp.status} to {method} {path}: {reason}",
                        status=resp.status,
                        reason=reason,
                    )
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise AlertmanagerError(
                f"could not reach Alertmanager at {self.base_url}: {_why(exc, self._timeout.total)}"
            ) from None
        if not text.strip():
            return None
        try:
            return json.loads(text)
        except ValueError:
            raise AlertmanagerError(f"Alertmanager answered {method} {path} with no JSON") from None


def _reason(text: str) -> str:
    """Alertmanager's error text: a JSON string or object, or plain text; one line, short."""
    reason: Any = text.strip()
    with contextlib.suppress(ValueError):
        reason = json.loads(reason)
    if isinstance(reason, dict):
        reason = reason.get("message") or reason.get("error") or json.dumps(reason)
    return " ".join(str(reason).split())[:300]


def _why(exc: BaseException, timeout: float | None) -> str:
    text = str(exc)
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout or 0:g} s"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
