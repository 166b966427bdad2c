"""The request that answers a shared link (``team_chat.link_shared``) with a card under it.

Zoom's ``POST /im/chat/users/{userId}/unfurls/{triggerId}`` takes ``{"content": "<card JSON as
a string>"}``: the card is rendered like a message's content, then encoded once more.
"""

from __future__ import annotations

import json
from urllib.parse import quote

from chatopsbot.responses import Card
from chatopsbot.zoom.cards import ApiCall, render_content

__all__ = ["UNFURL_PATH", "unfurl_call"]

#: The unfurl endpoint, relative to ``[zoom] api_base_url``.
UNFURL_PATH = "/im/chat/users/{user}/unfurls/{trigger}"


def unfurl_call(account_id: str, user_id: str, trigger_id: str, card: Card) -> ApiCall:
    """The call that shows ``card`` under the link Zoom's trigger ``trigger_id`` stands for."""
    path = UNFURL_PATH.format(user=quote(user_id, safe=""), trigger=quote(trigger_id, safe=""))
    content = json.dumps(render_content(card), separators=(",", ":"), ensure_ascii=False)
    return ApiCall("POST", path, account_id, body={"content": content})
