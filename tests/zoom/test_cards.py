"""chatopsbot.zoom.cards: responses rendered into Zoom chatbot API calls, JSON exactly as sent."""

from __future__ import annotations

import pytest

from chatopsbot.context import Conversation
from chatopsbot.responses import (
    Actions,
    Attachment,
    Button,
    ButtonStyle,
    Card,
    Delete,
    Divider,
    Edit,
    Field,
    Fields,
    Paragraph,
    Section,
    Select,
    SelectOption,
    Sent,
    Style,
    Text,
    as_responses,
)
from chatopsbot.zoom.cards import MESSAGES_PATH, ApiCall, RenderError, render, render_content

ROBOT = "bot@xmpp.zoom.us"
CHANNEL_JID = "ops@conference.xmpp.zoom.us"
DM_JID = "alice@xmpp.zoom.us"
CHANNEL = Conversation("acct-1", CHANNEL_JID, "ops")
DM = Conversation("acct-1", DM_JID)
CALLER = "u-alice"


def post_body(**extra: object) -> dict[str, object]:
    return {"robot_jid": ROBOT, "to_jid": CHANNEL_JID, "account_id": "acct-1", **extra}


def text_content(text: str) -> dict[str, object]:
    return {"body": [{"type": "message", "text": text}]}


def test_messages_path():
    assert MESSAGES_PATH == "/im/chat/messages"


# Text and where it goes.


def test_text_in_a_channel():
    call = render(Text("hello"), robot_jid=ROBOT, conversation=CHANNEL, caller_id=CALLER)
    assert call == ApiCall(
        "POST", "/im/chat/messages", "acct-1", body=post_body(content=text_content("hello"))
    )
    assert call.params is None


def test_text_in_a_1_to_1_chat():
    call = render(Text("hi"), robot_jid=ROBOT, conversation=DM, caller_id=CALLER)
    assert call == ApiCall(
        "POST",
        "/im/chat/messages",
        "acct-1",
        body={
            "robot_jid": ROBOT,
            "to_jid": DM_JID,
            "account_id": "acct-1",
            "content": text_content("hi"),
        },
    )


def test_text_without_a_caller_is_fine_when_not_private():
    call = render(Text("tick"), robot_jid=ROBOT, conversation=CHANNEL, caller_id=None)
    assert call.body == post_body(content=text_content("tick"))


def test_the_account_comes_from_the_conversation():
    conversation = Conversation("acct-7", CHANNEL_JID)
    call = render(Text("x"), robot_jid="r@xmpp.zoom.us", conversation=conversation, caller_id=None)
    assert call.account_id == "acct-7"
    assert call.body == {
        "robot_jid": "r@xmpp.zoom.us",
        "to_jid": CHANNEL_JID,
        "account_id": "acct-7",
        "content": text_content("x"),
    }


def test_private_text_in_a_channel_is_visible_to_the_caller():
    call = render(
        Text("only you", private=True), robot_jid=ROBOT, conversation=CHANNEL, caller_id=CALLER
    )
    assert call.body == post_body(content=text_content("only you"), visible_to_user="u-alice")


def test_private_text_in_a_1_to_1_chat_needs_no_visible_to_user():
    call = render(Text("psst", private=True), robot_jid=ROBOT, conversation=DM, caller_id=CALLER)
    assert call.body == {
        "robot_jid": ROBOT,
        "to_jid": DM_JID,
        "account_id": "acct-1",
        "content": text_content("psst"),
    }


def test_private_text_in_a_1_to_1_chat_needs_no_caller():
    call = render(Text("psst", private=True), robot_jid=ROBOT, conversation=DM, caller_id=None)
    assert call.body is not None
    assert "visible_to_user" not in call.body


@pytest.mark.parametrize("caller", [None, ""])
def test_private_text_in_a_channel_without_a_caller_cannot_render(caller):
    with pytest.raises(RenderError) as info:
        render(Text("x", private=True), robot_jid=ROBOT, conversation=CHANNEL, caller_id=caller)
    assert str(info.value) == "a private reply in a channel needs a user to show it to"


