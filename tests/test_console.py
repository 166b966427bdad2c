"""The console's server without a browser: JSON in over HTTP, events out over the WebSocket.

Each action goes through the real path: the console signs a webhook (or a plugin hook), posts it
to the bot's own aiohttp app, the plugin answers, the outbound layer sends to the fake Zoom, and
what the fake Zoom received comes back on the WebSocket.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import signal
import socket
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest

from chatopsbot import (
    ActionContext,
    Card,
    Context,
    Edit,
    Field,
    Fields,
    Select,
    Text,
    action,
    command,
    hookimpl,
)
from chatopsbot.cli import main
from chatopsbot.config import parse_settings
from chatopsbot.console import Console, console_settings, feed, pages, run_console
from chatopsbot.zoom.fake import Message, Request
from tests.sample import Sample

OPS = "ops@conference.xmpp.zoom.us"


@command("palette", help="A card with a dropdown and an editable field")
async def palette(ctx: Context) -> Card:
    return Card(
        head="Palette",
        body=[
            Select(
                "Colour", (ctx.option("Red", "pick", "red"), ctx.option("Blue", "pick", "blue"))
            ),
            Fields((Field("Team", "ops", editable=True),)),
        ],
    )


@action("pick")
async def pick(ctx: ActionContext) -> Text:
    return Text(f"{ctx.actor.name} picked {ctx.payload}")


@action("field_edited")
async def edited(ctx: ActionContext) -> list[Any]:
    old, new = ctx.values
    card = Card(head="Palette", body=[Fields((Field(ctx.payload, new, editable=True),))])
    return [Edit(ctx.message_id, card), Text(f"{ctx.payload}: {old} -> {new}", private=True)]


class Palette:
    @hookimpl
    def chatops_commands(self) -> list[Any]:
        return [palette]

    @hookimpl
    def chatops_actions(self) -> list[Any]:
        return [pick, edited]


async def post_to_zoom(
    console: Console, content: dict[str, Any], to_jid: str = OPS, **extra: Any
) -> None:
    """Send a card straight to the fake Zoom API, as a bot would, to draw any element."""
    zoom = console.zoom
    basic = base64.b64encode(f"{zoom.client_id}:{zoom.client_secret}".encode()).decode()
    async with aiohttp.ClientSession() as session:
        async with session.post(
            zoom.oauth_url,
            params={"grant_type": "client_credentials"},
            headers={"Authorization": f"Basic {basic}"},
        ) as resp:
            token = (await resp.json())["access_token"]
        body = {
            "robot_jid": zoom.robot_jid,
            "to_jid": to_jid,
            "account_id": "acct-console",
            "content": content,
            **extra,
        }
        async with session.post(
            f"{zoom.api_base_url}/im/chat/messages",
            json=body,
            headers={"Authorization": f"Bearer {token}"},
        ) as resp:
            assert resp.status == 201, await resp.text()


class Feed:
    """The events one page receives, and the messages as that page would hold them."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, snapshot: dict[str, Any]) -> None:
        self.ws = ws
        self.snapshot = snapshot
        self.events: list[dict[str, Any]] = []
        self.messages: dict[str, dict[str, Any]] = {m["id"]: m for m in snapshot["messages"]}

    async def until(self, check: Callable[[dict[str, Any]], bool], within: float = 10) -> Any:
        """Read events until one passes ``check``; return it."""
        for event in self.events:
            if check(event):
                return event
        async with asyncio.timeout(within):
            while True:
                event = await self.ws.receive_json()
                self.events.append(event)
                if event["type"] == "message":
                    self.messages[event["message"]["id"]] = event["message"]
                if check(event):
                    return event

    async def message(self, text: str, within: float = 10) -> dict[str, Any]:
        """The first bot message whose card holds ``text``."""
        event = await self.until(
            lambda e: (
                e["type"] == "message"
                and e["message"]["kind"] == "bot"
                and text in json.dumps(e["message"]["content"], ensure_ascii=False)
            ),
            within,
        )
        return self.messages[event["message"]["id"]]


