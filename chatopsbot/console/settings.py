"""The settings the console's bot runs with: a config's plugins and rules, the fake Zoom's
credentials, loopback, and a storage file of its own."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from importlib.metadata import entry_points

from attrs import evolve

from chatopsbot.config import Settings, StorageSettings, parse_settings
from chatopsbot.console import cast
from chatopsbot.plugins import ENTRY_POINT_GROUP
from chatopsbot.zoom.fake import FakeZoom

__all__ = ["console_settings", "hook_tokens", "rate_limit"]


def console_settings(
    base: Settings | None,
    *,
    zoom: FakeZoom,
    secret: str,
    storage: str,
    port: int = 0,
    hook_tokens: Mapping[str, str] | None = None,
) -> Settings:
    """The settings the console's bot runs with: ``base`` (a config file's, or the defaults)
    pointed at the fake Zoom, on loopback, with its own SQLite file.

    The config's storage is never used: its queued replies belong to real Zoom. Alice, the
    console's first person, is added to the admins, and each plugin in ``hook_tokens`` gets
    that ``webhook_token`` (never the config's, which the page would show), so its hook can be
    fed from the page. Other services the plugins call (Alertmanager, PagerDuty) are replaced
    by stand-ins: nothing done in the console reaches production.
    """
    table = zoom.zoom_table(secret)
    zoom_settings = parse_settings({"zoom": table}, source="<console>", environ={}).zoom
    if base is None:
        base = parse_settings({"zoom": table}, source="<console>", environ={})
    tables = {name: dict(values) for name, values in base.plugins.tables.items()}
    # The page shows each hook's token: a fresh one, never the config's (production's).
    for name, token in (hook_tokens or {}).items():
        tables[name] = {**tables.get(name, {}), "webhook_token": token}
    # Nothing a click in the console does may reach a production service.
    for name, key, stand_in in OFFLINE:
        if tables.get(name, {}).get(key):
            tables[name][key] = stand_in
    admins = base.access.admins
    if cast.PEOPLE[0].id not in admins:
        admins = (*admins, cast.PEOPLE[0].id)
    return evolve(
        base,
        zoom=zoom_settings,
        server=evolve(base.server, host="127.0.0.1", port=port),
        storage=StorageSettings(path=storage),
        access=evolve(base.access, admins=admins),
        plugins=evolve(base.plugins, tables=tables),
    )


#: Where built-in plugins call other services, and what the console puts there instead:
#: nothing (Alertmanager: "not configured"), or a loopback port nothing listens on
#: (PagerDuty: "could not reach PagerDuty", the plugin's answer for an outage).
OFFLINE = (
    ("alerts", "alertmanager_url", ""),
    ("oncall", "pagerduty_url", "http://127.0.0.1:9"),
    ("oncall", "pagerduty_token", "console-stand-in"),
)

#: The built-in plugins whose HTTP hook checks ``[plugins.<name>] webhook_token``.
TOKEN_PLUGINS = ("deploy", "alerts")


def hook_tokens(base: Settings) -> dict[str, str]:
    """A fresh token for the hook of each enabled plugin that takes ``webhook_token`` (CI's
    deploy events, Alertmanager's alerts); the config's own token wins where it has one."""
    installed = {entry.name for entry in entry_points(group=ENTRY_POINT_GROUP)}
    return {
        name: secrets.token_hex(16)
        for name in TOKEN_PLUGINS
        if name in installed and name not in base.plugins.disabled
    }


def rate_limit(settings: Settings | None) -> int:
    # The fake enforces Zoom's window at the rate the bot is configured for.
    return max(1, int(settings.outbound.rate_limit)) if settings else 20