def test_render_error_is_a_value_error():
    assert issubclass(RenderError, ValueError)


def test_private_card_in_a_channel():
    card = Card("Secret", private=True)
    call = render(card, robot_jid=ROBOT, conversation=CHANNEL, caller_id="u-bob")
    assert call.body == post_body(content={"head": {"text": "Secret"}}, visible_to_user="u-bob")


def test_reply_to_posts_in_a_thread():
    call = render(
        Text("in thread", reply_to="msg-123"),
        robot_jid=ROBOT,
        conversation=CHANNEL,
        caller_id=CALLER,
    )
    assert call.body == post_body(content=text_content("in thread"), reply_to="msg-123")


def test_private_in_a_1_to_1_chat_needs_no_viewer():
    call = render(Text("x", private=True), robot_jid=ROBOT, conversation=DM, caller_id=None)
    assert call.body == post_body(to_jid=DM_JID, content=text_content("x"))


def test_markdown_sets_is_markdown_support():
    call = render(
        Text("*bold*", markdown=True), robot_jid=ROBOT, conversation=CHANNEL, caller_id=None
    )
    assert call.body == post_body(content=text_content("*bold*"), is_markdown_support=True)


def test_every_option_at_once():
    response = Text("all", markdown=True, private=True, reply_to="m-1")
    call = render(response, robot_jid=ROBOT, conversation=CHANNEL, caller_id=CALLER)
    assert call == ApiCall(
        "POST",
        "/im/chat/messages",
        "acct-1",
        body={
            "robot_jid": ROBOT,
            "to_jid": CHANNEL_JID,
            "account_id": "acct-1",
            "content": text_content("all"),
            "is_markdown_support": True,
            "reply_to": "m-1",
            "visible_to_user": CALLER,
        },
    )


# Cards.


def test_card_with_only_a_head():
    assert render_content(Card("Deploys")) == {"head": {"text": "Deploys"}}


def test_card_head_with_style_and_sub_head():
    card = Card("Deploy", sub_head="api → prod", head_style=Style(color="#FF0000", bold=True))
    assert render_content(card) == {
        "head": {
            "text": "Deploy",
            "style": {"bold": True, "italic": False, "color": "#FF0000"},
            "sub_head": {"text": "api → prod"},
        }
    }


def test_a_style_without_colour_has_no_color_key():
    card = Card("h", head_style=Style(italic=True))
    assert render_content(card) == {"head": {"text": "h", "style": {"bold": False, "italic": True}}}


def test_card_with_only_a_body():
    assert render_content(Card(body=[Paragraph("just text")])) == {
        "body": [{"type": "message", "text": "just text"}]
    }


def test_paragraphs_with_link_and_style():
    card = Card(
        body=[
            Paragraph("plain"),
            Paragraph("runbook", link="https://wiki.example.com/runbook"),
            Paragraph("warning", style=Style(color="#FFA500", italic=True)),
            Paragraph("both", link="https://x.example", style=Style(bold=True)),
        ]
    )
    assert render_content(card) == {
        "body": [
            {"type": "message", "text": "plain"},
            {"type": "message", "text": "runbook", "link": "https://wiki.example.com/runbook"},
            {
                "type": "message",
                "text": "warning",
                "style": {"bold": False, "italic": True, "color": "#FFA500"},
            },
            {
                "type": "message",
                "text": "both",
                "link": "https://x.example",
                "style": {"bold": True, "italic": False},
            },
        ]
    }


def test_fields_render_every_flag_and_blank_values_as_a_space():
    card = Card(
        body=[
            Fields(
                [
                    Field("Service", "api"),
                    Field("Env", "prod", short=True),
                    Field("Owner", "Bob", editable=True),
                    Field("Notes", ""),
                ]
            )
        ]
    )
    assert render_content(card) == {
        "body": [
            {
                "type": "fields",
                "items": [
                    {"key": "Service", "value": "api", "short": False, "editable": False},
                    {"key": "Env", "value": "prod", "short": True, "editable": False},
                    {"key": "Owner", "value": "Bob", "short": False, "editable": True},
                    {"key": "Notes", "value": " ", "short": False, "editable": False},
                ],
            }
        ]
    }