class Client:
    def __init__(self, console: Console, session: aiohttp.ClientSession) -> None:
        self.console = console
        self.session = session

    async def post(self, name: str, data: Any, **kwargs: Any) -> tuple[int, Any]:
        async with self.session.post(
            f"{self.console.url}/console/api/{name}", json=data, **kwargs
        ) as resp:
            return resp.status, await resp.json()

    async def feed(self) -> Feed:
        ws = await self.session.ws_connect(f"{self.console.url}/console/ws")
        snapshot = await ws.receive_json()
        assert snapshot["type"] == "snapshot"
        return Feed(ws, snapshot)


@pytest.fixture
async def console(tmp_path) -> AsyncIterator[Console]:
    started = await Console.start(
        storage=str(tmp_path / "console.db"), plugins={"sample": Sample(), "palette": Palette()}
    )
    try:
        yield started
    finally:
        await started.close()


@pytest.fixture
async def client(console: Console) -> AsyncIterator[Client]:
    async with aiohttp.ClientSession() as session:
        yield Client(console, session)


def _buttons(message: dict[str, Any]) -> dict[str, str]:
    return {b["text"]: b["value"] for b in feed.buttons(message["content"])}


async def test_a_command_goes_in_as_a_signed_webhook_and_its_reply_comes_back(client):
    page = await client.feed()
    assert [p["key"] for p in page.snapshot["people"]] == ["alice", "bob", "carol"]
    assert page.snapshot["slash"] == "/opsbot"
    status, answer = await client.post(
        "say", {"user": "bob", "place": "#ops", "text": "/opsbot ping"}
    )
    assert (status, answer["status"]) == (200, 200)
    typed = await page.until(lambda e: e["type"] == "message" and e["message"]["kind"] == "user")
    assert typed["message"] | {"at": 0} == {
        "kind": "user",
        "id": typed["message"]["id"],
        "conversation": OPS,
        "user": "bob",
        "name": "Bob",
        "text": "/opsbot ping",
        "at": 0,
    }
    webhook = await page.until(lambda e: e["type"] == "log" and e["entry"]["kind"] == "webhook")
    sent = webhook["entry"]["request"]
    assert webhook["entry"]["status"] == 200
    assert sent["event"] == "bot_notification"
    assert sent["payload"]["cmd"] == "ping"
    assert sent["payload"]["userId"] == "u-bob"
    assert webhook["entry"]["headers"]["x-zm-signature"].startswith("v0=")
    reply = await page.message("pong")
    assert reply["conversation"] == OPS
    assert reply["visible_to"] is None
    api = await page.until(lambda e: e["type"] == "log" and e["entry"]["kind"] == "api")
    assert api["entry"]["title"] == "POST /v2/im/chat/messages"
    assert api["entry"]["status"] == 201
    assert api["entry"]["request"]["to_jid"] == OPS
    # What the bot sent is exactly what the fake Zoom holds.
    assert reply["content"] == client.console.zoom.messages[reply["id"]].content


async def test_a_direct_message_without_the_slash_command(client):
    page = await client.feed()
    await client.post("say", {"user": "carol", "place": "dm", "text": "ping"})
    reply = await page.message("pong")
    assert reply["conversation"] == "carol@xmpp.zoom.us"


async def test_poll_votes_edit_the_card_in_place_and_confirm_privately(client):
    page = await client.feed()
    await client.post(
        "say", {"user": "alice", "place": "#ops", "text": 'poll "Lunch?" Pizza Sushi'}
    )
    poll = await page.message("Lunch?")
    status, answer = await client.post(
        "click", {"user": "bob", "message_id": poll["id"], "value": _buttons(poll)["Pizza"]}
    )
    assert (status, answer["status"]) == (200, 200)
    await page.until(
        lambda e: (
            e["type"] == "message"
            and e["message"]["id"] == poll["id"]
            and "Pizza: 1 (Bob)" in json.dumps(e["message"]["content"])
        )
    )
    assert page.messages[poll["id"]]["edits"] == 1
    confirmation = await page.message("You voted Pizza")
    assert confirmation["visible_to"] == "u-bob"
    click = [
        e["entry"] for e in page.events if e["type"] == "log" and e["entry"]["kind"] == "webhook"
    ]
    assert click[-1]["request"]["event"] == "interactive_message_actions"
    assert click[-1]["request"]["payload"]["original"] == poll["content"]
    puts = [e for e in page.events if e["type"] == "log" and e["entry"]["title"].startswith("PUT ")]
    assert puts[0]["entry"]["title"] == f"PUT /v2/im/chat/messages/{poll['id']}"


