"""The example plugin, tested with nothing but chatopsbot's public test kit."""

from __future__ import annotations

from typing import Any

import pytest
from chatopsbot_dice import DicePlugin

from chatopsbot.testing import BotHarness

SEEDED = {"plugins": {"dice": {"seed": 7}}}


async def test_installed_plugin_is_found_through_its_entry_point():
    # No plugins= here: the bot finds "dice" the way a deployment would.
    async with BotHarness(config=SEEDED) as bot:
        card = (await bot.command("roll 2d6 --label Initiative")).only()
        assert card.text.startswith("Initiative\nAlice rolled 2d6: ")
        assert "Usage: roll [dice] [--label LABEL]" in (await bot.command("help roll")).only().text


async def test_reroll_edits_the_card_and_history_is_kept(chatopsbot_bot: Any):
    bot = await chatopsbot_bot(plugins={"dice": DicePlugin()}, config=SEEDED, installed=False)
    card = (await bot.command("roll 1d20", user="bob")).only()
    first = card.text
    assert await bot.click(card, "Roll again", user="carol") == []
    assert card.edits == 1
    assert "Carol rolled 1d20: " in card.text
    history = (await bot.command("roll history")).only()
    assert history.visible_to_user == "u-alice"
    assert history.text.splitlines() == [first.splitlines()[1], card.text.splitlines()[1]]
    assert (await bot.hook("GET", "dice", "/stats")).body == {"rolls": 2}


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("roll 2x6", "invalid dice '2x6': write NdM, like 2d6"),
        ("roll 50d6", "roll 1 to 20 dice at a time"),
        ("roll 1d1", "dice need at least 2 sides"),
    ],
)
async def test_bad_rolls_get_private_usage(chatopsbot_bot: Any, text: str, problem: str):
    bot = await chatopsbot_bot(plugins={"dice": DicePlugin()}, installed=False)
    reply = (await bot.command(text)).only()
    assert reply.visible_to_user == "u-alice"
    assert reply.text.splitlines()[:2] == [problem, "Usage: roll [dice] [--label LABEL]"]


async def test_config_errors_name_the_key():
    from chatopsbot.config import ConfigError

    with pytest.raises(ConfigError, match=r"plugins\.dice\.max_dice: .max_dice. must be >= 1: 0"):
        async with BotHarness(
            {"dice": DicePlugin()}, config={"plugins": {"dice": {"max_dice": 0}}}, installed=False
        ):
            pass
