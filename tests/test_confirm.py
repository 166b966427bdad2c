"""Risky commands ask first: only the caller sees and may answer, once, within five minutes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chatopsbot import Arg, Context, Text, command, hookimpl
from chatopsbot.clock import ManualClock
from chatopsbot.dispatch import STALE_BUTTON
from chatopsbot.zoom.payloads import bot_notification, button_clicked


class Deployer:
    def __init__(self) -> None:
        self.runs: list[tuple[str, str]] = []

    @hookimpl
    def chatops_commands(self) -> list[Any]:
        @command(
            "rollback",
            help="Roll a service back",
            args=(Arg("service"), Arg("env", choices=("staging", "prod"))),
            confirm="Roll {service} back in {env}?",
        )
        async def rollback(ctx: Context) -> Text:
            self.runs.append((ctx.args["service"], ctx.actor.name))
            return Text(f"{ctx.args['service']} rolled back by {ctx.actor.name}")

        return [rollback]


@pytest.fixture
async def setup(start_bot: Any) -> Any:
    clock = ManualClock(datetime.now(UTC))
    deployer = Deployer()
    bot = await start_bot(extra={"rollbacks": deployer}, clock=clock)
    return bot, deployer, clock


async def test_the_caller_confirms_privately_and_then_the_command_runs(setup):
    bot, deployer, _ = setup
    [question] = await bot.command("rollback api prod")
    assert question.visible_to_user == "u-alice"
    assert question.text.startswith("Roll api back in prod?")
    assert deployer.runs == []
    confirm = next(
        b["value"] for b in question.content["body"][0]["items"] if b["text"] == "Confirm"
    )
    [result] = await bot.click(question, "Confirm")
    assert result.text == "api rolled back by Alice"
    assert question.text == "Confirmed: Roll api back in prod?"
    assert deployer.runs == [("api", "Alice")]
    # A second click (a double click, or a stale copy of the card) finds nothing to confirm.
    [again] = await bot.deliver(button_clicked(confirm, message_id=question.message_id))
    assert again.text.startswith("This confirmation has expired or was already answered")
    assert deployer.runs == [("api", "Alice")]


async def test_cancel_runs_nothing(setup):
    bot, deployer, _ = setup
    [question] = await bot.command("rollback api prod")
    assert await bot.click(question, "Cancel") == []
    assert question.text == "Cancelled: Roll api back in prod?"
    assert deployer.runs == []


async def test_only_the_caller_may_confirm(setup):
    bot, deployer, _ = setup
    [question] = await bot.command("rollback api prod")
    # The card is Alice's alone (visible_to_user): a click from anyone else is refused.
    [refusal] = await bot.click(question, "Confirm", user_id="u-bob", user_name="Bob")
    assert refusal.text == STALE_BUTTON
    assert refusal.visible_to_user == "u-bob"
    assert deployer.runs == []
    await bot.click(question, "Confirm")
    assert deployer.runs == [("api", "Alice")]


async def test_the_question_expires_after_five_minutes(setup):
    bot, deployer, clock = setup
    [question] = await bot.command("rollback api prod")
    await clock.advance(timedelta(minutes=5, seconds=1))
    [reply] = await bot.click(question, "Confirm")
    assert reply.text.startswith("This confirmation has expired")
    assert deployer.runs == []


async def test_bad_arguments_are_refused_before_asking(setup):
    bot, deployer, _ = setup
    [reply] = await bot.deliver(bot_notification("rollback api qa", to_jid="c@conference.x"))
    assert reply.text.startswith("invalid env 'qa': choose one of staging, prod")
    assert deployer.runs == []