async def test_edits_deletes_and_threads_come_back_live(client):
    page = await client.feed()
    await client.post("say", {"user": "alice", "place": "#ops", "text": "progress"})
    threaded = await page.message("in thread")
    first = page.messages[threaded["reply_to"]]
    await page.until(
        lambda e: (
            e["type"] == "message"
            and e["message"]["id"] == first["id"]
            and e["message"]["edits"] == 1
        )
    )
    scratch = next(m for m in page.messages.values() if "scratch" in json.dumps(m.get("content")))
    await page.until(
        lambda e: (
            e["type"] == "message"
            and e["message"]["id"] == scratch["id"]
            and e["message"]["deleted"]
        )
    )
    deletes = [
        e["entry"]
        for e in page.events
        if e["type"] == "log" and e["entry"]["title"].startswith("DELETE")
    ]
    assert deletes[0]["title"].startswith(
        f"DELETE /v2/im/chat/messages/{scratch['id']}?account_id="
    )


async def test_a_dropdown_pick_and_an_edited_field_go_in_as_webhooks(client):
    page = await client.feed()
    await client.post("say", {"user": "alice", "place": "#ops", "text": "palette"})
    card = await page.message("Palette")
    [red, _] = feed.options(card["content"])
    status, answer = await client.post(
        "select", {"user": "carol", "message_id": card["id"], "values": [red["value"]]}
    )
    assert (status, answer["status"]) == (200, 200)
    await page.message("Carol picked red")
    status, _ = await client.post(
        "field", {"user": "bob", "message_id": card["id"], "key": "Team", "value": "infra"}
    )
    assert status == 200
    private = await page.message("Team: ops -> infra")
    assert private["visible_to"] == "u-bob"
    hooks = [
        e["entry"]["request"]["event"]
        for e in page.events
        if e["type"] == "log" and e["entry"]["kind"] == "webhook"
    ]
    assert hooks[-2:] == ["interactive_message_select", "interactive_message_fields_editable"]


async def test_a_signed_deploy_hook_posts_its_card(client):
    page = await client.feed()
    [ingest] = [h for h in page.snapshot["hooks"] if h["path"] == "/hooks/deploy"]
    assert ingest["method"] == "POST"
    assert ingest["secret"]
    await client.post("say", {"user": "alice", "place": "#ops", "text": "deploy subscribe all"})
    await page.message("This channel now gets deploys")
    request = {k: ingest[k] for k in ("method", "path", "secret", "body")}
    status, answer = await client.post("hook", request)
    assert status == 200
    assert answer["status"] == 202
    assert answer["response"]["announced"] == 1
    deploy = await page.message("api → prod")
    assert deploy["conversation"] == OPS
    entry = await page.until(lambda e: e["type"] == "log" and e["entry"]["kind"] == "hook")
    assert entry["entry"]["headers"]["X-Chatopsbot-Signature"].startswith("v1=")
    assert entry["entry"]["request"]["service"] == "api"
    # A wrong secret is refused by the plugin, as CI's would be; nothing is posted.
    status, answer = await client.post("hook", {**request, "secret": "wrong"})
    assert answer["status"] == 401
    status, answer = await client.post("hook", {**request, "secret": ""})
    assert answer["status"] == 401
    # Unsigned, with the token as a bearer header instead (the deploy hook takes both).
    bearer = {"Authorization": f"Bearer {ingest['secret']}"}
    running = request["body"].replace('"started"', '"succeeded"')
    status, answer = await client.post(
        "hook", {**request, "secret": "", "headers": bearer, "body": running}
    )
    assert answer["status"] == 202
    status, answer = await client.post("hook", {**request, "headers": {"X-A": 1}})
    assert (status, answer) == (
        400,
        {"error": "headers: expected an object of header names and text values"},
    )
    lock = next(h for h in page.snapshot["hooks"] if h["method"] == "GET")
    status, answer = await client.post(
        "hook", {k: lock[k] for k in ("method", "path", "secret", "body")}
    )
    assert answer == {"status": 200, "response": {"locked": False}}


