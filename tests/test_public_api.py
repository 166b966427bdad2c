"""Meta-tests: the public API is what it says, documented, and every hook is exercised.

Changing what ``chatopsbot`` exports is a decision: this list has to change with it.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

import chatopsbot
from chatopsbot import hookspecs

ROOT = Path(__file__).resolve().parent.parent
GUIDE = (ROOT / "docs" / "writing-plugins.md").read_text()
TESTS = {
    p: p.read_text() for p in (ROOT / "tests").rglob("test_*.py") if p.name != Path(__file__).name
}

PUBLIC = [
    "Alert", "AlertLevel", "CardError", "ChannelSelect", "Checkbox", "Checkboxes", "DatePicker",
    "File", "Image", "Images", "MemberSelect", "Page", "Pages", "ProgressBar", "RadioButtons",
    "TextInput", "TimePicker", "Video", "escape_markdown",
    "Action", "ActionContext", "Actions", "Arg", "Attachment", "AuditEntry",
    "AuditQuery", "AuditReader", "Button", "ButtonStyle", "Callback", "Card", "CardItem",
    "ChatopsbotError",
    "Clock",
    "Command", "Context", "Conversation", "ConversationContext", "Delete", "Delivery",
    "Divider", "DurationError", "Edit", "Field", "Fields", "HandlerResult", "HookCaller",
    "HookError", "HookRequest", "HookResponse", "Job", "ManualClock", "MessageGone", "Option",
    "Outcome", "OutboxClosed",
    "Paragraph", "PluginConfigError", "PluginContext", "Post", "Refused", "Response", "Route",
    "SIGNATURE_WINDOW",
    "Section", "Select", "SelectOption", "SendFailed", "Sent", "Store", "Style", "SystemClock",
    "Text", "TimerHandler", "Timers", "UnknownCommand", "UsageError", "User", "UserError",
    "action", "command",
    "cron", "every", "format_duration", "hookimpl", "hookspec", "load_config",
    "next_time_of_day",
    "parse_duration", "parse_time_of_day", "require_bearer", "require_known_keys",
    "require_signature", "route", "sign_request", "timer", "verify_request", "verify_signature",
]  # fmt: skip

HOOKS = [
    name
    for name, _ in inspect.getmembers(hookspecs, inspect.isfunction)
    if name.startswith("chatops_")
]


def test_the_public_names_are_the_curated_list():
    assert sorted(chatopsbot.__all__) == sorted(PUBLIC)
    for name in chatopsbot.__all__:
        assert hasattr(chatopsbot, name), name


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_every_public_class_and_function_has_a_docstring_of_its_own(name):
    obj = getattr(chatopsbot, name)
    if not (inspect.isclass(obj) or inspect.isfunction(obj)):
        return  # a constant or a type alias: documented where it is defined
    assert (obj.__doc__ or "").strip(), f"{name} has no docstring"


def test_errors_share_one_base_and_user_errors_are_apart():
    for name in ("UsageError", "HookError", "PluginConfigError"):
        assert issubclass(getattr(chatopsbot, name), chatopsbot.UserError), name
    for name in ("SendFailed", "MessageGone", "OutboxClosed"):
        error = getattr(chatopsbot, name)
        assert issubclass(error, chatopsbot.ChatopsbotError), name
        assert not issubclass(error, chatopsbot.UserError), name


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_is_documented_and_exercised_by_a_test(hook):
    assert f"`{hook}`" in GUIDE or f"def {hook}" in GUIDE, f"{hook} is not in writing-plugins.md"
    assert inspect.getdoc(getattr(hookspecs, hook)), f"{hook} has no docstring"
    users = [p.name for p, text in TESTS.items() if hook in text]
    assert users, f"no test exercises {hook}"
