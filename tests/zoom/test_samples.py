"""Every event sample Zoom published (``tests/zoom/samples``, copied unchanged from Zoom's docs
with their ``_source``) through the real path: signed, posted to the webhook, parsed, routed,
answered 2xx, and its effect seen at the fake Zoom or at a plugin hook."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from chatopsbot import Card, Conversation, Paragraph, hookimpl
from chatopsbot.testing import SECRET, BotHarness
from chatopsbot.zoom.fake import FakeZoom
from chatopsbot.zoom.signature import url_validation_answer

SAMPLES = Path(__file__).parent / "samples"
#: The bot Zoom's channel_app_added/removed samples name in ``app_members``.
SAMPLE_BOT = "v1initnyujsz-sk6c3q7cpxg@xmpp.zoom.us"


def sample(name: str) -> dict[str, Any]:
    data = json.loads((SAMPLES / name).read_text())
    assert data["_source"]
    event: dict[str, Any] = data["event"]
    return event


class Recorder:
    def __init__(self) -> None:
        self.left: list[Conversation] = []

    @hookimpl
    def chatops_unfurl(self, link: str) -> Card | None:
        return (
            Card(head="sg", body=[Paragraph(link)]) if link.startswith("https://sg.com/") else None
        )

    @hookimpl
    def chatops_channel_left(self, conversation: Conversation) -> int:
        self.left.append(conversation)
        return 1


@pytest.fixture
async def sampled() -> Any:
    recorder = Recorder()
    zoom = FakeZoom(robot_jid=SAMPLE_BOT)
    await zoom.start()
    bot = BotHarness(
        {"recorder": recorder}, config={"zoom": {"channel_welcome": "Hello, channel"}}, zoom=zoom
    )
    await bot.start()
    yield bot, recorder
    await bot.close()
    await zoom.close()


def test_every_sample_file_is_covered():
    covered = {name for name, *_ in PRIVATE_REPLIES} | NOTHING_SENT | IGNORED | OTHERS
    assert covered == {p.name for p in SAMPLES.glob("*.json")}


#: Commands Zoom's samples carry ("island") are unknown here: a private "unknown command".
PRIVATE_REPLIES = [
    ("marketplace_guide_bot_notification.json", "Unknown command 'island'"),
    ("zoomdocs_bot_notification_json-example.json", "Unknown command 'island'"),
    ("zoomdocs_bot_notification_slash-commands-in-Zoom.json", "Unknown command 'island'"),
    # Buttons and options this bot did not sign.
    ("zoomdocs_interactive_message_actions_json-example.json", "no longer works"),
    ("zoomdocs_interactive_message_select_json-example.json", "no longer works"),
]


@pytest.mark.parametrize(("name", "says"), PRIVATE_REPLIES)
async def test_chatbot_samples_get_a_private_answer(sampled, name, says):
    bot, _ = sampled
    event = sample(name)
    payload = event["payload"]
    [reply] = await bot.deliver(event)
    assert says in reply.text
    assert reply.to_jid == payload["toJid"]
    assert reply.account_id == payload["accountId"]
    assert reply.user_jid == payload["userJid"]
    in_channel = "@conference." in payload["toJid"]
    assert reply.visible_to_user == (payload["userId"] if in_channel else None)


#: Form edits on cards no plugin of this bot drew: acknowledged, logged, nothing sent.
NOTHING_SENT = {
    "zoomdocs_interactive_message_editable_json-example.json",
    "zoomdocs_interactive_message_fields_editable_json-example.json",
}


@pytest.mark.parametrize("name", sorted(NOTHING_SENT))
async def test_form_edit_samples_are_acknowledged_and_logged(sampled, name, caplog):
    bot, _ = sampled
    caplog.set_level(logging.INFO, "chatopsbot.dispatch")
    assert await bot.deliver(sample(name)) == []
    assert "no plugin handles it" in caplog.text


#: Events this bot does not act on: 200 "ignored", never a 4xx.
IGNORED = {
    "zoomdocs_app.authorization_request_created_json-example.json",
    "zoomdocs_team_chat.channel_message_posted_json-example.json",
    "zoomdocs_team_chat.dm_message_posted_json-example.json",
}


@pytest.mark.parametrize("name", sorted(IGNORED))
async def test_other_samples_are_acknowledged_as_ignored(sampled, name):
    bot, _ = sampled
    resp = await bot.post(sample(name))
    assert resp.status == 200
    assert await resp.json() == {"status": "ignored"}


OTHERS = {
    "zoomdocs_endpoint.url_validation.json",
    "zoomdocs_bot_installed_json-example.json",
    "zoomdocs_app_deauthorized_json-example.json",
    "zoomdocs_team_chat.app_mention_json-example.json",
    "zoomdocs_team_chat.link_shared_json-example.json",
    "zoomdocs_team_chat.channel_app_added_json-example.json",
    "zoomdocs_team_chat.channel_app_removed_json-example.json",
}


async def test_url_validation_sample(sampled):
    bot, _ = sampled
    resp = await bot.post(sample("zoomdocs_endpoint.url_validation.json"))
    assert resp.status == 200
    assert await resp.json() == url_validation_answer(SECRET, "qgg8vlvZRS6UYooatFL8Aw")


async def test_bot_installed_sample_gets_the_welcome(sampled):
    bot, _ = sampled
    [reply] = await bot.deliver(sample("zoomdocs_bot_installed_json-example.json"))
    assert reply.text == "Thanks for adding me! Type help to see what I can do."
    assert reply.to_jid == "fvdfvfdvfd@xmpp.zoom.us"
    assert reply.account_id == "CDSCdcsdv"


async def test_app_deauthorized_sample_forgets_the_account(sampled, caplog):
    bot, _ = sampled
    caplog.set_level(logging.INFO, "chatopsbot.dispatch")
    assert await bot.deliver(sample("zoomdocs_app_deauthorized_json-example.json")) == []
    assert "account AAAAAABBBB removed the app: deleted" in caplog.text


async def test_app_mention_sample_by_a_guest_of_another_account_runs_nothing(sampled, caplog):
    # Zoom's sample is a mention by an external user: ids the access rules cannot name.
    bot, _ = sampled
    caplog.set_level(logging.INFO, "chatopsbot.dispatch")
    event = sample("zoomdocs_team_chat.app_mention_json-example.json")
    assert event["payload"]["by_external_user"] is True
    assert await bot.deliver(event) == []
    assert "by a user of another account: not answered" in caplog.text


async def test_app_mention_sample_is_answered_in_its_thread(sampled):
    bot, _ = sampled
    event = sample("zoomdocs_team_chat.app_mention_json-example.json")
    # The same mention by a member of the bot's own account.
    event["payload"]["by_external_user"] = False
    obj = event["payload"]["object"]
    bot.zoom.user_posted(obj["reply_main_message_id"])
    [reply] = await bot.deliver(event)
    # Zoom's sample says "hello": a command this bot does not know.
    assert "Unknown command 'hello'" in reply.text
    assert reply.to_jid == "8amq0wooq1o3a84yyfc2xq@conference.xmpp.zoom.us"
    assert reply.reply_to == obj["reply_main_message_id"]
    assert reply.visible_to_user == event["payload"]["operator_id"]
    assert reply.account_id == event["payload"]["account_id"]


async def test_link_shared_sample_is_unfurled_at_zooms_response_url(sampled):
    bot, _ = sampled
    assert await bot.deliver(sample("zoomdocs_team_chat.link_shared_json-example.json")) == []
    [unfurl] = bot.zoom.unfurls
    # The ids of response_url (Zoom's own address for the answer), not the payload's
    # operator_id, which the sample spells "exampleuserId".
    assert (unfurl.user_id, unfurl.trigger_id) == ("exampleUserId", "exampleTriggerId")
    assert unfurl.text == "sg\nhttps://sg.com/1234w"


async def test_channel_app_added_sample_posts_the_welcome(sampled):
    bot, _ = sampled
    [welcome] = await bot.deliver(sample("zoomdocs_team_chat.channel_app_added_json-example.json"))
    assert welcome.text == "Hello, channel"
    assert welcome.to_jid == "55feed8f37174c11ae4595b8223a932a@conference.xmpp.zoom.us"
    assert welcome.account_id == "1SjvF2ujQWu7RhCnTwgT4A"


async def test_channel_app_removed_sample_reaches_the_plugins(sampled):
    bot, recorder = sampled
    assert (
        await bot.deliver(sample("zoomdocs_team_chat.channel_app_removed_json-example.json")) == []
    )
    assert recorder.left == [
        Conversation(
            "1SjvF2ujQWu7RhCnTwgT4A",
            "55feed8f37174c11ae4595b8223a932a@conference.xmpp.zoom.us",
            "test18",
        )
    ]
