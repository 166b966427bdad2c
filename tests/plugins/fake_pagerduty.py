"""An aiohttp fake of PagerDuty's REST API v2, on loopback: ``GET /oncalls`` and
``GET /schedules/{id}``, as strict as the real one about what the bot sends.

It checks the ``Authorization: Token token=...`` header (401 otherwise, PagerDuty's error
body), the ``Accept: application/vnd.pagerduty+json;version=2`` header, and the query: array
parameters spelled with ``[]`` (``schedule_ids[]``), ``since``/``until`` as ISO 8601 with a
time zone, ``until`` after ``since`` and at most three months later, ``limit`` of 1 to 100,
``offset``, ``earliest`` and ``time_zone``; anything else is a 400 naming the parameter. It
answers with the documented shapes (references with ``id``, ``type``, ``summary``, ``self``,
``html_url``; ``limit``, ``offset``, ``more``, ``total``), pages by ``page_size`` (the real API
pages by ``limit``, at most 100), and can answer 429 with ``Retry-After``, fail with any
status, or be slow.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web
from attrs import define, field, frozen

TOKEN = "u+pagerduty-read-only"
ACCEPT = "application/vnd.pagerduty+json;version=2"
_ALLOWED = {
    "schedule_ids[]",
    "escalation_policy_ids[]",
    "user_ids[]",
    "include[]",
    "since",
    "until",
    "limit",
    "offset",
    "total",
    "earliest",
    "time_zone",
}
_MAX_RANGE = timedelta(days=90)


@frozen
class Entry:
    """One on-call entry PagerDuty computes: ``user`` on call for ``policy`` at ``level``
    through ``schedule`` (``None``: named directly in the policy) from ``start`` to ``end``."""

    user: str
    start: datetime | None
    end: datetime | None
    schedule: str | None = "P123ABC"
    policy: str = "PEPOL01"
    level: int = 1


@define
class FakePagerDuty:
    """The fake; ``entries`` is what PagerDuty has computed, ``requests`` what it was asked."""

    token: str = TOKEN
    entries: list[Entry] = field(factory=list)
    schedules: dict[str, str] = field(factory=lambda: {"P123ABC": "Platform primary"})
    page_size: int = 100
    #: Answer every request with this status (PagerDuty's error body), until cleared.
    fail_with: int | None = None
    #: Answer 429 with this ``Retry-After`` (seconds), until cleared.
    retry_after: int | None = None
    #: Seconds to wait before answering.
    delay: float = 0.0
    requests: list[web.Request] = field(factory=list)
    _runner: web.AppRunner | None = None
    url: str = ""

    async def start(self) -> None:
        """Listen on a free loopback port; :attr:`url` is where."""
        app = web.Application()
        app.router.add_get("/oncalls", self._oncalls)
        app.router.add_get("/schedules/{id}", self._schedule)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"

    async def close(self) -> None:
        """Stop listening: requests then find nothing there (connection refused)."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def queries(self, path: str = "/oncalls") -> list[list[tuple[str, str]]]:
        """The query parameters of each request to ``path``, in order as sent."""
        return [list(r.query.items()) for r in self.requests if r.path == path]

    # The API.

    async def _guard(self, request: web.Request) -> web.Response | None:
        self.requests.append(request)
        if self.delay:
            await asyncio.sleep(self.delay)
        if request.headers.get("Authorization") != f"Token token={self.token}":
            return _error(401, 2006, "Unauthorized")
        if request.headers.get("Accept") != ACCEPT:
            return _error(400, 2001, "Invalid Input Provided", [f"Accept must be {ACCEPT}"])
        if self.retry_after is not None:
            resp = _error(429, 2020, "Rate Limit Exceeded")
            resp.headers["Retry-After"] = str(self.retry_after)
            return resp
        if self.fail_with is not None:
            return _error(self.fail_with, 2000, "Internal error")
        return None

    async def _oncalls(self, request: web.Request) -> web.Response:
        refused = await self._guard(request)
        if refused is not None:
            return refused
        query = request.query
        for name in query:
            if name not in _ALLOWED:
                return _error(400, 2001, "Invalid Input Provided", [f"unknown parameter {name}"])
        try:
            since = _time(query.get("since"))
            until = _time(query.get("until"))
            limit = int(query.get("limit", "25"))
            offset = int(query.get("offset", "0"))
        except ValueError as exc:
            return _error(400, 2001, "Invalid Input Provided", [str(exc)])
        if (since is None) != (until is None):
            return _error(400, 2001, "Invalid Input Provided", ["since and until go together"])
        if since is not None and until is not None:
            if until < since:
                return _error(400, 2001, "Invalid Input Provided", ["until is before since"])
            if until - since > _MAX_RANGE:
                return _error(400, 2001, "Invalid Input Provided", ["range over 3 months"])
        if not 1 <= limit <= 100 or offset < 0:
            return _error(400, 2001, "Invalid Input Provided", ["limit is 1 to 100"])
        schedules = set(query.getall("schedule_ids[]", []))
        policies = set(query.getall("escalation_policy_ids[]", []))
        found = [
            e
            for e in self.entries
            if (not schedules or e.schedule in schedules)
            and (not policies or e.policy in policies)
            and _overlaps(e, since, until)
        ]
        if query.get("earliest") == "true":
            first: dict[tuple[str, str, int], Entry] = {}
            for e in sorted(found, key=lambda e: e.start or datetime.min.astimezone()):
                first.setdefault((e.user, e.policy, e.level), e)
            found = list(first.values())
        page = found[offset : offset + min(limit, self.page_size)]
        body = {
            "oncalls": [self._entry(e) for e in page],
            "limit": limit,
            "offset": offset,
            "more": offset + len(page) < len(found),
            "total": len(found) if query.get("total") == "true" else None,
        }
        return web.json_response(body)

    async def _schedule(self, request: web.Request) -> web.Response:
        refused = await self._guard(request)
        if refused is not None:
            return refused
        sid = request.match_info["id"]
        if sid not in self.schedules:
            return _error(404, 2100, "Not Found")
        return web.json_response(
            {
                "schedule": {
                    **_ref("schedule", sid, self.schedules[sid]),
                    "type": "schedule",
                    "name": self.schedules[sid],
                    "time_zone": "UTC",
                    "description": "",
                    "escalation_policies": [],
                    "users": [],
                }
            }
        )

    def _entry(self, e: Entry) -> dict[str, Any]:
        return {
            "escalation_policy": _ref("escalation_policy", e.policy, f"Policy {e.policy}"),
            "escalation_level": e.level,
            "schedule": (
                _ref("schedule", e.schedule, self.schedules.get(e.schedule, e.schedule))
                if e.schedule
                else None
            ),
            "user": _ref("user", "PU" + e.user.upper()[:5], e.user),
            "start": e.start.isoformat() if e.start else None,
            "end": e.end.isoformat() if e.end else None,
        }


def _ref(kind: str, rid: str, summary: str) -> dict[str, str]:
    plural = "escalation_policies" if kind == "escalation_policy" else f"{kind}s"
    return {
        "id": rid,
        "type": f"{kind}_reference",
        "summary": summary,
        "self": f"https://api.pagerduty.com/{plural}/{rid}",
        "html_url": f"https://example.pagerduty.com/{plural}/{rid}",
    }


def _time(value: str | None) -> datetime | None:
    if value is None:
        return None
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError(f"{value}: no time zone")
    return parsed


def _overlaps(e: Entry, since: datetime | None, until: datetime | None) -> bool:
    if since is None or until is None:
        return True
    starts_before_end = e.start is None or e.start <= until
    ends_after_start = e.end is None or e.end > since
    return starts_before_end and ends_after_start


def _error(status: int, code: int, message: str, errors: list[str] | None = None) -> web.Response:
    body: Mapping[str, Any] = {"error": {"message": message, "code": code, "errors": errors or []}}
    return web.json_response(body, status=status)
