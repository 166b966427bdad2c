"""The built-in ``deploy`` plugin: CI posts deploy events, channels see what runs where.

Written against the public API only. ``[plugins.deploy]``: ``webhook_token`` (the secret CI
signs requests with, v1 scheme of ``chatopsbot.verify_request``, or sends as a bearer token;
without it the hooks refuse every request), ``lock_reminder`` (default ``4h``: how old a lock
gets before its holder is reminded) and ``force_unlock`` (``"admins"``, the default, or
``"anyone"``: who may remove someone else's lock with ``--force``).

Events of one deploy (service, environment, version) only move it forward; see
``chatopsbot_deploy.events`` for the order and for the caps on every field.
"""

from __future__ import annotations

from chatopsbot_deploy.plugin import DeployPlugin

__all__ = ["DeployPlugin"]
