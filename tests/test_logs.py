"""Log lines carry the bot's context fields, in plain or JSON form."""

from __future__ import annotations

import io
import json
import logging
import sys

import pytest

from chatopsbot.logs import JsonFormatter, PlainFormatter, configure_logging


def record(msg: str = "sent %s", *args: object, **extra: object) -> logging.LogRecord:
    rec = logging.LogRecord("chatopsbot.test", logging.INFO, __file__, 1, msg, args, None)
    rec.created = 0.0
    for key, value in extra.items():
        setattr(rec, key, value)
    return rec


def test_plain_line_has_time_level_logger_message_and_context():
    line = PlainFormatter().format(
        record("sent %s", "pong", command="ping", caller="Alice Smith", tracking_id="v=2.0;x")
    )
    assert line == (
        "1970-01-01T00:00:00.000+00:00 INFO chatopsbot.test: sent pong command=ping "
        'caller="Alice Smith" tracking_id="v=2.0;x"'
    )


def test_json_line_is_one_object_with_context_fields():
    data = json.loads(JsonFormatter().format(record("hi", ref="abc123", channel="")))
    assert data == {
        "time": "1970-01-01T00:00:00.000+00:00",
        "level": "INFO",
        "logger": "chatopsbot.test",
        "message": "hi",
        "ref": "abc123",
    }


def test_tracebacks_are_kept():
    try:
        raise ValueError("bad")
    except ValueError:
        rec = logging.LogRecord("x", logging.ERROR, __file__, 1, "oops", (), sys.exc_info())
    assert "ValueError: bad" in json.loads(JsonFormatter().format(rec))["traceback"]
    assert "ValueError: bad" in PlainFormatter().format(rec)


@pytest.mark.parametrize(("fmt", "cls"), [("plain", PlainFormatter), ("json", JsonFormatter)])
def test_configure_logging_installs_the_chosen_format(fmt, cls):
    stream = io.StringIO()
    root = logging.getLogger()
    level = root.level
    handler = configure_logging(fmt, "WARNING", stream)
    try:
        assert isinstance(handler.formatter, cls)
        logging.getLogger("chatopsbot.x").info("hidden")
        logging.getLogger("chatopsbot.x").warning("shown")
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    assert "shown" in stream.getvalue()
    assert "hidden" not in stream.getvalue()
