"""A plugin's ``[plugins.<name>]`` table read into the attrs class the plugin declares.

A plugin describes its settings once, as a frozen attrs class with defaults and validators,
and returns ``load_config(TheClass, config)`` from ``chatops_config``; the framework does the
checking every plugin used to do by hand, with the same ``file: plugins.<name>.key: problem``
errors and did-you-mean for unknown keys::

    @frozen
    class DeploySettings:
        webhook_token: str = ""
        lock_reminder: timedelta = timedelta(hours=4)
        force_unlock: Literal["admins", "anyone"] = "admins"

    @hookimpl
    def chatops_config(config):
        return load_config(DeploySettings, config)

Durations are read as ``"4h"``, ``"1d12h"`` or seconds (:mod:`chatopsbot.durations`), times of
day as ``"17:00"``, time zones by IANA name; nested attrs classes and dicts of them are tables.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Callable, Mapping
from types import UnionType
from typing import Any, Literal, TypeVar, Union, get_args, get_origin
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import attrs
import cattrs
from cattrs.errors import ClassValidationError, ForbiddenExtraKeysError, IterableValidationError

from chatopsbot.durations import DurationError, parse_duration, parse_time_of_day
from chatopsbot.plugins import PluginConfigError, require_known_keys
from chatopsbot.suggest import close_matches

__all__ = ["load_config"]

T = TypeVar("T")
_QUOTED = re.compile(r"'(\w+)'")


def load_config(
    cls: type[T],
    table: Mapping[str, Any],
    *,
    hooks: Mapping[Any, Callable[[Any], Any]] | None = None,
) -> T:
    """``table`` as an instance of the attrs class ``cls``, or :class:`PluginConfigError`
    naming the first key at fault (dotted for nested tables, ``[i]`` for list items).

    ``hooks`` reads the plugin's own types: ``{Rotation: parse_rotation}`` calls
    ``parse_rotation(value)`` for every field typed ``Rotation``; a ``ValueError`` it raises
    is reported at that key. A validator may raise ``PluginConfigError(attribute.name, ...)``
    to put its message at its field.
    """
    _known_keys(cls, table, "")
    converter = _converter()
    if hooks:
        converter = converter.copy()
        for kind, read in hooks.items():
            converter.register_structure_hook(kind, _plugin_hook(read))
    try:
        return converter.structure(dict(table), cls)
    except (ClassValidationError, IterableValidationError) as exc:
        key, problem = _first_problem(exc, "")
        raise PluginConfigError(key or "(table)", problem) from None


def _plugin_hook(read: Callable[[Any], Any]) -> Callable[[Any, type], Any]:
    def structure(value: object, _: type) -> Any:
        return read(value)

    return structure


def _known_keys(cls: type[Any], table: Mapping[str, Any], prefix: str) -> None:
    if not attrs.has(cls) or not isinstance(table, Mapping):
        return
    fields = {f.alias or f.name: f for f in attrs.fields(cls)}
    require_known_keys(table, fields, prefix=prefix)
    for key, value in table.items():
        kind = fields[key].type
        if isinstance(kind, type) and attrs.has(kind):
            _known_keys(kind, value, f"{prefix}.{key}" if prefix else key)


def _first_problem(exc: BaseException, path: str) -> tuple[str, str]:
    """The dotted key and the message of the first failure inside a cattrs error group."""
    if isinstance(exc, ClassValidationError | IterableValidationError):
        inner = exc.exceptions[0]
        notes = getattr(inner, "__notes__", [])
        child = path
        for note in notes:
            if "@ attribute" in note:
                child = _join(path, note.rsplit("@ attribute", 1)[1].strip())
            elif "@ index" in note:
                child = f"{path}[{note.rsplit(' ', 1)[1].strip()}]"
            elif "@ key" in note:
                child = _join(path, note.rsplit(" ", 1)[1].strip().strip("'\""))
        if child == path and isinstance(exc, ClassValidationError) and attrs.has(exc.cl):
            # A validator run by the class itself: attrs' messages start with the name.
            named = _QUOTED.match(str(inner))
            if named and named[1] in {f.name for f in attrs.fields(exc.cl)}:
                child = _join(path, named[1])
        return _first_problem(inner, child)
    if isinstance(exc, PluginConfigError):
        return _join(path, exc.key), exc.message
    if isinstance(exc, ForbiddenExtraKeysError):
        key = sorted(exc.extra_fields)[0]
        known = [f.alias or f.name for f in attrs.fields(exc.cl)] if attrs.has(exc.cl) else []
        close = close_matches(key, known, n=1)
        hint = f"did you mean {close[0]}?" if close else f"known: {', '.join(sorted(known))}"
        return f"{path}.{key}" if path else key, f"unknown key ({hint})"
    if isinstance(exc, KeyError):
        return path, "required"
    if isinstance(exc, DurationError | ValueError | TypeError):
        # attrs' own validators name the attribute in their arguments.
        field = next((a for a in exc.args if isinstance(a, attrs.Attribute)), None)
        if field is not None:
            path = f"{path}.{field.name}" if path else field.name
        return path, str(exc.args[0]) if exc.args else type(exc).__name__
    return path, f"{type(exc).__name__}: {exc}"


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _is_name_or_table(kind: Any) -> bool:
    args = get_args(kind)
    return (
        get_origin(kind) in (Union, UnionType)
        and len(args) == 2
        and str in args
        and any(attrs.has(a) for a in args if isinstance(a, type))
    )


def _name_or_table(value: object, kind: Any) -> object:
    """``"Alice"`` or ``{ name = "Alice", ... }``: a string, or the attrs class's table."""
    table = next(a for a in get_args(kind) if a is not str)
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        _known_keys(table, value, "")
        return _converter().structure(dict(value), table)
    names = ", ".join(f.alias or f.name for f in attrs.fields(table))
    raise TypeError(f"expected a string or a table ({names}), got {type(value).__name__}")


