"""The audit log: who changed what, from where, with what result (issue #17).

Every command, button, confirmation and plugin HTTP hook that changes state is recorded as an
:class:`AuditEntry`. Entries are written by the storage backend (for a chat event, in the same
transaction as the event's replies and its inbox settle, so an entry exists exactly when the
event counts as handled), kept for ``[audit] keep`` and then purged by the leader.

This module holds the pure parts (the entry, the query and its parsing, table formatting) and
:class:`AuditLog`, a thin door onto the backend. Queries return the **newest entries first**:
"what happened lately" is the usual question, and ``limit`` then keeps the most recent ones.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from attrs import field, fields, frozen

from chatopsbot import durations
from chatopsbot.errors import UserError

if TYPE_CHECKING:
    from chatopsbot.storage import Backend

__all__ = [
    "DETAIL_LIMIT",
    "KINDS",
    "AuditEntry",
    "AuditLog",
    "AuditQuery",
    "AuditQueryError",
    "AuditReader",
    "fold_name",
    "format_table",
    "parse_duration",
    "parse_time",
]

#: What may be recorded: a chat command, a card button or select, a confirmation's answer,
#: a plugin's HTTP hook.
KINDS = ("command", "action", "confirm", "hook")
#: The longest ``detail`` kept (characters); longer text is cut and ends with "…".
DETAIL_LIMIT = 1000
#: How many entries a query returns unless told otherwise.
DEFAULT_LIMIT = 100


def _cap(text: str) -> str:
    # A pasted log or a long argument must not make the audit table the biggest in storage.
    if len(text) <= DETAIL_LIMIT:
        return text
    return text[: DETAIL_LIMIT - 1] + "…"


@frozen
class AuditEntry:
    """One recorded act.

    ``at`` is epoch seconds. ``kind`` is one of :data:`KINDS`. For chat acts ``actor_id``,
    ``actor_name`` and ``actor_jid`` name the person and ``conversation`` is the conversation's
    JID; for hooks ``actor_id`` is the remote address and the other actor and conversation
    fields are empty. ``what`` names the act ("deploy unlock", "polls:vote",
    "POST /hooks/deploy"); ``detail`` is the command as typed or a summary (cut to
    :data:`DETAIL_LIMIT` characters). ``result`` is "ok", "denied", "usage", "error",
    "timeout", "stale", "expired" or an HTTP status such as "401"; ``ref`` is the event id or
    another reference to find the act in the logs.
    """

    at: float
    kind: str
    actor_id: str
    actor_name: str
    actor_jid: str
    account_id: str
    conversation: str
    conversation_name: str
    what: str
    detail: str = field(converter=_cap)
    result: str
    ref: str

    def to_dict(self) -> dict[str, Any]:
        """The fields by name, plus ``time`` (``at`` as UTC ISO-8601) for people and ``jq``."""
        data: dict[str, Any] = {"time": iso_time(self.at)}
        for f in fields(AuditEntry):
            data[f.name] = getattr(self, f.name)
        return data

    def to_json(self) -> str:
        """One line of JSON (no newline in it), for JSON-lines export."""
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AuditEntry:
        """The entry :meth:`to_dict` made; raise :class:`ValueError` naming what is wrong."""
        names = [f.name for f in fields(AuditEntry)]
        unknown = set(data) - {*names, "time"}
        if unknown:
            raise ValueError(f"unknown audit field(s): {', '.join(sorted(unknown))}")
        values: dict[str, Any] = {}
        for name in names:
            if name not in data:
                raise ValueError(f"audit entry without {name!r}")
            value = data[name]
            if name == "at":
                if isinstance(value, bool) or not isinstance(value, int | float):
                    raise ValueError("audit field 'at' must be a number")
                values[name] = float(value)
            elif not isinstance(value, str):
                raise ValueError(f"audit field {name!r} must be a string")
            else:
                values[name] = value
        return cls(**values)

    @classmethod
    def from_json(cls, text: str) -> AuditEntry:
        """The entry :meth:`to_json` wrote; raise :class:`ValueError` if it is not one."""
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("an audit entry is a JSON object")
        return cls.from_dict(data)


def fold_name(name: str) -> str:
    """A display name as queries compare it: case-folded, spaces collapsed.

    Backends store this beside the name, so SQLite and PostgreSQL match alike (their own
    ``lower()`` functions disagree beyond ASCII).
    """
    return " ".join(name.casefold().split())


class AuditQueryError(UserError, ValueError):
    """A query option is wrong; the message names the option and what is expected."""


def _check_limit(instance: object, attribute: object, value: object) -> None:
    # A bool is an int to Python, but "--limit true" is a mistake.
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise AuditQueryError(f"--limit: must be a whole number of at least 1, got {value!r}")


@frozen
class AuditQuery:
    """Which entries to return, newest first.

    ``since`` (inclusive) and ``until`` (exclusive) bound ``at``. ``user`` matches an entry's
    ``actor_id`` or ``actor_jid`` exactly, or its ``actor_name`` ignoring case. ``command``
    matches ``what`` exactly, or as a leading word: "deploy" matches "deploy unlock" and
    "polls" matches "polls:vote", but "dep" matches neither. ``limit`` caps how many.
    """

    since: float | None = None
    until: float | None = None
    user: str | None = None
    command: str | None = None
    limit: int = field(default=DEFAULT_LIMIT, validator=_check_limit)

    @classmethod
    def parse(
        cls,
        *,
        now: float,
        since: str | None = None,
        until: str | None = None,
        user: str | None = None,
        command: str | None = None,
        limit: int = DEFAULT_LIMIT,
    ) -> AuditQuery:
        """A query from option text as a person types it (``--since 24h``, ``--user Alice``).

        Raise :class:`AuditQueryError` naming the option at fault.
        """
        start = None if since is None else parse_time(since, now, option="--since")
        end = None if until is None else parse_time(until, now, option="--until")
        if start is not None and end is not None and start >= end:
            raise AuditQueryError("--since: must be earlier than --until")
        who = None if user is None else user.strip()
        if who == "":
            raise AuditQueryError("--user: must not be empty")
        name = None if command is None else " ".join(command.split())
        if name == "":
            raise AuditQueryError("--command: must not be empty")
        return cls(since=start, until=end, user=who, command=name, limit=limit)

    @property
    def prefixes(self) -> tuple[str, ...]:
        """What ``what`` may start with to match :attr:`command` as a leading word."""
        if self.command is None:
            return ()
        return (f"{self.command} ", f"{self.command}:")

    def matches(self, entry: AuditEntry) -> bool:
        """Whether ``entry`` passes the filters (``limit`` aside): the backends' SQL says the
        same, and the contract tests hold them to it."""
        if self.since is not None and entry.at < self.since:
            return False
        if self.until is not None and entry.at >= self.until:
            return False
        if (
            self.user is not None
            and self.user not in (entry.actor_id, entry.actor_jid)
            and fold_name(self.user) != fold_name(entry.actor_name)
        ):
            return False
        if self.command is not None and entry.what != self.command:
            return entry.what.startswith(self.prefixes)
        return True

    def apply(self, entries: Iterable[AuditEntry]) -> list[AuditEntry]:
        """The entries (in the order written) that match, newest first, at most ``limit``:
        what a backend returns for the same entries."""
        # Reversed, then a stable sort: entries of the same second come last-written first.
        chosen = sorted(reversed([e for e in entries if self.matches(e)]), key=lambda e: -e.at)
        return chosen[: self.limit]


_EXPECTED = "a duration such as 30m, 24h or 7d, or an ISO-8601 time such as 2026-11-25T09:00Z"


def parse_duration(text: str) -> float | None:
    """Seconds in ``"90s"``, ``"30m"``, ``"24h"``, ``"7d"``, ``"2w"``; ``None`` if not one."""
    try:
        return durations.parse_duration(text).total_seconds()
    except durations.DurationError:
        return None


def parse_time(text: str, now: float, *, option: str = "--since") -> float:
    """Epoch seconds for ``text``: a duration back from ``now`` (``24h``: a day ago) or an
    ISO-8601 date or time (UTC unless it names an offset).

    Raise :class:`AuditQueryError` naming ``option``.
    """
    value = text.strip()
    seconds = parse_duration(value)
    if seconds is not None:
        return now - seconds
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise AuditQueryError(f"{option}: expected {_EXPECTED}, got {text!r}") from None
    if moment.tzinfo is None:
        # Servers and their logs speak UTC; a time without an offset is read as UTC, not as
        # whatever zone the operator's terminal happens to be in.
        moment = moment.replace(tzinfo=dt.UTC)
    stamp = moment.timestamp()
    if not math.isfinite(stamp):
        raise AuditQueryError(f"{option}: expected {_EXPECTED}, got {text!r}")
    return stamp


def iso_time(at: float) -> str:
    """``at`` as UTC ISO-8601 to the second, e.g. ``2026-11-25T09:00:00Z``."""
    moment = dt.datetime.fromtimestamp(at, dt.UTC).replace(microsecond=0)
    return moment.isoformat().replace("+00:00", "Z")


_HEADINGS = ("time (UTC)", "who", "where", "what", "result", "ref")
#: Columns wider than this are cut, so one long name does not push the table off the screen.
_COLUMN_WIDTH = 40


def _cell(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= _COLUMN_WIDTH else flat[: _COLUMN_WIDTH - 1] + "…"


def _row(entry: AuditEntry) -> tuple[str, ...]:
    who = entry.actor_name or entry.actor_id or entry.actor_jid or "-"
    if entry.actor_name and entry.actor_id:
        who = f"{entry.actor_name} ({entry.actor_id})"
    where = (
        entry.conversation_name or entry.conversation or ("http" if entry.kind == "hook" else "-")
    )
    return (
        iso_time(entry.at),
        _cell(who),
        _cell(where),
        _cell(entry.what or "-"),
        _cell(entry.result or "-"),
        _cell(entry.ref or "-"),
    )


def format_table(entries: Sequence[AuditEntry]) -> list[str]:
    """Aligned text lines: a heading and one line per entry (for the CLI and for chat)."""
    rows = [_HEADINGS, *(_row(e) for e in entries)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(_HEADINGS))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]


class AuditLog:
    """Records and reads audit entries through a storage backend.

    Chat events record theirs with the unit's replies instead (``outbox_add(..., audit=)``),
    so that an event counts as handled exactly when its entry exists; :meth:`record` is for
    acts without an inbox event (plugin HTTP hooks).
    """

    def __init__(self, backend: Backend) -> None:
        self._backend = backend

    async def record(self, entries: Sequence[AuditEntry]) -> None:
        """Write ``entries`` in one transaction."""
        if entries:
            await self._backend.audit_add(entries)

    async def query(self, query: AuditQuery) -> list[AuditEntry]:
        """The entries ``query`` matches, newest first (ties: last written first)."""
        return await self._backend.audit_query(query)

    async def purge(self, before: float) -> int:
        """Delete entries recorded before ``before``; return how many went."""
        return await self._backend.audit_purge(before)


class AuditReader:
    """What plugins get as ``ctx.audit``: the log to read, not to write or purge (what it
    records is the framework's word on who did what)."""

    def __init__(self, log: AuditLog) -> None:
        self._log = log

    async def query(self, query: AuditQuery) -> list[AuditEntry]:
        """The entries ``query`` selects, newest first."""
        return await self._log.query(query)
