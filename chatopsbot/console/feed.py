"""What the page is told: messages as the fake Zoom holds them, and one log entry per request.

Pure functions from the fake Zoom's records (and the console's own webhook calls) to the JSON
the page draws. A message is sent whole each time it changes, so an edit or a deletion replaces
what the page shows under the same id.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from chatopsbot.zoom.fake import Message, Request

#: The slash command the console's composer accepts in front of a command.
SLASH = "/opsbot"

_SLASH = re.compile(rf"^{re.escape(SLASH)}(?:\s+|$)", re.IGNORECASE)


def command_text(typed: str) -> str:
    """What Zoom would deliver as ``cmd`` for ``typed``: the text after the slash command.

    In a 1:1 chat the bot gets plain text as it is; in a channel the command comes after
    ``/opsbot``. The console takes both forms everywhere.
    """
    return _SLASH.sub("", typed.strip(), count=1).strip()


def bot_message(message: Message, at: float) -> dict[str, Any]:
    """A bot message for the page: its current card, who may see it, its thread, its state."""
    return {
        "kind": "bot",
        "id": message.message_id,
        "conversation": message.to_jid,
        "content": message.content,
        "visible_to": message.visible_to_user,
        "reply_to": message.reply_to,
        "markdown": message.is_markdown,
        "edits": message.edits,
        "deleted": message.deleted,
        "at": at,
    }


def user_message(
    seq: int, *, conversation: str, user: Mapping[str, Any], text: str, at: float
) -> dict[str, Any]:
    """What a person typed, as the chat shows it."""
    return {
        "kind": "user",
        "id": f"typed-{seq}",
        "conversation": conversation,
        "user": user["key"],
        "name": user["name"],
        "text": text,
        "at": at,
    }


def api_entry(seq: int, request: Request) -> dict[str, Any]:
    """A request the fake Zoom API received, with what it answered."""
    target = request.path
    if request.params:
        target += "?" + "&".join(f"{k}={v}" for k, v in sorted(request.params.items()))
    return {
        "seq": seq,
        "kind": "api",
        "at": request.at,
        "title": f"{request.method} {target}",
        "status": request.status,
        "ok": 200 <= request.status < 300,
        "request": request.body,
        "response": {"message_id": request.message_id} if request.message_id else None,
    }


def http_entry(
    seq: int,
    *,
    kind: str,
    at: float,
    method: str,
    path: str,
    status: int,
    request: Any,
    response: Any,
    headers: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A call the console made into the bot: a signed webhook (``kind`` ``webhook``) or a plugin
    hook (``hook``), with the bot's answer."""
    event = request.get("event") if isinstance(request, dict) else None
    title = f"{method} {path}" + (f" ({event})" if isinstance(event, str) else "")
    return {
        "seq": seq,
        "kind": kind,
        "at": at,
        "title": title,
        "status": status,
        "ok": 200 <= status < 300,
        "request": request,
        "headers": dict(headers or {}),
        "response": response,
    }


def note_entry(seq: int, *, at: float, title: str, detail: Any = None) -> dict[str, Any]:
    """Something the console itself did (a fault armed, an outage ended)."""
    return {
        "seq": seq,
        "kind": "note",
        "at": at,
        "title": title,
        "status": None,
        "ok": True,
        "request": detail,
        "response": None,
    }


def buttons(content: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Every button of a card, sections and pages included."""
    return _items(content.get("body", []), "actions", "items")


def options(content: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Every option of a card's static dropdowns, sections and pages included."""
    return _items(content.get("body", []), "select", "select_items")


def fields(content: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Every field of a card's ``fields`` blocks, sections and pages included."""
    return _items(content.get("body", []), "fields", "items")


def editable_messages(content: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Every ``message`` element with ``editable: true``, sections and pages included."""
    return [m for m in _elements(content.get("body", []), "message") if m.get("editable")]


def _elements(blocks: Any, kind: str) -> list[Mapping[str, Any]]:
    found: list[Mapping[str, Any]] = []
    if not isinstance(blocks, list):
        return found
    for block in blocks:
        if not isinstance(block, dict):
            continue
        if block.get("type") == kind:
            found.append(block)
        found.extend(_elements(block.get("sections"), kind))
        found.extend(_elements(block.get("body"), kind))
        for page in block.get("pages") or []:
            if isinstance(page, dict):
                found.extend(_elements(page.get("body"), kind))
    return found


def _items(blocks: Any, kind: str, key: str) -> list[Mapping[str, Any]]:
    return [
        item
        for block in _elements(blocks, kind)
        if isinstance(block.get(key), list)
        for item in block[key]
        if isinstance(item, dict)
    ]
