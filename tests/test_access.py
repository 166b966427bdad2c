"""Access control: admins, admin-only commands, allow/deny rules, help filtering, buttons."""

from __future__ import annotations

import random
import secrets
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatopsbot import (
    ActionContext,
    Actions,
    Card,
    Context,
    Delete,
    Text,
    action,
    command,
    hookimpl,
)
from chatopsbot.access import AccessSettings
from chatopsbot.config import ConfigError, parse_settings
from chatopsbot.context import Conversation, User
from chatopsbot.dispatch import STALE_BUTTON
from chatopsbot.testing import BotHarness
from chatopsbot.zoom.payloads import button_clicked
from tests.conftest import CHANNEL

OTHER_CHANNEL = "other@conference.xmpp.zoom.us"

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


DAVE = User("u-dave", "dave@xmpp.zoom.us", "Dave")
DM = Conversation("a", "dave@xmpp.zoom.us", "ops")  # a 1:1 chat named like the channel

# The pattern config.example.toml shows: a group rule and a narrower one for one command.
COMPOSED = {
    "deploy": {"allow_channels": [CHANNEL]},
    "deploy unlock": {"deny_users": ["u-dave"]},
}


@pytest.mark.parametrize(
    ("name", "user", "where", "reason"),
    [
        ("deploy status", BOB, OPS, None),
        ("deploy lock", BOB, RANDOM, 'access.commands."deploy".allow_channels does not list'),
        # Both rules apply: the group's channel list and the command's deny list.
        ("deploy unlock", DAVE, OPS, 'access.commands."deploy unlock".deny_users lists the user'),
        ("deploy unlock", BOB, RANDOM, 'access.commands."deploy".allow_channels does not list'),
        ("deploy unlock", BOB, OPS, None),
        # Names are not identities: a 1:1 chat called "ops" is not the ops channel.
        ("deploy status", BOB, DM, 'access.commands."deploy".allow_channels does not list'),
        ("ping", DAVE, RANDOM, None),
        ("deployment", BOB, RANDOM, None),  # a word prefix, not a string prefix
    ],
)
def test_every_rule_that_covers_a_command_applies(name, user, where, reason):
    verdict = access(commands=COMPOSED).check(name, admin_only=False, user=user, conversation=where)
    assert verdict.allowed is (reason is None)
    if reason is not None:
        assert verdict.reason.startswith(reason), verdict.reason


def test_allow_users_and_deny_beats_allow():
    rules = access(
        commands={"rollback": {"allow_users": ["u-alice", "u-bob"], "deny_channels": [CHANNEL]}}
    )
    assert rules.denial("rollback", admin_only=False, user=ALICE, conversation=RANDOM) is None
    assert rules.denial("rollback", admin_only=False, user=ALICE, conversation=OPS) == (
        'access.commands."rollback".deny_channels lists the conversation'
    )
    carol = User("u-carol", "carol@xmpp.zoom.us", "Carol")
    assert rules.denial("rollback", admin_only=False, user=carol, conversation=RANDOM) == (
        'access.commands."rollback".allow_users does not list the user'
    )


def test_admin_only_is_a_default_a_rule_may_change():
    rules = access(
        admins=["u-alice"],
        commands={
            "oncall": {"admin_only": True},
            "oncall override": {"admin_only": False, "allow_users": ["u-bob"]},
        },
    )
    check = rules.check
    assert not check("oncall clear", admin_only=False, user=BOB, conversation=OPS).allowed
    # The most specific setting wins; its other lists still apply.
    assert check("oncall override", admin_only=True, user=BOB, conversation=OPS).allowed
    assert not check("oncall override", admin_only=True, user=DAVE, conversation=OPS).allowed
    assert check("oncall clear", admin_only=False, user=ALICE, conversation=OPS).allowed


def test_an_action_that_stands_for_a_command_is_checked_by_its_rules():
    rules = access(commands={"poll close": {"deny_users": ["u-bob"]}, "polls:close": {}})
    verdict = rules.check(
        "polls:close", admin_only=False, user=BOB, conversation=OPS, stands_for="poll close"
    )
    assert not verdict.allowed
    assert verdict.reason == 'access.commands."poll close".deny_users lists the user'
    assert rules.check("polls:close", admin_only=False, user=BOB, conversation=OPS).allowed


