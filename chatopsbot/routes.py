"""HTTP hooks for plugins: routes under ``/hooks/<plugin>/...`` that CI systems and tools call.

A plugin returns :class:`Route` objects from ``chatops_routes``. Handlers get the plugin's
context and a :class:`HookRequest` (never aiohttp's), and answer with a :class:`HookResponse`
or raise :class:`HookError`. :func:`require_bearer` and :func:`require_signature` check the
caller in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

from attrs import field, frozen

from chatopsbot.jsonbody import BodyError, load_json

if TYPE_CHECKING:
    from chatopsbot.context import PluginContext

__all__ = [
    "HookError",
    "HookRequest",
    "HookResponse",
    "Route",
    "RouteHandler",
    "require_bearer",
    "require_signature",
    "route",
]

Method = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
RouteHandler: TypeAlias = "Callable[[PluginContext, HookRequest], Awaitable[HookResponse]]"

#: Bodies larger than this are refused with 413 unless the route allows more.
DEFAULT_MAX_BODY = 64 * 1024


class HookError(Exception):
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
    """The answer: ``body`` is sent as JSON (``None`` sends no body)."""

    status: int = 200
    body: Any = None
    headers: Mapping[str, str] = field(factory=dict)


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
    """
    given = request.header(header) or ""
    expected = prefix + hmac.new(secret.encode(), request.body, hashlib.sha256).hexdigest()
    if not secret or not hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode()):
        raise HookError(401, f"missing or wrong {header} signature")
