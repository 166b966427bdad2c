"""chatopsbot.mentions: the command in a message that @mentions the bot."""

from __future__ import annotations

import pytest

from chatopsbot.mentions import command_text
from chatopsbot.zoom.events import Span

COMMANDS = {"deploy", "help", "poll"}


def known(text: str) -> bool:
    return text.split()[0] in COMMANDS


@pytest.mark.parametrize(
    ("text", "spans", "command"),
    [
        # Zoom's spans, end exclusive: cut exactly, whatever the name holds.
        ("@Ops Bot deploy status api", [Span(0, 8)], "deploy status api"),
        ("@Ops Bot, deploy status", [Span(0, 8)], "deploy status"),
        ("  @Ops Bot: help", [Span(2, 10)], "help"),
        # Two leading mentions (the bot and a colleague): both cut.
        ("@bot @alice poll x", [Span(0, 4), Span(5, 11)], "poll x"),
        # A mention later in the text is part of the command.
        ("@bot deploy api @alice", [Span(0, 4), Span(16, 22)], "deploy api @alice"),
        # Spans that do not fit the text are ignored.
        ("@bot deploy", [Span(0, 99)], "deploy"),
        ("@bot deploy", [Span(3, 2)], "deploy"),
        # No spans: up to where a known command starts (a display name may hold spaces).
        ("@Ops Bot deploy status api", [], "deploy status api"),
        ("@opsbot deploy", [], "deploy"),
        ("@opsbot, deploy", [], "deploy"),
        # Quoting and spacing survive for the command's own parser.
        ('@opsbot poll "Lunch?  now" a', [], 'poll "Lunch?  now" a'),
        # No command follows: the first word is the name, the rest is what was typed.
        ("@opsbot frobnicate now", [], "frobnicate now"),
        # Zoom may send the text without the mention (its own sample does).
        ("deploy status", [], "deploy status"),
        ("hello", [], "hello"),
        # Nothing but the mention: an empty command, which asks for help.
        ("@opsbot", [], ""),
        ("@Ops Bot", [Span(0, 8)], ""),
        ("", [], ""),
    ],
)
def test_command_text(text, spans, command):
    assert command_text(text, spans, known) == command


def test_a_command_word_inside_a_long_name_is_not_looked_for_past_four_words():
    assert command_text("@a b c d e deploy", [], known) == "b c d e deploy"
