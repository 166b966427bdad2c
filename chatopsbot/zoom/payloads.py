"""Webhook bodies shaped like Zoom's, and their signature headers: for tests, the demo, benchmarks.

The field names follow Zoom's chatbot event reference; only :mod:`chatopsbot.zoom.events` reads
them on the way in, and this module is its mirror for the way a fake Zoom sends them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from chatopsbot.zoom.signature import sign


def bot_notification(
    cmd: str,
    *,
    account_id: str = "acct-1",
    robot_jid: str = "bot@xmpp.zoom.us",
    to_jid: str = "ops@conference.xmpp.zoom.us",
    channel_name: str = "ops",
    user_id: str = "u-alice",
    user_jid: str = "alice@xmpp.zoom.us",
    user_name: str = "Alice",
    timestamp: int | None = None,
) -> dict[str, Any]:
    """A ``bot_notification`` event: ``cmd`` typed after the slash command."""
    ts = timestamp if timestamp is not None else _unique_ms()
    return {
        "event": "bot_notification",
        "event_ts": ts,
        "payload": {
            "accountId": account_id,
            "channelName": channel_name,
            "cmd": cmd,
            "robotJid": robot_jid,
            "timestamp": ts,
            "toJid": to_jid,
            "triggerId": f"trigger-{ts}",
            "userId": user_id,
            "userJid": user_jid,
            "userName": user_name,
        },
    }


def _chat_payload(
    *,
    account_id: str,
    robot_jid: str,
    to_jid: str,
    channel_name: str,
    user_id: str,
    user_jid: str,
    user_name: str,
) -> dict[str, Any]:
    return {
        "accountId": account_id,
        "channelName": channel_name,
        "robotJid": robot_jid,
        "timestamp": _unique_ms(),
        "toJid": to_jid,
        "userId": user_id,
        "userJid": user_jid,
        "userName": user_name,
    }


def button_clicked(
    value: str,
    *,
    message_id: str,
    text: str = "",
    original: dict[str, Any] | None = None,
    **where: str,
) -> dict[str, Any]:
    """An ``interactive_message_actions`` event: a click on the button with ``value``."""
    return _interactive(
        "interactive_message_actions",
        message_id,
        where,
        actionItem={"text": text, "value": value},
        original=original or {},
    )


def option_selected(
    values: list[str],
    *,
    message_id: str,
    original: dict[str, Any] | None = None,
    labels: list[str] | None = None,
    **where: str,
) -> dict[str, Any]:
    """An ``interactive_message_select`` event: ``values`` picked in a dropdown (shown as
    ``labels``, by default the values themselves)."""
    return _interactive(
        "interactive_message_select",
        message_id,
        where,
        selectedItems=[
            {"text": label, "value": v} for v, label in zip(values, labels or values, strict=True)
        ],
        original=original or {},
    )


def field_edited(
    key: str, current: str, new: str, *, message_id: str, **where: str
) -> dict[str, Any]:
    """An ``interactive_message_fields_editable`` event: field ``key`` changed to ``new``."""
    return _interactive(
        "interactive_message_fields_editable",
        message_id,
        where,
        fieldEditItem={"key": key, "currentValue": current, "newValue": new},
        original={},
    )


def message_edited(
    origin: str,
    target: str,
    *,
    message_id: str,
    original: dict[str, Any] | None = None,
    **where: str,
) -> dict[str, Any]:
    """An ``interactive_message_editable`` event: an editable text changed to ``target``."""
    return _interactive(
        "interactive_message_editable",
        message_id,
        where,
        editItem={"origin": origin, "target": target},
        original=original or {},
    )


def form_submitted(
    items: list[dict[str, Any]],
    *,
    message_id: str,
    original: dict[str, Any] | None = None,
    **where: str,
) -> dict[str, Any]:
    """A ``chat_message.submit`` event: ``items`` (``{"<element type>": {"action_id",
    "text", "value"}}``, ``actionItem`` for the button pressed) submitted from a card.

    Zoom publishes no sample: this is the shape Zoom's ERP sample app reads (``object.to_jid``,
    ``object.submit_items``), with the usual chatbot fields beside it.
    """
    to_jid = {**_DEFAULTS, **where}["to_jid"]
    return _interactive(
        "chat_message.submit",
        message_id,
        where,
        object={"to_jid": to_jid, "submit_items": items},
        original=original or {},
    )


def _interactive(
    event: str, message_id: str, where: Mapping[str, str], **fields: Any
) -> dict[str, Any]:
    """An interactive event on the card ``message_id``: the chat fields of ``where`` (over
    the defaults), then the event's own ``fields``."""
    payload = _chat_payload(**{**_DEFAULTS, **where})
    payload.update(messageId=message_id, **fields)
    return {"event": event, "event_ts": payload["timestamp"], "payload": payload}


_DEFAULTS = {
    "account_id": "acct-1",
    "robot_jid": "bot@xmpp.zoom.us",
    "to_jid": "ops@conference.xmpp.zoom.us",
    "channel_name": "ops",
    "user_id": "u-alice",
    "user_jid": "alice@xmpp.zoom.us",
    "user_name": "Alice",
}