def test_button_styles_have_zooms_names():
    assert [s.value for s in ButtonStyle] == ["Primary", "Default", "Danger", "Disabled"]


def test_actions_with_every_button_style_and_a_limit():
    card = Card(
        body=[
            Actions(
                [
                    Button("Approve", "approve", ButtonStyle.PRIMARY),
                    Button("Later", "later"),
                    Button("Reject", "reject", ButtonStyle.DANGER),
                    Button("Done", "done", ButtonStyle.DISABLED),
                ],
                limit=2,
            )
        ]
    )
    assert render_content(card) == {
        "body": [
            {
                "type": "actions",
                "items": [
                    {"text": "Approve", "value": "approve", "style": "Primary"},
                    {"text": "Later", "value": "later", "style": "Default"},
                    {"text": "Reject", "value": "reject", "style": "Danger"},
                    {"text": "Done", "value": "done", "style": "Disabled"},
                ],
                "limit": 2,
            }
        ]
    }


def test_actions_without_a_limit_have_no_limit_key():
    card = Card(body=[Actions([Button("Go", "go")])])
    assert render_content(card) == {
        "body": [{"type": "actions", "items": [{"text": "Go", "value": "go", "style": "Default"}]}]
    }


def test_select_with_and_without_a_selection():
    options = [SelectOption("Production", "prod"), SelectOption("Staging", "stage")]
    card = Card(
        body=[
            Select("Environment", options),
            Select("Environment", options, selected=SelectOption("Staging", "stage")),
        ]
    )
    items = [{"text": "Production", "value": "prod"}, {"text": "Staging", "value": "stage"}]
    assert render_content(card) == {
        "body": [
            {"type": "select", "text": "Environment", "select_items": items},
            {
                "type": "select",
                "text": "Environment",
                "select_items": items,
                "selected_item": {"text": "Staging", "value": "stage"},
            },
        ]
    }


def test_dividers():
    card = Card(body=[Divider(), Divider(bold=True, dotted=True, color="#CCCCCC")])
    assert render_content(card) == {
        "body": [
            {"type": "divider", "style": {"bold": False, "dotted": False}},
            {"type": "divider", "style": {"bold": True, "dotted": True, "color": "#CCCCCC"}},
        ]
    }


def test_attachments_minimal_and_complete():
    card = Card(
        body=[
            Attachment("https://example.com/a", "A"),
            Attachment(
                "https://example.com/report.pdf",
                "Report",
                description="Q3 numbers",
                image_url="https://example.com/pdf.png",
                ext="pdf",
                size=2048,
            ),
            Attachment("https://example.com/empty", "Empty", size=0),
        ]
    )
    assert render_content(card) == {
        "body": [
            {
                "type": "attachments",
                "resource_url": "https://example.com/a",
                "information": {"title": {"text": "A"}, "description": {"text": ""}},
            },
            {
                "type": "attachments",
                "resource_url": "https://example.com/report.pdf",
                "information": {"title": {"text": "Report"}, "description": {"text": "Q3 numbers"}},
                "img_url": "https://example.com/pdf.png",
                "ext": "pdf",
                "size": 2048,
            },
            {
                "type": "attachments",
                "resource_url": "https://example.com/empty",
                "information": {"title": {"text": "Empty"}, "description": {"text": ""}},
                "size": 0,
            },
        ]
    }


