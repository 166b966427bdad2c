"""Alertmanager label matchers as people type them: ``alertname=Foo,severity=~crit.*``.

The four operators of Alertmanager's matchers (``=``, ``!=``, ``=~``, ``!~``); a value may be
double-quoted to hold a comma or spaces (``job="a, b"``). Regular expressions are anchored by
Alertmanager, as here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from attrs import frozen

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_ONE = re.compile(
    rf'\s*(?P<name>{_NAME})\s*(?P<op>=~|!~|!=|=)\s*(?P<value>"(?:[^"\\]|\\.)*"|[^,]*?)\s*(?:,|$)'
)
#: The most matchers one silence may have (a typo'd paste should not reach Alertmanager).
MAX_MATCHERS = 20


class MatcherError(ValueError):
    """Text that is not a list of matchers; ``str()`` says what is wrong, fit for the user."""


@frozen
class Matcher:
    """One label matcher, as Alertmanager's API v2 spells it (``isRegex``, ``isEqual``)."""

    name: str
    value: str
    is_regex: bool = False
    is_equal: bool = True

    @property
    def operator(self) -> str:
        """``=``, ``!=``, ``=~`` or ``!~``."""
        if self.is_regex:
            return "=~" if self.is_equal else "!~"
        return "=" if self.is_equal else "!="

    def __str__(self) -> str:
        plain = self.value and not re.search(r'[\s,"{}\\]', self.value)
        value = self.value if plain else '"' + self.value.replace('"', '\\"') + '"'
        return f"{self.name}{self.operator}{value}"

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether an alert with ``labels`` matches (a missing label reads as empty)."""
        value = labels.get(self.name, "")
        found = (
            re.fullmatch(self.value, value) is not None if self.is_regex else value == self.value
        )
        return found == self.is_equal

    def to_api(self) -> dict[str, Any]:
        """The matcher in Alertmanager's API v2 JSON."""
        return {
            "name": self.name,
            "value": self.value,
            "isRegex": self.is_regex,
            "isEqual": self.is_equal,
        }

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> Matcher:
        """A matcher from Alertmanager's API v2 JSON (``isEqual`` defaults to true there)."""
        return cls(
            str(data.get("name", "")),
            str(data.get("value", "")),
            bool(data.get("isRegex", False)),
            bool(data.get("isEqual", True)),
        )


def parse_matchers(text: str) -> tuple[Matcher, ...]:
    """``name=value,name=~regex,...`` (braces around it allowed) as matchers.

    :class:`MatcherError` for anything else, or for matchers every alert would match:
    Alertmanager refuses a silence unless one of its matchers needs a non-empty label.
    """
    body = text.strip()
    if body.startswith("{") and body.endswith("}"):
        body = body[1:-1]
    matchers: list[Matcher] = []
    at = 0
    while at < len(body):
        found = _ONE.match(body, at)
        if found is None or found.end() == at:
            rest = body[at:].strip()
            raise MatcherError(
                f"cannot read matcher {rest.split(',')[0]!r}: expected name=value, name!=value, "
                "name=~regex or name!~regex, separated by commas"
            )
        value = found["value"]
        if value.startswith('"'):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        op = found["op"]
        matcher = Matcher(found["name"], value, is_regex="~" in op, is_equal=op[0] == "=")
        if matcher.is_regex:
            try:
                re.compile(value)
            except re.error as exc:
                raise MatcherError(f"{matcher.name}: not a regular expression: {exc}") from None
        matchers.append(matcher)
        at = found.end()
    if not matchers:
        raise MatcherError("expected at least one matcher, like alertname=HighLatency")
    if len(matchers) > MAX_MATCHERS:
        raise MatcherError(f"at most {MAX_MATCHERS} matchers")
    if all(m.matches({}) for m in matchers):
        raise MatcherError(
            "these matchers match every alert: at least one must need a non-empty label, "
            "like alertname=HighLatency"
        )
    return tuple(matchers)


def equality(labels: Mapping[str, str]) -> tuple[Matcher, ...]:
    """One ``name=value`` matcher per label, in name order: what silences a whole group."""
    return tuple(Matcher(name, value) for name, value in sorted(labels.items()))
