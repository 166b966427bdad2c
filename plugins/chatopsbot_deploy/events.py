"""Deploy events from CI: validation into a plain record, their order, and the cards.

Every string that reaches a card has a cap (:data:`LIMITS`): a payload over one is refused
naming the field and the limit, a command argument over one gets a private usage reply.

Order. A deploy is one service, environment and version; its events only move it forward:
``started`` < ``succeeded`` = ``failed`` < ``rolled_back``, and between ``succeeded`` and
``failed`` the later ``timestamp`` (the payload's, else the time it arrived) wins. An event
that repeats the deploy's current status or is behind it (a ``started`` after ``succeeded``,
a replay) changes nothing: not the status, not the card, not the history. One exception: a
``started`` newer than the environment's latest deploy, which was of another version, begins a
new deploy of this version (a rollback by redeploying it), with a card of its own.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from chatopsbot import Card, Field, Fields, Paragraph, Style

STATUSES = ("started", "succeeded", "failed", "rolled_back")
#: How far each status takes a deploy: an event never moves it back (see the module docstring).
RANKS = {"started": 0, "succeeded": 1, "failed": 1, "rolled_back": 2}
#: The most characters each field may have, from CI or from a command.
LIMITS = {
    "service": 64,
    "environment": 64,
    "version": 100,
    "actor": 100,
    "url": 1000,
    "commit": 64,
    "message": 1000,
    "reason": 200,
}
_NAME_CHARS = "letters, digits, '.', '_', '/', '-'"
_OPTIONAL = ("actor", "url", "commit", "message")
# One-line fields: a newline or a control character there would break the card's layout.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
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
        problem = name_problem(key, value)
        if problem:
            raise EventInvalid(problem)
        record[key] = value
    status = data.get("status")
    if status is None:
        raise EventInvalid("status: required")
    if status not in STATUSES:
        raise EventInvalid(f"status: expected one of {', '.join(STATUSES)}")
    record["status"] = status
    for key in _OPTIONAL:
        value = data.get(key)
        if value is not None and (not isinstance(value, str) or len(value) > LIMITS[key]):
            raise EventInvalid(f"{key}: expected a string of at most {LIMITS[key]} characters")
        if key != "message" and value is not None and _CONTROL.search(value):
            raise EventInvalid(f"{key}: expected one line without control characters")
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


def name_problem(key: str, value: object) -> str | None:
    """Why ``value`` is not a valid ``key`` (service, environment, version), or ``None``."""
    limit = LIMITS[key]
    # A version may say which ref it was built from: main@1a2b3c4 (GitHub, GitLab).
    extra = "@" if key == "version" else ""
    if (
        isinstance(value, str)
        and 0 < len(value) <= limit
        and value[0].isascii()
        and value[0].isalnum()
        and all(c.isascii() and (c.isalnum() or c in "._/-" + extra) for c in value)
    ):
        return None
    chars = _NAME_CHARS + (", '@'" if extra else "")
    return f"{key}: expected a name of {chars} (at most {limit})"


def supersedes(new: Mapping[str, Any], current: Mapping[str, Any]) -> bool:
    """Whether event ``new`` moves a deploy whose latest accepted event is ``current``.

    Only forward: a higher rank, or the same rank with another status and a later timestamp.
    """
    if new["status"] == current["status"]:
        return False
    ahead = (RANKS[new["status"]], new["timestamp"])
    return ahead > (RANKS[current["status"]], current["timestamp"])


def advance(
    record: Mapping[str, Any],
    deploy: Mapping[str, Any] | None,
    latest: Mapping[str, Any] | None,
) -> dict[str, Any] | None:
    """The deploy's new state (``status``, ``timestamp``, ``run``) once event ``record`` is
    applied to it (``None``: never seen), or ``None`` if the event does not move it.

    ``latest`` is the environment's latest deploy: a ``started`` newer than it, when it was of
    another version, begins a new run of this version if this one had finished.
    """
    moved = {"status": record["status"], "timestamp": record["timestamp"]}
    if deploy is None:
        return {**moved, "run": 0}
    run = deploy.get("run", 0)
    again = (
        record["status"] == "started"
        and latest is not None
        and latest["version"] != record["version"]
        and record["timestamp"] > latest["timestamp"]
    )
    finished = RANKS[deploy["status"]] > 0
    if again and finished and record["timestamp"] > deploy["timestamp"]:
        return {**moved, "run": run + 1}
    if not supersedes(record, deploy):
        return None
    return {**moved, "run": run}


def newer(record: Mapping[str, Any], latest: Mapping[str, Any] | None) -> bool:
    """Whether ``record`` (an event that moved its deploy) becomes the environment's latest.

    The same deploy moved forward always does, even with an older timestamp; another
    version's deploy only when it is newer.
    """
    return (
        latest is None
        or latest["version"] == record["version"]
        or latest["timestamp"] <= record["timestamp"]
    )


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters: for values stored before the caps existed."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


#: How far ahead of the bot's clock a CI event's time may be (clocks drift a little; an event
#: from the far future would pin "latest" for ever).
MAX_AHEAD = timedelta(hours=1)
#: Nothing deployed before this: older times are mistakes (milliseconds read as seconds...).
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)


def _timestamp(value: object, now: datetime) -> float:
    if value is None:
        return now.timestamp()
    stamp: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        stamp = float(value)
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            pass
        else:
            if parsed.tzinfo is not None:
                stamp = parsed.timestamp()
    if stamp is None or not math.isfinite(stamp):
        raise EventInvalid("timestamp: expected ISO 8601 with a time zone, or epoch seconds")
    if not EARLIEST.timestamp() <= stamp <= (now + MAX_AHEAD).timestamp():
        raise EventInvalid(
            f"timestamp: must be between {EARLIEST:%Y-%m-%d} and an hour from now (UTC)"
        )
    return stamp


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
                + (f": {clip(lock['reason'], LIMITS['reason'])}" if lock.get("reason") else ""),
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
