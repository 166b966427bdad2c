"""Every hook a chatopsbot plugin can implement. Each is prefixed ``chatops_``.

A plugin is a module or object with functions marked ``@chatopsbot.hookimpl`` whose names match
the specs below. It is found through the ``chatopsbot`` entry-point group; its entry-point name
is the plugin's name (used in ``[plugins] disabled`` and for its ``[plugins.<name>]`` table).
Hooks are called with keyword arguments, so an implementation may accept fewer than the spec.
"""

from __future__ import annotations

from collections.abc import Awaitable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from chatopsbot.actions import Action
    from chatopsbot.commands import Command
    from chatopsbot.routes import Route
    from chatopsbot.scheduler import Job, TimerHandler

PROJECT = "chatopsbot"

#: Marks the hook specifications in this module.
hookspec = pluggy.HookspecMarker(PROJECT)
#: Marks a plugin's hook implementations: ``@hookimpl def chatops_commands(): ...``.
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def chatops_commands() -> Iterable[Command]:
    """Return the commands this plugin adds.

    Called once at startup, after :func:`chatops_config`. Build commands with the
    ``chatopsbot.command`` decorator. A command whose name another plugin already uses stops
    the startup, naming both plugins.
    """
    raise NotImplementedError


@hookspec(firstresult=True)
def chatops_config(config: Mapping[str, Any]) -> Any:
    """Validate this plugin's ``[plugins.<name>]`` table and return the settings to use.

    Called once at startup for the plugin that implements it, with its own table (an empty
    mapping when the config file has none, so defaults are decided here). ``${VAR}`` references
    are already expanded. Raise :class:`chatopsbot.PluginConfigError` naming the key that is
    wrong; the bot then refuses to start with ``config.toml: plugins.<name>.<key>: ...``.
    The returned value reaches handlers as ``ctx.config``. A plugin without this hook takes no
    configuration, and a table for it is an error.
    """
    raise NotImplementedError


@hookspec
def chatops_actions() -> Iterable[Action]:
    """Return the action handlers that this plugin's buttons and dropdowns reach.

    Called once at startup. Build them with ``chatopsbot.action``; render buttons for them
    with ``ctx.button(text, action, payload)``. A click reaches the handler with an
    :class:`~chatopsbot.ActionContext`; a button whose action no longer exists, or whose value
    was not signed by this bot, gets the clicker a private "this button no longer works".
    """
    raise NotImplementedError


@hookspec
def chatops_routes() -> Iterable[Route]:
    """Return the HTTP routes this plugin serves, mounted under ``/hooks/<plugin name>``.

    Called once at startup. Build them with ``chatopsbot.route``: ``route("POST")`` serves
    ``POST /hooks/<plugin>``, ``route("GET", "/lock")`` serves ``GET /hooks/<plugin>/lock``.
    Handlers get the plugin's context and a ``HookRequest``; they authenticate the caller
    themselves: ``await verify_request(ctx, request, secret)`` for signed requests that cannot be
    replayed (timestamp, method, path, query and delivery id inside the signature), or
    ``require_bearer``. Bodies over the route's
    ``max_body`` get 413, a ``HookError`` its status, any other exception a 500 with a
    reference logged beside the traceback.
    """
    raise NotImplementedError


@hookspec
def chatops_jobs() -> Iterable[Job | TimerHandler]:
    """Return this plugin's scheduled work: recurring jobs and one-shot timer handlers.

    Called once at startup. Recurring jobs come from ``chatopsbot.every(seconds)`` or
    ``chatopsbot.cron("0 9 * * 1-5", timezone="Europe/Berlin")`` and get a
    :class:`~chatopsbot.PluginContext` (send with ``ctx.send_to``). Timer handlers come from
    ``chatopsbot.timer(name)`` and run when a timer the plugin set with
    ``ctx.timers.schedule(name, at, payload)`` comes due, with that payload. A run never
    overlaps the next one of the same job; a failing run is logged and the job carries on.
    """
    raise NotImplementedError


@hookspec
def chatops_hookspecs() -> Iterable[object]:
    """Return modules (or classes) of further hook specifications this plugin defines.

    Called once, first, so that plugins can offer hooks of their own to other plugins (the
    on-call plugin's ``chatops_oncall_lookup`` lets another plugin answer from PagerDuty). Mark
    them with ``chatopsbot.hookspec``; call them through ``ctx.hooks``.
    """
    raise NotImplementedError


@hookspec
def chatops_shutdown() -> Awaitable[None] | None:
    """Release what the plugin opened while it ran (an HTTP client session, say).

    Called once when the bot stops, after running handlers, jobs and the outbox are done and
    before storage closes; it may be ``async def``. A failing implementation is logged and the
    others still run. Open such things lazily, on first use inside a handler, so they belong to
    the running event loop.
    """
    raise NotImplementedError
