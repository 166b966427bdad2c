"""A fake of Zoom's OAuth and chatbot message API on loopback, for tests, the demo and benchmarks.

It checks what it receives the way Zoom would (Basic auth on the token endpoint, bearer tokens
that expire, the send/edit/delete bodies), enforces a strict one-second sliding window per
account (answering 429 like Zoom), records every request, and can be told to misbehave: one
answer at a time (:meth:`FakeZoom.inject`), or as an outage until told otherwise
(:meth:`FakeZoom.outage` and :meth:`FakeZoom.restore` for error answers from the API or the token
endpoint, :meth:`FakeZoom.stop_listening` and :meth:`FakeZoom.listen_again` for refused
connections). It counts the requests it is answering at once (:attr:`FakeZoom.peak_in_flight`),
so a test can check that a client backs off to one probe at a time.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web
from attrs import define, field, frozen

#: The path prefix of the API; ``api_base_url`` is the server's URL plus this.
API_PREFIX = "/v2"
OAUTH_PATH = "/oauth/token"


@frozen
class Request:
    """One request the fake received (token requests excluded)."""

    method: str
    path: str
    body: Mapping[str, Any] | None
    params: Mapping[str, str]
    at: float
    status: int
    message_id: str | None = None


@define
class Message:
    """A message as the fake holds it: its latest content and who may see it."""

    message_id: str
    to_jid: str
    account_id: str
    content: Mapping[str, Any]
    visible_to_user: str | None = None
    reply_to: str | None = None
    is_markdown: bool = False
    edits: int = 0
    deleted: bool = False
    #: Earlier contents, oldest first (a client may still show one of them).
    history: list[Mapping[str, Any]] = field(factory=list)
    #: The ``user_jid`` the message was sent on behalf of, if any.
    user_jid: str | None = None

    @property
    def text(self) -> str:
        """Every text in the message's head and body, joined by newlines (for assertions)."""
        return "\n".join(_texts(self.content))


@frozen
class Unfurl:
    """A card Zoom was asked to show under a shared link (``.../unfurls/{trigger_id}``)."""

    user_id: str
    trigger_id: str
    content: Mapping[str, Any]

    @property
    def text(self) -> str:
        """Every text in the card, joined by newlines (for assertions)."""
        return "\n".join(_texts(self.content))


@frozen
class Fault:
    """An answer to give instead of the real one: ``status`` (0 drops the connection)."""

    status: int
    body: Mapping[str, Any] = field(factory=dict)
    headers: Mapping[str, str] = field(factory=dict)
    delay: float = 0.0


#: What an outage answers by default: Zoom's gateway when the service behind it is down.
UNAVAILABLE = {"code": 503, "message": "Service Unavailable"}


