"""Render response objects into Zoom chatbot API calls: the only place that writes Zoom's card JSON.

Pure functions: a response and where it goes in, an :class:`ApiCall` out. Field names and shapes
follow Zoom's chatbot message schema as Zoom's SDK (``@zoom/rivet``) types it: head/sub_head,
``settings``, and every body element (``message``, ``fields``, ``actions``, ``select``,
``attachments``, ``file``, ``divider``, ``progress_bar``, ``datepicker``, ``timepicker``,
``radio_buttons``, ``checkboxes``, ``alert``, ``images``, ``plain_text_input``, ``video``,
``section``, ``page``). Text over :data:`chatopsbot.markdown.MAX_TEXT` is cut with a marker.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import quote

from attrs import frozen

from chatopsbot.context import Conversation
from chatopsbot.errors import ChatopsbotError
from chatopsbot.markdown import truncate
from chatopsbot.responses import (
    Actions,
    Alert,
    Attachment,
    Card,
    CardItem,
    ChannelSelect,
    Checkboxes,
    Content,
    DatePicker,
    Delete,
    Divider,
    Edit,
    Fields,
    File,
    Images,
    MemberSelect,
    Pages,
    Paragraph,
    ProgressBar,
    RadioButtons,
    Response,
    Section,
    Select,
    SelectOption,
    Style,
    Text,
    TextInput,
    TimePicker,
    Video,
    walk,
)

MESSAGES_PATH = "/im/chat/messages"
#: The ``style`` of a checkbox group drawn as switches. Rivet types it as a string without
#: naming values; this is the App Card Builder's name for the switch group.
SWITCH_STYLE = "switch"


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
        return {"body": [{"type": "message", "text": truncate(content.text)}]}
    result: dict[str, Any] = {}
    if content.settings is not None:
        result["settings"] = dict(content.settings)
    if content.head is not None:
        head: dict[str, Any] = {"text": truncate(content.head)}
        if content.head_style is not None:
            head["style"] = _style(content.head_style)
        if content.sub_head is not None:
            sub_head: dict[str, Any] = {"text": truncate(content.sub_head)}
            if content.sub_head_style is not None:
                sub_head["style"] = _style(content.sub_head_style)
            head["sub_head"] = sub_head
        result["head"] = head
    if content.body:
        result["body"] = [_item(item) for item in content.body]
    return result


def routes(response: Response) -> dict[str, str]:
    """Where the interactions Zoom fills in on ``response``'s card go: the ``action_id`` of
    its member or channel select (key ``select``), of each editable field (``field:<key>``),
    of each editable paragraph (``message:<text>``) and of each text input (``input:<label>``,
    for submissions that name an input by its label only, as Zoom's sample app reads them).

    Zoom's events for these carry no value the plugin chose, so these are kept with the card
    the bot sent (see :class:`~chatopsbot.outbound.sender.CardRecord`), never sent to Zoom.
    """
    content = response.content if isinstance(response, Edit) else response
    if not isinstance(content, Card):
        return {}
    found: dict[str, str] = {}
    for item in walk(content.body):
        match item:
            case MemberSelect() | ChannelSelect():
                found["select"] = item.action_id
            case Paragraph(action_id=str(action_id)):
                found[f"message:{item.text}"] = action_id
            case TextInput():
                found[f"input:{item.text}"] = item.action_id
            case Fields():
                for f in item.items:
                    if f.action_id is not None:
                        found[f"field:{f.key}"] = f.action_id
    return found


def _message_path(message_id: str) -> str:
    return f"{MESSAGES_PATH}/{quote(message_id, safe='')}"


def _style(style: Style) -> dict[str, Any]:
    rendered: dict[str, Any] = {"bold": style.bold, "italic": style.italic}
    if style.color:
        rendered["color"] = style.color
    return rendered


def _options(options: tuple[SelectOption, ...]) -> list[dict[str, str]]:
    return [{"text": o.text, "value": o.value} for o in options]


def _item(item: CardItem | Pages) -> dict[str, Any]:
    match item:
        case Paragraph():
            out: dict[str, Any] = {"type": "message", "text": truncate(item.text)}
            if item.link:
                out["link"] = item.link
            if item.style is not None:
                out["style"] = _style(item.style)
            if item.editable:
                out["editable"] = True
            if item.markdown is not None:
                out["is_markdown_support"] = item.markdown
            return out
        case Fields():
            return {
                "type": "fields",
                "items": [
                    {
                        "key": truncate(f.key),
                        "value": truncate(f.value) or " ",
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
            out = {"type": "select", "text": item.text, "select_items": _options(item.options)}
            if item.selected is not None:
                out["selected_item"] = {"text": item.selected.text, "value": item.selected.value}
            return out
        case MemberSelect():
            return {"type": "select", "text": item.text, "static_source": "members"}
        case ChannelSelect():
            return {"type": "select", "text": item.text, "static_source": "channels"}
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
        case File():
            out = {
                "type": "file",
                "title": {"text": item.title, "file_url": item.url},
                "description": {"text": item.description},
            }
            if item.icon_url:
                out["icon_url"] = item.icon_url
            return out
        case ProgressBar():
            return {"type": "progress_bar", "value": item.value}
        case DatePicker():
            out = {"type": "datepicker", "action_id": item.action_id}
            if item.initial is not None:
                out["initial_date"] = item.initial.isoformat()
            return out
        case TimePicker():
            out = {"type": "timepicker", "action_id": item.action_id}
            if item.initial is not None:
                out["initial_time"] = item.initial.strftime("%H:%M")
            return out
        case RadioButtons():
            out = {
                "type": "radio_buttons",
                "action_id": item.action_id,
                "options": _options(item.options),
            }
            if item.initial is not None:
                out["initial_option"] = {"text": item.initial.text, "value": item.initial.value}
            return out
        case Checkboxes():
            out = {
                "type": "checkboxes",
                "action_id": item.action_id,
                "options": [
                    {"text": o.text, "value": o.value, "initial_selected": o.selected}
                    for o in item.options
                ],
            }
            if item.switch:
                out["style"] = SWITCH_STYLE
            return out
        case Alert():
            return {
                "type": "alert",
                "text": truncate(item.text),
                "level": item.level.value,
                "closable": item.closable,
            }
        case Images():
            return {
                "type": "images",
                "cur_index": item.current,
                "images": [
                    {"image_url": image.url, "alt_text": image.alt_text, "image_index": index}
                    for index, image in enumerate(item.images)
                ],
            }
        case TextInput():
            out = {
                "type": "plain_text_input",
                "action_id": item.action_id,
                "text": item.text,
                "value": item.value,
                "placeholder": item.placeholder,
                "multiline": item.multiline,
            }
            if item.min_length is not None:
                out["min_length"] = item.min_length
            if item.max_length is not None:
                out["max_length"] = item.max_length
            return out
        case Video():
            out = {
                "type": "video",
                "title": {"text": item.title, "is_markdown_support": item.markdown},
                "video_url": item.video_url,
            }
            optional = {
                "action_id": item.action_id,
                "title_url": item.title_url,
                "thumbnail_url": item.thumbnail_url,
                "author_name": item.author_name,
                "provider_name": item.provider_name,
                "provider_icon_url": item.provider_icon_url,
            }
            out.update({key: value for key, value in optional.items() if value is not None})
            return out
        case Section():
            out = {"type": "section", "sections": [_item(child) for child in item.items]}
            if item.sidebar_color:
                out["sidebar_color"] = item.sidebar_color
            if item.footer:
                out["footer"] = truncate(item.footer)
            if item.footer_icon:
                out["footer_icon"] = item.footer_icon
            if item.timestamp is not None:
                # Zoom's section ``ts`` is in milliseconds since the epoch.
                out["ts"] = int(item.timestamp.timestamp() * 1000)
            return out
        case Pages():
            return {
                "type": "page",
                "cur_page": item.current,
                "pages": [
                    {"pageNo": number, "body": [_item(child) for child in page.body]}
                    for number, page in enumerate(item.pages, start=1)
                ],
            }
    raise TypeError(f"not a card item: {item!r}")  # pragma: no cover - the union is exhaustive
