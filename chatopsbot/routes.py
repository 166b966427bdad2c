"""HTTP hooks for plugins: routes under ``/hooks/<plugin>/...`` that CI systems and tools call.

A plugin returns :class:`Route` objects from ``chatops_routes``. Handlers get the plugin's
context and a :class:`HookRequest` (never aiohttp's), and answer with a :class:`HookResponse`
or raise :class:`HookError`.

Checking the caller, in constant time: :func:`verify_request` (the signed scheme below, with
replay protection: the one to use), :func:`require_bearer` (a shared token over TLS), and
:func:`require_signature` (a body-only HMAC for senders that can do nothing else; it does not
stop replays).

The signed scheme, version 1. The sender sends::

    X-Chatopsbot-Timestamp: <unix seconds>
    X-Chatopsbot-Signature: v1=<hex HMAC-SHA256 of the base string, keyed with the secret>
    X-Delivery-Id: <a unique id per delivery>     (optional; X-GitHub-Delivery also counts)

and the base string is ``v1:<timestamp>:<delivery id or empty>:<METHOD>:<path>:<query>:``
followed by the raw body bytes. ``path`` is the URL path (``/hooks/<plugin>...``) and ``query``
the query parameters sorted by name, as ``name=value`` joined with ``&`` (empty without any);
both are percent-encoded per RFC 3986 (everything but ``A-Z a-z 0-9 - _ . ~``, and ``/`` in the
path), so no part before the body holds a ``:`` and the base string splits one way only. A
timestamp more than :data:`SIGNATURE_WINDOW` seconds from the bot's clock, either way, is
refused; the delivery id of a POST, PUT, PATCH or DELETE seen within twice that time (a
request is valid for the window on both sides of its timestamp) is a duplicate.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextvars import ContextVar
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal, TypeAlias
from urllib.parse import quote

from attrs import field, frozen

from chatopsbot.errors import UserError
from chatopsbot.jsonbody import BodyError, load_json

if TYPE_CHECKING:
    from chatopsbot.context import PluginContext
    from chatopsbot.responses import Post
    from chatopsbot.store import Store

__all__ = [
    "SIGNATURE_WINDOW",
    "Delivery",
    "HookError",
    "HookRequest",
    "HookResponse",
    "Route",
    "RouteHandler",
    "require_bearer",
    "require_signature",
    "route",
    "sign_request",
    "signature_base",
    "verify_request",
    "verify_signature",
]

Method = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
RouteHandler: TypeAlias = "Callable[[PluginContext, HookRequest], Awaitable[HookResponse]]"

#: Bodies larger than this are refused with 413 unless the route allows more.
DEFAULT_MAX_BODY = 64 * 1024


class HookError(UserError):
    """Answer the request with ``status`` and ``{"error": message}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@frozen
class HookRequest:
    """An HTTP request to a plugin route. Header names are lower-case."""

    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    body: bytes
    remote: str = ""

    def header(self, name: str) -> str | None:
        """A header's value, case-insensitively."""
        return self.headers.get(name.lower())

    def json(self) -> Any:
        """The body parsed as JSON; :class:`HookError` 400 saying what is wrong otherwise."""
        try:
            return load_json(self.body)
        except BodyError as exc:
            raise HookError(400, str(exc)) from None


@frozen
class HookResponse:
    """The answer: ``body`` is sent as JSON (``None`` sends no body).

    ``send`` holds :class:`~chatopsbot.Post` values, written to the outbox as one unit before
    the answer goes out: a 2xx then means they are queued, and they are sent even if Zoom is
    down for a while (the hook does not wait for Zoom, as ``await ctx.send_to`` does). If
    storage cannot take them, the caller gets 503 and should send the request again.
    """

    status: int = 200
    body: Any = None
    headers: Mapping[str, str] = field(factory=dict)
    send: Sequence[Post] = ()


@frozen
class Route:
    """One HTTP route of a plugin, relative to ``/hooks/<plugin>`` (``""`` is that path)."""

    method: Method
    path: str
    handler: RouteHandler
    max_body: int = DEFAULT_MAX_BODY

    def __attrs_post_init__(self) -> None:
        if self.path and not self.path.startswith("/"):
            raise ValueError(f"route path {self.path!r} must be empty or start with /")


def route(
    method: Method, path: str = "", *, max_body: int = DEFAULT_MAX_BODY
) -> Callable[[RouteHandler], Route]:
    """Declare a route; return it from the ``chatops_routes`` hook."""

    def decorate(handler: RouteHandler) -> Route:
        return Route(method, path, handler, max_body)

    return decorate


def require_bearer(request: HookRequest, token: str) -> None:
    """Raise :class:`HookError` 401 unless ``Authorization: Bearer <token>`` matches.

    An empty ``token`` refuses everything: a hook without a configured secret stays shut.
    """
    given = request.header("authorization") or ""
    scheme, _, value = given.partition(" ")
    if (
        not token
        or scheme.lower() != "bearer"
        or not hmac.compare_digest(value.strip().encode("utf-8", "replace"), token.encode())
    ):
        raise HookError(401, "missing or wrong bearer token")


