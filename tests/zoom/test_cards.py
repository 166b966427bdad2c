"""chatopsbot.zoom.cards: responses rendered into Zoom chatbot API calls, JSON exactly as sent."""

from __future__ import annotations

import datetime

import pytest

from chatopsbot.context import Conversation
from chatopsbot.markdown import MAX_TEXT
from chatopsbot.responses import (
    Actions,
    Alert,
    AlertLevel,
    Attachment,
    Button,
    ButtonStyle,
    Card,
    CardError,
    ChannelSelect,
    Checkbox,
    Checkboxes,
    DatePicker,
    Delete,
    Divider,
    Edit,
    Field,
    Fields,
    File,
    Image,
    Images,
    MemberSelect,
    Page,
    Pages,
    Paragraph,
    ProgressBar,
    RadioButtons,
    Section,
    Select,
    SelectOption,
    Sent,
    Style,
    Text,
    TextInput,
    TimePicker,
    Video,
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


# Every element of Zoom's catalogue, golden: the JSON is written from the catalogue
# (shared/reference/zoom-cards-and-events.md, Zoom's SDK types), not from the renderer.


def body_of(*items: object) -> list[object]:
    return render_content(Card(body=items))["body"]  # type: ignore[no-any-return]


def test_golden_message_with_style_link_editable_and_per_element_markdown():
    assert body_of(
        Paragraph("Build 42", link="https://ci.example.com/42", style=Style("#d32f2f", bold=True)),
        Paragraph("draft notes", editable=True),
        Paragraph("*shipped*", markdown=True),
    ) == [
        {
            "type": "message",
            "text": "Build 42",
            "link": "https://ci.example.com/42",
            "style": {"color": "#d32f2f", "bold": True, "italic": False},
        },
        {"type": "message", "text": "draft notes", "editable": True},
        {"type": "message", "text": "*shipped*", "is_markdown_support": True},
    ]


def test_golden_fields_with_editable():
    assert body_of(Fields([Field("Owner", "bob", short=True, editable=True)])) == [
        {
            "type": "fields",
            "items": [{"key": "Owner", "value": "bob", "short": True, "editable": True}],
        }
    ]


def test_golden_member_and_channel_selects():
    assert body_of(MemberSelect("Assignee", "a1")) == [
        {"type": "select", "text": "Assignee", "static_source": "members"}
    ]
    assert body_of(ChannelSelect("Post to", "a2")) == [
        {"type": "select", "text": "Post to", "static_source": "channels"}
    ]


def test_golden_file():
    assert body_of(
        File(
            "build.log",
            "https://ci.example.com/42/log",
            "12 kB",
            icon_url="https://ci.example.com/log.png",
        )
    ) == [
        {
            "type": "file",
            "icon_url": "https://ci.example.com/log.png",
            "title": {"text": "build.log", "file_url": "https://ci.example.com/42/log"},
            "description": {"text": "12 kB"},
        }
    ]


def test_golden_progress_bar():
    assert body_of(ProgressBar(40)) == [{"type": "progress_bar", "value": 40}]


def test_golden_date_and_time_pickers():
    assert body_of(
        DatePicker("day-id", datetime.date(2026, 12, 1)),
        TimePicker("time-id", datetime.time(9, 5)),
        DatePicker("open-id"),
    ) == [
        {"type": "datepicker", "action_id": "day-id", "initial_date": "2026-12-01"},
        {"type": "timepicker", "action_id": "time-id", "initial_time": "09:05"},
        {"type": "datepicker", "action_id": "open-id"},
    ]


def test_golden_radio_buttons():
    staging, prod = SelectOption("Staging", "stg"), SelectOption("Production", "prod")
    assert body_of(RadioButtons("env-id", [staging, prod], initial=staging)) == [
        {
            "type": "radio_buttons",
            "action_id": "env-id",
            "initial_option": {"value": "stg", "text": "Staging"},
            "options": [
                {"value": "stg", "text": "Staging"},
                {"value": "prod", "text": "Production"},
            ],
        }
    ]


def test_golden_checkboxes_and_switches():
    boxes = [Checkbox("Email", "email"), Checkbox("Chat", "chat", selected=True)]
    options = [
        {"text": "Email", "value": "email", "initial_selected": False},
        {"text": "Chat", "value": "chat", "initial_selected": True},
    ]
    assert body_of(Checkboxes("n-id", boxes), Checkboxes("s-id", boxes, switch=True)) == [
        {"type": "checkboxes", "action_id": "n-id", "options": options},
        {"type": "checkboxes", "action_id": "s-id", "options": options, "style": "switch"},
    ]


def test_golden_alert():
    assert body_of(Alert("Disk at 91%", AlertLevel.WARNING, closable=True)) == [
        {"type": "alert", "text": "Disk at 91%", "level": "warning", "closable": True}
    ]


A_PNG = "https://x.example.com/a.png"
B_PNG = "https://x.example.com/b.png"


def test_golden_images():
    shots = [Image(A_PNG, "before"), Image(B_PNG)]
    assert body_of(Images(shots, current=1)) == [
        {
            "type": "images",
            "cur_index": 1,
            "images": [
                {
                    "image_url": "https://x.example.com/a.png",
                    "alt_text": "before",
                    "image_index": 0,
                },
                {"image_url": "https://x.example.com/b.png", "alt_text": "", "image_index": 1},
            ],
        }
    ]


def test_golden_plain_text_input():
    field = TextInput(
        "why-id", "Reason", "flaky", "Why?", multiline=True, min_length=3, max_length=200
    )
    assert body_of(field) == [
        {
            "type": "plain_text_input",
            "action_id": "why-id",
            "text": "Reason",
            "value": "flaky",
            "placeholder": "Why?",
            "multiline": True,
            "min_length": 3,
            "max_length": 200,
        }
    ]


def test_golden_video():
    video = Video(
        "Release demo",
        "https://v.example.com/demo.mp4",
        thumbnail_url="https://v.example.com/demo.jpg",
        title_url="https://v.example.com/demo",
        author_name="Alice",
        provider_name="Example",
        provider_icon_url="https://v.example.com/icon.png",
        action_id="video-id",
    )
    assert body_of(video) == [
        {
            "type": "video",
            "title": {"text": "Release demo", "is_markdown_support": False},
            "action_id": "video-id",
            "title_url": "https://v.example.com/demo",
            "video_url": "https://v.example.com/demo.mp4",
            "thumbnail_url": "https://v.example.com/demo.jpg",
            "author_name": "Alice",
            "provider_name": "Example",
            "provider_icon_url": "https://v.example.com/icon.png",
        }
    ]


def test_golden_section_with_footer_icon_and_timestamp():
    at = datetime.datetime(2026, 11, 25, 19, 0, tzinfo=datetime.UTC)
    section = Section(
        [Paragraph("deployed")],
        sidebar_color="#2e7d32",
        footer="CI",
        footer_icon="https://ci.example.com/icon.png",
        timestamp=at,
    )
    assert body_of(section) == [
        {
            "type": "section",
            "sections": [{"type": "message", "text": "deployed"}],
            "sidebar_color": "#2e7d32",
            "footer": "CI",
            "footer_icon": "https://ci.example.com/icon.png",
            "ts": 1795633200000,  # date -u -d @1795633200: 2026-11-25 19:00 UTC
        }
    ]


def test_golden_pages():
    pages = Pages([Page([Paragraph("one")]), Page([Section([Paragraph("two")])])], current=2)
    assert body_of(pages) == [
        {
            "type": "page",
            "cur_page": 2,
            "pages": [
                {"pageNo": 1, "body": [{"type": "message", "text": "one"}]},
                {
                    "pageNo": 2,
                    "body": [{"type": "section", "sections": [{"type": "message", "text": "two"}]}],
                },
            ],
        }
    ]


def test_golden_head_and_sub_head_styles_and_settings():
    card = Card(
        head="Deploy",
        sub_head="api v2.1",
        head_style=Style("#000000", bold=True),
        sub_head_style=Style(italic=True),
        settings={"default_sidebar_color": "#2e7d32"},
    )
    assert render_content(card) == {
        "settings": {"default_sidebar_color": "#2e7d32"},
        "head": {
            "text": "Deploy",
            "style": {"color": "#000000", "bold": True, "italic": False},
            "sub_head": {"text": "api v2.1", "style": {"bold": False, "italic": True}},
        },
    }


# Validation: at build time, naming the element and the problem.


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Select("Environment", []), "Select 'Environment': no options"),
        (
            lambda: Button("Deploy", "x" * 1234),
            "Button 'Deploy': value is 1,234 bytes, over the limit of 1,024",
        ),
        (lambda: Button(" ", "v"), "Button ' ': no text"),
        (lambda: Actions([]), "Actions: no buttons"),
        (
            lambda: Select("Env", [SelectOption("a", "1")], selected=SelectOption("b", "2")),
            "Select 'Env': selected 'b' is not an option",
        ),
        (
            lambda: Select("Env", [SelectOption("a", "1"), SelectOption("b", "1")]),
            "Select 'Env': options 'a' and others share a value",
        ),
        (lambda: MemberSelect("Who", ""), "MemberSelect 'Who': no action_id"),
        (
            lambda: Paragraph("see", link="https://x", markdown=True),
            "Paragraph 'see': markdown and link cannot be combined",
        ),
        (lambda: ProgressBar(140), "ProgressBar: value 140 is not between 0 and 100"),
        (lambda: RadioButtons("r", []), "RadioButtons: no options"),
        (lambda: Images([]), "Images: no images"),
        (
            lambda: TextInput("t", "Reason", min_length=5, max_length=2),
            "TextInput 'Reason': min_length 5 is over max_length 2",
        ),
        (lambda: Pages([Page([Paragraph("x")])], current=3), "Pages: current 3 is not a page of 1"),
        (
            lambda: Section([Paragraph("x")], timestamp=datetime.datetime(2026, 1, 1)),
            "Section: timestamp needs a time zone",
        ),
        (
            lambda: Card(body=[MemberSelect("a", "1"), ChannelSelect("b", "2")]),
            "Card: more than one member or channel select",
        ),
        (
            lambda: Card(body=[Fields([Field("k", "v", editable=True)])], markdown=True),
            "Field 'k': an editable field cannot be in a markdown card",
        ),
        (lambda: File("", "https://x"), "File 'https://x': no title"),
        (lambda: Alert(""), "Alert: no text"),
        (lambda: Paragraph("p", action_id="x"), "Paragraph 'p': an action_id needs editable=True"),
    ],
)
def test_invalid_elements_are_refused_when_built_with_the_element_named(build, message):
    with pytest.raises(CardError) as caught:
        build()
    assert str(caught.value).startswith(message)


