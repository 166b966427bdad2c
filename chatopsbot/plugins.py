"""Find, load and configure plugins: the entry-point group ``chatopsbot``, built-ins included."""

from __future__ import annotations

import functools
import importlib.metadata
import logging
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any, TypeVar, cast

import attrs
import pluggy
from attrs import frozen

from chatopsbot import hookspecs
from chatopsbot.access import AccessSettings, unmatched_rules
from chatopsbot.actions import Action
from chatopsbot.commands import Command, CommandTree
from chatopsbot.config import ConfigError, PluginSettings, Problems, Settings
from chatopsbot.errors import ChatopsbotError, UserError
from chatopsbot.routes import Route
from chatopsbot.scheduler import Job, TimerHandler
from chatopsbot.suggest import close_matches

log = logging.getLogger("chatopsbot.plugins")

ENTRY_POINT_GROUP = "chatopsbot"

T = TypeVar("T")


class PluginError(ChatopsbotError):
    """A plugin that cannot be loaded or that broke while starting; the message names it."""


class PluginConfigError(UserError):
    """Raised by a plugin's ``chatops_config`` hook: ``key`` (inside its table) is wrong.

    Use a dotted path for nested keys (``teams.platform.timezone``).
    """

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key
        self.message = message


def require_known_keys(table: Mapping[str, Any], known: Iterable[str], *, prefix: str = "") -> None:
    """Raise :class:`PluginConfigError` for the first key of ``table`` not in ``known``.

    ``prefix`` is the dotted path of ``table`` inside the plugin's own table (``teams.platform``).
    """
    allowed = sorted(known)
    for key in sorted(table):
        if key not in allowed:
            close = close_matches(key, allowed, n=1)
            hint = f"did you mean {close[0]}?" if close else f"known: {', '.join(allowed)}"
            raise PluginConfigError(f"{prefix}.{key}" if prefix else key, f"unknown key ({hint})")


@frozen
class PluginInfo:
    """One installed plugin, as ``chatopsbot plugins`` lists it."""

    name: str
    source: str
    version: str
    enabled: bool
    commands: tuple[str, ...] = ()


@frozen
class Plugins:
    """The loaded plugins: their manager, their commands and each one's validated config."""

    manager: pluggy.PluginManager
    commands: CommandTree
    actions: Mapping[tuple[str, str], Action]
    routes: tuple[tuple[str, Route], ...]
    jobs: tuple[Job, ...]
    timers: Mapping[tuple[str, str], TimerHandler]
    configs: Mapping[str, Any]
    info: tuple[PluginInfo, ...]


