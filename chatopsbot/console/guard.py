"""Who may use the console: this machine, under a local name, from the console's own page, with
JSON. Anything else could be a web page in the same browser trying to drive the bot."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from chatopsbot.console.cast import CastError
from chatopsbot.console.errors import ConsoleError

__all__ = ["error", "json_api", "local_only", "same_origin"]

log = logging.getLogger("chatopsbot.console")

_LOOPBACK = ("127.0.0.1", "::1")
_LOCAL_NAMES = ("127.0.0.1", "localhost", "[::1]")


def local_only(request: web.Request) -> None:
    """The console is for this machine only, whatever address it ends up bound to, and only
    under a local name: a site whose name an attacker points at 127.0.0.1 (DNS rebinding)
    would otherwise be this page's own origin in the browser."""
    if request.remote not in _LOOPBACK:
        raise web.HTTPForbidden(text="the console answers on loopback only")
    name = request.host.rsplit(":", 1)[0] if not request.host.endswith("]") else request.host
    if name not in _LOCAL_NAMES:
        raise web.HTTPForbidden(
            text=json.dumps(
                {"error": f"the console answers as 127.0.0.1 or localhost, not {name}"}
            ),
            content_type="application/json",
        )


def same_origin(request: web.Request) -> None:
    """Refuse requests a page from another site could make in this browser (cross-site
    WebSocket or form posts): the browser names that page in ``Origin``."""
    origin = request.headers.get("Origin")
    if origin is not None and urlsplit(origin).netloc != request.host:
        raise web.HTTPForbidden(
            text=json.dumps({"error": f"cross-origin request from {origin} refused"}),
            content_type="application/json",
        )


def json_api(
    handler: Callable[[Mapping[str, Any]], Awaitable[dict[str, Any]]],
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """An aiohttp handler for ``handler``: the checks above, the JSON object in, JSON out, and
    a ``{"error": ...}`` answer naming what is wrong."""

    async def endpoint(request: web.Request) -> web.StreamResponse:
        local_only(request)
        same_origin(request)
        if request.content_type != "application/json":
            return error(415, "send JSON (Content-Type: application/json)")
        try:
            data = json.loads(await request.read())
        except ValueError:
            return error(400, "body: not JSON")
        if not isinstance(data, dict):
            return error(400, "body: expected a JSON object")
        try:
            return web.json_response(await handler(data))
        except (ConsoleError, CastError) as exc:
            log.info("console: %s %s refused: %s", request.method, request.path, exc)
            return error(getattr(exc, "status", 400), str(exc))

    return endpoint


def error(status: int, message: str) -> web.Response:
    """The JSON answer to a request the console refuses."""
    return web.json_response({"error": message}, status=status)
