"""Log formatting: one line per record, plain ``key=value`` or JSON, with the bot's context fields.

Records carry context through ``extra`` (``command``, ``caller``, ``channel``, ``account``,
``tracking_id``, ``ref``, ``plugin``, ``event``); both formats print whichever are present.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

#: The ``extra`` keys the formatters print, in this order.
CONTEXT_FIELDS = (
    "event",
    "command",
    "caller",
    "channel",
    "account",
    "plugin",
    "ref",
    "status",
    "code",
    "tracking_id",
)


def _context(record: logging.LogRecord) -> dict[str, Any]:
    return {
        name: getattr(record, name)
        for name in CONTEXT_FIELDS
        if getattr(record, name, None) not in (None, "")
    }


def _time(record: logging.LogRecord) -> str:
    return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")


class PlainFormatter(logging.Formatter):
    """``2026-11-25T10:00:00.000+00:00 INFO chatopsbot.dispatch: message command=ping ...``"""

    def format(self, record: logging.LogRecord) -> str:
        """One line, then the traceback if there is one."""
        line = f"{_time(record)} {record.levelname} {record.name}: {record.getMessage()}"
        extras = " ".join(f"{k}={_quote(v)}" for k, v in _context(record).items())
        if extras:
            line = f"{line} {extras}"
        if record.exc_info:
            line = f"{line}\n{self.formatException(record.exc_info)}"
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log shippers."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as a JSON object with ``time``, ``level``, ``logger``, ``message``."""
        data: dict[str, Any] = {
            "time": _time(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **_context(record),
        }
        if record.exc_info:
            data["traceback"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)


def _quote(value: object) -> str:
    text = str(value)
    return json.dumps(text) if (not text or any(c in text for c in ' "=\n')) else text


def configure_logging(fmt: str, level: str, stream: TextIO | None = None) -> logging.Handler:
    """Send the ``chatopsbot`` loggers (plugins' included) to ``stream`` in ``fmt``.

    Called by the CLI, never on import. Returns the handler so callers can remove it.
    """
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else PlainFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(level)
    # aiohttp's access log would print every webhook twice over; errors still show.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    return handler
