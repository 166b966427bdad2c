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
    from chatopsbot.context import PluginContext
    from chatopsbot.responses import Card, HandlerResult
    from chatopsbot.routes import Route
    from chatopsbot.scheduler import Job, TimerHandler
    from chatopsbot.values import Conversation, User

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
def chatops_cleanup() -> Awaitable[None] | None:
    """Release what the plugin opened while running: an HTTP session, a connection.

    Called once when the bot stops, after jobs and handlers have finished and before storage
    is closed; an ``async def`` implementation is awaited. Open such things lazily, on the
    running loop (a plugin object is created before the loop runs). A failure here is logged
    and does not stop the other plugins' cleanup.
    """
    raise NotImplementedError


# Hooks for Zoom's own events: called with the plugin's own context (``ctx``), by keyword,
# so an implementation may take fewer arguments. ``async def`` implementations are awaited.
# Each runs under ``[commands] timeout``; one that fails is logged and the others still run.


@hookspec
def chatops_unfurl(
    ctx: PluginContext, link: str, conversation: Conversation, actor: User
) -> Card | None:
    """Return a card to show under ``link`` (a URL someone posted), or ``None`` to pass.

    Called for ``team_chat.link_shared``: Zoom sends it for links of the domains registered
    for the app. Plugins are asked in turn and the first card wins; it is sent through the
    outbox to Zoom's unfurl endpoint. ``conversation`` is where the link was posted (a channel,
    or the 1:1 chat of ``actor`` with the bot). Example::

        @hookimpl
        async def chatops_unfurl(ctx, link):
            if link.startswith("https://ci.example.com/runs/"):
                return Card(head="Run 42", body=[Paragraph("passed")])
            return None
    """
    raise NotImplementedError


@hookspec
def chatops_channel_joined(
    ctx: PluginContext, conversation: Conversation, actor: User
) -> HandlerResult:
    """The bot was added to the channel ``conversation`` by ``actor``: return what to post.

    Called for ``team_chat.channel_app_added`` naming this bot, after ``[zoom]
    channel_welcome`` (if set) is posted. Responses go to the channel; a ``Post`` goes where
    it says. Example::

        @hookimpl
        def chatops_channel_joined(conversation):
            return Card(head="Hello!", body=[Paragraph("Type /opsbot deploy subscribe api")])
    """
    raise NotImplementedError


@hookspec
def chatops_channel_left(ctx: PluginContext, conversation: Conversation) -> int | None:
    """The bot was removed from the channel ``conversation``: drop what targets it.

    Called for ``team_chat.channel_app_removed`` naming this bot. Remove the channel's
    subscriptions, scheduled announcements and anything else that would post there (the bot
    can no longer do so). Return how many things were dropped, for the log. Messages already
    queued for the channel are dropped by the runtime. Example::

        @hookimpl
        async def chatops_channel_left(ctx, conversation):
            return int(await ctx.store.delete(f"subscription:{conversation.jid}"))
    """
    raise NotImplementedError


@hookspec
def chatops_account_removed(ctx: PluginContext, account_id: str) -> int | None:
    """Zoom account ``account_id`` removed the app (``app_deauthorized``): delete its data.

    Zoom's Marketplace requires an app to delete what it stored about an account that
    deauthorized it, unless Zoom says the user asked to keep it (``user_data_retention``
    true; then this hook is not called). Delete everything this plugin keeps for the account
    and return how many items went (the log lists the count per plugin). The runtime drops
    the account's queued messages and audit entries itself. Example::

        @hookimpl
        async def chatops_account_removed(ctx, account_id):
            gone = 0
            for key, value in await ctx.store.list("poll:"):
                if value["account_id"] == account_id:
                    gone += await ctx.store.delete(key)
            return gone
    """
    raise NotImplementedError