async def test_injected_429s_are_retried_and_the_reply_still_arrives(client):
    page = await client.feed()
    status, _ = await client.post("fault", {"action": "inject", "status": 429, "count": 2})
    assert status == 200
    await client.post("say", {"user": "alice", "place": "#ops", "text": "ping"})
    await page.message("pong")
    sends = [
        e["entry"]["status"]
        for e in page.events
        if e["type"] == "log" and e["entry"]["kind"] == "api"
    ]
    assert sends == [429, 429, 201]
    notes = [
        e["entry"]["title"]
        for e in page.events
        if e["type"] == "log" and e["entry"]["kind"] == "note"
    ]
    assert notes == ["Next 2 API request(s) answered 429"]


async def test_an_outage_holds_replies_until_zoom_is_restored(client):
    page = await client.feed()
    await client.post("fault", {"action": "outage", "status": 503})
    await client.post("say", {"user": "alice", "place": "#ops", "text": "ping"})
    await page.until(lambda e: e["type"] == "log" and e["entry"]["status"] == 503)
    assert not [m for m in page.messages.values() if m["kind"] == "bot"]
    await page.until(lambda e: e["type"] == "health" and e["health"]["details"].get("queued") == 1)
    await client.post("fault", {"action": "restore"})
    await page.message("pong", within=20)


@pytest.mark.parametrize(
    ("name", "data", "status", "error"),
    [
        (
            "say",
            {"user": "mallory", "place": "#ops", "text": "ping"},
            400,
            "user: expected one of alice, bob, carol, got 'mallory'",
        ),
        (
            "say",
            {"user": "alice", "place": "#nope", "text": "ping"},
            400,
            "place: expected one of #ops, #deploys, #random, dm, got '#nope'",
        ),
        (
            "say",
            {"user": "alice", "place": "#ops", "text": "  /opsbot  "},
            400,
            "text: type a command after /opsbot, for example help",
        ),
        (
            "click",
            {"user": "alice", "message_id": "msg-404", "value": "x"},
            404,
            "message_id: no message 'msg-404' (deleted?)",
        ),
        (
            "select",
            {"user": "alice", "message_id": "msg-1", "values": "red"},
            404,
            "message_id: no message 'msg-1' (deleted?)",
        ),
        (
            "hook",
            {"method": "POST", "path": "/zoom/webhook", "body": ""},
            400,
            "path: expected a plugin hook's path, /hooks/<plugin>...",
        ),
        (
            "hook",
            {"method": "TRACE", "path": "/hooks/deploy"},
            400,
            "method: expected GET, POST, PUT, PATCH or DELETE",
        ),
        (
            "fault",
            {"action": "inject", "status": 418},
            400,
            "status: expected one of 0, 400, 401, 404, 429, 500, 502, 503, 504"
            " (0 drops the connection)",
        ),
        ("fault", {"action": "inject", "status": 429, "count": 0}, 400, "count: expected 1 to 50"),
        (
            "fault",
            {"action": "explode", "status": 429},
            400,
            "action: expected inject, outage or restore",
        ),
        ("say", ["not", "an", "object"], 400, "body: expected a JSON object"),
    ],
)
async def test_bad_requests_get_a_specific_error(client, name, data, status, error):
    got_status, answer = await client.post(name, data)
    assert (got_status, answer) == (status, {"error": error})


async def test_buttons_must_exist_and_be_enabled(client):
    page = await client.feed()
    await client.post(
        "say", {"user": "alice", "place": "#ops", "text": 'poll "Lunch?" Pizza Sushi'}
    )
    poll = await page.message("Lunch?")
    status, answer = await client.post(
        "click", {"user": "bob", "message_id": poll["id"], "value": "forged"}
    )
    assert (status, answer["error"]) == (
        400,
        f"value: no button with value 'forged' on {poll['id']}",
    )
    status, answer = await client.post(
        "select", {"user": "bob", "message_id": poll["id"], "values": ["x"]}
    )
    assert (status, answer["error"]) == (400, f"values: no option 'x' on {poll['id']}")
    status, answer = await client.post(
        "field", {"user": "bob", "message_id": poll["id"], "key": "Pizza", "value": "1"}
    )
    assert (status, answer["error"]) == (400, f"key: no editable field 'Pizza' on {poll['id']}")
    message = client.console.zoom.messages[poll["id"]]
    message.content = {
        "body": [{"type": "actions", "items": [{"text": "Off", "value": "v", "style": "Disabled"}]}]
    }
    status, answer = await client.post(
        "click", {"user": "bob", "message_id": poll["id"], "value": "v"}
    )
    assert (status, answer["error"]) == (400, "that button is disabled: Zoom sends nothing for it")


