"""Every interactive card element, round trip: a plugin draws it, the test kit acts on it through
a signed webhook, the handler gets the typed value, and its reply reaches the fake Zoom."""

from __future__ import annotations

import datetime
import logging
from typing import Any

from chatopsbot import (
    ActionContext,
    Actions,
    Card,
    ChannelSelect,
    Checkbox,
    Checkboxes,
    Context,
    DatePicker,
    Edit,
    Field,
    Fields,
    MemberSelect,
    Page,
    Pages,
    Paragraph,
    RadioButtons,
    Section,
    Select,
    SelectOption,
    Text,
    TextInput,
    TimePicker,
    action,
    command,
    hookimpl,
)
from chatopsbot.testing import BotHarness, FormValue
from chatopsbot.zoom.payloads import form_submitted, option_selected
from tests.conftest import POSTGRES_URL

CHANNEL = "ops@conference.xmpp.zoom.us"


def _said(ctx: ActionContext) -> Text:
    form = ", ".join(f"{k}={'|'.join(v)}" for k, v in sorted(ctx.form.items()))
    said = f"{ctx.action}({ctx.payload}) by {ctx.actor.name}: {list(ctx.values)}"
    return Text(said + (f" form {form}" if form else ""), private=True)


class Widgets:
    """Draws each interactive element; every action answers with what it received."""

    @hookimpl
    def chatops_commands(self) -> list[Any]:
        @command("assign", help="Assign to a member")
        async def assign(ctx: Context) -> Card:
            return Card(head="Assign", body=[MemberSelect("Who", ctx.action_id("assign", "T-1"))])

        @command("announce", help="Pick a channel")
        async def announce(ctx: Context) -> Card:
            where = ChannelSelect("Where", ctx.action_id("announce", "v2.1"))
            return Card(head="Announce", body=[Section([where], footer="pick one")])

        @command("note", help="An editable note")
        async def note(ctx: Context) -> Card:
            return Card(
                head="Note",
                body=[
                    Paragraph("first draft", editable=True, action_id=ctx.action_id("note", "n1")),
                    Fields(
                        [Field("Owner", "bob", editable=True, action_id=ctx.action_id("owner"))]
                    ),
                ],
            )

        @command("schedule", help="A form")
        async def schedule(ctx: Context) -> Card:
            return Card(
                head="Schedule a deploy",
                body=[
                    DatePicker(ctx.action_id("schedule", "day")),
                    TimePicker(ctx.action_id("schedule", "at"), datetime.time(9, 30)),
                    RadioButtons(
                        ctx.action_id("schedule", "env"),
                        [SelectOption("Staging", "stg"), SelectOption("Production", "prod")],
                    ),
                    Checkboxes(
                        ctx.action_id("schedule", "notify"),
                        [Checkbox("Email", "email"), Checkbox("Chat", "chat", selected=True)],
                        switch=True,
                    ),
                    Pages(
                        [Page([TextInput(ctx.action_id("schedule", "why"), "Reason")])],
                    ),
                    Actions([ctx.button("Schedule", "schedule", "go")]),
                ],
            )

        @command("broken", help="Draws an invalid card")
        async def broken(ctx: Context) -> Card:
            return Card(head="Where to?", body=[Select("Environment", [])])

        @command("secret", help="A private member select that expires")
        async def secret(ctx: Context) -> Card:
            who = MemberSelect("Who", ctx.action_id("assign", "S", expires_in=60))
            return Card(head="Private", body=[who], private=True)

        return [assign, announce, note, schedule, broken, secret]

    @hookimpl
    def chatops_actions(self) -> list[Any]:
        @action("assign")
        async def assign(ctx: ActionContext) -> Text:
            return _said(ctx)

        @action("announce", command="announce")
        async def announce(ctx: ActionContext) -> Text:
            return _said(ctx)

        @action("note")
        async def note(ctx: ActionContext) -> list[Any]:
            return [_said(ctx), Edit(ctx.message_id, Card(head="Note", body=[Paragraph("ok")]))]

        @action("owner")
        async def owner(ctx: ActionContext) -> Text:
            return _said(ctx)

        @action("schedule", command="schedule")
        async def schedule(ctx: ActionContext) -> Text:
            return _said(ctx)

        return [assign, announce, note, owner, schedule]


