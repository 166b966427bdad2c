"""chatopsbot: a ChatOps bot framework for Zoom Team Chat.

This module is the public API for plugin authors; everything else is internal.
"""

from __future__ import annotations

from chatopsbot.clock import Clock, SystemClock
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
from chatopsbot.context import Context, Conversation, User
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

__all__ = [
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
    "Option",
    "Paragraph",
    "PluginConfigError",
    "Response",
    "Section",
    "Select",
    "SelectOption",
    "Sent",
    "Style",
    "SystemClock",
    "Text",
    "UnknownCommand",
    "UsageError",
    "User",
    "command",
    "format_help",
    "format_overview",
    "format_usage",
    "hookimpl",
    "private",
]