def load_plugins(
    settings: PluginSettings,
    *,
    source: str = "config.toml",
    extra: Mapping[str, object] | None = None,
    entry_points: bool = True,
) -> Plugins:
    """Load every enabled plugin, hand each its table, and build the command tree.

    ``extra`` registers plugin objects by name beside the installed ones (the test kit uses it);
    one named like an installed plugin replaces it, whose code is then not imported: a plugin
    under test is usually installed too (``pip install -e .``), and the test means the object it
    passes. Raise :class:`PluginError`, or :class:`chatopsbot.config.ConfigError` naming every
    config problem found (:class:`~chatopsbot.config.ConfigErrors` when there are several).
    """
    manager = pluggy.PluginManager(hookspecs.PROJECT)
    manager.add_hookspecs(hookspecs)
    disabled = set(settings.disabled)
    info: dict[str, PluginInfo] = {}
    candidates: list[tuple[str, str, str, Callable[[], object]]] = []
    given = extra or {}
    if entry_points:
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            if ep.name in given:
                log.debug(
                    "plugin %s: the given object replaces the installed %s", ep.name, ep.value
                )
                continue
            dist = ep.dist
            version = f"{dist.name} {dist.version}" if dist is not None else "-"
            candidates.append((ep.name, ep.value, version, ep.load))
    for name, plugin in given.items():
        where = getattr(plugin, "__name__", type(plugin).__name__)
        candidates.append((name, where, "-", functools.partial(_identity, plugin)))

    for name, where, version, load in candidates:
        if ":" in name or name == "chatopsbot":
            # Storage namespaces are plugin names; the runtime's own contain ":".
            raise PluginError(f"plugin {name!r} ({where}): the name is reserved or contains ':'")
        if name in info:
            raise PluginError(f"two plugins are named {name!r} ({info[name].source} and {where})")
        enabled = name not in disabled
        info[name] = PluginInfo(name, where, version, enabled)
        if not enabled:
            # Blocked before import: a disabled plugin's code never runs.
            manager.set_blocked(name)
            continue
        try:
            obj = load()
            # A class is instantiated once per app, so a plugin may keep state on self.
            manager.register(obj() if isinstance(obj, type) else obj, name=name)
        except Exception as exc:
            raise PluginError(f"plugin {name!r} ({where}) failed to load: {exc!r}") from exc

    for name, entry in info.items():
        if entry.enabled:
            for spec in _call(manager, name, "chatops_hookspecs") or ():
                for module in spec:
                    manager.add_hookspecs(module)
    try:
        # A hook name with a typo would otherwise be ignored without a word.
        manager.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginError(f"plugin {manager.get_name(exc.plugin)!r}: {exc}") from exc

    problems = Problems()
    unknown = disabled - info.keys()
    if unknown:
        problems.add(
            ConfigError(
                source,
                "plugins.disabled",
                f"no installed plugin named {', '.join(sorted(unknown))} "
                f"(installed: {', '.join(sorted(info)) or 'none'})",
            )
        )
    configs = _configure(manager, settings, info, source, problems)
    problems.raise_if_any()
    tree = CommandTree()
    actions: dict[tuple[str, str], Action] = {}
    routes: list[tuple[str, Route]] = []
    jobs: list[Job] = []
    timers: dict[tuple[str, str], TimerHandler] = {}
    for name in info:
        if not info[name].enabled:
            continue
        names = []
        for cmd in _collect(manager, name, "chatops_commands", Command):
            try:
                tree.add(attrs.evolve(cmd, plugin=name))
            except ValueError as exc:
                raise PluginError(str(exc)) from exc
            names.append(cmd.name)
        for act in _collect(manager, name, "chatops_actions", Action):
            if (name, act.name) in actions:
                raise PluginError(f"plugin {name!r} declares action {act.name!r} twice")
            actions[(name, act.name)] = attrs.evolve(act, plugin=name)
        routes.extend((name, r) for r in _collect(manager, name, "chatops_routes", Route))
        scheduled = _collect(manager, name, "chatops_jobs", (Job, TimerHandler))
        for work in cast("list[Job | TimerHandler]", scheduled):
            if isinstance(work, Job):
                jobs.append(attrs.evolve(work, plugin=name))
            else:
                timers[(name, work.name)] = attrs.evolve(work, plugin=name)
        info[name] = attrs.evolve(info[name], commands=tuple(names))
    for (plugin, act_name), act in actions.items():
        # A click checked against a command that is not there would pass unchecked.
        if act.command is not None and tree.find(act.command) is None:
            raise PluginError(
                f"plugin {plugin!r}: action {act_name!r} stands for command {act.command!r}, "
                "which no loaded plugin declares"
            )
    for entry in info.values():
        log.info(
            "plugin %s %s (%d commands)",
            entry.name,
            "loaded" if entry.enabled else "disabled",
            len(entry.commands),
            extra={"plugin": entry.name},
        )
    return Plugins(
        manager=manager,
        commands=tree,
        actions=MappingProxyType(actions),
        routes=tuple(routes),
        jobs=tuple(jobs),
        timers=MappingProxyType(timers),
        configs=configs,
        info=tuple(info.values()),
    )


def _identity(plugin: object) -> object:
    return plugin


