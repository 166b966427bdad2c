"""Zoom events the console sends that the test kit's payloads do not build."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

__all__ = ["message_edited"]


def message_edited(
    origin: str,
    target: str,
    *,
    message_id: str,
    original: Mapping[str, Any],
    account_id: str,
    robot_jid: str,
    to_jid: str,
    channel_name: str,
    user_id: str,
    user_jid: str,
    user_name: str,
) -> dict[str, Any]:
    """An ``interactive_message_editable`` event, shaped like Zoom's published sample."""
    # Nanoseconds, as the test kit's payloads: two edits in one millisecond stay two events.
    ts = time.time_ns()
    return {
        "event": "interactive_message_editable",
        "event_ts": ts,
        "payload": {
            "accountId": account_id,
            "channelName": channel_name,
            "editItem": {"origin": origin, "target": target},
            "messageId": message_id,
            "original": dict(original),
            "robotJid": robot_jid,
            "timestamp": ts,
            "toJid": to_jid,
            "userId": user_id,
            "userJid": user_jid,
            "userName": user_name,
        },
    }