def require_signature(
    request: HookRequest,
    secret: str,
    *,
    header: str = "x-signature-256",
    prefix: str = "sha256=",
) -> None:
    """Raise :class:`HookError` 401 unless the body's HMAC-SHA256 under ``secret`` matches.

    ``header`` holds ``prefix`` + hex digest: GitHub-style ``X-Signature-256: sha256=<hex>``
    by default. An empty ``secret`` refuses everything.

    The signature covers the body only: no time, method, path or query. A captured request
    can be sent again, forever, and a body-less request's signature answers for every path.
    Keep it for senders that can sign nothing else, with a handler that is idempotent; prefer
    :func:`verify_request`.
    """
    given = request.header(header) or ""
    expected = prefix + hmac.new(secret.encode(), request.body, hashlib.sha256).hexdigest()
    if not secret or not hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode()):
        raise HookError(401, f"missing or wrong {header} signature")


#: How far (seconds) a signed request's timestamp may be from the bot's clock, either way.
SIGNATURE_WINDOW = 300

_TIMESTAMP = "x-chatopsbot-timestamp"
_SIGNATURE = "x-chatopsbot-signature"
# X-Delivery-Id first: a sender that sets it means it; GitHub's is there when GitHub relays.
_DELIVERY_HEADERS = ("x-delivery-id", "x-github-delivery")
_DELIVERY_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
_SECONDS = re.compile(r"^[0-9]{1,12}$")
#: Store keys under this prefix (in the plugin's own namespace) hold the delivery ids seen.
DELIVERY_PREFIX = "hook-delivery:"
# Safe methods change nothing, so a repeat of one is answered, not refused as a duplicate.
_SAFE = frozenset({"GET", "HEAD", "OPTIONS"})


def _encode(text: str, safe: str = "") -> str:
    # quote() leaves A-Z a-z 0-9 - _ . ~ as they are: RFC 3986's unreserved characters.
    return quote(text, safe=safe)


def signature_base(
    method: str,
    path: str,
    query: Mapping[str, str],
    body: bytes,
    *,
    timestamp: int,
    delivery_id: str = "",
) -> bytes:
    """The bytes a v1 signature covers (see the module docstring for the exact layout).

    ``v1:<timestamp>:<delivery id>:<METHOD>:<path>:<query>:`` then the body; the path and the
    sorted query are percent-encoded, so a signature for ``?service=api`` answers for no other.
    """
    if delivery_id and not _DELIVERY_ID.match(delivery_id):
        raise ValueError("a delivery id is 1 to 128 of A-Z a-z 0-9 . _ -")
    canonical = "&".join(f"{_encode(k)}={_encode(v)}" for k, v in sorted(query.items()))
    head = f"v1:{int(timestamp)}:{delivery_id}:{method.upper()}:{_encode(path, '/')}:{canonical}:"
    return head.encode("ascii") + body


def _digest(secret: str, base: bytes) -> str:
    return "v1=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def sign_request(
    secret: str,
    method: str,
    path: str,
    *,
    query: Mapping[str, str] | None = None,
    body: bytes = b"",
    timestamp: int,
    delivery_id: str = "",
) -> dict[str, str]:
    """The headers that sign a request under the v1 scheme, for senders written in Python.

    ``path`` is the full URL path (``/hooks/deploy/lock``) and ``query`` its parameters;
    send ``body`` byte for byte as signed. Give each delivery a unique ``delivery_id`` (a
    retry of the same delivery keeps it): the bot then handles it once.
    """
    base = signature_base(
        method, path, query or {}, body, timestamp=timestamp, delivery_id=delivery_id
    )
    headers = {
        "X-Chatopsbot-Timestamp": str(int(timestamp)),
        "X-Chatopsbot-Signature": _digest(secret, base),
    }
    if delivery_id:
        headers["X-Delivery-Id"] = delivery_id
    return headers


def _delivery_id(request: HookRequest) -> str:
    for name in _DELIVERY_HEADERS:
        value = request.header(name)
        if value is not None:
            if not _DELIVERY_ID.match(value):
                raise HookError(400, f"{name}: expected 1 to 128 of A-Z a-z 0-9 . _ -")
            return value
    return ""