def bot_installed(
    *,
    account_id: str = "acct-1",
    robot_jid: str = "bot@xmpp.zoom.us",
    user_id: str = "u-alice",
    user_jid: str = "alice@xmpp.zoom.us",
    user_name: str = "Alice",
) -> dict[str, Any]:
    """A ``bot_installed`` event."""
    ts = _unique_ms()
    return {
        "event": "bot_installed",
        "event_ts": ts,
        "payload": {
            "accountId": account_id,
            "robotJid": robot_jid,
            "timestamp": ts,
            "userId": user_id,
            "userJid": user_jid,
            "userName": user_name,
        },
    }


def app_mention(
    message: str,
    *,
    account_id: str = "acct-1",
    operator_id: str = "u-alice",
    operator: str = "alice@example.com",
    channel_id: str = "ops",
    channel_name: str = "ops",
    message_id: str | None = None,
    thread_id: str | None = None,
    mentions: list[tuple[int, int]] | None = None,
) -> dict[str, Any]:
    """A ``team_chat.app_mention`` event: ``message`` posted in a channel, mentioning the bot.

    ``mentions`` are ``(start, end)`` spans sent as ``at_items``; ``thread_id`` makes it a
    reply in that thread.
    """
    ts = _unique_ms()
    obj: dict[str, Any] = {
        "message_id": message_id or f"mention-{ts}",
        "type": "to_channel",
        "channel_id": channel_id,
        "channel_name": channel_name,
        "message": message,
        "date_time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "timestamp": ts,
    }
    if thread_id:
        obj["reply_main_message_id"] = thread_id
    if mentions is not None:
        obj["at_items"] = [
            {"at_type": 1, "start_position": start, "end_position": end} for start, end in mentions
        ]
    return {
        "event": "team_chat.app_mention",
        "event_ts": ts,
        "payload": _team_chat(account_id, operator_id, operator, obj),
    }


def link_shared(
    link: str,
    *,
    account_id: str = "acct-1",
    operator_id: str = "u-alice",
    operator: str = "alice@example.com",
    channel_id: str = "ops",
    channel_name: str = "ops",
    trigger_id: str | None = None,
    base_url: str = "https://api.zoom.us/v2",
) -> dict[str, Any]:
    """A ``team_chat.link_shared`` event: ``link`` posted in a channel."""
    ts = _unique_ms()
    trigger = trigger_id or f"trigger-{ts}"
    obj = {
        "message_id": f"link-{ts}",
        "type": "to_channel",
        "channel_id": channel_id,
        "channel_name": channel_name,
        "link": link,
        "trigger_id": trigger,
        "date_time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "timestamp": ts,
    }
    return {
        "event": "team_chat.link_shared",
        "event_ts": ts,
        "response_url": f"{base_url}/im/chat/users/{operator_id}/unfurls/{trigger}",
        "payload": _team_chat(account_id, operator_id, operator, obj),
    }


def channel_app(
    added: bool,
    *,
    robot_jid: str = "bot@xmpp.zoom.us",
    account_id: str = "acct-1",
    operator_id: str = "u-alice",
    operator: str = "alice@example.com",
    channel_id: str = "ops",
    channel_name: str = "ops",
) -> dict[str, Any]:
    """A ``team_chat.channel_app_added`` (or, ``added=False``, ``_removed``) event for the
    bot ``robot_jid``."""
    ts = _unique_ms()
    obj = {
        "channel_name": channel_name,
        "channel_id": channel_id,
        "type": 5,
        "date_time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "timestamp": ts,
        "app_members": [{"id": robot_jid.partition("@")[0], "display_name": "bot"}],
    }
    name = "team_chat.channel_app_added" if added else "team_chat.channel_app_removed"
    return {
        "event": name,
        "payload": _team_chat(account_id, operator_id, operator, obj),
        "event_ts": ts,
    }


def app_deauthorized(
    *, account_id: str = "acct-1", user_id: str = "u-alice", retention: bool | None = None
) -> dict[str, Any]:
    """An ``app_deauthorized`` event; ``retention`` is Zoom's ``user_data_retention`` (absent
    with ``None``)."""
    payload: dict[str, Any] = {
        "account_id": account_id,
        "user_id": user_id,
        "signature": "0" * 64,
        # Microseconds: two built back to back are two deauthorizations, not a redelivery.
        "deauthorization_time": datetime.now(UTC).isoformat(timespec="microseconds"),
        "client_id": "fake-client-id",
        "event_ts": _unique_ms(),
    }
    if retention is not None:
        payload["user_data_retention"] = "true" if retention else "false"
    return {"event": "app_deauthorized", "payload": payload}


def _team_chat(
    account_id: str, operator_id: str, operator: str, obj: dict[str, Any]
) -> dict[str, Any]:
    return {
        "account_id": account_id,
        "operator": operator,
        "operator_id": operator_id,
        "operator_member_id": f"member-{operator_id}",
        "by_external_user": False,
        "object": obj,
    }


def signed(
    secret: str, event: dict[str, Any], *, timestamp: int | None = None
) -> tuple[bytes, dict[str, str]]:
    """The body bytes and headers Zoom would send for ``event``, signed with ``secret``."""
    body = json.dumps(event).encode()
    ts = str(timestamp if timestamp is not None else int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "x-zm-request-timestamp": ts,
        "x-zm-signature": sign(secret, ts, body),
    }
    return body, headers


def _unique_ms() -> int:
    # Zoom sends milliseconds; nanoseconds keep two events built back to back distinct, so the
    # bot does not take the second for a redelivery of the first.
    return time.time_ns()
