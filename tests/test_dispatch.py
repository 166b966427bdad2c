"""The dispatcher through the real path: commands, help, usage, handler failures and time
limits, what handlers return and send, and the context they get."""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest

from chatopsbot import Card, Context, Paragraph, command, hookimpl
from chatopsbot.zoom.payloads import bot_notification
from tests.conftest import CHANNEL
from tests.sample import Sample

ALICE = "u-alice"


@pytest.fixture
async def bot(start_bot: Any) -> Any:
    return await start_bot(extra={"sample": Sample()})


@command("baddate", help="Returns a card Zoom could never take")
async def baddate(ctx: Context) -> Card:
    import datetime

    return Card(head="x", body=[Paragraph(datetime.date(2026, 1, 1))])  # type: ignore[arg-type]


async def test_ping_answers_pong_in_the_channel(bot):
    [reply] = await bot.command("ping")
    assert reply.text == "pong"
    assert reply.to_jid == CHANNEL
    assert reply.account_id == "acct-1"
    assert reply.visible_to_user is None
    assert bot.zoom.token_requests == 1


async def test_help_is_private_and_lists_every_command(bot):
    [reply] = await bot.command("help")
    assert reply.visible_to_user == ALICE
    for name in ("help", "ping", "release status", "echo", "whisper"):
        assert re.search(rf"^{name} — ", reply.text, re.M), reply.text


async def test_help_for_one_command_shows_usage_and_options(bot):
    [reply] = await bot.command("help release status")
    assert "Usage: release status <service> [--limit N]" in reply.text
    assert "--limit" in reply.text
    assert reply.visible_to_user == ALICE


async def test_unknown_command_gets_a_private_suggestion(bot):
    [reply] = await bot.command("pnig")
    assert reply.visible_to_user == ALICE
    assert "Did you mean 'ping'?" in reply.text


async def test_bad_arguments_get_private_usage(bot):
    [reply] = await bot.command("release status api --limit many")
    assert reply.visible_to_user == ALICE
    assert reply.text.splitlines()[:2] == [
        "invalid limit 'many': expected an integer",
        "Usage: release status <service> [--limit N]",
    ]
    [reply] = await bot.command("release status")
    assert reply.text.startswith("missing <service>")


async def test_arguments_and_smart_quotes_reach_the_handler(bot):
    [reply] = await bot.command("release status api --limit 3")
    assert reply.text == "api limit=3"
    [reply] = await bot.command("echo “hello world” ‘a b’ plain")
    assert reply.text == "hello world | a b | plain"


async def test_unterminated_quote_is_a_private_usage_error(bot):
    [reply] = await bot.command('echo "oops')
    assert reply.visible_to_user == ALICE
    assert "unterminated" in reply.text


async def test_a_failing_handler_gives_a_private_reference_and_logs_it(bot, caplog):
    with caplog.at_level(logging.ERROR, "chatopsbot.dispatch"):
        [reply] = await bot.command("boom")
    assert reply.visible_to_user == ALICE
    ref = re.search(r"reference ([0-9a-f]{8})", reply.text)
    assert ref, reply.text
    record = next(r for r in caplog.records if getattr(r, "ref", None) == ref.group(1))
    assert record.exc_info
    assert "kaboom" in str(record.exc_info[1])
    assert record.command == "boom"
    # The bot keeps serving.
    [reply] = await bot.command("ping")
    assert reply.text == "pong"


async def test_a_handler_past_its_timeout_is_stopped(bot):
    [reply] = await bot.command("slow")
    assert "took longer than 0.2 s" in reply.text
    assert reply.visible_to_user == ALICE


async def test_a_handler_returning_junk_is_an_error(bot):
    [reply] = await bot.command("wrongtype")
    assert "failed (reference" in reply.text


async def test_send_edit_delete_and_thread_reply(bot):
    replies = await bot.command("progress")
    first, scratch, threaded = replies
    assert first.text == "Done\nall good"  # edited in place
    assert first.edits == 1
    assert scratch.deleted
    assert threaded.reply_to == first.message_id
    methods = [r.method for r in bot.zoom.requests]
    assert methods == ["POST", "POST", "PUT", "DELETE", "POST"]


async def test_private_reply_in_a_one_to_one_chat_is_plain(bot):
    [reply] = await bot.command("whisper", to_jid="alice@xmpp.zoom.us", channel_name="")
    assert reply.visible_to_user is None
    [reply] = await bot.command("whisper")
    assert reply.visible_to_user == ALICE
    assert reply.text == "only you, Alice"


async def test_context_carries_caller_channel_account_and_config(start_bot):
    bot = await start_bot(extra={"sample": Sample()}, plugins={"sample": {"greeting": "hey"}})
    [reply] = await bot.command("fields", account_id="acct-9")
    assert reply.text == (
        "u-alice|alice@xmpp.zoom.us|Alice|ops@conference.xmpp.zoom.us|ops|acct-9|hey|fields"
    )


async def test_a_response_that_cannot_be_sent_is_a_private_error_with_a_reference(start_bot):
    class Bad:
        @hookimpl
        def chatops_commands(self) -> list[Any]:
            return [baddate]

    bot = await start_bot(extra={"bad": Bad()})
    [reply] = await bot.command("baddate")
    assert reply.visible_to_user == ALICE
    assert "baddate failed (reference " in reply.text


async def test_absurdly_long_commands_are_refused_at_once(bot):
    [reply] = await bot.command("echo " + "w " * 30_000)
    assert reply.text == "That command is 60005 characters long; the limit is 4000."
    assert reply.visible_to_user == ALICE


async def test_the_slash_command_alone_shows_help_privately(bot):
    [reply] = await bot.command("   ")
    assert reply.visible_to_user == ALICE
    assert reply.text.startswith("Commands:\n")
    assert "ping — " in reply.text


async def test_a_notification_without_cmd_gets_help_not_a_400(bot):
    event = bot_notification("ignored")
    del event["payload"]["cmd"]
    resp = await bot.post(event)
    assert resp.status == 200
    await bot.settle()
    assert bot.zoom.sent()[-1].text.startswith("Commands:")
