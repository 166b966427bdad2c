"""Render response objects into Zoom chatbot API calls: the only place that writes Zoom's card JSON.

Pure functions: a response and where it goes in, an :class:`ApiCall` out. Field names and shapes
follow Zoom's chatbot message schema (head/sub_head, body items ``message``, ``fields``,
``actions``, ``select``, ``section``, ``divider``, ``attachments``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import quote

from attrs import frozen

from chatopsbot.context import Conversation
from chatopsbot.errors import ChatopsbotError
from chatopsbot.responses import (
    Actions,
    Attachment,
    CardItem,
    Content,
    Delete,
    Divider,
    Edit,
    Fields,
    Paragraph,
    Response,
    Section,
    Select,
    Style,
    Text,
)

MESSAGES_PATH = "/im/chat/messages"


@frozen
class ApiCall:
    """One request to Zoom's chatbot API, relative to ``[zoom] api_base_url``."""

    method: Literal["POST", "PUT", "DELETE"]
    path: str
    account_id: str
    body: Mapping[str, Any] | None = None
    params: Mapping[str, str] | None = None


class RenderError(ChatopsbotError, ValueError):
    """A response that cannot go where it was aimed (private, with nobody to show it to)."""


def render(
    response: Response, *, robot_jid: str, conversation: Conversation, caller_id: str | None
) -> ApiCall:
    """Turn one response into the API call that carries it out.

    ``caller_id`` is the user a private reply is shown to; ``None`` where no user is involved.
    """
    account_id = conversation.account_id
    if isinstance(response, Delete):
        return ApiCall(
            "DELETE",
            _message_path(response.message_id),
            account_id,
            params={"account_id": account_id, "robot_jid": robot_jid},
        )
    if isinstance(response, Edit):
        body: dict[str, Any] = {
            "robot_jid": robot_jid,
            "account_id": account_id,
            "content": render_content(response.content),
        }
        if response.content.markdown:
            body["is_markdown_support"] = True
        return ApiCall("PUT", _message_path(response.message_id), account_id, body=body)

    to_jid = conversation.jid
    body = {
        "robot_jid": robot_jid,
        "to_jid": to_jid,
        "account_id": account_id,
        "content": render_content(response),
    }
    if response.markdown:
        body["is_markdown_support"] = True
    if response.reply_to:
        body["reply_to"] = response.reply_to
    if response.private and "@conference." in to_jid:
        # In a 1:1 chat the caller is the only reader already; in a channel Zoom needs to be told.
        if not caller_id:
            raise RenderError("a private reply in a channel needs a user to show it to")
        body["visible_to_user"] = caller_id
    return ApiCall("POST", MESSAGES_PATH, account_id, body=body)


def render_content(content: Content) -> dict[str, Any]:
    """The ``content`` object of a send or edit body."""
    if isinstance(content, Text):
        return {"body": [{"type": "message", "text": content.text}]}
    result: dict[str, Any] = {}
    if content.head is not None:
        head: dict[str, Any] = {"text": content.head}
        if content.head_style is not None:
            head["style"] = _style(content.head_style)
        if content.sub_head is not None:
            head["sub_head"] = {"text": content.sub_head}
        result["head"] = head
    if content.body:
        result["body"] = [_item(item) for item in content.body]
    return result


def _message_path(message_id: str) -> str:
    return f"{MESSAGES_PATH}/{quote(message_id, safe='')}"


def _style(style: Style) -> dict[str, Any]:
    rendered: dict[str, Any] = {"bold": style.bold, "italic": style.italic}
    if style.color:
        rendered["color"] = style.color
    return rendered


def _item(item: CardItem) -> dict[str, Any]:
    match item:
        case Paragraph():
            out: dict[str, Any] = {"type": "message", "text": item.text}
            if item.link:
                out["link"] = item.link
            if item.style is not None:
                out["style"] = _style(item.style)
            return out
        case Fields():
            return {
                "type": "fields",
                "items": [
                    {
                        "key": f.key,
                        "value": f.value or " ",
                        "short": f.short,
                        "editable": f.editable,
                    }
                    for f in item.items
                ],
            }
        case Actions():
            out = {
                "type": "actions",
                "items": [
                    {"text": b.text, "value": b.value, "style": b.style.value} for b in item.buttons
                ],
            }
            if item.limit is not None:
                out["limit"] = item.limit
            return out
        case Select():
            out = {
                "type": "select",
                "text": item.text,
                "select_items": [{"text": o.text, "value": o.value} for o in item.options],
            }
            if item.selected is not None:
                out["selected_item"] = {"text": item.selected.text, "value": item.selected.value}
            return out
        case Divider():
            style: dict[str, Any] = {"bold": item.bold, "dotted": item.dotted}
            if item.color:
                style["color"] = item.color
            return {"type": "divider", "style": style}
        case Attachment():
            out = {
                "type": "attachments",
                "resource_url": item.url,
                "information": {
                    "title": {"text": item.title},
                    "description": {"text": item.description},
                },
            }
            if item.image_url:
                out["img_url"] = item.image_url
            if item.ext:
                out["ext"] = item.ext
            if item.size is not None:
                out["size"] = item.size
            return out
        case Section():
            out = {"type": "section", "sections": [_item(child) for child in item.items]}
            if item.sidebar_color:
                out["sidebar_color"] = item.sidebar_color
            if item.footer:
                out["footer"] = item.footer
            return out
    raise TypeError(f"not a card item: {item!r}")  # pragma: no cover - the union is exhaustive
