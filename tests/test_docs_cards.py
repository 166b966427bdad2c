"""The card catalogue of docs/writing-plugins.md, run: its card reaches the fake Zoom with every
element, and its form comes back to its handler."""

from __future__ import annotations

import datetime
import re
from pathlib import Path
from typing import Any

from chatopsbot import Action, Command, hookimpl
from chatopsbot.testing import BotHarness, FormValue

PAGE = Path(__file__).resolve().parent.parent / "docs" / "writing-plugins.md"


def _catalogue() -> dict[str, Any]:
    [code] = [
        c for c in re.findall(r"```python\n(.*?)```", PAGE.read_text(), re.S) if "release plan" in c
    ]
    namespace: dict[str, Any] = {}
    exec(compile(code, str(PAGE), "exec"), namespace)  # noqa: S102 - our own documentation
    return namespace


class Catalogue:
    def __init__(self) -> None:
        self.built = [v for v in _catalogue().values() if isinstance(v, Command | Action)]

    @hookimpl
    def chatops_commands(self) -> list[Any]:
        return [b for b in self.built if isinstance(b, Command)]

    @hookimpl
    def chatops_actions(self) -> list[Any]:
        return [b for b in self.built if isinstance(b, Action)]


def _types(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["type"]} if isinstance(node.get("type"), str) else set()
        return found.union(*(_types(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_types(v) for v in node))
    return set()


async def test_the_catalogue_card_holds_every_element_and_its_form_comes_back():
    async with BotHarness(plugins={"docs": Catalogue()}) as bot:
        card = (await bot.command("release plan")).only()
        assert _types(card.content["body"]) == {
            "alert", "message", "fields", "progress_bar", "images", "video", "attachments",
            "file", "divider", "section", "datepicker", "timepicker", "radio_buttons",
            "checkboxes", "plain_text_input", "actions", "page", "select",
        }  # fmt: skip
        values: dict[str, FormValue] = {
            "day": datetime.date(2026, 12, 4),
            "at": datetime.time(10, 0),
            "notify": ["Email"],
        }
        reply = (await bot.submit(card, values, button="Schedule")).only()
        assert reply.text == "Scheduled for 2026-12-04 10:00 (email)"
