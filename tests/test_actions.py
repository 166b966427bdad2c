"""Buttons and dropdowns: signed values, routing back to the plugin's action, edits in place."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from chatopsbot import (
    ActionContext,
    Actions,
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
from chatopsbot.actions import ActionCodec, InvalidAction
from chatopsbot.zoom.payloads import button_clicked, field_edited, option_selected


def test_codec_round_trip_and_forgery():
    codec = ActionCodec("secret")
    value = codec.encode("polls", "vote", "p1:2:a:b")
    assert value.startswith("cob1:polls:vote:p1:2:a:b:")
    assert codec.decode(value) == ("polls", "vote", "p1:2:a:b")
    with pytest.raises(InvalidAction, match="signature does not match"):
        codec.decode(value.replace("p1:2", "p9:2"))
    with pytest.raises(InvalidAction):
        ActionCodec("rotated").decode(value)
    for junk in ["", "Sushi", "cob1:x", "cob1:a:b:c", "cob1:a:b:c:\udc80"]:
        with pytest.raises(InvalidAction):
            codec.decode(junk)
    with pytest.raises(ValueError, match="limited to 200"):
        codec.encode("p", "a", "x" * 201)


@command("counter", help="A card with a counter")
async def counter(ctx: Context) -> Card:
    return card(ctx, 0)


def card(ctx: Any, n: int) -> Card:
    return Card(
        head=f"Count: {n}",
        body=[
            Actions((ctx.button("+1", "bump", str(n)), ctx.button("boom", "boom"))),
            Select("Pick", (ctx.option("Red", "pick", "red"), ctx.option("Blue", "pick", "blue"))),
        ],
    )


@action("bump")
async def bump(ctx: ActionContext) -> list[Any]:
    n = int(ctx.payload) + 1
    await ctx.store.update("clicks", lambda v: v + 1, default=0)
    return [
        Edit(ctx.message_id, card(ctx, n)),
        Text(f"{ctx.actor.name} bumped it to {n}", private=True),
    ]


@action("boom")
async def boom(ctx: ActionContext) -> None:
    raise RuntimeError("kaboom")


@action("pick")
async def pick(ctx: ActionContext) -> Text:
    return Text(f"picked {','.join(ctx.values)} from {ctx.original.get('head', {}).get('text')}")


@command("profile", help="An editable form")
async def profile(ctx: Context) -> Card:
    return Card(head="Profile", body=[Fields((Field("Team", "ops", editable=True),))])


@action("field_edited")
async def field_edited_handler(ctx: ActionContext) -> list[Any]:
    old, new = ctx.values
    card = Card(head="Profile", body=[Fields((Field(ctx.payload, new, editable=True),))])
    return [Edit(ctx.message_id, card), Text(f"{ctx.payload}: {old} -> {new}", private=True)]


class Counter:
    @hookimpl
    def chatops_commands(self) -> list[Any]:
        return [counter, profile]

    @hookimpl
    def chatops_actions(self) -> list[Any]:
        return [bump, boom, pick, field_edited_handler]


@pytest.fixture
async def bot(start_bot: Any) -> Any:
    return await start_bot(extra={"counter": Counter()})


async def test_a_click_reaches_the_action_which_edits_the_card_in_place(bot):
    [posted] = await bot.command("counter")
    assert posted.text.startswith("Count: 0")
    replies = await bot.click(posted, "+1", user_id="u-bob", user_name="Bob")
    assert [m.text for m in replies] == ["Bob bumped it to 1"]
    assert replies[0].visible_to_user == "u-bob"
    assert posted.edits == 1
    assert posted.text.startswith("Count: 1")
    await bot.click(posted, "+1")
    assert posted.text.startswith("Count: 2")
    assert len(bot.zoom.sent()) == 3  # the card and two private confirmations: no new cards


async def test_a_forged_value_gets_a_private_no_longer_works(bot):
    [posted] = await bot.command("counter")
    for value in ["cob1:counter:bump:99:forged", "Sushi", "cob1:counter:bump"]:
        [reply] = await bot.deliver(button_clicked(value, message_id=posted.message_id))
        assert reply.text.startswith("Sorry, this button no longer works.")
        assert reply.visible_to_user == "u-alice"
    assert posted.edits == 0


async def test_a_button_of_a_removed_action_no_longer_works(bot):
    value = ActionCodec("test-secret-token").encode("counter", "gone", "")
    [reply] = await bot.deliver(button_clicked(value, message_id="m-1"))
    assert reply.text.startswith("Sorry, this button no longer works.")


async def test_an_action_that_fails_gives_a_private_reference(bot):
    [posted] = await bot.command("counter")
    [reply] = await bot.click(posted, "boom")
    assert reply.visible_to_user == "u-alice"
    assert "counter:boom failed (reference " in reply.text


async def test_a_dropdown_pick_reaches_its_action_with_the_original_card(bot):
    [posted] = await bot.command("counter")
    select = next(b for b in posted.content["body"] if b["type"] == "select")
    blue = next(o["value"] for o in select["select_items"] if o["text"] == "Blue")
    [reply] = await bot.deliver(
        option_selected([blue], message_id=posted.message_id, original=dict(posted.content))
    )
    assert reply.text == "picked blue from Count: 0"


async def test_clicks_are_counted_in_metrics(bot):
    [posted] = await bot.command("counter")
    await bot.click(posted, "+1")
    await bot.deliver(button_clicked("junk", message_id=posted.message_id))
    text = await (await bot.client.get("/metrics")).text()
    assert 'chatopsbot_actions_total{action="counter:bump",outcome="ok"} 1.0' in text
    assert 'chatopsbot_actions_total{action="(unknown)",outcome="stale"} 1.0' in text


async def test_a_form_edit_reaches_the_plugin_that_sent_the_card(bot):
    [form] = await bot.command("profile")
    [reply] = await bot.deliver(field_edited("Team", "ops", "platform", message_id=form.message_id))
    assert reply.text == "Team: ops -> platform"
    assert reply.visible_to_user == "u-alice"
    assert form.edits == 1
    assert form.text == "Profile\nTeam: platform"


async def test_a_form_edit_on_an_unknown_card_is_ignored(bot, caplog):
    with caplog.at_level(logging.INFO, "chatopsbot.dispatch"):
        assert await bot.deliver(field_edited("Team", "a", "b", message_id="not-ours")) == []
    assert "field_edited on message not-ours: no plugin handles it" in caplog.text


def test_an_expiring_value_cannot_be_relabelled_to_lose_its_expiry():
    from chatopsbot.actions import ActionCodec, ExpiredAction, InvalidAction

    codec = ActionCodec("secret")
    value = codec.encode("polls", "vote", "p1", expires_at=1000)
    with pytest.raises(ExpiredAction):
        codec.decode(value, now=2000)
    relabelled = "cob1" + value[len("cob2") :]
    with pytest.raises(InvalidAction, match="signature does not match"):
        codec.decode(relabelled, now=2000)
    plain = codec.encode("polls", "vote", "1000:p1")
    with pytest.raises(InvalidAction, match="signature does not match"):
        codec.decode("cob2" + plain[len("cob1") :], now=0)