def _harness(**kwargs: Any) -> BotHarness:
    return BotHarness(plugins={"widgets": Widgets()}, **kwargs)


async def test_a_member_select_reaches_the_plugin_with_the_member_zoom_filled_in():
    async with _harness() as bot:
        card = (await bot.command("assign")).only()
        assert card.content["body"] == [
            {"type": "select", "text": "Who", "static_source": "members"}
        ]
        reply = (await bot.select_member(card, "bob", user="carol")).only()
        assert reply.text == "assign(T-1) by Carol: ['bob@xmpp.zoom.us']"
        assert reply.visible_to_user == "u-carol"


async def test_a_channel_select_in_a_section_reaches_the_plugin():
    async with _harness() as bot:
        card = (await bot.command("announce")).only()
        reply = (await bot.select_channel(card, "#releases")).only()
        assert reply.text == "announce(v2.1) by Alice: ['releases@conference.xmpp.zoom.us']"


async def test_a_member_pick_on_a_card_of_another_plugin_or_none_is_refused(caplog):
    async with _harness() as bot:
        event = option_selected(
            ["bob@xmpp.zoom.us"], message_id="never-sent", to_jid=CHANNEL, channel_name="ops"
        )
        with caplog.at_level(logging.WARNING):
            reply = (await bot.deliver(event)).only()
        assert reply.text.startswith("Sorry, this button no longer works")
        assert "never-sent" in caplog.text


async def test_access_rules_apply_to_a_channel_select_as_to_its_command():
    rules = {"access": {"admins": ["u-alice"], "commands": {"announce": {"admin_only": True}}}}
    async with _harness(config=rules) as bot:
        card = (await bot.command("announce")).only()
        reply = (await bot.select_channel(card, "#releases", user="bob")).only()
        assert reply.text.startswith("Only the bot's admins may do that")
        assert reply.visible_to_user == "u-bob"


async def test_an_editable_text_reaches_its_action_and_the_card_is_edited():
    async with _harness() as bot:
        card = (await bot.command("note")).only()
        assert card.content["body"][0] == {
            "type": "message",
            "text": "first draft",
            "editable": True,
        }
        reply = (await bot.edit(card, "second draft")).only()
        assert reply.text == "note(n1) by Alice: ['first draft', 'second draft']"
        assert card.text == "Note\nok"


async def test_an_editable_field_reaches_the_action_its_action_id_names():
    async with _harness() as bot:
        card = (await bot.command("note")).only()
        reply = (await bot.edit_field(card, "Owner", "carol")).only()
        assert reply.text == "owner() by Alice: ['bob', 'carol']"


async def test_a_form_submits_every_element_to_the_button_action_by_name():
    async with _harness() as bot:
        card = (await bot.command("schedule")).only()
        values: dict[str, FormValue] = {
            "day": datetime.date(2026, 12, 1),
            "at": datetime.time(14, 5),
            "env": "Production",
            "notify": ["Email", "Chat"],
            "Reason": "hotfix for *everyone*",
        }
        reply = (await bot.submit(card, values, button="Schedule")).only()
        assert reply.text == (
            "schedule(go) by Alice: ['2026-12-01', '14:05', 'prod', 'email', 'chat',"
            " 'hotfix for *everyone*'] form at=14:05, day=2026-12-01, env=prod,"
            " notify=email|chat, why=hotfix for *everyone*"
        )


async def test_a_picker_on_its_own_reaches_its_action():
    async with _harness() as bot:
        card = (await bot.command("schedule")).only()
        reply = (await bot.pick(card, datetime.date(2027, 1, 2), element="day")).only()
        assert reply.text == "schedule(day) by Alice: ['2027-01-02'] form day=2027-01-02"