def _configure(
    manager: pluggy.PluginManager,
    settings: PluginSettings,
    info: Mapping[str, PluginInfo],
    source: str,
    problems: Problems,
) -> dict[str, Any]:
    """Each enabled plugin's validated config; a problem in one table does not hide another's."""
    for name in settings.tables:
        if name not in info:
            close = close_matches(name, sorted(info), n=1)
            hint = f"did you mean {close[0]}? " if close else ""
            problems.add(
                ConfigError(
                    source,
                    f"plugins.{name}",
                    f"no installed plugin named {name!r} "
                    f"({hint}installed: {', '.join(sorted(info)) or 'none'})",
                )
            )
    takes_config = {impl.plugin_name for impl in manager.hook.chatops_config.get_hookimpls()}
    configs: dict[str, Any] = {}
    for name, entry in info.items():
        table = settings.tables.get(name)
        if not entry.enabled:
            continue
        if name not in takes_config:
            if table is not None:
                problems.add(
                    ConfigError(source, f"plugins.{name}", "this plugin takes no configuration")
                )
            configs[name] = None
            continue
        try:
            configs[name] = _call(manager, name, "chatops_config", config=table or {})
        except PluginConfigError as exc:
            problems.add(ConfigError(source, f"plugins.{name}.{exc.key}", exc.message))
    return configs


def _collect(
    manager: pluggy.PluginManager, name: str, hook: str, kind: type[T] | tuple[type[T], ...]
) -> list[T]:
    """Everything one plugin's ``hook`` returned, each checked to be a ``kind``."""
    # One result per implementation; a plugin object has at most one.
    items = [item for result in _call(manager, name, hook) for item in result or ()]
    for item in items:
        if not isinstance(item, kind):
            kinds = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
            raise PluginError(
                f"plugin {name!r}: {hook} returned a {type(item).__name__}, not a {kinds}"
            )
    return items


def _call(manager: pluggy.PluginManager, name: str, hook: str, **kwargs: Any) -> Any:
    """Call one plugin's implementation of ``hook``; any failure names the plugin."""
    others = [p for n, p in manager.list_name_plugin() if n != name]
    caller = manager.subset_hook_caller(hook, remove_plugins=others)
    try:
        return caller(**kwargs)
    except (PluginConfigError, PluginError):
        raise
    except Exception as exc:
        raise PluginError(f"plugin {name!r} failed in {hook}: {exc!r}") from exc


def check_rules(settings: Settings, plugins: Plugins) -> None:
    """Refuse access rules that name nothing loaded (a typo would silently allow)."""
    found = Problems()
    for problem in rule_problems(settings.access, plugins, settings.source):
        found.add(problem)
    found.raise_if_any()


def rule_problems(access: AccessSettings, plugins: Plugins, source: str) -> list[ConfigError]:
    """A problem for each access rule that names no loaded command, group or action."""
    actions = [f"{plugin}:{name}" for plugin, name in plugins.actions]
    # A plugin that unfurls links can be ruled as `<plugin>:unfurl` (see Dispatcher._unfurl).
    actions += [
        f"{impl.plugin_name}:unfurl" for impl in plugins.manager.hook.chatops_unfurl.get_hookimpls()
    ]
    return [
        ConfigError(source, f'access.commands."{key}"', problem)
        for key, problem in unmatched_rules(access, (c.name for c in plugins.commands), actions)
    ]


def check_file(error: ConfigError) -> ConfigError:
    """``error`` (a config file's own problems) with those of its plugin tables and access
    rules added, when the plugins load: every problem of the file in one list."""
    if error.plugins is None:
        return error
    found = Problems()
    found.add(error)
    try:
        plugins = load_plugins(error.plugins, source=error.source)
        if error.access is not None:
            for problem in rule_problems(error.access, plugins, error.source):
                found.add(problem)
    except ConfigError as more:
        found.add(more)
    except PluginError:
        # A plugin that does not load is reported on its own once the file is right.
        return error
    return found.error() or error
