"""Who PagerDuty puts on call: its REST API v2 ``GET /oncalls``, read into plain shifts.

A team's ``pagerduty = {schedule = "P123ABC"}`` (or ``{escalation_policy = "P..."}``) makes
PagerDuty that team's rotation. :class:`PagerDuty` asks for the on-call entries of the coming
:data:`LOOKAHEAD` (``since``/``until``, every page: ``limit``, ``offset``, ``more``), keeps
the answer for ``pagerduty_cache`` and remembers the last one it got, so that PagerDuty being
slow, down or rate limiting (429, honouring ``Retry-After``) gives the last known schedule with
a note saying why, never an error. :func:`shifts` (pure) turns entries into shifts.

One ``aiohttp.ClientSession``, opened on the running loop at the first request and closed by
the plugin's ``chatops_cleanup``.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from attrs import Attribute, field, frozen

from chatopsbot import PluginConfigError

log = logging.getLogger("chatopsbot.plugin.oncall")

DEFAULT_URL = "https://api.pagerduty.com"
#: How far ahead the schedule is read: enough for ``oncall schedule`` of a weekly rotation,
#: well inside the three months PagerDuty allows between ``since`` and ``until``.
LOOKAHEAD = timedelta(days=28)
#: The most entries PagerDuty returns per page.
PAGE = 100
#: Pages read at most (10,000 entries): a bound on a runaway ``more``.
MAX_PAGES = 100
#: How long to wait after a 429 that gave no ``Retry-After``.
DEFAULT_RETRY_AFTER = 30.0
#: The media type PagerDuty's REST API v2 answers to.
ACCEPT = "application/vnd.pagerduty+json;version=2"
#: Someone shown for a gap in the schedule: PagerDuty pages nobody then.
NOBODY = "nobody"
_ID = re.compile(r"^[A-Z0-9]{2,20}$")


def _pagerduty_id(_: object, attribute: Attribute[str], value: str) -> None:
    if value and not _ID.match(value):
        raise PluginConfigError(
            attribute.name, "expected a PagerDuty id, like P123ABC (from the schedule's URL)"
        )


@frozen
class Source:
    """``pagerduty = {schedule = "..."}`` or ``{escalation_policy = "..."}`` in a team (one of
    the two: the config reader checks)."""

    schedule: str = field(default="", validator=_pagerduty_id)
    escalation_policy: str = field(default="", validator=_pagerduty_id)

    @property
    def query(self) -> tuple[str, str]:
        """The ``/oncalls`` filter for this source: ``schedule_ids[]`` or
        ``escalation_policy_ids[]``, and the id."""
        if self.schedule:
            return ("schedule_ids[]", self.schedule)
        return ("escalation_policy_ids[]", self.escalation_policy)

    def describe(self, name: str = "") -> str:
        """``schedule P123ABC`` (``schedule "Primary", P123ABC`` with its ``name``) or
        ``escalation policy P123ABC``."""
        named = f'"{name}", ' if name else ""
        if self.schedule:
            return f"schedule {named}{self.schedule}"
        return f"escalation policy {named}{self.escalation_policy}"


@frozen
class Shift:
    """Someone PagerDuty pages from ``start`` to ``end`` (``None``: always, from the start or
    to the end of time: a user named directly in an escalation policy)."""

    name: str
    start: datetime | None
    end: datetime | None


@frozen
class Schedule:
    """PagerDuty's answer for a team: its shifts from ``fetched`` to ``until``."""

    shifts: tuple[Shift, ...]
    fetched: datetime
    until: datetime
    #: The schedule's name in PagerDuty (``GET /schedules/{id}``), when known.
    name: str = ""

    def at(self, moment: datetime) -> tuple[str, datetime, datetime | None] | None:
        """Who is on call at ``moment``, since when and until when; a gap is :data:`NOBODY`
        until the next shift (no end when none is known); ``None`` past what was read (or
        before it)."""
        if moment < self.fetched or moment >= self.until:
            return None
        covering = [s for s in self.shifts if _starts(s) <= moment and _before(moment, s.end)]
        if covering:
            names = ", ".join(sorted({s.name for s in covering}))
            since = max(_starts(s) for s in covering)
            ends = [s.end for s in covering if s.end is not None]
            # A change among several people on call at once is a handoff too.
            first_end = min(ends, default=_END)
            later = [_starts(s) for s in self.shifts if moment < _starts(s) < first_end]
            until = min([*ends, *later], default=None)
            return names, since, until
        # A gap: since the last shift ended (else since now: handoffs then go by name only).
        ended = [s.end for s in self.shifts if s.end is not None and s.end <= moment]
        upcoming = [_starts(s) for s in self.shifts if _starts(s) > moment]
        return NOBODY, max(ended, default=moment), min(upcoming, default=None)

    def to_json(self) -> dict[str, Any]:
        """A form the store keeps (the last known schedule)."""
        return {
            "fetched": self.fetched.timestamp(),
            "until": self.until.timestamp(),
            "shifts": [[s.name, _stamp(s.start), _stamp(s.end)] for s in self.shifts],
            "name": self.name,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Schedule:
        """What :meth:`to_json` stored."""
        return cls(
            tuple(Shift(name, _time(start), _time(end)) for name, start, end in data["shifts"]),
            _time(data["fetched"]) or datetime.now(UTC),
            _time(data["until"]) or datetime.now(UTC),
            data.get("name", ""),
        )


_START = datetime.min.replace(tzinfo=UTC)
_END = datetime.max.replace(tzinfo=UTC)


def _starts(shift: Shift) -> datetime:
    return shift.start or _START


def _before(moment: datetime, end: datetime | None) -> bool:
    return end is None or moment < end


def _stamp(moment: datetime | None) -> float | None:
    return None if moment is None else moment.timestamp()


def _time(stamp: float | None) -> datetime | None:
    return None if stamp is None else datetime.fromtimestamp(stamp, UTC)


def shifts(entries: Iterable[Mapping[str, Any]], source: Source) -> tuple[Shift, ...]:
    """The shifts in ``/oncalls`` entries, first level only for an escalation policy (the
    people paged first), each once (a schedule used by two policies is listed twice), earliest
    first, a person's back-to-back entries joined into one shift."""
    seen: set[tuple[str, datetime | None, datetime | None]] = set()
    found: list[Shift] = []
    for entry in entries:
        if source.escalation_policy and entry.get("escalation_level") != 1:
            continue
        user = entry.get("user") or {}
        name = user.get("summary") or user.get("name") or user.get("id") or "someone"
        shift = Shift(str(name), _parse(entry.get("start")), _parse(entry.get("end")))
        key = (shift.name, shift.start, shift.end)
        if key not in seen:
            seen.add(key)
            found.append(shift)
    found.sort(key=lambda s: (_starts(s), s.name))
    joined: list[Shift] = []
    for shift in found:
        prior = next(
            (p for p in reversed(joined) if p.name == shift.name and p.end == shift.start), None
        )
        if prior is not None and shift.start is not None:
            joined[joined.index(prior)] = Shift(shift.name, prior.start, shift.end)
        else:
            joined.append(shift)
    return tuple(joined)


def _parse(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


class Unavailable(Exception):
    """PagerDuty did not answer usefully; ``str()`` says why, for the user."""


class PagerDuty:
    """PagerDuty's REST API v2 for the on-call plugin: fetch, cache, back off, remember."""

    def __init__(self, *, url: str, token: str, timeout: float, cache: timedelta) -> None:
        self._url = url.rstrip("/")
        self._token = token
        self._timeout = timeout
        self._cache = cache
        self._session: aiohttp.ClientSession | None = None
        self._fresh: dict[str, Schedule] = {}
        self._names: dict[str, str] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._blocked_until: datetime | None = None
        # The last failure per key and when it happened: reused as long as an answer would
        # be, so a command of several lines waits for a silent PagerDuty once, not per line.
        self._failed: dict[str, tuple[datetime, Unavailable]] = {}

    async def schedule(self, key: str, source: Source, now: datetime) -> tuple[Schedule, bool]:
        """The team's schedule from ``now`` on, and whether it was fetched just now (else it
        is the one cached for ``pagerduty_cache``).

        Raises :class:`Unavailable` saying why when PagerDuty cannot answer now.
        """
        cached = self._fresh.get(key)
        if cached is not None and cached.fetched <= now < cached.fetched + self._cache:
            return cached, False
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            # Whoever waited for the lock finds what the holder fetched.
            cached = self._fresh.get(key)
            if cached is not None and cached.fetched <= now < cached.fetched + self._cache:
                return cached, False
            if self._blocked_until is not None and now < self._blocked_until:
                wait = (self._blocked_until - now).total_seconds()
                raise Unavailable(f"rate limited (429), retry in {wait:.0f} s")
            failed = self._failed.get(key)
            if failed is not None and failed[0] <= now < failed[0] + self._cache:
                raise failed[1]
            try:
                entries = await self._oncalls(source, now, now + LOOKAHEAD)
            except Unavailable as exc:
                self._failed[key] = (now, exc)
                raise
            self._failed.pop(key, None)
            fetched = Schedule(
                shifts(entries, source), now, now + LOOKAHEAD, await self._name(source, now)
            )
            self._fresh[key] = fetched
            return fetched, True

    async def _name(self, source: Source, now: datetime) -> str:
        """A schedule's name, asked once per process; "" for a policy or while unknown (a
        failure here is no reason to withhold who is on call)."""
        if not source.schedule:
            return ""
        if source.schedule not in self._names:
            try:
                body = await self._get(f"/schedules/{source.schedule}", [("time_zone", "UTC")], now)
            except Unavailable as exc:
                log.info("PagerDuty: no name for schedule %s yet: %s", source.schedule, exc)
                return ""
            schedule = body.get("schedule")
            name = schedule.get("name") if isinstance(schedule, Mapping) else None
            self._names[source.schedule] = name if isinstance(name, str) else ""
        return self._names[source.schedule]

    async def _oncalls(
        self, source: Source, since: datetime, until: datetime
    ) -> list[Mapping[str, Any]]:
        name, value = source.query
        entries: list[Mapping[str, Any]] = []
        offset = 0
        for _ in range(MAX_PAGES):
            params: Sequence[tuple[str, str]] = [
                (name, value),
                ("since", since.astimezone(UTC).isoformat(timespec="seconds")),
                ("until", until.astimezone(UTC).isoformat(timespec="seconds")),
                ("limit", str(PAGE)),
                ("offset", str(offset)),
                ("time_zone", "UTC"),
            ]
            page = await self._get("/oncalls", params, since)
            items = page.get("oncalls")
            if not isinstance(items, list):
                raise Unavailable("an answer without an oncalls list")
            entries += [item for item in items if isinstance(item, Mapping)]
            if not page.get("more") or not items:
                return entries
            offset += len(items)
        log.warning("PagerDuty: stopped after %d pages of on-call entries", MAX_PAGES)
        return entries

    async def _get(
        self, path: str, params: Sequence[tuple[str, str]], now: datetime
    ) -> Mapping[str, Any]:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        headers = {
            "Authorization": f"Token token={self._token}",
            "Accept": ACCEPT,
        }
        try:
            async with self._session.get(
                self._url + path,
                params=list(params),
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=self._timeout),
            ) as resp:
                if resp.status == 429:
                    wait = _retry_after(resp.headers.get("Retry-After"))
                    self._blocked_until = now + timedelta(seconds=wait)
                    log.warning("PagerDuty: rate limited (429); waiting %g s", wait)
                    raise Unavailable(f"rate limited (429), retry in {wait:g} s")
                if resp.status in (401, 403):
                    log.error(
                        "PagerDuty refused the API key (%d): check [plugins.oncall] "
                        "pagerduty_token (a read-only API key)",
                        resp.status,
                    )
                    raise Unavailable(f"the API key was refused ({resp.status})")
                if resp.status >= 400:
                    detail = await _error(resp)
                    log.warning("PagerDuty: %s answered %d: %s", path, resp.status, detail)
                    raise Unavailable(f"HTTP {resp.status}{detail}")
                data = await resp.json(content_type=None)
        except TimeoutError:
            raise Unavailable(f"no answer within {self._timeout:g} s") from None
        except aiohttp.ClientConnectionError:
            raise Unavailable("connection failed") from None
        except (aiohttp.ClientError, ValueError) as exc:
            raise Unavailable(f"a broken answer ({type(exc).__name__})") from None
        self._blocked_until = None
        if not isinstance(data, Mapping):
            raise Unavailable("an answer that is not a JSON object")
        return data

    async def close(self) -> None:
        """Close the HTTP session, if one was opened."""
        if self._session is not None:
            await self._session.close()
            self._session = None


def _retry_after(value: str | None) -> float:
    try:
        seconds = float(value) if value is not None else DEFAULT_RETRY_AFTER
    except ValueError:
        seconds = DEFAULT_RETRY_AFTER
    return min(max(seconds, 1.0), 3600.0)


async def _error(resp: aiohttp.ClientResponse) -> str:
    """PagerDuty's ``{"error": {"message": ...}}``, as ``": message"`` (or nothing)."""
    try:
        body = await resp.json(content_type=None)
    except (ValueError, aiohttp.ClientError):
        return ""
    error = body.get("error") if isinstance(body, Mapping) else None
    message = error.get("message") if isinstance(error, Mapping) else None
    return f": {message}" if isinstance(message, str) else ""