async def test_requests_another_site_could_make_are_refused(client, console):
    status, answer = await client.post(
        "say",
        {"user": "alice", "place": "#ops", "text": "ping"},
        headers={"Origin": "https://evil.example"},
    )
    assert (status, answer) == (
        403,
        {"error": "cross-origin request from https://evil.example refused"},
    )
    async with client.session.post(
        f"{console.url}/console/api/say", data="user=alice", headers={"Content-Type": "text/plain"}
    ) as resp:
        assert resp.status == 415
        assert await resp.json() == {"error": "send JSON (Content-Type: application/json)"}
    # A site whose name resolves to 127.0.0.1 (DNS rebinding) is not this console.
    status, answer = await client.post(
        "say",
        {"user": "alice", "place": "#ops", "text": "ping"},
        headers={"Host": "evil.example:80"},
    )
    assert (status, answer) == (
        403,
        {"error": "the console answers as 127.0.0.1 or localhost, not evil.example"},
    )
    for host in (f"localhost:{console.url.rsplit(':', 1)[1]}", "127.0.0.1"):
        async with client.session.get(f"{console.url}/console", headers={"Host": host}) as resp:
            assert resp.status == 200, host
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await client.session.ws_connect(
            f"{console.url}/console/ws", headers={"Origin": "http://evil.example"}
        )
    assert refused.value.status == 403
    assert not console.zoom.requests


async def test_the_page_and_its_assets_are_served_from_the_package(client, console):
    async with client.session.get(f"{console.url}/", allow_redirects=False) as resp:
        assert (resp.status, resp.headers["Location"]) == (302, "/console")
    async with client.session.get(f"{console.url}/console") as resp:
        assert resp.status == 200
        page = await resp.text()
        assert "default-src 'self'" in resp.headers["Content-Security-Policy"]
    # Nothing from elsewhere: the page works offline.
    assert "http" not in page.replace('"http-equiv"', "")
    for name, kind in [
        ("console.js", "text/javascript"),
        ("cards.js", "text/javascript"),
        ("console.css", "text/css"),
        ("favicon.svg", "image/svg+xml"),
    ]:
        async with client.session.get(f"{console.url}/console/static/{name}") as resp:
            assert (resp.status, resp.content_type) == (200, kind)
            text = await resp.text()
            for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
                assert sink not in text, (name, sink)
    for bad in ["nope.js", "..%2Fserver.py", "server.py", ".hidden.js"]:
        async with client.session.get(f"{console.url}/console/static/{bad}") as resp:
            assert resp.status == 404, bad


async def test_the_bot_keeps_its_real_routes(client, console):
    async with client.session.get(f"{console.url}/healthz") as resp:
        assert resp.status == 200
    # A webhook not signed with the bot's secret is refused, console or not.
    async with client.session.post(
        f"{console.url}/zoom/webhook", json={"event": "bot_notification"}
    ) as resp:
        assert resp.status == 401


async def test_console_settings_keep_the_config_but_not_its_zoom_or_storage(tmp_path, zoom):
    base = parse_settings(
        {
            "zoom": {
                "client_id": "real",
                "client_secret": "s",
                "bot_jid": "real@xmpp.zoom.us",
                "secret_token": "t",
            },
            "storage": {"url": "postgresql://prod/db"},
            "access": {"admins": ["u-zed"]},
            "plugins": {
                "deploy": {"webhook_token": "from-config"},
                "alerts": {"alertmanager_url": "https://alertmanager.prod.example"},
            },
            "outbound": {"rate_limit": 2},
        },
        source="prod.toml",
        environ={},
    )
    settings = console_settings(
        base,
        zoom=zoom,
        secret="s3",
        storage=str(tmp_path / "c.db"),
        hook_tokens={"deploy": "fresh"},
    )
    assert settings.zoom.api_base_url == zoom.api_base_url
    assert settings.zoom.secret_token.reveal() == "s3"
    assert settings.storage.path == str(tmp_path / "c.db")
    assert settings.storage.url.reveal() == ""
    assert settings.server.host == "127.0.0.1"
    assert settings.access.admins == ("u-zed", "u-alice")
    # Production's token is never shown on the page; production's Alertmanager is never called.
    assert settings.plugins.tables["deploy"]["webhook_token"] == "fresh"
    assert settings.plugins.tables["alerts"]["alertmanager_url"] == ""
    assert settings.outbound.rate_limit == 2
    assert settings.source == "prod.toml"
    bare = console_settings(
        None, zoom=zoom, secret="s", storage="x.db", hook_tokens={"deploy": "fresh"}
    )
    assert bare.plugins.tables["deploy"]["webhook_token"] == "fresh"


