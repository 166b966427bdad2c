"""chatopsbot: a ChatOps bot framework for Zoom Team Chat.

This module is the public API for plugin authors; everything else is internal.
"""

from __future__ import annotations

from chatopsbot.access import AccessSettings
from chatopsbot.actions import Action, action
from chatopsbot.clock import Clock, ManualClock, SystemClock
from chatopsbot.commands import (
    Arg,
    Command,
    CommandTree,
    HelpRequested,
    Option,
    UnknownCommand,
    UsageError,
    command,
    format_help,
    format_overview,
    format_usage,
)
from chatopsbot.context import ActionContext, Context, Conversation, PluginContext, User
from chatopsbot.hookspecs import hookimpl
from chatopsbot.plugins import PluginConfigError
from chatopsbot.responses import (
    Actions,
    Attachment,
    Button,
    ButtonStyle,
    Card,
    CardItem,
    Delete,
    Divider,
    Edit,
    Field,
    Fields,
    HandlerResult,
    Paragraph,
    Response,
    Section,
    Select,
    SelectOption,
    Sent,
    Style,
    Text,
    private,
)
from chatopsbot.routes import (
    HookError,
    HookRequest,
    HookResponse,
    Route,
    require_bearer,
    require_signature,
    route,
)
from chatopsbot.scheduler import Job, TimerHandler, Timers, cron, every, timer
from chatopsbot.store import Store

__all__ = [
    "AccessSettings",
    "Action",
    "ActionContext",
    "Actions",
    "Arg",
    "Attachment",
    "Button",
    "ButtonStyle",
    "Card",
    "CardItem",
    "Clock",
    "Command",
    "CommandTree",
    "Context",
    "Conversation",
    "Delete",
    "Divider",
    "Edit",
    "Field",
    "Fields",
    "HandlerResult",
    "HelpRequested",
    "HookError",
    "HookRequest",
    "HookResponse",
    "Job",
    "ManualClock",
    "Option",
    "Paragraph",
    "PluginConfigError",
    "PluginContext",
    "Response",
    "Route",
    "Section",
    "Select",
    "SelectOption",
    "Sent",
    "Store",
    "Style",
    "SystemClock",
    "Text",
    "TimerHandler",
    "Timers",
    "UnknownCommand",
    "UsageError",
    "User",
    "action",
    "command",
    "cron",
    "every",
    "format_help",
    "format_overview",
    "format_usage",
    "hookimpl",
    "private",
    "require_bearer",
    "require_signature",
    "route",
    "timer",
]
