"""Who may run what: bot admins, commands marked admin-only, and per-command rules.

Rules come from ``[access]`` in the config. A rule is keyed by a command name or a command
group (``"deploy"`` covers every ``deploy ...`` command; the longest key that matches wins) or
by ``"plugin:action"`` for buttons. Users are matched by Zoom user id or JID, channels by JID
or name. Zoom's chatbot events carry no e-mail addresses, so rules cannot name users by e-mail.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from attrs import field, frozen

from chatopsbot.context import Conversation, User

__all__ = ["AccessRule", "AccessSettings"]


def _folded(items: tuple[str, ...]) -> frozenset[str]:
    return frozenset(i.strip().lower().lstrip("#") for i in items)


@frozen
class AccessRule:
    """``[access.commands."<name>"]``: who may (``allow_*``) and who may not (``deny_*``).

    An empty allow list allows everyone; a deny list always wins over an allow list.
    """

    allow_users: tuple[str, ...] = ()
    deny_users: tuple[str, ...] = ()
    allow_channels: tuple[str, ...] = ()
    deny_channels: tuple[str, ...] = ()


@frozen
class AccessSettings:
    """``[access]``: ``admins`` (user ids or JIDs) and rules by command, group or action."""

    admins: tuple[str, ...] = ()
    rules: Mapping[str, AccessRule] = field(factory=lambda: MappingProxyType({}))

    def is_admin(self, user: User) -> bool:
        """Whether ``user`` is one of the bot's admins."""
        return _matches_user(_folded(self.admins), user)

    def denial(
        self, name: str, *, admin_only: bool, user: User, conversation: Conversation
    ) -> str | None:
        """Why ``user`` may not run ``name`` here, or ``None`` when they may.

        ``name`` is a command name or ``plugin:action``. Admins may run everything.
        """
        if self.is_admin(user):
            return None
        if admin_only:
            return f"{name} is for the bot's admins only"
        key = self._rule_for(name)
        if key is None:
            return None
        rule = self.rules[key]
        where = f'access.commands."{key}"'
        if _matches_user(_folded(rule.deny_users), user):
            return f"{where}.deny_users lists you"
        if _matches_channel(_folded(rule.deny_channels), conversation):
            return f"{where}.deny_channels lists this conversation"
        if rule.allow_users and not _matches_user(_folded(rule.allow_users), user):
            return f"{where}.allow_users does not list you"
        if rule.allow_channels and not _matches_channel(_folded(rule.allow_channels), conversation):
            return f"{where}.allow_channels does not list this conversation"
        return None

    def _rule_for(self, name: str) -> str | None:
        if name in self.rules:
            return name
        words = name.split()
        for n in range(len(words) - 1, 0, -1):
            prefix = " ".join(words[:n])
            if prefix in self.rules:
                return prefix
        return None


def _matches_user(names: frozenset[str], user: User) -> bool:
    return bool(names) and (user.id.lower() in names or user.jid.lower() in names)


def _matches_channel(names: frozenset[str], conversation: Conversation) -> bool:
    return bool(names) and (
        conversation.jid.lower() in names or conversation.name.lower().lstrip("#") in names
    )
