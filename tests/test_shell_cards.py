"""The shell shows every card element readably (the element rendering of chatopsbot.shell)."""

from __future__ import annotations

import datetime
import io

from chatopsbot import (
    Actions,
    Alert,
    AlertLevel,
    Attachment,
    Button,
    Card,
    ChannelSelect,
    Checkbox,
    Checkboxes,
    DatePicker,
    Divider,
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
    TextInput,
    TimePicker,
    Video,
)
from chatopsbot.shell import Shell
from chatopsbot.testing import BotHarness
from chatopsbot.zoom.cards import render_content
from chatopsbot.zoom.fake import Message


def shown(card: Card) -> str:
    out = io.StringIO()
    shell = Shell(BotHarness(), out, input)
    message = Message("m1", "ops@conference.xmpp.zoom.us", "acct-1", render_content(card))
    shell._show(message)
    return out.getvalue()


def test_every_element_reads_as_text():
    staging = SelectOption("Staging", "stg")
    card = Card(
        head="Release",
        sub_head="api v2.1",
        body=[
            Paragraph("Notes", link="https://ci.example.com/1"),
            Paragraph("draft", editable=True),
            Fields([Field("Owner", "bob", editable=True)]),
            Actions([Button("Ship", "v1")]),
            Select("Env", [staging]),
            MemberSelect("Who", "a1"),
            Attachment("https://ci.example.com/a", "report"),
            File("build.log", "https://ci.example.com/log", "12 kB"),
            Divider(),
            ProgressBar(40),
            DatePicker("d", datetime.date(2026, 12, 1)),
            TimePicker("t"),
            RadioButtons("r", [staging, SelectOption("Production", "prod")], initial=staging),
            Checkboxes("c", [Checkbox("Email", "e"), Checkbox("Chat", "c", selected=True)]),
            Checkboxes("s", [Checkbox("Page me", "p", selected=True)], switch=True),
            Alert("Disk at 91%", AlertLevel.WARNING),
            Images([Image("https://x.example.com/a.png", "graph"), Image("https://x/b.png")]),
            TextInput("i", "Reason", placeholder="why?", multiline=True),
            Video("Demo", "https://v.example.com/demo.mp4"),
            Section(
                [Paragraph("deployed")],
                footer="CI",
                timestamp=datetime.datetime(2026, 11, 25, 19, 0, tzinfo=datetime.UTC),
            ),
            Pages([Page([Paragraph("one")]), Page([Paragraph("two")])]),
        ],
    )
    assert shown(card) == "\n".join(
        [
            "  [1] bot:",
            "    ** Release **",
            "    api v2.1",
            "    Notes <https://ci.example.com/1>",
            "    draft (editable)",
            "    Owner: bob (editable)",
            "    [1: Ship]",
            "    Env <2: Staging>",
            "    Who <a member to pick>",
            "    [attachment] report <https://ci.example.com/a>",
            "    [file] build.log <https://ci.example.com/log> 12 kB",
            "    --------------------",
            "    [####......] 40%",
            "    [date: 2026-12-01]",
            "    [time: choose]",
            "    (*) Staging  ( ) Production",
            "    [ ] Email  [x] Chat",
            "    [on] Page me",
            "    ! WARNING: Disk at 91%",
            "    [image 1/2] graph <https://x.example.com/a.png>",
            "    Reason: [why?] (several lines)",
            "    [video] Demo <https://v.example.com/demo.mp4>",
            "      deployed",
            "      -- CI · 2026-11-25 19:00 UTC",
            "    (page 1 of 2)",
            "      one",
            "    (page 2 of 2)",
            "      two",
            "",
        ]
    )


def test_a_channel_select_says_zoom_fills_it_in():
    assert shown(Card(body=[ChannelSelect("Where", "a2")])) == (
        "  [1] bot:\n    Where <a channel to pick>\n"
    )