def _duration(value: object, _: type) -> dt.timedelta:
    if isinstance(value, bool):
        raise TypeError("expected a duration such as 30m or 4h, got a boolean")
    if isinstance(value, int | float):
        if value <= 0:
            raise ValueError("must be more than 0 seconds")
        return dt.timedelta(seconds=value)
    if isinstance(value, str):
        return parse_duration(value)
    raise TypeError(f"expected a duration such as 30m or 4h, got {type(value).__name__}")


def _time_of_day(value: object, _: type) -> dt.time:
    if isinstance(value, dt.time):  # TOML has local times: 17:00:00
        return value
    if isinstance(value, str):
        return parse_time_of_day(value)
    raise TypeError(f"expected a time of day such as 17:00, got {type(value).__name__}")


def _zone(value: object, _: type) -> ZoneInfo:
    if not isinstance(value, str):
        raise TypeError(
            f"expected a time zone name such as Europe/Paris, got {type(value).__name__}"
        )
    try:
        return ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r}") from None


def _datetime(value: object, _: type) -> dt.datetime:
    if isinstance(value, dt.datetime):  # TOML has dates with times
        return value
    if isinstance(value, str):
        try:
            return dt.datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"expected an ISO-8601 time, got {value!r}") from None
    raise TypeError(f"expected an ISO-8601 time, got {type(value).__name__}")


def _is_literal(kind: Any) -> bool:
    return get_origin(kind) is Literal


def _literal(value: object, kind: Any) -> object:
    choices = get_args(kind)
    # 1 == True in Python: a TOML true must not pass for a choice of 1, nor 1 for true.
    if not any(value == c and type(value) is type(c) for c in choices):
        spelled = " or ".join(f'"{c}"' if isinstance(c, str) else repr(c) for c in choices)
        raise ValueError(f"expected {spelled}, got {value!r}")
    return value


def _strict(kind: type) -> Any:
    # cattrs would turn 5 into "5" or "yes" into True; a config file means what it says.
    def structure(value: object, _: type) -> object:
        if type(value) is not kind and not (kind is float and type(value) is int):
            raise TypeError(f"expected {_NAMES[kind]}, got {type(value).__name__}")
        return kind(value)  # type: ignore[call-arg]

    return structure


_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}


@functools.cache
def _converter() -> cattrs.Converter:
    # Built once, on first use: a pure value, no import-time work.
    converter = cattrs.Converter(forbid_extra_keys=True, detailed_validation=True)
    converter.register_structure_hook(dt.timedelta, _duration)
    converter.register_structure_hook(dt.time, _time_of_day)
    converter.register_structure_hook(dt.datetime, _datetime)
    converter.register_structure_hook(ZoneInfo, _zone)
    for kind in _NAMES:
        converter.register_structure_hook(kind, _strict(kind))
    converter.register_structure_hook_func(_is_literal, _literal)
    converter.register_structure_hook_func(_is_name_or_table, _name_or_table)
    return converter
