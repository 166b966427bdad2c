"""Reading another system's webhook JSON: typed lookups that name the field, and the names
GitHub and GitLab use turned into the deploy plugin's (service, environment, version).

Pure: no I/O. A lookup that finds the wrong type raises
:class:`~chatopsbot_deploy.events.EventInvalid` naming the dotted path, so the sender gets
a 400 that says which field of its payload is wrong.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from chatopsbot import PluginConfigError
from chatopsbot_deploy.events import LIMITS, EventInvalid, name_problem

_ARTICLES: dict[type, str] = {str: "a string", dict: "an object", list: "a list"}
_ODD = re.compile(r"[^A-Za-z0-9._/-]+")
_REF_PREFIXES = ("refs/heads/", "refs/tags/")
#: GitLab's own time format: ``2021-04-28 21:50:00 +0200`` (``UTC`` read as ``+0000``).
_GITLAB_TIME = "%Y-%m-%d %H:%M:%S %z"


def field(data: Any, path: str, kind: type = str, *, required: bool = True) -> Any:
    """``data`` at the dotted ``path`` if it is a ``kind``; ``None`` if absent (or null) and
    not ``required``; :class:`EventInvalid` naming ``path`` otherwise."""
    here = data
    for part in path.split("."):
        here = here.get(part) if isinstance(here, Mapping) else None
        if here is None:
            if required:
                raise EventInvalid(f"{path}: required")
            return None
    if not isinstance(here, kind):
        raise EventInvalid(f"{path}: expected {_ARTICLES.get(kind, kind.__name__)}")
    return here


def names(_: object, attribute: Any, value: Mapping[str, str]) -> None:
    """attrs validator of a config mapping to service (``services``) or environment names."""
    kind = "service" if attribute.name == "services" else "environment"
    for key, name in value.items():
        problem = name_problem(kind, name)
        if problem:
            raise PluginConfigError(f"{attribute.name}.{key}", problem.split(": ", 1)[1])


def text(data: Any, *paths: str) -> str | None:
    """The first non-empty string among ``paths`` (each optional), or ``None``."""
    for path in paths:
        value = field(data, path, required=False)
        if value:
            return str(value)
    return None


def slug(name: str, key: str) -> str:
    """``name`` as a deploy name: characters outside letters, digits and ``._/-`` become
    ``-`` (a GitHub environment may be called ``Production (EU)``), cut to ``key``'s cap."""
    cleaned = _ODD.sub("-", name).strip("-./_")[: LIMITS[key]]
    if not cleaned:
        raise EventInvalid(f"{key}: {name!r} has no letter or digit to name it by")
    return cleaned


def version(ref: str | None, sha: str, length: int) -> str:
    """``main@1a2b3c4``: the ref (branch or tag, without ``refs/heads/``) and the short sha;
    the short sha alone when there is no ref or the ref is the sha itself."""
    short = sha[:length]
    if ref:
        for prefix in _REF_PREFIXES:
            ref = ref.removeprefix(prefix)
    if not ref or sha.startswith(ref):
        return slug(short, "version")
    room = LIMITS["version"] - len(short) - 1
    return slug(ref, "version")[:room] + "@" + short


def first_line(message: str | None) -> str | None:
    """A commit message's title; ``None`` for nothing."""
    if not message:
        return None
    title = message.strip().splitlines()[0] if message.strip() else ""
    return title[: LIMITS["message"]] or None


def gitlab_time(value: str | None, path: str) -> float | None:
    """Epoch seconds from GitLab's ``2021-04-28 21:50:00 +0200`` or ``2016-08-12 15:26:29
    UTC`` (or ISO 8601); ``None`` for nothing."""
    if not value:
        return None
    stamp = value.strip()
    if stamp.endswith(" UTC"):
        stamp = stamp.removesuffix(" UTC") + " +0000"
    try:
        return datetime.strptime(stamp, _GITLAB_TIME).timestamp()
    except ValueError:
        pass
    try:
        iso = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        iso = None
    if iso is None or iso.tzinfo is None:
        raise EventInvalid(f"{path}: expected a time like 2021-04-28 21:50:00 +0200")
    return iso.timestamp()
