"""The one error the console's JSON API answers with."""

from __future__ import annotations

__all__ = ["ConsoleError"]


class ConsoleError(ValueError):
    """A request from the page that cannot be carried out; answered 400 (or ``status``)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status
