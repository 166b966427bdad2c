"""The token Alertmanager presents, as its ``http_config`` sends it: bearer or basic auth."""

from __future__ import annotations

import base64
import binascii
import hmac

from chatopsbot import HookError, HookRequest


def presented(request: HookRequest) -> str | None:
    """The token in ``Authorization``: a bearer token, or a basic-auth password (the user
    name is not checked; Alertmanager's ``basic_auth`` needs one); ``None`` without either."""
    scheme, _, value = (request.header("authorization") or "").strip().partition(" ")
    if scheme.lower() == "bearer":
        return value.strip()
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        _, colon, password = decoded.partition(":")
        return password if colon else None
    return None


def check(request: HookRequest, token: str) -> None:
    """:class:`HookError` 401 unless the request presents ``token`` (compared in constant
    time); an empty ``token`` refuses everything."""
    if not token:
        raise HookError(401, "the alerts hook is off: set [plugins.alerts] webhook_token")
    given = presented(request)
    if given is None:
        raise HookError(
            401,
            "missing credentials: expected Authorization: Bearer <token>, "
            "or basic auth with the token as password",
        )
    if not hmac.compare_digest(given.encode("utf-8", "replace"), token.encode()):
        raise HookError(401, "wrong token")
