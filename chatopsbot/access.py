"""Who may run what: bot admins, admin-only commands, and per-command rules that add up.

Rules come from ``[access]`` in the config, keyed by a command group (``"deploy"``), a command
(``"deploy unlock"``) or a plugin's action (``"polls:close"``). Every rule whose key covers a
command applies, the group's first: a deny anywhere denies, and every allow list that is set
has to admit. A button or dropdown that stands for a command (``action(..., command="poll
close")``) is checked by that command's rules too, so no path does more than the command.

Users are matched by Zoom user id or JID, conversations by JID only: display names and channel
names are chosen by users and prove nothing. ``whoami`` tells a user both.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING

from attrs import field, frozen

from chatopsbot.suggest import close_matches
from chatopsbot.values import Conversation, User

if TYPE_CHECKING:
    from chatopsbot.commands import Command

__all__ = ["AccessRule", "AccessSettings", "Verdict"]


def _folded(items: Iterable[str]) -> frozenset[str]:
    return frozenset(i.strip().lower() for i in items)


@frozen
class AccessRule:
    """``[access.commands."<key>"]``: who may (``allow_*``) and who may not (``deny_*``).

    An empty allow list admits everyone; a deny list always wins. ``admin_only`` (when set)
    overrides the command's own default, the most specific rule that sets it winning.
    """

    allow_users: tuple[str, ...] = ()
    deny_users: tuple[str, ...] = ()
    allow_channels: tuple[str, ...] = ()
    deny_channels: tuple[str, ...] = ()
    admin_only: bool | None = None


@frozen
class Verdict:
    """What the rules decided for one user, one command, one conversation, and why.

    ``steps`` explains each rule in the order applied (for ``chatopsbot access explain`` and
    the log); ``reason`` is the step that decided a denial. Users hear neither.
    """

    allowed: bool
    reason: str
    steps: tuple[str, ...] = ()
    admin_only: bool = False


@frozen
class AccessSettings:
    """``[access]``: ``admins`` (user ids or JIDs) and rules by group, command or action."""

    admins: tuple[str, ...] = ()
    rules: Mapping[str, AccessRule] = field(factory=lambda: MappingProxyType({}))

    def is_admin(self, user: User) -> bool:
        """Whether ``user`` is one of the bot's admins."""
        return _matches_user(_folded(self.admins), user)

    def keys_for(self, name: str) -> list[str]:
        """The rule keys that cover ``name``, the most general first.

        ``name`` is a command name (its groups' keys come first) or ``plugin:action``.
        """
        if ":" in name:
            return [name] if name in self.rules else []
        words = name.split()
        prefixes = (" ".join(words[:n]) for n in range(1, len(words) + 1))
        return [p for p in prefixes if p in self.rules]

    def check(
        self,
        name: str,
        *,
        admin_only: bool,
        user: User,
        conversation: Conversation,
        stands_for: str | None = None,
    ) -> Verdict:
        """Whether ``user`` may run ``name`` in ``conversation``.

        ``name`` is a command name or ``plugin:action``; an action that ``stands_for`` a
        command is checked by that command's rules first, then by its own. ``admin_only`` is
        the default the command (or action) declared. Admins may run everything.
        """
        keys = (self.keys_for(stands_for) if stands_for else []) + self.keys_for(name)
        steps: list[str] = []
        only = admin_only
        steps.append(f"declared {'admin-only' if admin_only else 'open to everyone'}")
        for key in keys:
            setting = self.rules[key].admin_only
            if setting is not None:
                only = setting
                steps.append(f'access.commands."{key}".admin_only = {str(setting).lower()}')
        if self.is_admin(user):
            steps.append("the user is an admin ([access] admins): admins may run everything")
            return Verdict(True, "admin", tuple(steps), only)
        if only:
            reason = f"{stands_for or name} is for the bot's admins only"
            return Verdict(False, reason, (*steps, reason), only)
        for key in keys:
            failed = _refusal(key, self.rules[key], user, conversation)
            if failed is not None:
                return Verdict(False, failed, (*steps, failed), only)
            steps.append(f'access.commands."{key}" admits')
        if not keys:
            steps.append("no rule covers it")
        return Verdict(True, "allowed", tuple(steps), only)

    def permits(self, command: Command, user: User, conversation: Conversation) -> bool:
        """Whether ``user`` may run ``command`` in ``conversation`` (its declared default
        and every rule that covers it)."""
        return self.check(
            command.name, admin_only=command.admin_only, user=user, conversation=conversation
        ).allowed

    def denial(
        self,
        name: str,
        *,
        admin_only: bool,
        user: User,
        conversation: Conversation,
        stands_for: str | None = None,
    ) -> str | None:
        """Why ``user`` may not run ``name`` here (for the log), or ``None`` when they may."""
        verdict = self.check(
            name,
            admin_only=admin_only,
            user=user,
            conversation=conversation,
            stands_for=stands_for,
        )
        return None if verdict.allowed else verdict.reason


def unmatched_rules(
    access: AccessSettings, commands: Iterable[str], actions: Iterable[str]
) -> list[tuple[str, str]]:
    """``(key, problem)`` for each rule key that covers no loaded command, group or action.

    Such a rule would do nothing, silently: a typo in a deny list must stop the bot instead.
    """
    names = list(commands)
    known = set(names) | set(actions)
    groups = {" ".join(n.split()[:i]) for n in names for i in range(1, len(n.split()))}
    problems = []
    for key in access.rules:
        if key in known or key in groups:
            continue
        close = close_matches(key, sorted(known | groups), n=1)
        hint = f' (did you mean "{close[0]}"?)' if close else ""
        problems.append((key, f"no command, group or action by that name{hint}"))
    return problems


def _refusal(key: str, rule: AccessRule, user: User, conversation: Conversation) -> str | None:
    where = f'access.commands."{key}"'
    if _matches_user(_folded(rule.deny_users), user):
        return f"{where}.deny_users lists the user"
    if _matches_channel(_folded(rule.deny_channels), conversation):
        return f"{where}.deny_channels lists the conversation"
    if rule.allow_users and not _matches_user(_folded(rule.allow_users), user):
        return f"{where}.allow_users does not list the user"
    if rule.allow_channels and not _matches_channel(_folded(rule.allow_channels), conversation):
        return f"{where}.allow_channels does not list the conversation"
    return None


def _matches_user(names: frozenset[str], user: User) -> bool:
    return bool(names) and (
        (bool(user.id) and user.id.lower() in names)
        or (bool(user.jid) and user.jid.lower() in names)
    )


def _matches_channel(jids: frozenset[str], conversation: Conversation) -> bool:
    return bool(conversation.jid) and conversation.jid.lower() in jids
