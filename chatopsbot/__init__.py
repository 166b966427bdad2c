"""chatopsbot: a ChatOps bot framework for Zoom Team Chat.

This module is the public API for plugin authors; everything else is internal.
"""

from __future__ import annotations

from chatopsbot.actions import Action, action
from chatopsbot.audit import AuditEntry, AuditQuery, AuditReader
from chatopsbot.clock import Clock, ManualClock, SystemClock
from chatopsbot.commands import (
    Arg,
    Command,
    Option,
    UnknownCommand,
    UsageError,
    command,
)
from chatopsbot.context import (
    ActionContext,
    Context,
    Conversation,
    ConversationContext,
    PluginContext,
    User,
)
from chatopsbot.durations import (
    DurationError,
    format_duration,
    next_time_of_day,
    parse_duration,
    parse_time_of_day,
)
from chatopsbot.errors import ChatopsbotError, UserError
from chatopsbot.hookcaller import HookCaller
from chatopsbot.hookspecs import hookimpl, hookspec
from chatopsbot.outbound.outbox import MessageGone, OutboxClosed, SendFailed
from chatopsbot.pluginconfig import load_config
from chatopsbot.plugins import PluginConfigError, require_known_keys
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
    Post,
    Response,
    Section,
    Select,
    SelectOption,
    Sent,
    Style,
    Text,
)
from chatopsbot.routes import (
    SIGNATURE_WINDOW,
    Delivery,
    HookError,
    HookRequest,
    HookResponse,
    Route,
    require_bearer,
    require_signature,
    route,
    sign_request,
    verify_request,
    verify_signature,
)
from chatopsbot.scheduler import Job, TimerHandler, Timers, cron, every, timer
from chatopsbot.store import Outcome, Refused, Store
from chatopsbot.zoom.events import Callback

__all__ = [
    "SIGNATURE_WINDOW",
    "Action",
    "ActionContext",
    "Actions",
    "Arg",
    "Attachment",
    "AuditEntry",
    "AuditQuery",
    "AuditReader",
    "Button",
    "ButtonStyle",
    "Callback",
    "Card",
    "CardItem",
    "ChatopsbotError",
    "Clock",
    "Command",
    "Context",
    "Conversation",
    "ConversationContext",
    "Delete",
    "Delivery",
    "Divider",
    "DurationError",
    "Edit",
    "Field",
    "Fields",
    "HandlerResult",
    "HookCaller",
    "HookError",
    "HookRequest",
    "HookResponse",
    "Job",
    "ManualClock",
    "MessageGone",
    "Option",
    "OutboxClosed",
    "Outcome",
    "Paragraph",
    "PluginConfigError",
    "PluginContext",
    "Post",
    "Refused",
    "Response",
    "Route",
    "Section",
    "Select",
    "SelectOption",
    "SendFailed",
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
    "UserError",
    "action",
    "command",
    "cron",
    "every",
    "format_duration",
    "hookimpl",
    "hookspec",
    "load_config",
    "next_time_of_day",
    "parse_duration",
    "parse_time_of_day",
    "require_bearer",
    "require_known_keys",
    "require_signature",
    "route",
    "sign_request",
    "timer",
    "verify_request",
    "verify_signature",
]
