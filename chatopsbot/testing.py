"""The test kit for plugin authors: the real bot in-process, a fake Zoom, readable checks.

    from chatopsbot.testing import BotHarness

    async def test_hello():
        async with BotHarness(plugins={"hello": my_plugin}) as bot:
            [reply] = await bot.command("hello Bob", user="alice")
            assert reply.text == "Hello, Bob!"

Everything goes through the real path: a signed webhook into the aiohttp app, the dispatcher,
your handler, the outbound layer, the token exchange and the fake Zoom API, which records what
it received (:class:`~chatopsbot.zoom.fake.Message`: text, who may see it, edits, deletion).
Time is a :class:`~chatopsbot.clock.ManualClock`: :meth:`BotHarness.advance` fires jobs and
timers. The pytest plugin in :mod:`chatopsbot.pytest_plugin` adds a ``chatopsbot_bot`` fixture.
"""

from __future__ import annotations

import asyncio
import datetime
import json as jsonlib
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer
from attrs import frozen

from chatopsbot.app import RUNTIME, create_app, handler_options
from chatopsbot.clock import Clock, ManualClock
from chatopsbot.config import Settings, parse_settings
from chatopsbot.plugins import load_plugins
from chatopsbot.routes import sign_request
from chatopsbot.runtime import Runtime
from chatopsbot.values import User
from chatopsbot.zoom.fake import FakeZoom, Message, Unfurl
from chatopsbot.zoom.payloads import (
    app_deauthorized,
    app_mention,
    bot_notification,
    button_clicked,
    channel_app,
    field_edited,
    form_submitted,
    link_shared,
    message_edited,
    option_selected,
    signed,
)

__all__ = ["BotHarness", "FormValue", "HookResult", "Replies", "user", "user_jid"]

SECRET = "harness-secret-token"  # noqa: S105 - signs webhooks to the bot under test
ACCOUNT = "acct-1"


def user(name: str) -> User:
    """The test user called ``name``: id ``u-<name>``, JID ``<name>@xmpp.zoom.us``."""
    key = name.lower()
    return User(f"u-{key}", f"{key}@xmpp.zoom.us", name.capitalize())


def channel_jid(name: str) -> str:
    """The JID of the test channel ``name`` (``#`` optional)."""
    return f"{name.lstrip('#').lower()}@conference.xmpp.zoom.us"


class Replies(list[Message]):
    """The messages Zoom received while handling one event, with helpers for assertions."""

    @property
    def texts(self) -> list[str]:
        """Each message's text."""
        return [m.text for m in self]

    def only(self) -> Message:
        """The single message; fails with what arrived otherwise."""
        assert len(self) == 1, f"expected one message, got {len(self)}: {self.texts!r}"
        return self[0]


@frozen
class HookResult:
    """What a plugin's HTTP hook answered."""

    status: int
    body: Any


