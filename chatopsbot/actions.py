"""Buttons, dropdowns and form elements that come back to the plugin that rendered them.

A plugin declares an action handler by name (:func:`action`) and renders buttons with
``ctx.button(text, action, payload)`` (options with ``ctx.option``, and every element whose
value the user or Zoom chooses with ``ctx.action_id(action, payload)``). The button's value
carries the plugin, the action and a short payload, signed with a key derived from the app's
secret token, so a forged or stale value is recognised on the way back and refused politely
instead of reaching a handler.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeAlias

from attrs import frozen

from chatopsbot.errors import UserError

if TYPE_CHECKING:
    from chatopsbot.context import ActionContext
    from chatopsbot.responses import HandlerResult

__all__ = ["Action", "ActionCodec", "ActionHandler", "ExpiredAction", "InvalidAction", "action"]

ActionHandler: TypeAlias = "Callable[[ActionContext], Awaitable[HandlerResult]]"

_PREFIX = "cob1"
_EXPIRING = "cob2"
#: Zoom does not document a limit for button values; keep payloads to ids, not documents.
MAX_PAYLOAD = 200


@frozen
class Action:
    """A named handler for clicks on the buttons (or picks in the dropdowns) a plugin renders."""

    name: str
    handler: ActionHandler
    plugin: str = ""
    admin_only: bool = False
    #: The command this action does the work of: its access rules (and admin-only default)
    #: apply to the click as they would to the command.
    command: str | None = None


def action(
    name: str, *, admin_only: bool = False, command: str | None = None
) -> Callable[[ActionHandler], Action]:
    """Declare an action handler; return it from the ``chatops_actions`` hook.

    ``command`` names the command the action stands for (``"poll close"`` for a Close button):
    whoever may not run that command here may not click either.
    """
    if not name or ":" in name:
        raise ValueError(f"action name {name!r} must be non-empty and without ':'")
    stands_for = " ".join(command.lower().split()) if command else None

    def decorate(handler: ActionHandler) -> Action:
        return Action(name, handler, admin_only=admin_only, command=stands_for)

    return decorate


class InvalidAction(UserError, ValueError):
    """A button value that was not made by this bot (or not with its current secret)."""


class ExpiredAction(InvalidAction):
    """A button value whose expiry (``ctx.button(..., expires_in=...)``) has passed."""


class ActionCodec:
    """Signs and checks button values: ``cob1:<plugin>:<action>:<payload>:<signature>``, or
    ``cob2:<plugin>:<action>:<expiry>:<payload>:<signature>`` for a value that expires.

    Where a value may be used is bound outside it: the bot remembers the values of each card
    it sent (see :mod:`chatopsbot.outbound.sender`) and refuses a value on any other card.
    """

    def __init__(self, secret: str) -> None:
        # A derived key: the webhook secret itself never signs anything a user can see.
        self._key = hmac.new(secret.encode(), b"chatopsbot button values", hashlib.sha256).digest()

    def _sign(self, plugin: str, name: str, payload: str) -> str:
        digest = hmac.new(self._key, f"{plugin}:{name}:{payload}".encode(), hashlib.sha256)
        return base64.urlsafe_b64encode(digest.digest()[:16]).decode().rstrip("=")

    def encode(
        self, plugin: str, name: str, payload: str = "", *, expires_at: float | None = None
    ) -> str:
        """The value to put on a button; with ``expires_at`` (unix time) it stops working then."""
        if ":" in plugin or ":" in name:
            raise ValueError("plugin and action names cannot contain ':'")
        if len(payload) > MAX_PAYLOAD:
            raise ValueError(f"button payloads are limited to {MAX_PAYLOAD} characters")
        if expires_at is None:
            return f"{_PREFIX}:{plugin}:{name}:{payload}:{self._sign(plugin, name, payload)}"
        expiry = str(int(expires_at))
        # The format is signed too: relabelled cob1, the value must not pass without expiry.
        signature = self._sign(plugin, name, f"{_EXPIRING}|{expiry}:{payload}")
        return f"{_EXPIRING}:{plugin}:{name}:{expiry}:{payload}:{signature}"

    @staticmethod
    def looks_signed(value: str) -> bool:
        """Whether ``value`` has the form of a value this codec makes (not whether it is
        genuine): a dropdown's values are the plugin's, or ones Zoom chose (members)."""
        return value.startswith((f"{_PREFIX}:", f"{_EXPIRING}:"))

    def pseudonym(self, plugin: str, value: str) -> str:
        """A keyed hash of ``value`` for ``plugin``: stable, and not reversible without the key."""
        digest = hmac.new(self._key, f"pseudonym:{plugin}:{value}".encode(), hashlib.sha256)
        return base64.urlsafe_b64encode(digest.digest()[:18]).decode()

    def decode(self, value: str, now: float | None = None) -> tuple[str, str, str]:
        """``(plugin, action, payload)`` from a button value.

        :class:`InvalidAction` if it was forged; :class:`ExpiredAction` if it expired before
        ``now`` (unix time; without it, expiry is not checked).
        """
        head, _, rest = value.partition(":")
        parts = rest.split(":", 2)
        if head not in (_PREFIX, _EXPIRING) or len(parts) != 3 or ":" not in parts[2]:
            raise InvalidAction("not a chatopsbot button value")
        plugin, name, tail = parts
        signed, _, signature = tail.rpartition(":")
        covered = signed if head == _PREFIX else f"{_EXPIRING}|{signed}"
        expected = self._sign(plugin, name, covered).encode()
        if not hmac.compare_digest(signature.encode("utf-8", "replace"), expected):
            raise InvalidAction("signature does not match")
        if head == _PREFIX:
            return plugin, name, signed
        expiry, _, payload = signed.partition(":")
        if not expiry.isdigit():
            raise InvalidAction("malformed expiry")
        if now is not None and now >= int(expiry):
            raise ExpiredAction(f"expired at {int(expiry)}")
        return plugin, name, payload