def verify_signature(
    request: HookRequest, secret: str, *, now: float, window: float = SIGNATURE_WINDOW
) -> str:
    """Check a v1 signature and its timestamp against ``now``; return the delivery id ("" if none).

    Raises :class:`HookError` 401 saying what is wrong (missing header, timestamp too old or
    too far in the future, wrong signature), or 400 for a malformed delivery id. An empty
    ``secret`` refuses everything. This checks; it remembers nothing: :func:`verify_request`
    also refuses a delivery seen before.
    """
    stamp = request.header(_TIMESTAMP)
    if stamp is None:
        if request.header("x-signature-256") is not None:
            raise HookError(
                401,
                "missing X-Chatopsbot-Timestamp: a body-only X-Signature-256 is not accepted "
                "here; sign with the v1 scheme (X-Chatopsbot-Timestamp, X-Chatopsbot-Signature)",
            )
        raise HookError(401, "missing X-Chatopsbot-Timestamp")
    if not _SECONDS.match(stamp.strip()):
        raise HookError(401, "X-Chatopsbot-Timestamp: expected unix seconds")
    timestamp = int(stamp)
    if now - timestamp > window:
        raise HookError(401, f"timestamp too old (more than {window:g} s before the bot's clock)")
    if timestamp - now > window:
        raise HookError(
            401, f"timestamp too far in the future (more than {window:g} s after the bot's clock)"
        )
    delivery = _delivery_id(request)
    base = signature_base(
        request.method,
        request.path,
        request.query,
        request.body,
        timestamp=timestamp,
        delivery_id=delivery,
    )
    expected = _digest(secret, base).encode()
    # Several comma-separated signatures may come (v1 and a later version, or two secrets
    # during a rotation); one matching v1 is enough. Each is compared in constant time.
    given = [part.strip() for part in (request.header(_SIGNATURE) or "").split(",")[:8]]
    matched = False
    for part in given:
        matched |= hmac.compare_digest(part.encode("utf-8", "replace"), expected)
    if not secret or not matched:
        raise HookError(401, "missing or wrong X-Chatopsbot-Signature")
    return delivery


@frozen
class Delivery:
    """A request :func:`verify_request` let through.

    ``id`` is its delivery id ("" when the sender sent none); ``duplicate`` says that id was
    seen before: answer :attr:`duplicate_response` and change nothing. ``remembered`` says
    this request's id is now stored (a change with a new id), which :meth:`forget` undoes.
    """

    id: str = ""
    duplicate: bool = False
    remembered: bool = False

    @property
    def duplicate_response(self) -> HookResponse:
        """200 ``{"status": "duplicate"}``: a 2xx, so the sender stops retrying."""
        return HookResponse(200, {"status": "duplicate", "delivery": self.id})

    async def forget(self, ctx: PluginContext) -> None:
        """Forget this delivery, so the sender's retry of it is handled: call it when handling
        failed after the request was verified (``verify_request`` remembers ids up front, so
        that two copies arriving together are not both handled)."""
        if self.remembered:
            await ctx.store.delete(DELIVERY_PREFIX + self.id)


#: The delivery ids claimed while one hook request is handled: the app gives them back when
#: the answer is not a 2xx (a failed handler, messages that could not be queued), so the
#: sender's retry is handled instead of being answered "duplicate".
HOOK_CLAIMS: ContextVar[list[tuple[Store, str]] | None] = ContextVar(
    "chatopsbot_hook_claims", default=None
)


async def verify_request(
    ctx: PluginContext,
    request: HookRequest,
    secret: str,
    *,
    window: float = SIGNATURE_WINDOW,
    allow_bearer: bool = False,
) -> Delivery:
    """Authenticate a hook request and refuse its replays; the check built-in plugins use.

    The request must carry a v1 signature (:func:`verify_signature`) whose timestamp is within
    ``window`` seconds of ``ctx.clock``. With ``allow_bearer``, ``Authorization: Bearer
    <secret>`` is accepted instead (it has no timestamp: only TLS keeps it from being replayed).

    A delivery id (``X-Delivery-Id``, or ``X-GitHub-Delivery``) of a POST, PUT, PATCH or DELETE
    is remembered in the plugin's store for twice ``window`` (the longest a signed request
    stays valid): the same id again gives a :class:`Delivery` with ``duplicate`` set.
    Raises :class:`HookError` 401 (or 400 for a malformed delivery id) otherwise. An empty
    ``secret`` refuses everything.
    """
    if allow_bearer and request.header("authorization") is not None:
        require_bearer(request, secret)
        delivery = _delivery_id(request)
    else:
        delivery = verify_signature(request, secret, now=ctx.clock.timestamp(), window=window)
        if not delivery:
            # No id from the sender: the signature itself (it covers the timestamp) is one,
            # so the same signed request cannot be handled twice within its window.
            signature = request.header(_SIGNATURE) or ""
            delivery = "sig-" + hashlib.sha256(signature.encode()).hexdigest()[:32]
    if not delivery or request.method.upper() in _SAFE:
        return Delivery(delivery)
    seen = False

    def claim(current: Any) -> Any:
        nonlocal seen
        seen = current is not None
        return current if seen else {"at": ctx.clock.timestamp(), "path": request.path}

    await ctx.store.update(
        DELIVERY_PREFIX + delivery,
        claim,
        default=None,
        ttl=timedelta(seconds=max(2 * window, 1)),
    )
    claims = HOOK_CLAIMS.get()
    if not seen and claims is not None:
        claims.append((ctx.store, DELIVERY_PREFIX + delivery))
    return Delivery(delivery, duplicate=seen, remembered=not seen)