@pytest.mark.parametrize(
    ("typed", "cmd"),
    [
        ('/opsbot poll "Lunch?" A B', 'poll "Lunch?" A B'),
        ("/OPSBOT   help", "help"),
        ("help ping", "help ping"),
        ("/opsbotx", "/opsbotx"),
        ("  /opsbot  ", ""),
    ],
)
def test_command_text_drops_the_slash_command(typed, cmd):
    assert feed.command_text(typed) == cmd


def test_buttons_options_and_fields_are_found_in_sections_and_pages():
    content = {
        "body": [
            {"type": "actions", "items": [{"text": "A", "value": "a"}]},
            {
                "type": "section",
                "sections": [{"type": "actions", "items": [{"text": "B", "value": "b"}]}],
            },
            {
                "type": "page",
                "pages": [
                    {
                        "pageNo": 1,
                        "body": [
                            {
                                "type": "section",
                                "sections": [
                                    {
                                        "type": "select",
                                        "select_items": [{"text": "X", "value": "x"}],
                                    },
                                    {
                                        "type": "fields",
                                        "items": [{"key": "K", "value": "v", "editable": True}],
                                    },
                                ],
                            }
                        ],
                    },
                    {
                        "pageNo": 2,
                        "body": [{"type": "actions", "items": [{"text": "C", "value": "c"}]}],
                    },
                ],
            },
            "junk",
        ]
    }
    assert [b["value"] for b in feed.buttons(content)] == ["a", "b", "c"]
    assert [o["value"] for o in feed.options(content)] == ["x"]
    assert [f["key"] for f in feed.fields(content)] == ["K"]
    assert feed.buttons({"body": "junk"}) == []


def test_feed_entries():
    request = Request(
        "DELETE", "/v2/im/chat/messages/m1", None, {"robot_jid": "b", "account_id": "a"}, 5.0, 200
    )
    assert feed.api_entry(3, request) == {
        "seq": 3,
        "kind": "api",
        "at": 5.0,
        "title": "DELETE /v2/im/chat/messages/m1?account_id=a&robot_jid=b",
        "status": 200,
        "ok": True,
        "request": None,
        "response": None,
    }
    failed = Request("POST", "/v2/im/chat/messages", {"x": 1}, {}, 5.0, 429)
    assert feed.api_entry(4, failed)["ok"] is False
    message = Message("m1", OPS, "acct", {"head": {"text": "hi"}}, "u-bob", "m0", True, 2)
    assert feed.bot_message(message, 7.0) == {
        "kind": "bot",
        "id": "m1",
        "conversation": OPS,
        "content": {"head": {"text": "hi"}},
        "visible_to": "u-bob",
        "reply_to": "m0",
        "markdown": True,
        "edits": 2,
        "deleted": False,
        "at": 7.0,
    }


async def test_run_console_serves_until_stopped(tmp_path):
    out = io.StringIO()
    stop = asyncio.Event()
    task = asyncio.create_task(run_console(None, port=0, out=out, stop=stop))
    async with asyncio.timeout(20):
        # The line a user waits for is the signal: poll the output for it.
        while "open http" not in out.getvalue():  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    url = out.getvalue().split("open ", 1)[1].split()[0]
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        assert resp.status == 200
        assert "<title>chatopsbot console</title>" in await resp.text()
    stop.set()
    assert await task == 0


def test_a_port_in_use_is_one_line_and_exit_1(capsys):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["console", "--port", str(port)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"chatopsbot console: cannot listen on 127.0.0.1:{port}: ")
    assert len(err.splitlines()) == 1