async def test_an_input_named_by_its_label_only_is_found_as_zooms_sample_app_reads_it():
    async with _harness() as bot:
        card = (await bot.command("schedule")).only()
        items = [{"plain_text_input": {"text": "Reason", "value": "flaky test"}}]
        event = form_submitted(items, message_id=card.message_id, to_jid=CHANNEL)
        reply = (await bot.deliver(event)).only()
        assert reply.text == "schedule(why) by Alice: ['flaky test'] form why=flaky test"


async def test_a_forged_action_id_in_a_form_is_refused(caplog):
    async with _harness() as bot:
        card = (await bot.command("schedule")).only()
        forged = "cob1:widgets:schedule:day:AAAAAAAAAAAAAAAAAAAAAA"
        items = [{"datepicker": {"action_id": forged, "value": "2026-01-01"}}]
        event = form_submitted(items, message_id=card.message_id, to_jid=CHANNEL)
        with caplog.at_level(logging.WARNING):
            reply = (await bot.deliver(event)).only()
        assert reply.text.startswith("Sorry, this button no longer works")
        assert "signature does not match" in caplog.text


async def test_a_form_submission_that_does_not_fit_is_acknowledged_and_logged(caplog):
    async with _harness() as bot:
        with caplog.at_level(logging.WARNING):
            response = await bot.post({"event": "chat_message.submit", "payload": {"x": 1}})
            assert response.status == 200
            card = (await bot.command("schedule")).only()
            items: list[Any] = [{"datepicker": {"value": {"no": "string"}}}, "junk"]
            event = form_submitted(items, message_id=card.message_id, to_jid=CHANNEL)
            assert (await bot.deliver(event)).only().text.startswith("Sorry, this button")
        assert "chat_message.submit without account_id, to_jid, user_id, message_id" in caplog.text
        assert "submit_items[1] does not fit" in caplog.text


async def test_an_invalid_card_is_a_handler_error_logged_with_plugin_and_command(caplog):
    async with _harness() as bot:
        with caplog.at_level(logging.ERROR, logger="chatopsbot.dispatch"):
            reply = (await bot.command("broken", user="bob")).only()
        assert reply.text.startswith("Sorry, broken failed (reference ")
        assert reply.visible_to_user == "u-bob"
        [record] = [r for r in caplog.records if "broken failed" in r.getMessage()]
        assert (record.plugin, record.command) == ("widgets", "broken")
        assert "CardError: Select 'Environment': no options" in caplog.text
        assert len(bot.zoom.requests) == 1


async def test_routes_kept_with_the_card_work_on_postgresql(postgres_schema):
    storage = {"url": f"{POSTGRES_URL}?search_path={postgres_schema}"}
    async with _harness(config={"storage": storage}) as bot:
        card = (await bot.command("note")).only()
        assert (await bot.edit(card, "v2")).texts[0] == "note(n1) by Alice: ['first draft', 'v2']"
        card = (await bot.command("assign")).only()
        reply = (await bot.select_member(card, "dave")).only()
        assert reply.text == "assign(T-1) by Alice: ['dave@xmpp.zoom.us']"


async def test_access_rules_apply_to_a_form_submission_as_to_its_command():
    rules = {"access": {"commands": {"schedule": {"deny_users": ["u-bob"]}}}}
    async with _harness(config=rules) as bot:
        card = (await bot.command("schedule", user="alice")).only()
        reply = (await bot.submit(card, {"env": "Staging"}, button="Schedule", user="bob")).only()
        assert reply.text.startswith("You may not do that here.")
        assert reply.visible_to_user == "u-bob"


async def test_a_private_member_select_answers_only_its_viewer_and_only_in_time():
    async with _harness() as bot:
        card = (await bot.command("secret", user="carol")).only()
        assert card.visible_to_user == "u-carol"
        refused = (await bot.select_member(card, "bob", user="dave")).only()
        assert refused.text.startswith("Sorry, this button no longer works")
        assert (await bot.select_member(card, "bob", user="carol")).only().text == (
            "assign(S) by Carol: ['bob@xmpp.zoom.us']"
        )
        await bot.advance(61)
        late = (await bot.select_member(card, "bob", user="carol")).only()
        assert late.text.startswith("Sorry, this button no longer works")
