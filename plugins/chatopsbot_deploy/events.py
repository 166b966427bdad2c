"""Deploy events from CI: validation into a plain record, and the cards that announce them."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from chatopsbot import Card, Field, Fields, Paragraph, Style

STATUSES = ("started", "succeeded", "failed", "rolled_back")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,99}$")
_OPTIONAL = ("actor", "url", "commit", "message")
_ICONS = {"started": "🚀", "succeeded": "✅", "failed": "❌", "rolled_back": "↩️"}
_COLORS = {
    "started": "#2D8CFF",
    "succeeded": "#1F9D55",
    "failed": "#D64541",
    "rolled_back": "#E67E22",
}


class EventInvalid(ValueError):
    """A CI payload that cannot be recorded; ``str()`` names the field and the problem."""


def validate(data: object, now: datetime) -> dict[str, Any]:
    """Check a CI payload and return the record to store; :class:`EventInvalid` otherwise."""
    if not isinstance(data, dict):
        raise EventInvalid("body: expected a JSON object")
    record: dict[str, Any] = {}
    for key in ("service", "environment", "version"):
        value = data.get(key)
        if value is None:
            raise EventInvalid(f"{key}: required")
        if not isinstance(value, str) or not _NAME.match(value):
            raise EventInvalid(
                f"{key}: expected a name of letters, digits, '.', '_', '/', '-' (at most 100)"
            )
        record[key] = value
    status = data.get("status")
    if status is None:
        raise EventInvalid("status: required")
    if status not in STATUSES:
        raise EventInvalid(f"status: expected one of {', '.join(STATUSES)}")
    record["status"] = status
    for key in _OPTIONAL:
        value = data.get(key)
        if value is not None and (not isinstance(value, str) or len(value) > 2000):
            raise EventInvalid(f"{key}: expected a string of at most 2000 characters")
        record[key] = value
    url = record["url"]
    if url is not None and not url.startswith(("https://", "http://")):
        raise EventInvalid("url: expected an http(s) URL")
    record["timestamp"] = _timestamp(data.get("timestamp"), now)
    unknown = sorted(
        set(data) - {"service", "environment", "version", "status", "timestamp", *_OPTIONAL}
    )
    if unknown:
        raise EventInvalid(f"{unknown[0]}: unknown field")
    return record


def _timestamp(value: object, now: datetime) -> float:
    if value is None:
        return now.timestamp()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            pass
        else:
            if parsed.tzinfo is not None:
                return parsed.timestamp()
    raise EventInvalid("timestamp: expected ISO 8601 with a time zone, or epoch seconds")


def when(timestamp: float) -> str:
    """A timestamp as shown in chat."""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M UTC")


def line(record: Mapping[str, Any]) -> str:
    """One history line: when, version, result, who, link."""
    parts = [
        when(record["timestamp"]),
        record["version"],
        f"{_ICONS[record['status']]} {record['status']}",
    ]
    if record.get("actor"):
        parts.append(f"by {record['actor']}")
    if record.get("url"):
        parts.append(record["url"])
    return " · ".join(parts)


def announcement(record: Mapping[str, Any], lock: Mapping[str, Any] | None) -> Card:
    """The card for one deploy, edited in place as its status changes."""
    status = record["status"]
    body: list[Any] = []
    if lock is not None:
        body.append(
            Paragraph(
                f"⚠ {record['environment']} is locked by {lock['by']['name']}"
                + (f": {lock['reason']}" if lock.get("reason") else ""),
                style=Style(color="#D64541", bold=True),
            )
        )
    fields = [
        Field("Status", f"{_ICONS[status]} {status}", short=True),
        Field("Version", record["version"], short=True),
    ]
    if record.get("actor"):
        fields.append(Field("By", record["actor"], short=True))
    if record.get("commit"):
        fields.append(Field("Commit", record["commit"][:12], short=True))
    fields.append(Field("At", when(record["timestamp"]), short=True))
    body.append(Fields(tuple(fields)))
    if record.get("message"):
        body.append(Paragraph(record["message"]))
    if record.get("url"):
        body.append(Paragraph("Open the pipeline", link=record["url"]))
    return Card(
        head=f"{record['service']} → {record['environment']}",
        head_style=Style(color=_COLORS[status], bold=True),
        body=body,
    )


def status_card(latest: list[Mapping[str, Any]], locks: Mapping[str, Any], title: str) -> Card:
    """A compact table: one line per service and environment."""
    lines = []
    for record in latest:
        key = f"{record['service']}:{record['environment']}"
        locked = " 🔒" if key in locks else ""
        lines.append(
            Paragraph(
                f"{record['service']} {record['environment']}{locked}: {record['version']} "
                f"{_ICONS[record['status']]} {record['status']} ({when(record['timestamp'])})"
            )
        )
    return Card(head=title, body=lines or [Paragraph("No deploys recorded yet.")])