def test_sections_nest_with_sidebar_colour_and_footer():
    card = Card(
        "Incident",
        body=[
            Section(
                [
                    Paragraph("Database down"),
                    Section([Fields([Field("Sev", "1", short=True)])], sidebar_color="#FF0000"),
                    Divider(),
                ],
                sidebar_color="#00FF00",
                footer="paged 2 people",
            ),
            Section([Paragraph("bare")]),
        ],
    )
    assert render_content(card) == {
        "head": {"text": "Incident"},
        "body": [
            {
                "type": "section",
                "sections": [
                    {"type": "message", "text": "Database down"},
                    {
                        "type": "section",
                        "sections": [
                            {
                                "type": "fields",
                                "items": [
                                    {"key": "Sev", "value": "1", "short": True, "editable": False}
                                ],
                            }
                        ],
                        "sidebar_color": "#FF0000",
                    },
                    {"type": "divider", "style": {"bold": False, "dotted": False}},
                ],
                "sidebar_color": "#00FF00",
                "footer": "paged 2 people",
            },
            {"type": "section", "sections": [{"type": "message", "text": "bare"}]},
        ],
    }


def test_a_complete_card_sent_to_a_channel():
    card = Card(
        "Deploy api?",
        sub_head="requested by Alice",
        head_style=Style(bold=True),
        body=[
            Paragraph("Version 1.2.3"),
            Fields([Field("Env", "prod", short=True)]),
            Actions([Button("Approve", "a", ButtonStyle.PRIMARY)]),
            Select("When", [SelectOption("Now", "now")]),
            Divider(),
            Attachment("https://ci.example/1", "Build #1"),
            Section([Paragraph("notes")], footer="f"),
        ],
        markdown=True,
    )
    call = render(card, robot_jid=ROBOT, conversation=CHANNEL, caller_id=CALLER)
    assert call == ApiCall(
        "POST",
        "/im/chat/messages",
        "acct-1",
        body={
            "robot_jid": ROBOT,
            "to_jid": CHANNEL_JID,
            "account_id": "acct-1",
            "content": {
                "head": {
                    "text": "Deploy api?",
                    "style": {"bold": True, "italic": False},
                    "sub_head": {"text": "requested by Alice"},
                },
                "body": [
                    {"type": "message", "text": "Version 1.2.3"},
                    {
                        "type": "fields",
                        "items": [
                            {"key": "Env", "value": "prod", "short": True, "editable": False}
                        ],
                    },
                    {
                        "type": "actions",
                        "items": [{"text": "Approve", "value": "a", "style": "Primary"}],
                    },
                    {
                        "type": "select",
                        "text": "When",
                        "select_items": [{"text": "Now", "value": "now"}],
                    },
                    {"type": "divider", "style": {"bold": False, "dotted": False}},
                    {
                        "type": "attachments",
                        "resource_url": "https://ci.example/1",
                        "information": {"title": {"text": "Build #1"}, "description": {"text": ""}},
                    },
                    {
                        "type": "section",
                        "sections": [{"type": "message", "text": "notes"}],
                        "footer": "f",
                    },
                ],
            },
            "is_markdown_support": True,
        },
    )


def test_card_items_are_stored_as_tuples():
    card = Card("h", body=[Divider()])
    assert card.body == (Divider(),)
    assert Fields([Field("k", "v")]).items == (Field("k", "v"),)
    assert Actions(iter([Button("a", "b")])).buttons == (Button("a", "b"),)


@pytest.mark.parametrize("kwargs", [{}, {"body": []}, {"sub_head": "s"}, {"markdown": True}])
def test_a_card_needs_a_head_or_a_body(kwargs):
    with pytest.raises(ValueError) as info:
        Card(**kwargs)
    assert str(info.value) == "a card needs a head or at least one body item"


def test_a_sub_head_without_a_head_is_not_dropped_silently():
    try:
        content: object = render_content(Card(sub_head="details", body=[Paragraph("x")]))
    except ValueError:
        content = "refused"
    assert content == "refused" or "details" in repr(content)


# Edit and Delete.


