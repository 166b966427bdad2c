"""Reading JSON request bodies from strangers: every failure is a ``ValueError`` with a reason."""

from __future__ import annotations

import json
from typing import Any

from chatopsbot.errors import ChatopsbotError

__all__ = ["BodyError", "load_json"]


class BodyError(ChatopsbotError, ValueError):
    """A body that is not JSON we can read; ``str()`` says why, fit for a 400 answer."""


def load_json(body: bytes) -> Any:
    """Decode UTF-8 and parse JSON, turning every way that can fail into :class:`BodyError`."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BodyError(f"body is not UTF-8 (byte {exc.start})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise BodyError(
            f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:
        # json raises this, not JSONDecodeError, for absurdly deep nesting.
        raise BodyError("malformed JSON: nested too deeply") from None
    except ValueError as exc:
        # Integers over Python's digit limit land here.
        raise BodyError(f"malformed JSON: {exc}") from None
