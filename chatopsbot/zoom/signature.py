"""Zoom's webhook signature (``x-zm-signature``) and the endpoint URL-validation answer.

Zoom signs ``v0:{x-zm-request-timestamp}:{raw body}`` with HMAC-SHA256 keyed by the app's secret
token. The raw bytes are what count: re-serialised JSON would not match.
"""

from __future__ import annotations

import hashlib
import hmac

from chatopsbot.errors import ChatopsbotError

#: How far a request's timestamp may be from our clock, either way, before it counts as a replay.
MAX_SKEW_SECONDS = 300


class SignatureError(ChatopsbotError):
    """A webhook whose signature or timestamp does not check out; the message says which."""


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """Return the ``x-zm-signature`` value Zoom would send for this timestamp and body."""
    message = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def verify(
    secret: str, timestamp: str | None, signature: str | None, body: bytes, now: float
) -> None:
    """Raise :class:`SignatureError` unless the request is fresh and signed with ``secret``."""
    if not secret:
        # Fail closed: an empty key would make every forged signature computable.
        raise SignatureError("no secret token configured")
    if not timestamp:
        raise SignatureError("missing x-zm-request-timestamp header")
    if not signature:
        raise SignatureError("missing x-zm-signature header")
    # Seconds since the epoch in ASCII digits; anything longer cannot be within five minutes.
    if not (timestamp.isascii() and timestamp.isdecimal() and len(timestamp) <= 12):
        raise SignatureError(f"x-zm-request-timestamp is not a number: {timestamp[:40]!r}")
    sent_at = int(timestamp)
    if abs(now - sent_at) > MAX_SKEW_SECONDS:
        raise SignatureError(f"timestamp {sent_at} is {int(now - sent_at)} s away from now")
    expected = sign(secret, timestamp, body).encode()
    # Headers can carry any bytes; "replace" keeps an odd one a mismatch, not a crash.
    if not hmac.compare_digest(expected, signature.encode("utf-8", "replace")):
        raise SignatureError("signature does not match")


def url_validation_answer(secret: str, plain_token: str) -> dict[str, str]:
    """The body Zoom expects back for an ``endpoint.url_validation`` event."""
    encrypted = hmac.new(secret.encode(), plain_token.encode(), hashlib.sha256).hexdigest()
    return {"plainToken": plain_token, "encryptedToken": encrypted}