def test_a_verdict_explains_each_step():
    rules = access(admins=["u-alice"], commands=COMPOSED)
    verdict = rules.check("deploy unlock", admin_only=False, user=DAVE, conversation=OPS)
    assert verdict.steps == (
        "declared open to everyone",
        'access.commands."deploy" admits',
        'access.commands."deploy unlock".deny_users lists the user',
    )


# No generated rule set lets a user through whom some covering rule refuses.

_users = st.sampled_from([ALICE, BOB, DAVE])
_rooms = st.sampled_from([OPS, RANDOM, DM])
_user_ids = st.lists(st.sampled_from(["u-alice", "u-bob", "u-dave", "dave@xmpp.zoom.us"]))
_room_ids = st.lists(st.sampled_from([CHANNEL, RANDOM.jid, DM.jid]))
_rule = st.fixed_dictionaries(
    {},
    optional={
        "allow_users": _user_ids,
        "deny_users": _user_ids,
        "allow_channels": _room_ids,
        "deny_channels": _room_ids,
        "admin_only": st.booleans(),
    },
)
_keys = st.sampled_from(["deploy", "deploy unlock", "polls:close", "poll", "poll close"])


def _refuses(rule: dict[str, Any], user: User, room: Conversation) -> bool:
    ids = {user.id, user.jid}
    return bool(
        ids & set(rule.get("deny_users", []))
        or room.jid in rule.get("deny_channels", [])
        or (rule.get("allow_users") and not ids & set(rule["allow_users"]))
        or (rule.get("allow_channels") and room.jid not in rule["allow_channels"])
    )


@settings(max_examples=300, deadline=None)
@given(
    table=st.dictionaries(_keys, _rule, max_size=5),
    user=_users,
    room=_rooms,
    path=st.sampled_from(["command", "action"]),
    declared=st.booleans(),
)
def test_no_rule_set_lets_a_refused_user_through_any_path(table, user, room, path, declared):
    rules = access(admins=["u-alice"], commands=table)
    if path == "command":
        verdict = rules.check("deploy unlock", admin_only=declared, user=user, conversation=room)
        covering = [table[k] for k in ("deploy", "deploy unlock") if k in table]
    else:
        verdict = rules.check(
            "polls:close",
            admin_only=declared,
            user=user,
            conversation=room,
            stands_for="poll close",
        )
        covering = [table[k] for k in ("poll", "poll close", "polls:close") if k in table]
    only = declared
    for rule in covering:
        only = rule.get("admin_only", only)
    if user is ALICE:
        assert verdict.allowed  # admins may run everything
    elif only or any(_refuses(rule, user, room) for rule in covering):
        assert not verdict.allowed, (table, user, room)
    else:
        assert verdict.allowed, (table, user, room, verdict)


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
            {"commands": {"deploy": {"allow_channels": ["#ops"]}}},
            "c.toml: access.commands.\"deploy\".allow_channels[0]: '#ops' is a name, not a "
            "channel JID; rules match JIDs (...@conference.xmpp.zoom.us): type whoami",
        ),
        (
            {"commands": {"deploy": {"admin_only": "yes"}}},
            'c.toml: access.commands."deploy".admin_only: expected a boolean, got a string',
        ),
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


@command("panel", help="A card with two buttons")
async def panel(ctx: Context) -> Card:
    # Each card's own payload: the same value on two cards would be the same button.
    buttons = (ctx.button("Purge", "purge"), ctx.button("Roll back", "roll", secrets.token_hex(4)))
    return Card(head="Panel", body=[Actions(buttons)])


@command("secret", help="A private card")
async def secret(ctx: Context) -> Card:
    short = ctx.button("Quick", "purge", expires_in=60)
    return Card(
        head="Yours", body=[Actions((ctx.button("Roll back", "roll"), short))], private=True
    )


