"""The built-in ``alerts`` plugin: Prometheus Alertmanager's alerts in Zoom Team Chat.

Written against the public API only. Alertmanager posts its webhook notifications to
``POST /hooks/alerts`` (``[plugins.alerts] webhook_token`` as a bearer token or basic-auth
password); each alert group gets one card per destination, edited in place as its alerts fire,
repeat and resolve, with buttons to silence it (through ``alertmanager_url``), acknowledge it and
lift the silence. Commands: ``alerts``, ``alerts silences``, ``alerts silence``, ``alerts expire``.
See docs/alerts.md.
"""

from __future__ import annotations

from chatopsbot_alerts.plugin import AlertsPlugin

__all__ = ["AlertsPlugin"]