def test_card_errors_are_value_errors():
    assert issubclass(CardError, ValueError)


# Length: never refused by Zoom.


def test_a_long_text_is_split_into_several_messages_in_order():
    long = "\n".join(f"line {i:04d} " + "x" * 90 for i in range(100))
    parts = as_responses(Text(long, private=True))
    assert len(parts) == 3
    assert all(isinstance(p, Text) and p.private and len(p.text) <= MAX_TEXT for p in parts)
    texts = [p.text for p in parts]  # type: ignore[union-attr]
    assert texts[0].startswith("line 0000")
    assert texts[1].startswith("(continued) line ")
    assert "".join(t.removeprefix("(continued) ") + "\n" for t in texts).strip() == long


def test_long_text_in_a_card_is_cut_with_a_marker():
    body = body_of(Paragraph("y" * 5000))
    text = body[0]["text"]  # type: ignore[index]
    assert len(text) == MAX_TEXT
    assert text.endswith("… (truncated)")


def test_a_long_text_sent_directly_is_cut_with_a_marker():
    call = render(Text("z" * 5000), robot_jid=ROBOT, conversation=CHANNEL, caller_id=None)
    text = call.body["content"]["body"][0]["text"]  # type: ignore[index]
    assert len(text) == MAX_TEXT
    assert text.endswith("… (truncated)")