def test_a_bad_config_is_reported_like_everywhere_else(tmp_path, capsys):
    path = tmp_path / "bad.toml"
    path.write_text('[zoom]\nclient_id = "x"\n')
    assert main(["console", "--config", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"{path}: zoom.")


class StubSocket:
    def __init__(self) -> None:
        self.closed = False
        self.sent: list[Any] = []
        self.close_code: int | None = None

    async def send_json(self, event: Any) -> None:
        self.sent.append(event)

    async def close(self, *, code: int, message: bytes) -> None:
        self.closed = True
        self.close_code = code


async def test_a_page_that_falls_behind_is_made_to_start_again(monkeypatch):
    monkeypatch.setattr(pages, "PAGE_QUEUE", 2)
    ws = StubSocket()
    page = pages.PageFeed(ws)  # type: ignore[arg-type]
    for n in range(3):
        page.offer({"n": n})  # never waits, whatever the page does
    await asyncio.wait_for(page.write(), 5)
    # What was queued is sent; then the socket is closed, and the page reconnects for a
    # fresh snapshot instead of silently missing an event.
    assert ws.sent == [{"n": 0}, {"n": 1}]
    assert ws.close_code == aiohttp.WSCloseCode.TRY_AGAIN_LATER


async def test_channels_named_in_the_config_or_posted_to_are_listed(tmp_path):
    team = {
        "members": ["Alice", "Bob"],
        "rotation": "weekly",
        "start": "2026-01-05T09:00",
        "timezone": "UTC",
        "channel": "platform@conference.xmpp.zoom.us",
    }
    base = parse_settings(
        {
            "zoom": {"client_id": "a", "client_secret": "b", "bot_jid": "c", "secret_token": "d"},
            "plugins": {"oncall": {"account_id": "acct-1", "teams": {"platform": team}}},
        },
        source="team.toml",
        environ={},
    )
    started = await Console.start(base, storage=str(tmp_path / "c.db"))
    try:
        async with aiohttp.ClientSession() as session:
            client = Client(started, session)
            page = await client.feed()
            keys = [p["key"] for p in page.snapshot["places"]]
            assert keys == ["#ops", "#deploys", "#random", "#platform", "dm"]
            await client.post("say", {"user": "bob", "place": "#platform", "text": "ping"})
            reply = await page.message("pong")
            assert reply["conversation"] == "platform@conference.xmpp.zoom.us"
            # A channel the bot posts to on its own (a job, a hook) appears when it does.
            await post_to_zoom(started, {"head": {"text": "hi"}}, "inc-42@conference.xmpp.zoom.us")
            event = await page.until(lambda e: e["type"] == "places")
            assert [p["key"] for p in event["places"]][-2:] == ["#inc-42", "dm"]
            status, _ = await client.post("say", {"user": "bob", "place": "#inc-42", "text": "x"})
            assert status == 200
    finally:
        await started.close()


async def test_an_edited_message_goes_in_as_zooms_editable_event(client, console):
    page = await client.feed()
    editable = {"body": [{"type": "message", "text": "Standup at 10", "editable": True}]}
    await post_to_zoom(console, editable)
    card = await page.message("Standup at 10")
    status, answer = await client.post(
        "edit",
        {"user": "bob", "message_id": card["id"], "origin": "Standup at 10", "target": "at 11"},
    )
    assert (status, answer["status"]) == (200, 200)
    entry = await page.until(lambda e: e["type"] == "log" and e["entry"]["kind"] == "webhook")
    sent = entry["entry"]["request"]
    assert sent["event"] == "interactive_message_editable"
    assert sent["payload"]["editItem"] == {"origin": "Standup at 10", "target": "at 11"}
    assert sent["payload"]["original"] == editable
    assert sent["payload"]["userId"] == "u-bob"
    status, answer = await client.post(
        "edit", {"user": "bob", "message_id": card["id"], "origin": "nope", "target": "x"}
    )
    assert (status, answer["error"]) == (400, f"origin: no editable text 'nope' on {card['id']}")


async def test_the_command_serves_until_ctrl_c(tmp_path):
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "chatopsbot.cli",
        "console",
        "--port",
        "0",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=tmp_path,
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        assert line.startswith("chatopsbot console: open http://127.0.0.1:")
        url = line.split("open ", 1)[1].split()[0]
        async with aiohttp.ClientSession() as session, session.get(url) as resp:
            assert resp.status == 200
        proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert not list(tmp_path.iterdir())  # its storage lived in a temporary directory
