"""The built-in ``deploy`` plugin: CI posts deploy events, channels see what runs where.

Written against the public API only. ``[plugins.deploy]``: ``webhook_token`` (the bearer token
or HMAC secret CI uses; without it the hook refuses every request) and ``lock_reminder``
(default ``4h``: how old a lock gets before its holder is reminded).
"""

from __future__ import annotations

from chatopsbot_deploy.plugin import DeployPlugin

__all__ = ["DeployPlugin"]
