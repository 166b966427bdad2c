"""Access control: admins, admin-only commands, allow/deny rules, help filtering, buttons."""

from __future__ import annotations

from typing import Any

import pytest

from chatopsbot import ActionContext, Actions, Card, Context, Text, action, command, hookimpl
from chatopsbot.access import AccessSettings
from chatopsbot.config import ConfigError, parse_settings
from chatopsbot.context import Conversation, User
from tests.conftest import CHANNEL

ALICE = User("u-alice", "alice@xmpp.zoom.us", "Alice")
BOB = User("u-bob", "bob@xmpp.zoom.us", "Bob")
OPS = Conversation("a", CHANNEL, "ops")
RANDOM = Conversation("a", "random@conference.xmpp.zoom.us", "random")


def access(**table: Any) -> AccessSettings:
    data = {
        "zoom": {"client_id": "a", "client_secret": "b", "bot_jid": "c", "secret_token": "d"},
        "access": table,
    }
    return parse_settings(data, source="c.toml", environ={}).access


def test_admins_match_by_id_or_jid_case_insensitively():
    rules = access(admins=["U-ALICE"])
    assert rules.is_admin(ALICE)
    assert not rules.is_admin(BOB)
    assert access(admins=["Bob@xmpp.zoom.us"]).is_admin(BOB)


def test_admin_only_commands():
    rules = access(admins=["u-alice"])
    assert rules.denial("deploy unlock", admin_only=True, user=ALICE, conversation=OPS) is None
    assert rules.denial("deploy unlock", admin_only=True, user=BOB, conversation=OPS) == (
        "deploy unlock is for the bot's admins only"
    )


def test_rules_by_command_or_group_longest_match_wins():
    rules = access(
        commands={
            "deploy": {"allow_channels": ["#ops"]},
            "deploy lock": {"deny_users": ["u-bob"]},
        }
    )
    assert rules.denial("deploy status", admin_only=False, user=BOB, conversation=OPS) is None
    assert rules.denial("deploy status", admin_only=False, user=BOB, conversation=RANDOM) == (
        'access.commands."deploy".allow_channels does not list this conversation'
    )
    assert rules.denial("deploy lock", admin_only=False, user=BOB, conversation=OPS) == (
        'access.commands."deploy lock".deny_users lists you'
    )
    # The longest rule replaces the group's: deploy lock has no channel restriction.
    assert rules.denial("deploy lock", admin_only=False, user=ALICE, conversation=RANDOM) is None
    assert rules.denial("ping", admin_only=False, user=BOB, conversation=RANDOM) is None


def test_allow_users_and_deny_beats_allow():
    rules = access(
        commands={"rollback": {"allow_users": ["u-alice", "u-bob"], "deny_channels": [CHANNEL]}}
    )
    assert rules.denial("rollback", admin_only=False, user=ALICE, conversation=RANDOM) is None
    assert rules.denial("rollback", admin_only=False, user=ALICE, conversation=OPS) == (
        'access.commands."rollback".deny_channels lists this conversation'
    )
    carol = User("u-carol", "carol@xmpp.zoom.us", "Carol")
    assert rules.denial("rollback", admin_only=False, user=carol, conversation=RANDOM) == (
        'access.commands."rollback".allow_users does not list you'
    )


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (
            {"admins": ["alice@example.com"]},
            "c.toml: access.admins[0]: e-mail addresses cannot be matched",
        ),
        ({"admins": "u-alice"}, "c.toml: access.admins: expected an array, got a string"),
        ({"admins": [5]}, "c.toml: access.admins[0]: expected a user id or JID, got an integer"),
        ({"admin": []}, "c.toml: access.admin: unknown key (did you mean admins?)"),
        (
            {"commands": {"x": {"allow_user": []}}},
            'c.toml: access.commands."x".allow_user: unknown key (did you mean allow_users?)',
        ),
    ],
)
def test_bad_access_config_names_the_key(table, message):
    with pytest.raises(ConfigError) as info:
        access(**table)
    assert str(info.value).startswith(message)


@command("rollback", help="Roll back")
async def rollback(ctx: Context) -> Text:
    return Text("rolled back")


@command("nuke", help="Dangerous", admin_only=True)
async def nuke(ctx: Context) -> Text:
    return Text("boom")


@command("panel", help="A card with an admin button")
async def panel(ctx: Context) -> Card:
    return Card(head="Panel", body=[Actions((ctx.button("Purge", "purge"),))])


@action("purge", admin_only=True)
async def purge(ctx: ActionContext) -> Text:
    return Text(f"purged by {ctx.clicker.name} (admin: {ctx.clicker_is_admin})")


class Ops:
    @hookimpl
    def chatops_commands(self) -> list[Any]:
        return [rollback, nuke, panel]

    @hookimpl
    def chatops_actions(self) -> list[Any]:
        return [purge]


@pytest.fixture
async def bot(start_bot: Any) -> Any:
    return await start_bot(
        extra={"ops": Ops()},
        access={"admins": ["u-alice"], "commands": {"rollback": {"allow_users": ["u-carol"]}}},
    )


async def test_a_denied_caller_is_told_privately_which_rule(bot):
    [reply] = await bot.command("rollback", user_id="u-bob", user_name="Bob")
    assert reply.visible_to_user == "u-bob"
    assert reply.text == (
        'You may not run rollback: access.commands."rollback".allow_users does not list you.'
    )
    [reply] = await bot.command("rollback", user_id="u-carol")
    assert reply.text == "rolled back"


async def test_admins_run_admin_only_commands_and_others_do_not(bot):
    [reply] = await bot.command("nuke", user_id="u-bob")
    assert reply.text == "You may not run nuke: nuke is for the bot's admins only."
    [reply] = await bot.command("nuke")
    assert reply.text == "boom"


async def test_help_lists_only_what_the_caller_may_run(bot):
    [bob_help] = await bot.command("help", user_id="u-bob")
    [alice_help] = await bot.command("help")
    assert "nuke" not in bob_help.text
    assert "rollback" not in bob_help.text
    assert "nuke — Dangerous" in alice_help.text
    assert "rollback — Roll back" in alice_help.text  # admins may run everything


async def test_buttons_obey_the_same_rules(bot):
    [card] = await bot.command("panel")
    [reply] = await bot.click(card, "Purge", user_id="u-bob")
    assert reply.visible_to_user == "u-bob"
    assert reply.text == "You may not do that: ops:purge is for the bot's admins only."
    [reply] = await bot.click(card, "Purge")
    assert reply.text == "purged by Alice (admin: True)"