class BotHarness:
    """The bot with chosen plugins and config, against a fake Zoom, driven from a test.

    ``plugins`` (name -> plugin object or class) run beside the installed plugins; one named
    like an installed plugin replaces it, so a plugin under test that is also installed
    (``pip install -e .``) runs as given. ``installed=False`` leaves every installed plugin out.
    """

    def __init__(
        self,
        plugins: Mapping[str, object] | None = None,
        *,
        config: Mapping[str, Mapping[str, Any]] | None = None,
        installed: bool = True,
        clock: Clock | None = None,
        zoom: FakeZoom | None = None,
    ) -> None:
        self._plugins = dict(plugins or {})
        self._settling: asyncio.Future[None] | None = None
        self._settle_deadline = 0.0
        self._settle_quiet = 0
        self._config = config or {}
        self._installed = installed
        self.clock: Clock = clock or ManualClock()
        # A fake Zoom passed in is shared (several bots, one Zoom) and left running.
        self._own_zoom = zoom is None
        self.zoom = zoom or FakeZoom()
        self._client: TestClient[Any, Any] | None = None

    async def __aenter__(self) -> BotHarness:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Start the fake Zoom (unless one was given) and the bot."""
        if self._own_zoom:
            await self.zoom.start()
        try:
            await self._start_bot()
        except BaseException:
            # A bot that fails to start (a bad config, say) must not leave the fake Zoom up.
            if self._own_zoom:
                await self.zoom.close()
            raise

    async def stop(self) -> None:
        """Stop the bot the way production does (drain included); the fake Zoom stays up."""
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def close(self) -> None:
        """Stop the bot and the fake Zoom it started."""
        await self.stop()
        if self._own_zoom:
            await self.zoom.close()

    async def restart(self) -> None:
        """Stop the bot and start a new one with the same storage, clock and fake Zoom.

        Storage survives only on disk: pass ``config={"storage": {"path": ...}}``.
        """
        await self.stop()
        await self._start_bot()

    async def _start_bot(self) -> None:
        settings = self.settings()
        plugins = load_plugins(
            settings.plugins,
            source=settings.source,
            extra=self._plugins,
            entry_points=self._installed,
        )
        app = create_app(settings, plugins=plugins, clock=self.clock)
        server = TestServer(app)
        # Options go to start_server: TestServer's constructor drops them.
        await server.start_server(**handler_options())
        self._client = TestClient(server)
        await self._client.start_server()

    def settings(self) -> Settings:
        """The settings the bot runs with: the fake Zoom's, merged with ``config``."""
        data: dict[str, Any] = {
            "storage": {"path": ":memory:"},
            "outbound": {"rate_limit": 1000, "drain_timeout": 5},
            "zoom": self.zoom.zoom_table(SECRET),
        }
        for name, values in self._config.items():
            data[name] = {**data.get(name, {}), **values}
        if "url" in data["storage"]:
            # A PostgreSQL URL replaces the in-memory default, it does not add to it.
            data["storage"].pop("path")
        return parse_settings(data, source="harness", environ={})

    @property
    def client(self) -> TestClient[Any, Any]:
        """The HTTP client pointed at the bot."""
        assert self._client is not None, "the bot is not running: use `async with BotHarness()`"
        return self._client

    @property
    def runtime(self) -> Runtime:
        """The running app's state (outbox, scheduler, dispatcher)."""
        app = self.client.app
        assert app is not None
        runtime: Runtime = app[RUNTIME]
        return runtime

    # Driving the bot.

    async def command(
        self, text: str, *, user: str = "alice", channel: str | None = "ops", **fields: Any
    ) -> Replies:
        """Type ``text`` after the slash command as ``user`` in ``channel`` (``None``: a DM)."""
        return await self.deliver(
            bot_notification(text, **{**self._where(user, channel), **fields})
        )

    async def click(
        self, message: Message, label: str, *, user: str = "alice", **fields: Any
    ) -> Replies:
        """Click the button labelled ``label`` on ``message``.

        If the current card has no such button, an earlier version's is clicked, as a user
        whose client still shows the old card would.
        """
        found: list[dict[str, Any]] = []
        for content in [message.content, *reversed(message.history)]:
            found = [b for b in _items(content, "actions") if b["text"] == label]
            if found:
                break
        current = [b["text"] for b in _items(message.content, "actions")]
        assert found, f"no button {label!r} on the message; it has {current}"
        where = {**self._where(user, None), "to_jid": message.to_jid, **fields}
        event = button_clicked(
            found[0]["value"],
            message_id=message.message_id,
            text=label,
            original=dict(message.content),
            **where,
        )
        return await self.deliver(event)

    async def select(
        self, message: Message, option: str, *, user: str = "alice", **fields: Any
    ) -> Replies:
        """Pick the dropdown option labelled ``option`` on ``message``."""
        options = _items(message.content, "select")
        found = [o for o in options if o["text"] == option]
        assert found, f"no option {option!r} on the message; it has {[o['text'] for o in options]}"
        where = {**self._where(user, None), "to_jid": message.to_jid, **fields}
        event = option_selected(
            [found[0]["value"]],
            message_id=message.message_id,
            original=dict(message.content),
            **where,
        )
        return await self.deliver(event)

    async def edit_field(
        self, message: Message, key: str, new: str, *, user: str = "alice"
    ) -> Replies:
        """Change the editable field ``key`` of ``message`` to ``new``."""
        fields = _items(message.content, "fields")
        found = [f for f in fields if f["key"] == key]
        assert found, f"no field {key!r} on the message; it has {[f['key'] for f in fields]}"
        where = {**self._where(user, None), "to_jid": message.to_jid}
        event = field_edited(key, found[0]["value"], new, message_id=message.message_id, **where)
        return await self.deliver(event)

    async def mention(
        self,
        text: str,
        *,
        user: str = "alice",
        channel: str = "ops",
        thread: str | None = None,
        mentions: list[tuple[int, int]] | None = None,
    ) -> Replies:
        """Post ``text`` (``"@opsbot deploy status"``) in ``channel`` as ``user``: Zoom's
        ``team_chat.app_mention``. The user is named by id, as Zoom does, so the bot knows them
        as ``u-<name>@xmpp.zoom.us``. ``thread`` posts it inside that thread."""
        event = app_mention(
            text,
            operator_id=f"u-{user.lower()}",
            operator=f"{user.lower()}@example.com",
            channel_id=channel.lstrip("#").lower(),
            channel_name=channel.lstrip("#"),
            thread_id=thread,
            mentions=mentions,
        )
        self.zoom.user_posted(event["payload"]["object"]["message_id"])
        if thread:
            self.zoom.user_posted(thread)
        return await self.deliver(event)

    async def share_link(
        self, link: str, *, user: str = "alice", channel: str = "ops"
    ) -> list[Unfurl]:
        """Post ``link`` in ``channel`` as ``user`` (``team_chat.link_shared``); return the
        unfurls Zoom received while the bot handled it."""
        seen = len(self.zoom.unfurls)
        await self.deliver(
            link_shared(
                link,
                operator_id=f"u-{user.lower()}",
                channel_id=channel.lstrip("#").lower(),
                channel_name=channel.lstrip("#"),
                base_url=self.zoom.api_base_url,
            )
        )
        return self.zoom.unfurls[seen:]

    async def add_to_channel(self, channel: str = "ops", *, user: str = "alice") -> Replies:
        """``user`` adds the bot to ``channel`` (``team_chat.channel_app_added``)."""
        self.zoom.add_bot(channel_jid(channel))
        return await self._channel_app(True, channel, user)

    async def remove_from_channel(self, channel: str = "ops", *, user: str = "alice") -> Replies:
        """``user`` removes the bot from ``channel`` (``team_chat.channel_app_removed``); the
        fake Zoom refuses sends there from now on, as Zoom does."""
        self.zoom.remove_bot(channel_jid(channel))
        return await self._channel_app(False, channel, user)

    async def deauthorize(self, account: str = ACCOUNT, *, keep_data: bool | None = None) -> None:
        """The account removes the app (``app_deauthorized``); ``keep_data`` is Zoom's
        ``user_data_retention`` (absent with ``None``)."""
        await self.deliver(app_deauthorized(account_id=account, retention=keep_data))

    async def _channel_app(self, added: bool, channel: str, user: str) -> Replies:
        event = channel_app(
            added,
            robot_jid=self.zoom.robot_jid,
            operator_id=f"u-{user.lower()}",
            operator=f"{user.lower()}@example.com",
            channel_id=channel.lstrip("#").lower(),
            channel_name=channel.lstrip("#"),
        )
        return await self.deliver(event)

    async def select_member(
        self, message: Message, name: str, *, user: str = "alice", **fields: Any
    ) -> Replies:
        """Pick the test user ``name`` in the member select of ``message`` (the value Zoom
        fills in is taken to be the member's JID)."""
        return await self._zoom_select(message, "members", user_jid(name), name, user, fields)

    async def select_channel(
        self, message: Message, channel: str, *, user: str = "alice", **fields: Any
    ) -> Replies:
        """Pick the test channel ``channel`` in the channel select of ``message`` (the value
        Zoom fills in is taken to be the channel's JID)."""
        value, label = channel_jid(channel), channel.lstrip("#")
        return await self._zoom_select(message, "channels", value, label, user, fields)

    async def _zoom_select(
        self,
        message: Message,
        source: str,
        value: str,
        label: str,
        user: str,
        fields: Mapping[str, Any],
    ) -> Replies:
        found = [e for e in _elements(message.content) if e.get("static_source") == source]
        assert found, f"no {source} select on the message"
        where = {**self._where(user, None), "to_jid": message.to_jid, **fields}
        event = option_selected(
            [value],
            labels=[label],
            message_id=message.message_id,
            original=dict(message.content),
            **where,
        )
        return await self.deliver(event)

    async def edit(
        self, message: Message, new: str, *, text: str | None = None, user: str = "alice"
    ) -> Replies:
        """Change the editable text of ``message`` (the one reading ``text``, if it has
        several) to ``new``."""
        texts = [
            e["text"]
            for e in _elements(message.content)
            if e.get("type") == "message" and e.get("editable")
        ]
        found = [t for t in texts if text is None or t == text]
        assert len(found) == 1, f"no single editable text {text or ''!r}; editable: {texts}"
        where = {**self._where(user, None), "to_jid": message.to_jid}
        event = message_edited(
            found[0], new, message_id=message.message_id, original=dict(message.content), **where
        )
        return await self.deliver(event)

    async def pick(
        self,
        message: Message,
        value: FormValue,
        *,
        element: str | None = None,
        user: str = "alice",
    ) -> Replies:
        """Choose ``value`` in a picker, radio group, checkbox group or text input of
        ``message``, submitted on its own: a date, a time, an option's or box's label (a list
        of them for checkboxes), or text. ``element`` names it (the payload of its
        ``action_id``, or an input's label) if the card has several."""
        return await self.submit(message, {element or "": value}, user=user)

    async def submit(
        self,
        message: Message,
        values: Mapping[str, FormValue],
        *,
        button: str | None = None,
        user: str = "alice",
    ) -> Replies:
        """Fill in form elements of ``message`` (by name, as :meth:`pick`) and submit them,
        with the button labelled ``button`` if given (a ``chat_message.submit`` event)."""
        controls = [e for e in _elements(message.content) if "action_id" in e]
        items = []
        for name, value in values.items():
            matching = [c for c in controls if not name or name in _names(c)]
            known = sorted(n for c in controls for n in _names(c))
            assert len(matching) == 1, f"no single form element {name!r}; the card has {known}"
            items.append(_submitted(matching[0], value))
        if button is not None:
            found = [b for b in _elements_items(message.content, "actions") if b["text"] == button]
            assert found, f"no button {button!r} on the message"
            items.append({"actionItem": {"text": button, "value": found[0]["value"]}})
        where = {**self._where(user, None), "to_jid": message.to_jid}
        event = form_submitted(
            items, message_id=message.message_id, original=dict(message.content), **where
        )
        return await self.deliver(event)

    async def hook(
        self,
        method: str,
        plugin: str,
        path: str = "",
        *,
        json: Any = None,
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> HookResult:
        """Call a plugin's HTTP hook; wait until what it started has been sent."""
        resp = await self.client.request(
            method, f"/hooks/{plugin}{path}", json=json, data=data, headers=dict(headers or {})
        )
        body = await resp.json() if resp.content_type == "application/json" else await resp.text()
        await self.settle()
        return HookResult(resp.status, body)

    async def signed_hook(
        self,
        method: str,
        plugin: str,
        path: str = "",
        *,
        secret: str,
        json: Any = None,
        data: bytes | None = None,
        delivery_id: str = "",
        timestamp: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> HookResult:
        """Call a plugin's HTTP hook signed with ``secret`` under the v1 scheme that
        :func:`chatopsbot.verify_request` checks, at the harness clock's time unless
        ``timestamp`` is given. ``path`` may carry a query (``"/lock?service=api"``)."""
        body = data if data is not None else b"" if json is None else jsonlib.dumps(json).encode()
        url = urlsplit(f"/hooks/{plugin}{path}")
        signature = sign_request(
            secret,
            method,
            url.path,
            query=dict(parse_qsl(url.query, keep_blank_values=True)),
            body=body,
            timestamp=int(self.clock.timestamp()) if timestamp is None else timestamp,
            delivery_id=delivery_id,
        )
        sent = {"Content-Type": "application/json", **signature, **(headers or {})}
        return await self.hook(method, plugin, path, data=body, headers=sent)

    async def advance(self, by: float | timedelta) -> Replies:
        """Move the clock forward, firing due jobs and timers; return what they sent."""
        seen = len(self.zoom.requests)
        assert isinstance(self.clock, ManualClock), "advance() needs the harness's ManualClock"
        await self.clock.advance(by)
        await self.settle()
        return self._since(seen)

    async def deliver(self, event: dict[str, Any]) -> Replies:
        """Post a Zoom event, signed; return the messages sent while handling it."""
        seen = len(self.zoom.requests)
        resp = await self.post(event)
        assert resp.status == 200, f"the webhook answered {resp.status}: {await resp.text()}"
        await self.settle()
        return self._since(seen)

    async def post(self, event: dict[str, Any], **kwargs: Any) -> ClientResponse:
        """Post a Zoom event signed as Zoom would (at the harness clock's time)."""
        kwargs.setdefault("timestamp", int(self.clock.timestamp()))
        body, headers = signed(SECRET, event, **kwargs)
        return await self.client.post(self.path, data=body, headers=headers)

    @property
    def path(self) -> str:
        """The webhook path."""
        return "/zoom/webhook"

    async def settle(self, within: float = 10.0) -> None:
        """Wait until handlers, jobs and the outbox are idle, and stay idle a moment.

        Idle twice in a row, a few milliseconds apart: work that was just woken (a job whose
        time came, a storage call finishing in its thread) has then had the time to start.

        Callers settling at the same time share one watch: 200 clicks at once polling every
        2 ms each would keep the loop, and so the interpreter lock, so busy that the storage
        thread could hardly run, and the bot would not settle at all.
        """
        deadline = asyncio.get_running_loop().time() + within
        watch = self._settling
        if watch is None or watch.done():
            self._settle_deadline = deadline
            watch = self._settling = asyncio.ensure_future(self._watch_until_idle())
            # Retrieved even if every caller was cancelled meanwhile.
            watch.add_done_callback(lambda done: done.cancelled() or done.exception())
        else:
            self._settle_deadline = max(self._settle_deadline, deadline)
        # A caller joining sees the bot idle twice after its own work began, as alone.
        self._settle_quiet = 0
        await asyncio.shield(watch)

    async def _watch_until_idle(self) -> None:
        loop = asyncio.get_running_loop()
        runtime = self.runtime
        self._settle_quiet = 0
        while self._settle_quiet < 2:
            busy = runtime.busy
            self._settle_quiet = 0 if busy else self._settle_quiet + 1
            assert loop.time() < self._settle_deadline, (
                "the bot did not settle: a handler or job still runs"
            )
            await asyncio.sleep(0.002)

    # Reading what Zoom received.

    @property
    def messages(self) -> list[Message]:
        """Every message posted so far (edits and deletions show on them)."""
        return self.zoom.sent()

    def transcript(self) -> str:
        """Everything posted so far, one line per message, for failure messages."""
        lines = []
        for m in self.messages:
            who = f" (only {m.visible_to_user})" if m.visible_to_user else ""
            state = " [deleted]" if m.deleted else f" [edited {m.edits}x]" if m.edits else ""
            lines.append(f"{m.to_jid}{who}{state}: {m.text!r}")
        return "\n".join(lines)

    def _since(self, seen: int) -> Replies:
        return Replies(
            self.zoom.messages[r.message_id]
            for r in self.zoom.requests[seen:]
            if r.message_id is not None
        )

    def _where(self, name: str, channel: str | None) -> dict[str, str]:
        who = user(name)
        if channel is None:
            return {
                "account_id": ACCOUNT,
                "to_jid": who.jid,
                "channel_name": "",
                "user_id": who.id,
                "user_jid": who.jid,
                "user_name": who.name,
            }
        return {
            "account_id": ACCOUNT,
            "to_jid": channel_jid(channel),
            "channel_name": channel.lstrip("#"),
            "user_id": who.id,
            "user_jid": who.jid,
            "user_name": who.name,
        }


FormValue = str | datetime.date | datetime.time | Sequence[str]


def user_jid(name: str) -> str:
    """The JID of the test user ``name``."""
    return user(name).jid


def _elements(content: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every element of a card's body, sections and pages opened."""
    found: list[dict[str, Any]] = []

    def visit(items: Any) -> None:
        for item in items or []:
            found.append(item)
            visit(item.get("sections"))
            for page in item.get("pages") or []:
                visit(page.get("body"))

    visit(content.get("body"))
    return found


def _elements_items(content: Mapping[str, Any], kind: str) -> list[dict[str, Any]]:
    return [item for e in _elements(content) if e.get("type") == kind for item in e["items"]]


def _names(control: Mapping[str, Any]) -> set[str]:
    """What a test may call a form element: its action_id's payload, or its label."""
    value = str(control["action_id"])
    head, _, rest = value.partition(":")
    parts = rest.split(":", 3 if head == "cob2" else 2)
    names = {parts[-1].rpartition(":")[0]} if len(parts) >= 3 else set()
    if control.get("text"):
        names.add(str(control["text"]))
    return names


def _submitted(control: Mapping[str, Any], value: FormValue) -> dict[str, Any]:
    """The submit item for ``value`` chosen in ``control``."""
    kind = str(control["type"])
    item: dict[str, Any] = {"action_id": control["action_id"]}
    if isinstance(value, datetime.datetime):
        raise TypeError("pick a date or a time, not a datetime")
    if isinstance(value, datetime.time):
        item["value"] = value.strftime("%H:%M")
    elif isinstance(value, datetime.date):
        item["value"] = value.isoformat()
    elif kind in ("radio_buttons", "checkboxes"):
        labels = [value] if isinstance(value, str) else list(value)
        by_label = {o["text"]: o["value"] for o in control["options"]}
        missing = [label for label in labels if label not in by_label]
        assert not missing, f"no option {missing[0]!r}; the options are {list(by_label)}"
        chosen = [by_label[label] for label in labels]
        item["value"] = chosen[0] if kind == "radio_buttons" else chosen
    else:
        assert isinstance(value, str), f"{kind} takes text"
        item["value"] = value
        if control.get("text"):
            item["text"] = control["text"]
    return {kind: item}


def _items(content: Mapping[str, Any], kind: str) -> list[dict[str, Any]]:
    """The buttons (``actions``), options (``select``) or fields of a card's body."""
    key = "select_items" if kind == "select" else "items"
    return [
        item
        for block in content.get("body", [])
        if block.get("type") == kind
        for item in block[key]
    ]
