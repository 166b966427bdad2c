"""Zoom's chatbot events beyond commands and clicks, through the real path: a signed webhook
into the app, the dispatcher, the plugin hooks, the outbox and the fake Zoom.

Mentions run commands in their thread; shared links unfurl; the bot joining or leaving a
channel and an account removing the app reach the plugins; ``user_jid`` names the user a
message goes out for, and a user-managed app sends private replies as direct messages.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest

from chatopsbot import (
    ActionContext,
    Card,
    Context,
    Conversation,
    Paragraph,
    PluginContext,
    Post,
    Text,
    User,
    action,
    command,
    hookimpl,
)
from chatopsbot.zoom.payloads import bot_notification
from tests.bot_process import wait_until
from tests.conftest import CHANNEL
from tests.sample import Sample

ALICE_JID = "alice@xmpp.zoom.us"
#: How the bot knows a user named by id only (team_chat events): the id at the bot's domain.
ALICE_BY_ID = "u-alice@xmpp.zoom.us"


@command("remember", help="Keep a note for this account")
async def remember(ctx: Context) -> Text:
    await ctx.store.set(f"note:{ctx.account_id}:{ctx.actor.id}", {"account": ctx.account_id})
    return Text("noted")


@command("ask", help="A card with a button")
async def ask(ctx: Context) -> Card:
    return Card(head="Go?", body=[_actions(ctx)])


def _actions(ctx: Context) -> Any:
    from chatopsbot import Actions

    return Actions([ctx.button("Go", "go")])


class Hooks:
    """A plugin using every event hook, recording what it was given."""

    def __init__(self) -> None:
        self.left: list[Conversation] = []
        self.removed: list[str] = []
        self.callbacks: list[Any] = []

    @hookimpl
    def chatops_commands(self) -> list[Any]:
        return [remember, ask]

    @hookimpl
    def chatops_actions(self) -> list[Any]:
        return [action("go")(self.go)]

    async def go(self, ctx: ActionContext) -> Text:
        self.callbacks.append(ctx.callback)
        return Text("went")

    @hookimpl
    async def chatops_unfurl(
        self, ctx: PluginContext, link: str, conversation: Conversation, actor: User
    ) -> Card | None:
        if not link.startswith("https://ci.example.com/runs/"):
            return None
        run = link.rsplit("/", 1)[-1]
        return Card(
            head=f"Run {run}", body=[Paragraph(f"shared by {actor.id} in {conversation.jid}")]
        )

    @hookimpl
    def chatops_channel_joined(self, conversation: Conversation, actor: User) -> Card:
        return Card(head="Hello", body=[Paragraph(f"{actor.id} added me to {conversation.name}")])

    @hookimpl
    async def chatops_channel_left(self, conversation: Conversation) -> int:
        self.left.append(conversation)
        return 2

    @hookimpl
    async def chatops_account_removed(self, ctx: PluginContext, account_id: str) -> int:
        self.removed.append(account_id)
        gone = 0
        for key, _ in await ctx.store.list(f"note:{account_id}:"):
            gone += await ctx.store.delete(key)
        return gone


@pytest.fixture
def hooks() -> Hooks:
    return Hooks()


@pytest.fixture
async def bot(start_bot: Any, hooks: Hooks) -> Any:
    return await start_bot(extra={"hooks": hooks, "sample": Sample()})


# Mentions.


async def test_a_mention_runs_the_command_and_answers_in_its_thread(bot):
    [reply] = await bot.mention("@Ops Bot echo hello there")
    assert reply.text == "hello | there"
    assert reply.to_jid == CHANNEL
    mention = bot.zoom.requests[-1].body
    assert reply.reply_to is not None
    assert reply.reply_to.startswith("mention-")
    assert mention["user_jid"] == ALICE_BY_ID


async def test_a_mention_inside_a_thread_answers_in_that_thread(bot):
    [reply] = await bot.mention("@opsbot echo hi", thread="THREAD-ROOT")
    assert reply.reply_to == "THREAD-ROOT"


async def test_zooms_mention_spans_are_cut_exactly(bot):
    # "@Ops Bot" as one mention span, then the command; spacing inside quotes survives.
    [reply] = await bot.mention('@Ops Bot  echo "a  b"', mentions=[(0, 8)])
    assert reply.text == "a  b"


async def test_a_bare_mention_gets_help_privately(bot):
    [reply] = await bot.mention("@opsbot")
    assert "echo" in reply.text
    assert reply.visible_to_user == "u-alice"


async def test_a_mention_passes_the_same_access_checks_as_the_slash_command(start_bot, hooks):
    bot = await start_bot(
        extra={"hooks": hooks, "sample": Sample()},
        access={"commands": {"echo": {"deny_users": ["u-alice"]}}},
    )
    [reply] = await bot.mention("@opsbot echo hi")
    assert "may not run echo" in reply.text
    assert reply.visible_to_user == "u-alice"
    [reply] = await bot.mention("@opsbot echo hi", user="bob")
    assert reply.text == "hi"


async def test_a_mention_by_a_user_of_another_account_is_acknowledged_not_answered(bot, caplog):
    from chatopsbot.zoom.payloads import app_mention

    caplog.set_level(logging.INFO, "chatopsbot.dispatch")
    assert await bot.deliver(app_mention("@opsbot echo hi", account_id="", operator_id="")) == []
    assert "another account" in caplog.text


# Shared links.


async def test_a_known_link_is_unfurled_through_zooms_unfurl_endpoint(bot):
    [unfurl] = await bot.share_link("https://ci.example.com/runs/42")
    assert unfurl.user_id == "u-alice"
    assert unfurl.content["head"] == {"text": "Run 42"}
    assert unfurl.text.endswith(f"shared by u-alice in {CHANNEL}")
    request = bot.zoom.requests[-1]
    assert request.path == f"/v2/im/chat/users/u-alice/unfurls/{unfurl.trigger_id}"
    # Zoom takes the card as a string of JSON.
    assert json.loads(request.body["content"]) == unfurl.content
    assert request.status == 204


async def test_a_link_no_plugin_knows_is_left_alone(bot):
    assert await bot.share_link("https://elsewhere.example.com/x") == []
    assert bot.zoom.requests == []


async def test_a_failing_unfurl_is_retried_by_the_outbox(bot):
    from chatopsbot.zoom.fake import Fault

    bot.zoom.inject(Fault(503))
    [unfurl] = await bot.share_link("https://ci.example.com/runs/7")
    assert unfurl.content["head"] == {"text": "Run 7"}
    assert [r.status for r in bot.zoom.requests] == [503, 204]


# Joining and leaving channels.


async def test_joining_a_channel_posts_the_welcome_and_the_plugins_cards(start_bot, hooks):
    bot = await start_bot(
        extra={"hooks": hooks, "sample": Sample()}, zoom={"channel_welcome": "Hi all, type help"}
    )
    welcome, card = await bot.add_to_channel("ops")
    assert welcome.text == "Hi all, type help"
    assert card.text == "Hello\nu-alice added me to ops"
    assert {welcome.to_jid, card.to_jid} == {CHANNEL}
    assert bot.zoom.requests[0].body["user_jid"] == ALICE_BY_ID


async def test_another_app_joining_is_none_of_the_bots_business(bot):
    from chatopsbot.zoom.payloads import channel_app

    assert await bot.deliver(channel_app(True, robot_jid="other@xmpp.zoom.us")) == []


async def test_leaving_a_channel_tells_the_plugins_and_logs_what_went(bot, hooks, caplog):
    caplog.set_level(logging.INFO, "chatopsbot.dispatch")
    await bot.remove_from_channel("ops", user="bob")
    assert hooks.left == [Conversation("acct-1", CHANNEL, "ops")]
    assert "removed from channel ops by bob@example.com: dropped hooks: 2" in caplog.text


async def test_a_send_to_a_channel_the_bot_left_is_a_dead_letter_at_once(bot):
    await bot.remove_from_channel("ops")
    ctx = bot.runtime.dispatcher.context_for("hooks")
    await bot.runtime.dispatcher.decide(
        "hooks", Post(Conversation("acct-1", CHANNEL), Text("too late")), "test"
    )
    await bot.settle()
    [dead] = await bot.runtime.backend.outbox_list("dead")
    assert dead.attempts == 1
    assert "7004" in dead.error
    assert [r.status for r in bot.zoom.requests] == [403]
    assert ctx.plugin == "hooks"


async def test_a_channel_left_on_a_follower_stops_what_the_leader_was_about_to_send(
    start_bot, hooks, postgres_schema
):
    # Two replicas; the leader sends one message a second. The follower hears that the bot
    # left the channel: the messages the leader had read ahead (one waiting its turn, one in
    # memory) must not go out after that.
    from tests.conftest import POSTGRES_URL

    storage = {"url": f"{POSTGRES_URL}?search_path={postgres_schema}"}
    replicas = [
        await start_bot(extra={"hooks": hooks}, storage=storage, outbound={"rate_limit": 1})
        for _ in range(2)
    ]
    leader, follower = replicas
    assert leader.runtime.leading
    assert not follower.runtime.leading
    ops = Conversation("acct-1", CHANNEL)
    await leader.runtime.dispatcher.decide(
        "hooks", [Post(ops, Text(f"number {n}")) for n in range(4)], "test"
    )

    def posts() -> list[Any]:
        return [r for r in leader.zoom.requests if r.method == "POST"]

    await wait_until(lambda: len(posts()) == 1, within=10, what="the first send")
    await follower.remove_from_channel("ops")
    await asyncio.sleep(3.5)  # three more sends' time at one a second
    assert [r.status for r in posts()] == [201]


# Installation and deauthorization.


async def test_the_install_welcome_is_configurable(start_bot, hooks):
    from chatopsbot.zoom.payloads import bot_installed

    bot = await start_bot(
        extra={"hooks": hooks, "sample": Sample()}, zoom={"welcome": "Welcome aboard!"}
    )
    [reply] = await bot.deliver(bot_installed())
    assert reply.text == "Welcome aboard!"
    assert reply.to_jid == ALICE_JID
    assert reply.user_jid == ALICE_JID


async def test_an_empty_install_welcome_says_nothing(start_bot, hooks):
    from chatopsbot.zoom.payloads import bot_installed

    bot = await start_bot(extra={"hooks": hooks, "sample": Sample()}, zoom={"welcome": ""})
    assert await bot.deliver(bot_installed()) == []


# A missing or empty cmd is a request for help, never a 400 (Zoom does not resend a 4xx).


@pytest.mark.parametrize("missing", [True, False])
async def test_an_empty_or_missing_cmd_runs_help(bot, missing):
    event = bot_notification("", account_id="acct-1")
    if missing:
        del event["payload"]["cmd"]
    [reply] = await bot.deliver(event)
    assert "echo" in reply.text
    assert "remember" in reply.text


# user_jid: on whose behalf a message goes out.


async def test_replies_edits_and_deletes_carry_the_invoking_users_jid(bot):
    await bot.command("progress", channel="ops")
    by_method = {(r.method, r.path.count("/")): r for r in bot.zoom.requests}
    sent = [r for r in bot.zoom.requests if r.method == "POST"]
    assert {r.body["user_jid"] for r in sent} == {ALICE_JID}
    assert by_method["PUT", 5].body["user_jid"] == ALICE_JID
    assert by_method["DELETE", 5].params["user_jid"] == ALICE_JID


async def test_a_click_is_answered_on_behalf_of_the_clicker_with_zooms_callback(bot, hooks):
    [card] = await bot.command("ask")
    await bot.click(card, "Go", user="bob")
    assert bot.zoom.requests[-1].body["user_jid"] == "bob@xmpp.zoom.us"
    assert hooks.callbacks == [None]


async def test_a_post_from_a_job_or_hook_carries_whom_it_is_for(bot):
    await bot.runtime.dispatcher.decide(
        "hooks",
        Post(Conversation("acct-1", CHANNEL), Text("deployed"), on_behalf_of="carol@xmpp.zoom.us"),
        "test",
    )
    await bot.settle()
    assert bot.zoom.requests[-1].body["user_jid"] == "carol@xmpp.zoom.us"


async def test_a_post_for_nobody_in_particular_has_no_user_jid(bot):
    await bot.runtime.dispatcher.decide(
        "hooks", Post(Conversation("acct-1", CHANNEL), Text("deployed")), "test"
    )
    await bot.settle()
    assert "user_jid" not in bot.zoom.requests[-1].body


@pytest.fixture
async def user_bot(start_bot: Any, hooks: Hooks, zoom: Any) -> Any:
    zoom.app_type = "user"
    return await start_bot(extra={"hooks": hooks, "sample": Sample()}, zoom={"app_type": "user"})


async def test_a_user_managed_app_sends_private_replies_as_direct_messages(user_bot):
    [reply] = await user_bot.command("nosuchcommand", channel="ops")
    assert "Unknown command" in reply.text
    assert reply.to_jid == ALICE_JID
    assert reply.visible_to_user is None
    assert reply.user_jid == ALICE_JID


async def test_a_user_managed_app_answers_in_the_channel_for_the_user(user_bot):
    [reply] = await user_bot.command("echo hi", channel="ops")
    assert reply.to_jid == CHANNEL
    assert reply.user_jid == ALICE_JID


async def test_a_user_managed_app_refuses_a_channel_post_for_nobody(user_bot, caplog):
    with pytest.raises(Exception, match="on_behalf_of"):
        await user_bot.runtime.dispatcher.decide(
            "hooks", Post(Conversation("acct-1", CHANNEL), Text("deployed")), "test"
        )
    assert user_bot.zoom.requests == []


async def test_app_type_is_checked_at_startup(start_bot):
    from chatopsbot.config import ConfigError

    with pytest.raises(ConfigError, match=r"zoom\.app_type: must be one of admin, user"):
        await start_bot(zoom={"app_type": "team"})


@pytest.mark.parametrize(
    ("field", "message"),
    [
        ("channel_id", "body.payload.object.channel_id: missing"),
        ("message_id", "body.payload.object.message_id: missing"),
    ],
)
async def test_a_malformed_mention_is_a_400_and_a_log_line(bot, caplog, field, message):
    from chatopsbot.zoom.payloads import app_mention

    event = app_mention("@opsbot echo hi")
    del event["payload"]["object"][field]
    resp = await bot.post(event)
    assert resp.status == 400
    assert message in await resp.text()
    assert message in caplog.text
    await bot.settle()
    assert bot.zoom.requests == []


async def test_a_malformed_shared_link_is_a_400_and_a_log_line(bot, caplog):
    from chatopsbot.zoom.payloads import link_shared

    event = link_shared("https://ci.example.com/runs/1")
    event["payload"]["object"]["link"] = 42
    resp = await bot.post(event)
    assert resp.status == 400
    assert "body.payload.object.link: expected a string, got a number" in caplog.text


def test_zoom_event_settings_and_their_defaults():
    from chatopsbot.config import DEFAULT_WELCOME, parse_settings

    base = {
        "client_id": "a",
        "client_secret": "b",
        "bot_jid": "c@xmpp.zoom.us",
        "secret_token": "d",
    }
    zoom = parse_settings({"zoom": base}, environ={}).zoom
    assert (zoom.app_type, zoom.welcome, zoom.channel_welcome) == ("admin", DEFAULT_WELCOME, "")
    zoom = parse_settings(
        {"zoom": {**base, "app_type": "User", "welcome": " Hi ", "channel_welcome": "Yo"}},
        environ={},
    ).zoom
    assert (zoom.app_type, zoom.welcome, zoom.channel_welcome) == ("user", "Hi", "Yo")


async def test_messages_still_queued_for_a_channel_the_bot_left_are_dropped(bot, caplog):
    from chatopsbot.outbound.sender import encode_call
    from chatopsbot.storage import NewMessage
    from chatopsbot.zoom.cards import ApiCall

    def message(to_jid: str) -> NewMessage:
        content = {"body": [{"type": "message", "text": f"to {to_jid}"}]}
        body = {"robot_jid": "bot@xmpp.zoom.us", "to_jid": to_jid, "account_id": "acct-1"}
        call = ApiCall("POST", "/im/chat/messages", "acct-1", body={**body, "content": content})
        return NewMessage(lane=to_jid, account="acct-1", payload=encode_call(call))

    # Written by another process, say: queued, not yet picked up by this one's sender.
    dev = "dev@conference.xmpp.zoom.us"
    await bot.runtime.backend.outbox_add([message(CHANNEL), message(dev)], bot.clock.timestamp())
    caplog.set_level(logging.INFO, "chatopsbot.dispatch")
    await bot.remove_from_channel("ops")
    await bot.settle()
    assert "1 queued message(s) to it dropped" in caplog.text
    # The other channel's message went out; none was tried in the channel the bot left.
    assert [m.to_jid for m in bot.messages] == [dev]
    assert [r.status for r in bot.zoom.requests] == [201]


async def test_an_action_handler_gets_zooms_callback_and_the_log_never_shows_the_token(
    bot, hooks, caplog
):
    from chatopsbot.zoom.events import Callback
    from chatopsbot.zoom.payloads import button_clicked

    caplog.set_level(logging.DEBUG)
    [card] = await bot.command("ask")
    [button] = card.content["body"][0]["items"]
    event = button_clicked(button["value"], message_id=card.message_id, text="Go")
    event["callback_url"] = "https://api.zoom.us/v2/im/chat/callback/abc"
    event["callback_token"] = "eyJ.secret-callback-token.sig"
    [reply] = await bot.deliver(event)
    assert reply.text == "went"
    assert hooks.callbacks == [Callback(event["callback_url"], event["callback_token"])]
    assert "secret-callback-token" not in caplog.text