@action("purge", admin_only=True)
async def purge(ctx: ActionContext) -> Text:
    return Text(f"purged by {ctx.actor.name} (admin: {ctx.actor_is_admin})")


@action("roll", command="rollback")
async def roll(ctx: ActionContext) -> Text:
    return Text(f"rolled back by {ctx.actor.name}")


class Ops:
    @hookimpl
    def chatops_commands(self) -> list[Any]:
        return [rollback, nuke, panel, secret]

    @hookimpl
    def chatops_actions(self) -> list[Any]:
        return [purge, roll]


RULES = {"admins": ["u-alice"], "commands": {"rollback": {"allow_users": ["u-carol"]}}}


@pytest.fixture
async def bot(start_bot: Any) -> Any:
    return await start_bot(extra={"ops": Ops()}, access=RULES)


async def test_a_denied_caller_hears_what_they_may_do_and_the_log_gets_the_rule(bot, caplog):
    [reply] = await bot.command("rollback", user_id="u-bob", user_name="Bob")
    assert reply.visible_to_user == "u-bob"
    assert reply.text == (
        "You may not run rollback here. Type help to see what you can run here; "
        "an admin can give you access (whoami shows the ids they need)."
    )
    assert 'refused rollback: access.commands."rollback".allow_users' in caplog.text
    [reply] = await bot.command("rollback", user_id="u-carol")
    assert reply.text == "rolled back"


async def test_admins_run_admin_only_commands_and_others_do_not(bot):
    [reply] = await bot.command("nuke", user_id="u-bob")
    assert reply.text.startswith("Only the bot's admins may run nuke.")
    [reply] = await bot.command("nuke")
    assert reply.text == "boom"


async def test_help_lists_only_what_the_caller_may_run(bot):
    [bob_help] = await bot.command("help", user_id="u-bob")
    [alice_help] = await bot.command("help")
    assert "nuke" not in bob_help.text
    assert "rollback" not in bob_help.text
    assert "nuke — Dangerous" in alice_help.text
    assert "rollback — Roll back" in alice_help.text  # admins may run everything


async def test_restricted_commands_stay_unseen_in_help_and_suggestions(bot):
    [reply] = await bot.command("help nuke", user_id="u-bob")
    assert reply.text.startswith("unknown command 'nuke'")
    assert "Dangerous" not in reply.text
    [reply] = await bot.command("help nuke")
    assert "Dangerous" in reply.text
    [reply] = await bot.command("rollbak", user_id="u-bob")
    assert "rollback" not in reply.text
    [reply] = await bot.command("rollbak", user_id="u-carol")
    assert "Did you mean 'rollback'?" in reply.text


async def test_a_button_is_checked_by_the_rules_of_the_command_it_stands_for(bot):
    [card] = await bot.command("panel")
    [reply] = await bot.click(card, "Roll back", user_id="u-bob")
    assert reply.visible_to_user == "u-bob"
    assert reply.text.startswith("You may not do that here.")
    [reply] = await bot.click(card, "Roll back", user_id="u-carol", user_name="Carol")
    assert reply.text == "rolled back by Carol"


async def test_admin_only_buttons(bot):
    [card] = await bot.command("panel")
    [reply] = await bot.click(card, "Purge", user_id="u-bob")
    assert reply.visible_to_user == "u-bob"
    assert reply.text.startswith("Only the bot's admins may do that.")
    [reply] = await bot.click(card, "Purge")
    assert reply.text == "purged by Alice (admin: True)"


async def test_a_button_value_works_only_on_the_card_it_was_drawn_for(bot):
    [panel_card] = await bot.command("panel")
    [other] = await bot.command("panel", to_jid=OTHER_CHANNEL)
    value = next(b["value"] for b in _buttons(panel_card) if b["text"] == "Roll back")
    carol: dict[str, Any] = {"user_id": "u-carol", "user_name": "Carol"}
    # On another card of the same plugin, in another channel: refused.
    [reply] = await bot.deliver(
        button_clicked(value, message_id=other.message_id, to_jid=OTHER_CHANNEL, **carol)
    )
    assert reply.text == STALE_BUTTON
    # On a message the bot never sent: refused.
    [reply] = await bot.deliver(button_clicked(value, message_id="not-a-card", **carol))
    assert reply.text == STALE_BUTTON
    [reply] = await bot.deliver(button_clicked(value, message_id=panel_card.message_id, **carol))
    assert reply.text == "rolled back by Carol"


