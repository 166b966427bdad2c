"""``[plugins.alerts]``: the hook's token, where Alertmanager listens, and where alerts go.

Routes are tried in the order they are written; the first whose ``match`` labels all equal
the group's common labels decides the channel, else the default ``channel``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from attrs import Attribute, field, frozen

from chatopsbot import Conversation, PluginConfigError, load_config


def _channel_jid(_: object, attribute: Attribute[str], value: str) -> None:
    if value and "@conference." not in value:
        raise PluginConfigError(
            attribute.name, "expected a channel JID (...@conference.xmpp.zoom.us)"
        )


def _http_url(_: object, attribute: Attribute[str], value: str) -> None:
    if value and not value.startswith(("http://", "https://")):
        raise PluginConfigError(
            attribute.name, "expected Alertmanager's base URL, like http://alertmanager:9093"
        )


def _labels(_: object, attribute: Attribute[dict[str, str]], value: dict[str, str]) -> None:
    if not value:
        raise PluginConfigError(
            attribute.name, 'expected at least one label, like {severity = "critical"}'
        )


@frozen
class AlertRoute:
    """``[plugins.alerts.routes.<name>]``: groups whose common labels match go to ``channel``."""

    match: dict[str, str] = field(validator=_labels)
    channel: str = field(validator=_channel_jid)
    account_id: str = ""

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether every ``match`` label has that value in ``labels``."""
        return all(labels.get(name) == value for name, value in self.match.items())


@frozen
class AlertsSettings:
    """``[plugins.alerts]``.

    ``webhook_token``: what Alertmanager sends as a bearer token or basic-auth password
    (without it the hook refuses every request); ``alertmanager_url``: where silences are made;
    ``channel`` and ``account_id``: the default destination; ``routes``: other destinations.
    """

    webhook_token: str = field(default="", repr=False)
    alertmanager_url: str = field(default="", validator=_http_url)
    channel: str = field(default="", validator=_channel_jid)
    account_id: str = ""
    routes: dict[str, AlertRoute] = field(factory=dict)

    def destination(self, labels: Mapping[str, str]) -> Conversation | None:
        """Where a group with these common labels goes: the first matching route, else the
        default channel; ``None`` when neither is configured."""
        for name, rule in self.routes.items():
            if rule.matches(labels):
                return Conversation(rule.account_id or self.account_id, rule.channel, name)
        if self.channel:
            return Conversation(self.account_id, self.channel)
        return None


def read_settings(table: Mapping[str, Any]) -> AlertsSettings:
    """``[plugins.alerts]`` checked; every problem names its key."""
    settings = load_config(AlertsSettings, table)
    if settings.channel and not settings.account_id:
        raise PluginConfigError("account_id", "a channel needs the Zoom account id it belongs to")
    for name, rule in settings.routes.items():
        if not (rule.account_id or settings.account_id):
            raise PluginConfigError(
                f"routes.{name}.account_id",
                "a route's channel needs the Zoom account id (here or in plugins.alerts)",
            )
    return settings
