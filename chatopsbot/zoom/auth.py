"""The chatbot's client-credentials token: fetched once, shared by every sender, renewed early.

One token serves every account that installed the bot. It is refreshed ``margin`` seconds before
Zoom's ``expires_in`` runs out, and never by two senders at once: whoever finds it stale takes
the lock, and everyone who queued behind re-checks before fetching again.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections.abc import Callable

import aiohttp

from chatopsbot.errors import ChatopsbotError

log = logging.getLogger("chatopsbot.zoom.auth")


class TokenError(ChatopsbotError):
    """Zoom would not give us a token; ``retryable`` says whether trying later may help."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class TokenCache:
    """Hands out a valid bearer token, fetching a new one only when needed."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        oauth_url: str,
        client_id: str,
        client_secret: str,
        timeout: float = 10.0,
        margin: float = 60.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._session = session
        self._url = oauth_url
        # Built by hand: aiohttp.BasicAuth is deprecated from aiohttp 3.14 on.
        credentials = base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()
        self._headers = {"Authorization": f"Basic {credentials}"}
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._margin = margin
        self._monotonic = monotonic
        self._lock = asyncio.Lock()
        self._token: str | None = None
        self._expires_at = 0.0
        #: How many tokens were fetched; the metrics and tests read it.
        self.fetches = 0

    def _valid(self) -> str | None:
        if self._token is not None and self._monotonic() < self._expires_at - self._margin:
            return self._token
        return None

    async def get(self) -> str:
        """A token with more than ``margin`` seconds to live."""
        token = self._valid()
        if token is not None:
            return token
        async with self._lock:
            # Someone ahead of us in the queue may have refreshed it already.
            token = self._valid()
            if token is None:
                token = await self._fetch()
            return token

    def invalidate(self, token: str) -> None:
        """Forget ``token`` after Zoom rejected it, unless a newer one replaced it meanwhile."""
        if self._token == token:
            self._token = None

    def clear(self) -> None:
        """Forget the cached token (an account removed the app): the next call fetches anew."""
        self._token = None

    async def _fetch(self) -> str:
        started = self._monotonic()
        try:
            async with self._session.post(
                self._url,
                params={"grant_type": "client_credentials"},
                headers=self._headers,
                timeout=self._timeout,
            ) as resp:
                text = await resp.text(errors="replace")
                status = resp.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TokenError(
                f"token request failed: {type(exc).__name__}: {exc}", retryable=True
            ) from exc
        if status != 200:
            # Other 4xx here means the credentials are wrong: retrying cannot fix that.
            raise TokenError(
                f"token request answered {status}: {text[:200]}",
                retryable=status >= 500 or status == 429,
            )
        token, expires_in = _parse_token(text)
        self._token = token
        self._expires_at = started + expires_in
        self.fetches += 1
        log.info("fetched a chatbot token valid for %d s", expires_in)
        return token


def _parse_token(text: str) -> tuple[str, float]:
    try:
        data = json.loads(text)
        token = data["access_token"]
        expires_in = data["expires_in"]
    except (ValueError, KeyError, TypeError):
        raise TokenError("token response is not the JSON Zoom documents", retryable=True) from None
    if not isinstance(token, str) or not token or not isinstance(expires_in, int | float):
        raise TokenError("token response lacks access_token or expires_in", retryable=True)
    return token, float(expires_in)