async def test_a_private_card_answers_its_viewer_only_and_values_may_expire(bot):
    [card] = await bot.command("secret", user_id="u-carol", user_name="Carol")
    assert card.visible_to_user == "u-carol"
    [reply] = await bot.click(card, "Roll back", user_id="u-bob")
    assert reply.text == STALE_BUTTON
    [reply] = await bot.click(card, "Roll back", user_id="u-carol", user_name="Carol")
    assert reply.text == "rolled back by Carol"
    await bot.clock.advance(timedelta(seconds=61))
    [reply] = await bot.click(card, "Quick", user_id="u-carol")
    assert reply.text == STALE_BUTTON


async def test_a_deleted_card_no_longer_answers(bot):
    [card] = await bot.command("panel")
    runtime = bot.runtime
    sender = runtime.dispatcher.context_for("ops")
    await sender.send_to(Conversation(card.account_id, card.to_jid), Delete(card.message_id))
    [reply] = await bot.deliver(
        button_clicked(
            next(b["value"] for b in _buttons(card) if b["text"] == "Roll back"),
            message_id=card.message_id,
            user_id="u-carol",
        )
    )
    assert reply.text == STALE_BUTTON


async def test_whoami_gives_the_ids_rules_need(bot):
    [reply] = await bot.command("whoami", user_id="u-bob", user_name="Bob")
    assert reply.visible_to_user == "u-bob"
    assert "user id: u-bob" in reply.text
    assert f"JID: {CHANNEL}" in reply.text
    assert "bot admin: no" in reply.text


async def test_a_confirmation_is_checked_again_when_confirmed(tmp_path, zoom):
    storage = {"path": str(tmp_path / "bot.db")}
    open_rules = {"admins": ["u-alice"]}
    async with BotHarness(
        {"ops": Confirming()}, config={"storage": storage, "access": open_rules}, zoom=zoom
    ) as bot:
        [question] = await bot.command("drop", user_id="u-bob", user_name="Bob")
    closed = {"admins": ["u-alice"], "commands": {"drop": {"deny_users": ["u-bob"]}}}
    async with BotHarness(
        {"ops": Confirming()}, config={"storage": storage, "access": closed}, zoom=zoom
    ) as bot:
        replies = await bot.click(question, "Confirm", user_id="u-bob", user_name="Bob")
    assert question.text.startswith("Not run:")
    assert [r.text for r in replies if r.text.startswith("You may not run drop here.")]
    assert DROPPED == []


DROPPED: list[str] = []


@command("drop", help="Drop it", confirm="Drop everything?")
async def drop(ctx: Context) -> Text:
    DROPPED.append(ctx.actor.id)
    return Text("dropped")


class Confirming:
    @hookimpl
    def chatops_commands(self) -> list[Any]:
        return [drop]


def _buttons(message: Any) -> list[dict[str, Any]]:
    return [
        item
        for section in message.content.get("body", [])
        if section.get("type") == "actions"
        for item in section["items"]
    ]


def test_an_action_standing_for_a_missing_command_is_a_load_error():
    from chatopsbot.plugins import PluginError, load_plugins

    class Broken:
        @hookimpl
        def chatops_actions(self) -> list[Any]:
            return [action("go", command="launch rockets")(roll.handler)]

    settings = parse_settings(
        {"zoom": {"client_id": "a", "client_secret": "b", "bot_jid": "c", "secret_token": "d"}},
        environ={},
    )
    with pytest.raises(PluginError, match="stands for command 'launch rockets'"):
        load_plugins(settings.plugins, extra={"broken": Broken()}, entry_points=False)


# The same property through the real path: signed webhooks for a command and for a button
# that stands for it, under random rule sets (a fixed seed, so a failure can be replayed).


