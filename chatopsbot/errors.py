"""The framework's exceptions share one base, and what a person got wrong is apart from bugs.

- :class:`UserError`: a mistake the person in front of it can fix, told to them in their
  terms: a usage error in chat (:class:`~chatopsbot.UsageError`), an HTTP hook's 4xx
  (:class:`~chatopsbot.HookError`), a config file's ``file: key: problem``. Never a traceback.
- :class:`ChatopsbotError` otherwise: the framework could not do something it is expected to
  cope with (storage unreachable, Zoom refusing a message); logged once with the cause.
- Any other exception is a bug: logged with its traceback and a reference the user is given.

A plugin catches ``ChatopsbotError`` to handle everything the framework raises on purpose.
"""

from __future__ import annotations

__all__ = ["ChatopsbotError", "UserError"]


class ChatopsbotError(Exception):
    """Base of every exception chatopsbot raises on purpose."""


class UserError(ChatopsbotError):
    """A mistake a person can fix, reported to them as it is (no traceback, no reference)."""
