"""The console's server: the bot's own aiohttp app, plus a page, a WebSocket and a small JSON API.

The bot runs as in production (its plugins, storage, outbound layer, token exchange) against
the fake Zoom on loopback. The page's actions are JSON requests here; each becomes what Zoom
or CI would send (a webhook signed with the bot's secret, a plugin hook signed with the
plugin's token) and goes over HTTP to the bot's own routes. What the fake Zoom receives comes
back to every open page through the WebSocket, as whole messages and log entries.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.resources
import json
import logging
import secrets
import time
from collections import deque
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import aiohttp
from aiohttp import web

from chatopsbot.app import PLUGINS, RUNTIME, create_app, handler_options
from chatopsbot.config import Settings, parse_settings
from chatopsbot.console import cast, feed
from chatopsbot.console.errors import ConsoleError
from chatopsbot.console.events import message_edited
from chatopsbot.console.faults import FAULT_STATUSES, MAX_FAULTS, describe, fault
from chatopsbot.console.guard import json_api, local_only, same_origin
from chatopsbot.console.pages import PageFeed
from chatopsbot.console.settings import console_settings, hook_tokens, rate_limit
from chatopsbot.plugins import load_plugins
from chatopsbot.routes import sign_request
from chatopsbot.zoom.fake import FakeZoom, Request
from chatopsbot.zoom.payloads import (
    bot_notification,
    button_clicked,
    field_edited,
    option_selected,
    signed,
)

__all__ = ["Console"]

log = logging.getLogger("chatopsbot.console")

#: The account every console event comes from.
ACCOUNT = "acct-console"
#: Log entries kept for pages that open later.
LOG_KEPT = 1000
#: Example bodies for plugin hooks the console knows, by route.
HOOK_EXAMPLES: Mapping[str, Any] = {
    "POST /hooks/deploy": {
        "service": "api",
        "environment": "prod",
        "version": "1.4.2",
        "status": "started",
        "actor": "alice",
        "commit": "9f2fd5a",
        "url": "https://ci.example.com/runs/42",
        "message": "Release 1.4.2: faster search",
    },
    "GET /hooks/deploy/lock?service=api&environment=prod": None,
}
_STATIC = "static"


class Console:
    """The bot, the fake Zoom and the page, on one loopback port. ``start`` then ``close``."""

    def __init__(
        self,
        settings: Settings,
        zoom: FakeZoom,
        secret: str,
        *,
        plugins: Mapping[str, object] | None = None,
    ) -> None:
        self.settings = settings
        self.zoom = zoom
        self._secret = secret
        loaded = load_plugins(settings.plugins, source=settings.source, extra=dict(plugins or {}))
        self.app = create_app(settings, plugins=loaded)
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._pages: dict[web.WebSocketResponse, PageFeed] = {}
        self._channels = cast.default_channels()
        for jid in cast.channels_in(dict(settings.plugins.tables)):
            cast.add_channel(self._channels, jid)
        self._timeline: dict[str, dict[str, Any]] = {}
        self._log: deque[dict[str, Any]] = deque(maxlen=LOG_KEPT)
        self._seq = 0
        self._health: dict[str, Any] = {"status": "starting", "details": {}}
        self.url = ""
        self._install()

    @classmethod
    async def start(
        cls,
        base: Settings | None = None,
        *,
        storage: str,
        port: int = 0,
        plugins: Mapping[str, object] | None = None,
    ) -> Console:
        """Start the fake Zoom and the bot with the console's routes on ``127.0.0.1:port``.

        ``plugins`` are loaded besides the installed ones (as in the test kit).
        """
        zoom = FakeZoom(rate_limit=rate_limit(base), clock=time.time)
        await zoom.start()
        try:
            secret = secrets.token_hex(16)
            if base is None:
                base = parse_settings(
                    {"zoom": zoom.zoom_table(secret)}, source="<console>", environ={}
                )
            settings = console_settings(
                base,
                zoom=zoom,
                secret=secret,
                storage=storage,
                port=port,
                hook_tokens=hook_tokens(base),
            )
            console = cls(settings, zoom, secret, plugins=plugins)
            await console._listen(port)
        except BaseException:
            await zoom.close()
            raise
        return console

    async def _listen(self, port: int) -> None:
        self._runner = web.AppRunner(self.app, **handler_options())
        await self._runner.setup()
        try:
            await web.TCPSite(self._runner, "127.0.0.1", port).start()
        except BaseException:
            await self._runner.cleanup()
            self._runner = None
            raise
        host, bound = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{bound}"

    async def close(self) -> None:
        """Close the pages' sockets, stop the bot (drain included), then the fake Zoom."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self.zoom.close()

    # Wiring.

    def _install(self) -> None:
        app = self.app
        app.router.add_get("/", self._root)
        app.router.add_get("/console", self._page)
        app.router.add_get("/console/", self._page)
        app.router.add_get("/console/static/{name}", self._asset)
        app.router.add_get("/console/ws", self._socket)
        app.router.add_get("/console/api/state", self._state)
        for name, handler in (
            ("say", self._say),
            ("click", self._click),
            ("select", self._select),
            ("field", self._field),
            ("edit", self._edit),
            ("hook", self._hook),
            ("fault", self._fault),
        ):
            app.router.add_post(f"/console/api/{name}", json_api(handler))
        app.cleanup_ctx.append(self._lifecycle)
        app.on_shutdown.append(self._close_sockets)
        self.zoom.on_request = self._zoom_request

    async def _lifecycle(self, app: web.Application) -> AsyncIterator[None]:
        self._session = aiohttp.ClientSession()
        ticker = asyncio.get_running_loop().create_task(self._watch(), name="console:health")
        try:
            yield
        finally:
            ticker.cancel()
            await asyncio.gather(ticker, return_exceptions=True)
            await self._session.close()
            self._session = None

    async def _close_sockets(self, app: web.Application) -> None:
        for ws in list(self._pages):
            await ws.close(code=aiohttp.WSCloseCode.GOING_AWAY, message=b"console stopping")

    # What the page is told.

    def _next(self) -> int:
        self._seq += 1
        return self._seq

    def _publish(self, event: Mapping[str, Any]) -> None:
        """Queue ``event`` for every open page. Never waits: the fake Zoom calls this while it
        answers the bot, and a slow page must not slow the bot's sending down."""
        for page in self._pages.values():
            page.offer(event)

    def _entry(self, entry: dict[str, Any]) -> None:
        self._log.append(entry)
        self._publish({"type": "log", "entry": entry})

    def _message(self, message: dict[str, Any]) -> None:
        self._timeline[message["id"]] = message
        self._publish({"type": "message", "message": message})

    async def _zoom_request(self, request: Request) -> None:
        """Called by the fake Zoom with each API request, once it has been answered."""
        self._entry(feed.api_entry(self._next(), request))
        if not 200 <= request.status < 300:
            return
        message_id = request.message_id or request.path.rsplit("/", 1)[-1]
        message = self.zoom.messages.get(message_id)
        if message is None:
            return
        if cast.add_channel(self._channels, message.to_jid):
            self._publish({"type": "places", "places": cast.places_json(self._channels)})
        known = self._timeline.get(message_id)
        at = known["at"] if known else time.time()
        self._message(feed.bot_message(message, at))

    async def _watch(self) -> None:
        """Tell the pages when the bot's health changes (a queue building up, Zoom failing)."""
        while True:
            status, details = await self.app[RUNTIME].health()
            health = {"status": status, "details": details}
            if health != self._health:
                self._health = health
                self._publish({"type": "health", "health": health})
            await asyncio.sleep(0.5)

    def snapshot(self) -> dict[str, Any]:
        """Everything a page needs when it opens: people, places, messages, log, hooks."""
        return {
            "type": "snapshot",
            "people": [p.as_json() for p in cast.PEOPLE],
            "places": cast.places_json(self._channels),
            "slash": feed.SLASH,
            "bot_jid": self.settings.zoom.bot_jid,
            "webhook_path": self.settings.server.webhook_path,
            "messages": list(self._timeline.values()),
            "log": list(self._log),
            "hooks": self._hooks(),
            "faults": list(FAULT_STATUSES),
            "health": self._health,
        }

    def _hooks(self) -> list[dict[str, Any]]:
        tokens = {
            name: str(table.get("webhook_token", ""))
            for name, table in self.settings.plugins.tables.items()
        }
        hooks = []
        for plugin, spec in self.app[PLUGINS].routes:
            path = f"/hooks/{plugin}{spec.path}"
            example_key = next(
                (k for k in HOOK_EXAMPLES if k.split("?")[0] == f"{spec.method} {path}"), ""
            )
            example = HOOK_EXAMPLES.get(example_key)
            hooks.append(
                {
                    "plugin": plugin,
                    "method": spec.method,
                    "path": example_key.split(" ", 1)[1] if example_key else path,
                    "secret": tokens.get(plugin, ""),
                    "body": "" if example is None else json.dumps(example, indent=2),
                }
            )
        return hooks

    # HTTP: the page and its assets.

    async def _root(self, request: web.Request) -> web.StreamResponse:
        local_only(request)
        raise web.HTTPFound("/console")

    async def _page(self, request: web.Request) -> web.StreamResponse:
        local_only(request)
        return web.Response(
            text=_asset_text("index.html"),
            content_type="text/html",
            headers=_PAGE_HEADERS,
        )

    async def _asset(self, request: web.Request) -> web.StreamResponse:
        local_only(request)
        name = request.match_info["name"]
        kinds = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
        kind = kinds.get(Path(name).suffix)
        if kind is None or "/" in name or name.startswith("."):
            raise web.HTTPNotFound()
        try:
            text = _asset_text(name)
        except FileNotFoundError:
            raise web.HTTPNotFound() from None
        return web.Response(text=text, content_type=kind, headers={"Cache-Control": "no-cache"})

    async def _state(self, request: web.Request) -> web.StreamResponse:
        local_only(request)
        return web.json_response(self.snapshot())

    async def _socket(self, request: web.Request) -> web.StreamResponse:
        local_only(request)
        same_origin(request)
        ws = web.WebSocketResponse(heartbeat=30)
        await ws.prepare(request)
        page = PageFeed(ws)
        # The snapshot and the registration in one step: no event falls between them.
        page.offer(self.snapshot())
        self._pages[ws] = page
        writer = asyncio.get_running_loop().create_task(page.write(), name="console:page")
        try:
            async for _ in ws:
                pass  # the page acts through the JSON API; nothing to read here
        finally:
            del self._pages[ws]
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)
        return ws

    # HTTP: the page's actions.

    async def _say(self, data: Mapping[str, Any]) -> dict[str, Any]:
        who = cast.person(data.get("user"))
        where = cast.place(data.get("place"), who, self._channels)
        typed = data.get("text")
        if not isinstance(typed, str) or not feed.command_text(typed):
            raise ConsoleError(f"text: type a command after {feed.SLASH}, for example help")
        self._message(
            feed.user_message(
                self._next(),
                conversation=where.jid,
                user=who.as_json(),
                text=typed.strip(),
                at=time.time(),
            )
        )
        where_fields = self._where(who, where.jid, where.channel_name)
        event = bot_notification(feed.command_text(typed), **where_fields)
        return await self._webhook(event)

    async def _click(self, data: Mapping[str, Any]) -> dict[str, Any]:
        who = cast.person(data.get("user"))
        message = self._card(data.get("message_id"))
        value = data.get("value")
        found = [b for b in feed.buttons(message.content) if b.get("value") == value]
        if not found:
            raise ConsoleError(f"value: no button with value {value!r} on {message.message_id}")
        if found[0].get("style") == "Disabled":
            raise ConsoleError("that button is disabled: Zoom sends nothing for it")
        event = button_clicked(
            str(value),
            message_id=message.message_id,
            text=str(found[0].get("text", "")),
            original=dict(message.content),
            **self._where(who, message.to_jid, cast.channel_name(message.to_jid)),
        )
        return await self._webhook(event)

    async def _select(self, data: Mapping[str, Any]) -> dict[str, Any]:
        who = cast.person(data.get("user"))
        message = self._card(data.get("message_id"))
        values = data.get("values")
        if (
            not isinstance(values, list)
            or not values
            or not all(isinstance(v, str) for v in values)
        ):
            raise ConsoleError("values: expected a list of the chosen options' values")
        known = {o.get("value") for o in feed.options(message.content)}
        unknown = [v for v in values if v not in known]
        if unknown and not _has_dynamic_select(message.content):
            raise ConsoleError(f"values: no option {unknown[0]!r} on {message.message_id}")
        event = option_selected(
            values,
            message_id=message.message_id,
            original=dict(message.content),
            **self._where(who, message.to_jid, cast.channel_name(message.to_jid)),
        )
        return await self._webhook(event)

    async def _field(self, data: Mapping[str, Any]) -> dict[str, Any]:
        who = cast.person(data.get("user"))
        message = self._card(data.get("message_id"))
        key, value = data.get("key"), data.get("value")
        if not isinstance(value, str):
            raise ConsoleError("value: expected the field's new text")
        found = [
            f for f in feed.fields(message.content) if f.get("key") == key and f.get("editable")
        ]
        if not found:
            raise ConsoleError(f"key: no editable field {key!r} on {message.message_id}")
        event = field_edited(
            str(key),
            str(found[0].get("value", "")),
            value,
            message_id=message.message_id,
            **self._where(who, message.to_jid, cast.channel_name(message.to_jid)),
        )
        return await self._webhook(event)

    async def _edit(self, data: Mapping[str, Any]) -> dict[str, Any]:
        who = cast.person(data.get("user"))
        message = self._card(data.get("message_id"))
        origin, target = data.get("origin"), data.get("target")
        if not isinstance(target, str):
            raise ConsoleError("target: expected the message's new text")
        texts = [m.get("text") for m in feed.editable_messages(message.content)]
        if origin not in texts:
            raise ConsoleError(f"origin: no editable text {origin!r} on {message.message_id}")
        event = message_edited(
            str(origin),
            target,
            message_id=message.message_id,
            original=dict(message.content),
            **self._where(who, message.to_jid, cast.channel_name(message.to_jid)),
        )
        return await self._webhook(event)

    async def _hook(self, data: Mapping[str, Any]) -> dict[str, Any]:
        method = data.get("method")
        target = data.get("path")
        body = data.get("body", "")
        secret = data.get("secret", "")
        if method not in ("GET", "POST", "PUT", "PATCH", "DELETE"):
            raise ConsoleError("method: expected GET, POST, PUT, PATCH or DELETE")
        if not isinstance(target, str) or not target.startswith("/hooks/"):
            raise ConsoleError("path: expected a plugin hook's path, /hooks/<plugin>...")
        if not isinstance(body, str) or not isinstance(secret, str):
            raise ConsoleError("body, secret: expected text")
        extra = data.get("headers") or {}
        if not (
            isinstance(extra, dict)
            and all(isinstance(k, str) and isinstance(v, str) for k, v in extra.items())
        ):
            raise ConsoleError("headers: expected an object of header names and text values")
        raw = body.encode()
        # Extra headers (a bearer token, a sender's own) go in as given, the signature last.
        headers = {"Content-Type": "application/json"} if raw else {}
        headers.update(extra)
        url = urlsplit(target)
        if secret:
            headers.update(
                sign_request(
                    secret,
                    method,
                    url.path,
                    query=dict(parse_qsl(url.query, keep_blank_values=True)),
                    body=raw,
                    timestamp=int(time.time()),
                    delivery_id=f"console-{secrets.token_hex(8)}",
                )
            )
        status, answer = await self._call(method, target, raw, headers)
        shown: Any = body
        with contextlib.suppress(ValueError):
            shown = json.loads(body) if body else None
        self._entry(
            feed.http_entry(
                self._next(),
                kind="hook",
                at=time.time(),
                method=method,
                path=target,
                status=status,
                request=shown,
                response=answer,
                headers=headers,
            )
        )
        return {"status": status, "response": answer}

    async def _fault(self, data: Mapping[str, Any]) -> dict[str, Any]:
        action = data.get("action")
        if action == "restore":
            self.zoom.restore()
            self._entry(feed.note_entry(self._next(), at=time.time(), title="Zoom restored"))
            return {"ok": True}
        status = data.get("status")
        if status not in FAULT_STATUSES or isinstance(status, bool):
            allowed = ", ".join(map(str, FAULT_STATUSES))
            raise ConsoleError(f"status: expected one of {allowed} (0 drops the connection)")
        if action == "outage":
            self.zoom.outage(int(status))
            title = f"Zoom outage: every API request answered {describe(status)}"
        elif action == "inject":
            count = data.get("count", 1)
            if (
                not isinstance(count, int)
                or isinstance(count, bool)
                or not 1 <= count <= MAX_FAULTS
            ):
                raise ConsoleError(f"count: expected 1 to {MAX_FAULTS}")
            self.zoom.inject(*[fault(int(status))] * count)
            title = f"Next {count} API request(s) answered {describe(status)}"
        else:
            raise ConsoleError("action: expected inject, outage or restore")
        self._entry(feed.note_entry(self._next(), at=time.time(), title=title))
        return {"ok": True}

    # Into the bot, over HTTP.

    def _card(self, message_id: object) -> Any:
        message = self.zoom.messages.get(message_id) if isinstance(message_id, str) else None
        if message is None or message.deleted:
            raise ConsoleError(f"message_id: no message {message_id!r} (deleted?)", status=404)
        return message

    def _where(self, who: cast.Person, to_jid: str, channel_name: str) -> dict[str, Any]:
        return {
            "account_id": ACCOUNT,
            "robot_jid": self.settings.zoom.bot_jid,
            "to_jid": to_jid,
            "channel_name": channel_name,
            "user_id": who.id,
            "user_jid": who.jid,
            "user_name": who.name,
        }

    async def _webhook(self, event: dict[str, Any]) -> dict[str, Any]:
        body, headers = signed(self._secret, event)
        path = self.settings.server.webhook_path
        status, answer = await self._call("POST", path, body, headers)
        self._entry(
            feed.http_entry(
                self._next(),
                kind="webhook",
                at=time.time(),
                method="POST",
                path=path,
                status=status,
                request=event,
                response=answer,
                headers=headers,
            )
        )
        return {"status": status, "response": answer}

    async def _call(
        self, method: str, path: str, body: bytes, headers: Mapping[str, str]
    ) -> tuple[int, Any]:
        if self._session is None:
            raise ConsoleError("the console is stopping", status=503)
        async with self._session.request(
            method, self.url + path, data=body, headers=dict(headers)
        ) as resp:
            text = await resp.text()
            try:
                return resp.status, json.loads(text) if text else None
            except ValueError:
                return resp.status, text


_PAGE_HEADERS = {
    # Everything the page loads is its own: no CDN, no inline script, no framing.
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data: http: https:; "
        "connect-src 'self' ws: wss:; style-src 'self'; frame-ancestors 'none'"
    ),
    "Cache-Control": "no-cache",
}


def _asset_text(name: str) -> str:
    return (
        importlib.resources.files("chatopsbot.console").joinpath(_STATIC, name).read_text("utf-8")
    )


def _has_dynamic_select(content: Mapping[str, Any]) -> bool:
    text = json.dumps(content)
    return '"static_source"' in text