def test_edit_puts_the_new_content_to_the_quoted_message_path():
    edit = Edit("msg/1 ?#%", Text("updated"))
    call = render(edit, robot_jid=ROBOT, conversation=CHANNEL, caller_id=CALLER)
    assert call == ApiCall(
        "PUT",
        "/im/chat/messages/msg%2F1%20%3F%23%25",
        "acct-1",
        body={"robot_jid": ROBOT, "account_id": "acct-1", "content": text_content("updated")},
    )
    assert call.params is None


def test_edit_of_a_plain_id():
    call = render(
        Edit("5DD614F4-DD18-6A3B", Card("New")), robot_jid=ROBOT, conversation=DM, caller_id=None
    )
    assert call.method == "PUT"
    assert call.path == "/im/chat/messages/5DD614F4-DD18-6A3B"
    assert call.body == {
        "robot_jid": ROBOT,
        "account_id": "acct-1",
        "content": {"head": {"text": "New"}},
    }


def test_edit_with_markdown_content():
    call = render(
        Edit("m1", Card("*x*", markdown=True)),
        robot_jid=ROBOT,
        conversation=CHANNEL,
        caller_id=None,
    )
    assert call.body == {
        "robot_jid": ROBOT,
        "account_id": "acct-1",
        "content": {"head": {"text": "*x*"}},
        "is_markdown_support": True,
    }


def test_edit_ignores_where_the_content_would_have_been_sent():
    # An edit changes a message in place: no to_jid, thread or visibility goes with it.
    content = Text("x", private=True, reply_to="m0")
    call = render(Edit("m1", content), robot_jid=ROBOT, conversation=CHANNEL, caller_id=None)
    assert call.body == {"robot_jid": ROBOT, "account_id": "acct-1", "content": text_content("x")}


def test_delete_uses_query_parameters_and_no_body():
    call = render(Delete("msg-42"), robot_jid=ROBOT, conversation=CHANNEL, caller_id=CALLER)
    assert call == ApiCall(
        "DELETE",
        "/im/chat/messages/msg-42",
        "acct-1",
        body=None,
        params={"account_id": "acct-1", "robot_jid": ROBOT},
    )


def test_delete_quotes_the_message_id():
    call = render(Delete("a/b c"), robot_jid=ROBOT, conversation=DM, caller_id=None)
    assert call.path == "/im/chat/messages/a%2Fb%20c"
    assert call.params == {"account_id": "acct-1", "robot_jid": ROBOT}


# What handlers may return.


def test_as_responses_of_none_is_empty():
    assert as_responses(None) == ()


@pytest.mark.parametrize("response", [Text("x"), Card("h"), Edit("m", Text("y")), Delete("m")])
def test_as_responses_wraps_a_single_response(response):
    assert as_responses(response) == (response,)


def test_as_responses_keeps_a_sequence_in_order():
    items = [Text("1"), Card("2"), Delete("3")]
    assert as_responses(items) == (Text("1"), Card("2"), Delete("3"))
    assert as_responses(tuple(items)) == tuple(items)
    assert as_responses(item for item in items) == tuple(items)
    assert as_responses([]) == ()


@pytest.mark.parametrize(
    ("result", "message"),
    [
        (42, "a handler must return responses or None, not int"),
        ("hello", "a handler must return responses or None, not str"),
        (b"hello", "a handler must return responses or None, not bytes"),
        (Sent("m1"), "a handler must return responses or None, not Sent"),
        (Button("a", "b"), "a handler must return responses or None, not Button"),
        (True, "a handler must return responses or None, not bool"),
        ([Text("ok"), "oops"], "a handler returned a str among its responses"),
        ([Text("ok"), None], "a handler returned a NoneType among its responses"),
        ((Paragraph("x"),), "a handler returned a Paragraph among its responses"),
        ([[Text("nested")]], "a handler returned a list among its responses"),
        ({"text": "x"}, "a handler returned a str among its responses"),
    ],
)
def test_as_responses_refuses_anything_else(result, message):
    with pytest.raises(TypeError) as info:
        as_responses(result)
    assert str(info.value) == message
