"""Fixtures for end-to-end tests: the real app on loopback, talking to a fake Zoom on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

from chatopsbot.app import RUNTIME, create_app
from chatopsbot.clock import Clock, SystemClock
from chatopsbot.config import Settings, parse_settings
from chatopsbot.plugins import load_plugins
from chatopsbot.zoom.fake import FakeZoom, Message
from chatopsbot.zoom.payloads import bot_notification, button_clicked, signed

SECRET = "test-secret-token"
CHANNEL = "ops@conference.xmpp.zoom.us"


def make_settings(zoom: FakeZoom, **sections: Mapping[str, Any]) -> Settings:
    """Settings pointing at ``zoom``, with ``sections`` merged over the defaults."""
    data: dict[str, Any] = {
        "storage": {"path": ":memory:"},
        "zoom": {
            "client_id": zoom.client_id,
            "client_secret": zoom.client_secret,
            "bot_jid": zoom.robot_jid,
            "secret_token": SECRET,
            "api_base_url": zoom.api_base_url,
            "oauth_url": zoom.oauth_url,
        },
        "outbound": {"rate_limit": 200},
    }
    for name, values in sections.items():
        data[name] = {**data.get(name, {}), **values}
    return parse_settings(data, source="test.toml", environ={})


class Bot:
    """The app under test plus the fake Zoom it talks to."""

    def __init__(self, client: TestClient[Any, Any], zoom: FakeZoom, clock: Clock) -> None:
        self.client = client
        self.zoom = zoom
        self.clock = clock

    @property
    def runtime(self) -> Any:
        return self.client.app[RUNTIME]

    async def post(self, event: dict[str, Any], **kwargs: Any) -> ClientResponse:
        kwargs.setdefault("timestamp", int(self.clock.timestamp()))
        body, headers = signed(SECRET, event, **kwargs)
        return await self.client.post(self.path, data=body, headers=headers)

    @property
    def path(self) -> str:
        return "/zoom/webhook"

    async def command(self, text: str, **fields: Any) -> list[Message]:
        """Send ``text`` as a slash command and return the messages Zoom received for it."""
        fields.setdefault("to_jid", CHANNEL)
        return await self.deliver(bot_notification(text, **fields))

    async def click(self, message: Message, label: str, **fields: Any) -> list[Message]:
        """Click the button labelled ``label`` on ``message``; return the messages that follow."""
        buttons = [
            item
            for block in message.content.get("body", [])
            if block.get("type") == "actions"
            for item in block["items"]
        ]
        found = [b for b in buttons if b["text"] == label]
        assert found, f"no button {label!r} among {[b['text'] for b in buttons]}"
        return await self.deliver(
            button_clicked(
                found[0]["value"],
                message_id=message.message_id,
                text=label,
                original=dict(message.content),
                **fields,
            )
        )

    async def deliver(self, event: dict[str, Any]) -> list[Message]:
        """Post ``event`` signed; return the messages Zoom received (new ones) while handling it."""
        seen = len(self.zoom.requests)
        resp = await self.post(event)
        assert resp.status == 200, await resp.text()
        await self.settle()
        return [
            self.zoom.messages[r.message_id]
            for r in self.zoom.requests[seen:]
            if r.message_id is not None
        ]

    async def settle(self, within: float = 10.0) -> None:
        """Wait until every handler has finished and the outbox is empty."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while self.runtime.tasks or self.runtime.outbox.depth or self.runtime.scheduler.busy:
            assert loop.time() < deadline, "the bot did not settle"
            await asyncio.sleep(0.005)


@pytest.fixture
async def zoom() -> AsyncIterator[FakeZoom]:
    async with FakeZoom() as fake:
        yield fake


@pytest.fixture
def start_bot(aiohttp_client: Any, zoom: FakeZoom) -> Any:
    """``await start_bot(extra={...}, clock=..., **sections)`` starts the app with extra plugins."""

    async def start(
        extra: Mapping[str, object] | None = None, clock: Clock | None = None, **sections: Any
    ) -> Bot:
        settings = make_settings(zoom, **sections)
        plugins = load_plugins(settings.plugins, source=settings.source, extra=extra)
        clock = clock or SystemClock()
        client = await aiohttp_client(create_app(settings, plugins=plugins, clock=clock))
        return Bot(client, zoom, clock)

    return start