def _random_rules(rng: random.Random) -> dict[str, dict[str, Any]]:
    ids = ["u-bob", "u-dave", "dave@xmpp.zoom.us", "u-carol"]
    rooms = [CHANNEL, RANDOM.jid, "dave@xmpp.zoom.us"]
    table: dict[str, dict[str, Any]] = {}
    for key in rng.sample(["rollback", "ops:roll", "nuke"], rng.randint(0, 3)):
        rule: dict[str, Any] = {}
        for name, pool in (
            ("allow_users", ids),
            ("deny_users", ids),
            ("allow_channels", rooms),
            ("deny_channels", rooms),
        ):
            if rng.random() < 0.4:
                rule[name] = rng.sample(pool, rng.randint(1, 2))
        if rng.random() < 0.2:
            rule["admin_only"] = rng.random() < 0.5
        table[key] = rule
    return table


@pytest.mark.parametrize("seed", range(12))
async def test_random_rule_sets_hold_on_the_command_and_the_button_path(start_bot, seed):
    rng = random.Random(seed)
    table = _random_rules(rng)
    bot = await start_bot(extra={"ops": Ops()}, access={"admins": ["u-alice"], "commands": table})
    for name, user, room in (("bob", BOB, "ops"), ("dave", DAVE, "random"), ("dave", DAVE, None)):
        where = OPS if room == "ops" else RANDOM if room == "random" else DM
        expected = not any(_refuses(table[k], user, where) for k in ("rollback",) if k in table)
        only = [table[k]["admin_only"] for k in ("rollback",) if "admin_only" in table.get(k, {})]
        expected = expected and not (only and only[-1])
        [reply] = await bot.command("rollback", user=name, channel=room)
        assert (reply.text == "rolled back") is expected, (seed, table, name, room, reply.text)

        # The button: drawn by an admin where the user is, clicked by the user.
        [card] = await bot.command("panel", user="alice", channel=room if room else None)
        if room is None:
            continue  # a 1:1 chat with Alice is not one Dave can click in
        keys = [k for k in ("rollback", "ops:roll") if k in table]
        allowed = not any(_refuses(table[k], user, where) for k in keys)
        settings_ = [table[k]["admin_only"] for k in keys if "admin_only" in table[k]]
        allowed = allowed and not (settings_ and settings_[-1])
        [reply] = await bot.click(card, "Roll back", user=name)
        assert (reply.text.startswith("rolled back by")) is allowed, (seed, table, name, room)


async def test_help_suggests_only_what_the_caller_may_run(bot):
    [reply] = await bot.command("help rollbak", user_id="u-bob")
    assert "rollback" not in reply.text
    [reply] = await bot.command("help rollbak", user_id="u-carol")
    assert "did you mean 'rollback'?" in reply.text


async def test_a_click_during_a_storage_hiccup_is_handled_once_storage_answers(bot, monkeypatch):
    from chatopsbot.messenger import Messenger
    from chatopsbot.storage import StorageError

    [card] = await bot.command("panel")
    real = Messenger.card
    failures = iter([True])

    async def flaky(self: Messenger, message_id: str) -> Any:
        if next(failures, False):
            raise StorageError("database is locked")
        return await real(self, message_id)

    monkeypatch.setattr(Messenger, "card", flaky)
    [reply] = await bot.click(card, "Roll back", user_id="u-carol", user_name="Carol")
    assert reply.text == "rolled back by Carol"


@pytest.mark.parametrize(
    ("key", "hint"),
    [
        ("pol close", ' (did you mean "poll close"?)'),
        ("Polls:Vote", ' (did you mean "polls:vote"?)'),
    ],
)
async def test_a_rule_that_names_nothing_stops_the_bot(key, hint):
    from chatopsbot.config import ConfigError

    bot = BotHarness(config={"access": {"commands": {key: {"deny_users": ["u-bob"]}}}})
    with pytest.raises(ConfigError) as info:
        await bot.start()
    assert str(info.value) == (
        f'harness: access.commands."{key.lower() if ":" not in key else key}": '
        f"no command, group or action by that name{hint}"
    )
