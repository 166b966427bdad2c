"""An aiohttp fake of Alertmanager's API v2 silences, on loopback, checking bodies as it does.

It refuses what Alertmanager 0.25 refuses (no matchers, a matcher list that matches every
alert, a missing creator, an end before the start), answers as it does (``{"silenceID": ...}``;
500 ``"silence not found"`` for an unknown id) and records every request.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Any

from aiohttp import web
from attrs import define, field


@define
class FakeAlertmanager:
    """Silences in memory; ``fail_with`` makes every call answer that status."""

    silences: dict[str, dict[str, Any]] = field(factory=dict)
    requests: list[tuple[str, str, Any]] = field(factory=list)
    fail_with: int = 0
    url: str = ""
    _runner: web.AppRunner | None = None

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/api/v2/silences", self._create)
        app.router.add_get("/api/v2/silences", self._list)
        app.router.add_delete("/api/v2/silence/{id}", self._expire)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def _failing(self) -> web.Response | None:
        if self.fail_with:
            return web.json_response("internal error", status=self.fail_with)
        return None

    async def _create(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append(("POST", request.path, body))
        failing = self._failing()
        if failing is not None:
            return failing
        problem = _problem(body)
        if problem:
            return web.json_response(f"silence invalid: {problem}", status=400)
        silence_id = str(uuid.uuid4())
        self.silences[silence_id] = {**body, "id": silence_id, "status": {"state": "active"}}
        return web.json_response({"silenceID": silence_id})

    async def _list(self, request: web.Request) -> web.Response:
        self.requests.append(("GET", request.path, None))
        return self._failing() or web.json_response(list(self.silences.values()))

    async def _expire(self, request: web.Request) -> web.Response:
        self.requests.append(("DELETE", request.path, None))
        failing = self._failing()
        if failing is not None:
            return failing
        silence = self.silences.get(request.match_info["id"])
        if silence is None:
            return web.json_response("silence not found", status=500)
        silence["status"] = {"state": "expired"}
        return web.Response(status=200)


def _problem(body: Any) -> str:
    if not isinstance(body, dict):
        return "body is not an object"
    matchers = body.get("matchers")
    if not isinstance(matchers, list) or not matchers:
        return "at least one matcher required"
    for m in matchers:
        if set(m) != {"name", "value", "isRegex", "isEqual"}:
            return f"matcher fields: {sorted(m)}"
        if not isinstance(m["isRegex"], bool) or not isinstance(m["isEqual"], bool):
            return "isRegex and isEqual are booleans"
    if all(_matches_empty(m) for m in matchers):
        return "at least one matcher must not match the empty string"
    if not body.get("createdBy"):
        return "creator information missing"
    starts, ends = _time(body.get("startsAt")), _time(body.get("endsAt"))
    if starts is None or ends is None:
        return "startsAt and endsAt must be RFC 3339 times"
    if ends < starts:
        return "end time must not be before start time"
    return ""


def _matches_empty(m: dict[str, Any]) -> bool:
    found = re.fullmatch(m["value"], "") is not None if m["isRegex"] else m["value"] == ""
    return bool(found == m["isEqual"])


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value.endswith("Z"):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