@define
class FakeZoom:
    """Serve with ``async with FakeZoom() as zoom:``; point the bot at ``zoom.api_base_url``."""

    client_id: str = "fake-client-id"
    client_secret: str = "fake-client-secret"  # noqa: S105 - a fake's own credential
    robot_jid: str = "bot@xmpp.zoom.us"
    rate_limit: int | None = None
    token_lifetime: int = 3600
    clock: Callable[[], float] = time.monotonic
    requests: list[Request] = field(factory=list)
    messages: dict[str, Message] = field(factory=dict)
    token_requests: int = 0
    rate_limited: int = 0
    _faults: deque[Fault] = field(factory=deque)
    _tokens: dict[str, float] = field(factory=dict)
    _windows: dict[str, deque[float]] = field(factory=dict)
    _ids: itertools.count[int] = field(factory=lambda: itertools.count(1))
    _runner: web.AppRunner | None = None
    url: str = ""
    #: Awaited with each API request once it is recorded, before its answer is written: a test
    #: can act at that exact moment (kill the client while its request is in flight, say).
    on_request: Callable[[Request], Awaitable[None]] | None = None
    #: API and token requests being answered now, and the most at once since
    #: :meth:`reset_peak` (or the start).
    in_flight: int = 0
    peak_in_flight: int = 0
    _api_outage: Fault | None = None
    _token_outage: Fault | None = None
    _address: tuple[str, int] | None = None
    #: ``"admin"`` or ``"user"``: a user-managed app must send ``user_jid`` and cannot use
    #: ``visible_to_user`` (the fake answers 400 otherwise).
    app_type: str = "admin"
    #: Cards shown under shared links, in the order asked.
    unfurls: list[Unfurl] = field(factory=list)
    #: Messages users posted (the bot may reply in their threads).
    _user_messages: set[str] = field(factory=set)
    #: Channels the bot was removed from: sends there are refused as Zoom refuses them.
    _left: set[str] = field(factory=set)

    @property
    def api_base_url(self) -> str:
        """What ``[zoom] api_base_url`` should be."""
        return self.url + API_PREFIX

    @property
    def oauth_url(self) -> str:
        """What ``[zoom] oauth_url`` should be."""
        return self.url + OAUTH_PATH

    def zoom_table(self, secret_token: str) -> dict[str, str]:
        """The ``[zoom]`` table of a bot that talks to this fake and whose webhooks are signed
        with ``secret_token``."""
        return {
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "bot_jid": self.robot_jid,
            "secret_token": secret_token,
            "api_base_url": self.api_base_url,
            "oauth_url": self.oauth_url,
        }

    def app(self) -> web.Application:
        """The aiohttp application (for callers that run it themselves)."""
        app = web.Application()
        app.router.add_post(OAUTH_PATH, self._token)
        app.router.add_post(API_PREFIX + "/im/chat/messages", self._send)
        app.router.add_put(API_PREFIX + "/im/chat/messages/{message_id}", self._edit)
        app.router.add_delete(API_PREFIX + "/im/chat/messages/{message_id}", self._delete)
        app.router.add_post(
            API_PREFIX + "/im/chat/users/{user_id}/unfurls/{trigger_id}", self._unfurl
        )
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Listen on loopback and return the base URL."""
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        sockets = self._runner.addresses
        self._address = (sockets[0][0], sockets[0][1])
        self.url = f"http://{sockets[0][0]}:{sockets[0][1]}"
        return self.url

    async def close(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeZoom:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # What tests and demos read.

    def sent(self) -> list[Message]:
        """Messages posted so far, in the order they arrived."""
        return [
            self.messages[r.message_id]
            for r in self.requests
            if r.method == "POST" and r.message_id is not None
        ]

    def inject(self, *faults: Fault) -> None:
        """Answer the next API requests with these faults, one each, before behaving again."""
        self._faults.extend(faults)

    def expire_tokens(self) -> None:
        """Make every token issued so far invalid, as if Zoom had revoked them."""
        self._tokens.clear()

    # Outages.

    def outage(
        self,
        status: int = 503,
        *,
        api: bool = True,
        token: bool = False,
        delay: float = 0.0,
        body: Mapping[str, Any] | None = None,
    ) -> None:
        """Fail until :meth:`restore`: every API request (``api``) and every token request
        (``token``) is answered ``status`` after ``delay`` seconds.

        Status 0 drops the connection without an answer, as with :class:`Fault`. An API outage
        answers before the token is checked and before the rate limit counts the request (a
        gateway in front of Zoom fails first); the requests are recorded with that status.
        Faults queued with :meth:`inject` wait until the outage ends.
        """
        fault = Fault(status, UNAVAILABLE if body is None else body, delay=delay)
        if api:
            self._api_outage = fault
        if token:
            self._token_outage = fault

    def restore(self) -> None:
        """End an :meth:`outage` of the API and of the token endpoint."""
        self._api_outage = None
        self._token_outage = None

    async def stop_listening(self) -> None:
        """Close the port and every connection to it: clients now get "connection refused".

        Everything the fake holds (messages, requests, tokens) stays; :meth:`listen_again`
        opens the same port again.
        """
        if self._address is None:
            raise RuntimeError("the fake Zoom was never started")
        await self.close()

    async def listen_again(self) -> None:
        """Listen again on the address :meth:`stop_listening` closed."""
        if self._address is None:
            raise RuntimeError("the fake Zoom was never started")
        if self._runner is None:
            await self.start(*self._address)

    def reset_peak(self) -> None:
        """Count :attr:`peak_in_flight` from now on."""
        self.peak_in_flight = self.in_flight

    def _enter(self) -> None:
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)

    # Handlers.

    async def _token(self, request: web.Request) -> web.Response:
        self._enter()
        try:
            return await self._token_answer(request)
        finally:
            self.in_flight -= 1

    async def _token_answer(self, request: web.Request) -> web.Response:
        self.token_requests += 1
        outage = self._token_outage
        if outage is not None:
            if outage.delay:
                await asyncio.sleep(outage.delay)
            if outage.status == 0:
                if request.transport is not None:
                    request.transport.close()
                return web.Response(status=204)
            return web.json_response(dict(outage.body), status=outage.status)
        expected = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        if request.headers.get("Authorization") != f"Basic {expected}":
            return web.json_response(
                {"reason": "Invalid client_id or client_secret", "error": "invalid_client"},
                status=401,
            )
        if request.query.get("grant_type") != "client_credentials":
            return web.json_response({"reason": "unsupported grant_type"}, status=400)
        token = f"token-{next(self._ids)}"
        self._tokens[token] = self.clock() + self.token_lifetime
        return web.json_response(
            {
                "access_token": token,
                "token_type": "bearer",
                "expires_in": self.token_lifetime,
                "scope": "imchat:bot",
            }
        )

    def user_posted(self, message_id: str) -> None:
        """A user posted ``message_id`` (a mention, say): the bot may answer in its thread."""
        self._user_messages.add(message_id)

    def remove_bot(self, channel_jid: str) -> None:
        """The bot was removed from ``channel_jid``: sends there get Zoom's 403 (code 7004)."""
        self._left.add(channel_jid)

    def add_bot(self, channel_jid: str) -> None:
        """The bot was added (back) to ``channel_jid``: sends there are taken again."""
        self._left.discard(channel_jid)

    async def _unfurl(self, request: web.Request) -> web.StreamResponse:
        return await self._api(request, self._do_unfurl)

    def _do_unfurl(self, request: web.Request, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        # Zoom takes the card as a JSON string, not as an object.
        text = body.get("content")
        if not isinstance(text, str):
            return 400, {"code": 7001, "message": "content must be a string of card JSON."}
        try:
            content = json.loads(text)
        except ValueError:
            return 400, {"code": 7001, "message": "content is not JSON."}
        if not isinstance(content, dict) or not (content.get("head") or content.get("body")):
            return 400, {"code": 7001, "message": "content needs a head or a body."}
        info = request.match_info
        self.unfurls.append(Unfurl(info["user_id"], info["trigger_id"], content))
        return 204, {}

    async def _send(self, request: web.Request) -> web.StreamResponse:
        return await self._api(request, self._do_send)

    async def _edit(self, request: web.Request) -> web.StreamResponse:
        return await self._api(request, self._do_edit)

    async def _delete(self, request: web.Request) -> web.StreamResponse:
        return await self._api(request, self._do_delete)

    async def _api(
        self,
        request: web.Request,
        action: Callable[[web.Request, dict[str, Any]], tuple[int, dict[str, Any]]],
    ) -> web.StreamResponse:
        self._enter()
        try:
            response = await self._api_answer(request, action)
            if self.on_request is not None:
                await self.on_request(self.requests[-1])
            return response
        finally:
            self.in_flight -= 1

    async def _api_answer(
        self,
        request: web.Request,
        action: Callable[[web.Request, dict[str, Any]], tuple[int, dict[str, Any]]],
    ) -> web.StreamResponse:
        now = self.clock()
        body: dict[str, Any] = {}
        if request.method != "DELETE":
            try:
                loaded = json.loads(await request.read())
            except ValueError:
                return self._record(
                    request, None, 400, {"code": 7001, "message": "Invalid request body format."}
                )
            if not isinstance(loaded, dict):
                return self._record(
                    request, None, 400, {"code": 7001, "message": "Invalid request body format."}
                )
            body = loaded
        outage = self._api_outage
        if outage is not None:
            return await self._fail(request, body, outage)
        auth = request.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ")
        if not auth.startswith("Bearer ") or self._tokens.get(token, 0) <= now:
            return self._record(
                request, body, 401, {"code": 124, "message": "Invalid access token."}
            )
        if self._faults:
            return await self._fail(request, body, self._faults.popleft())
        account = body.get("account_id") or request.query.get("account_id", "")
        if self.rate_limit is not None:
            window = self._windows.setdefault(account, deque())
            while window and window[0] <= now - 1.0:
                window.popleft()
            if len(window) >= self.rate_limit:
                self.rate_limited += 1
                return self._record(
                    request,
                    body,
                    429,
                    {"code": 429, "message": "You have reached the maximum per-second rate limit."},
                    {"Retry-After": "1", "X-RateLimit-Type": "QPS"},
                )
            window.append(now)
        status, answer = action(request, body)
        return self._record(request, body, status, answer)

    async def _fail(self, request: web.Request, body: dict[str, Any], fault: Fault) -> web.Response:
        if fault.delay:
            await asyncio.sleep(fault.delay)
        if fault.status == 0:
            # The client sees the server disconnect before any answer.
            if request.transport is not None:
                request.transport.close()
            return self._record(request, body, 0, {})
        return self._record(request, body, fault.status, dict(fault.body), dict(fault.headers))

    def _do_send(self, request: web.Request, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        problem = _missing(body, ("robot_jid", "to_jid", "account_id", "content"))
        if problem:
            return 400, {"code": 7001, "message": problem}
        if body["robot_jid"] != self.robot_jid:
            return 400, {"code": 7004, "message": "Invalid robot_jid."}
        if not isinstance(body["content"], dict) or not (
            body["content"].get("head") or body["content"].get("body")
        ):
            return 400, {"code": 7001, "message": "content needs a head or a body."}
        reply_to = body.get("reply_to")
        if reply_to is not None and not (
            reply_to in self.messages or reply_to in self._user_messages
        ):
            return 400, {"code": 7001, "message": "Invalid reply_to."}
        if body["to_jid"] in self._left:
            return 403, {"code": 7004, "message": "Not authorized.", "result": False}
        problem = self._user_managed_problem(body)
        if problem:
            return 400, {"code": 7001, "message": problem}
        message_id = f"msg-{next(self._ids)}"
        self.messages[message_id] = Message(
            message_id,
            body["to_jid"],
            body["account_id"],
            body["content"],
            body.get("visible_to_user"),
            reply_to,
            bool(body.get("is_markdown_support")),
            user_jid=body.get("user_jid"),
        )
        return 201, {
            "message_id": message_id,
            "robot_jid": self.robot_jid,
            "to_jid": body["to_jid"],
            "sent_time": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
        }

    def _user_managed_problem(self, fields: Mapping[str, Any]) -> str:
        if self.app_type != "user":
            return ""
        if not fields.get("user_jid"):
            return "user_jid is required for a user-managed app."
        if fields.get("visible_to_user"):
            return "visible_to_user is for admin-managed apps only."
        return ""

    def _do_edit(self, request: web.Request, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        problem = _missing(body, ("robot_jid", "account_id", "content"))
        problem = problem or self._user_managed_problem(body)
        if problem:
            return 400, {"code": 7001, "message": problem}
        message = self.messages.get(request.match_info["message_id"])
        if message is None or message.deleted:
            return 404, {"code": 8001, "message": "Invalid message_id."}
        message.history.append(message.content)
        message.content = body["content"]
        message.edits += 1
        return 200, {"message_id": message.message_id, "robot_jid": self.robot_jid}

    def _do_delete(self, request: web.Request, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        message = self.messages.get(request.match_info["message_id"])
        if message is None or message.deleted:
            return 404, {"code": 8001, "message": "Invalid message_id."}
        if request.query.get("robot_jid") != self.robot_jid:
            return 400, {"code": 7004, "message": "Invalid robot_jid."}
        problem = self._user_managed_problem(request.query)
        if problem:
            return 400, {"code": 7001, "message": problem}
        message.deleted = True
        # Zoom's reference documents 200 with the same shape as an edit's answer.
        return 200, {"message_id": message.message_id, "robot_jid": self.robot_jid}

    def _record(
        self,
        request: web.Request,
        body: dict[str, Any] | None,
        status: int,
        answer: dict[str, Any],
        headers: Mapping[str, str] | None = None,
    ) -> web.Response:
        message_id = answer.get("message_id") if request.method == "POST" else None
        self.requests.append(
            Request(
                request.method,
                request.path,
                body,
                dict(request.query),
                self.clock(),
                status,
                message_id if isinstance(message_id, str) else None,
            )
        )
        tracking = {"x-zm-trackingid": f"v=2.0;clid=fake;rid=WEB_{len(self.requests)}"}
        if status in (0, 204):
            return web.Response(status=204, headers=tracking)
        return web.json_response(answer, status=status, headers={**tracking, **(headers or {})})


def _missing(body: Mapping[str, Any], keys: tuple[str, ...]) -> str:
    absent = [k for k in keys if not body.get(k)]
    return f"missing {', '.join(absent)}" if absent else ""


def _texts(node: object) -> list[str]:
    if isinstance(node, dict):
        out = [node["text"]] if isinstance(node.get("text"), str) else []
        if isinstance(node.get("key"), str) and isinstance(node.get("value"), str):
            out.append(f"{node['key']}: {node['value']}")
        for key, value in node.items():
            if key not in ("text", "key", "value"):
                out.extend(_texts(value))
        return out
    if isinstance(node, list):
        return [t for item in node for t in _texts(item)]
    return []
