#!/usr/bin/env python3
"""Tell chatopsbot about a deploy, or ask whether an environment is locked: Python 3.11+,
standard library only, so any CI runner can run it without installing the bot.

    deploy_event.py event succeeded     # POST /hooks/deploy
    deploy_event.py check               # exit 3 while the environment is locked

Environment: CHATOPSBOT_URL, DEPLOY_WEBHOOK_TOKEN, SERVICE, ENVIRONMENT, VERSION; optional
DEPLOY_URL, DEPLOY_ACTOR, DEPLOY_MESSAGE, DELIVERY_ID. Requests are signed with the v1 scheme
(docs/writing-plugins.md, "HTTP hooks"); :func:`sign` is the whole of it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from urllib.parse import quote, urlencode


def sign(
    secret: str,
    method: str,
    path: str,
    query: Mapping[str, str],
    body: bytes,
    *,
    timestamp: int,
    delivery_id: str = "",
) -> dict[str, str]:
    """The headers of a v1-signed request (what ``chatopsbot.sign_request`` returns)."""
    canonical = "&".join(
        f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in sorted(query.items())
    )
    base = f"v1:{timestamp}:{delivery_id}:{method.upper()}:{quote(path, safe='/')}:{canonical}:"
    digest = hmac.new(secret.encode(), base.encode() + body, hashlib.sha256).hexdigest()
    headers = {"X-Chatopsbot-Timestamp": str(timestamp), "X-Chatopsbot-Signature": f"v1={digest}"}
    if delivery_id:
        headers["X-Delivery-Id"] = delivery_id
    return headers


def _delivery_id(status: str) -> str:
    """One id per delivery; a retry of it (same run, attempt and status) keeps it."""
    if os.environ.get("DELIVERY_ID"):
        given = os.environ["DELIVERY_ID"]
    elif os.environ.get("GITHUB_RUN_ID"):
        attempt = os.environ.get("GITHUB_RUN_ATTEMPT", "1")
        given = f"gha-{os.environ['GITHUB_RUN_ID']}-{attempt}-{os.environ['SERVICE']}"
        given += f"-{os.environ['ENVIRONMENT']}-{status}"
    else:
        given = secrets.token_hex(12)
    return re.sub(r"[^A-Za-z0-9._-]", "_", given)[:128]


def _send(method: str, path: str, query: Mapping[str, str], body: bytes, delivery: str) -> int:
    headers = sign(
        os.environ["DEPLOY_WEBHOOK_TOKEN"],
        method,
        path,
        query,
        body,
        timestamp=int(time.time()),
        delivery_id=delivery,
    )
    url = os.environ["CHATOPSBOT_URL"].rstrip("/") + path
    if query:
        url += "?" + urlencode(query, quote_via=quote, safe="")
    request = urllib.request.Request(  # noqa: S310 - the bot's https URL, from the CI config
        url,
        data=body or None,
        method=method,
        headers={"Content-Type": "application/json", **headers},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            print(response.read().decode(), file=sys.stderr)
            return int(response.status)
    except urllib.error.HTTPError as exc:
        print(exc.read().decode(), file=sys.stderr)
        return exc.code


def main(argv: list[str]) -> int:
    """``event <status>`` or ``check``; the exit code says how it went."""
    env = os.environ
    if argv[:1] == ["event"] and len(argv) == 2:
        event = {
            "service": env["SERVICE"],
            "environment": env["ENVIRONMENT"],
            "version": env["VERSION"],
            "status": argv[1],
        }
        for key, name in (
            ("url", "DEPLOY_URL"),
            ("actor", "DEPLOY_ACTOR"),
            ("message", "DEPLOY_MESSAGE"),
        ):
            if env.get(name):
                event[key] = env[name]
        body = json.dumps(event).encode()
        status = _send("POST", "/hooks/deploy", {}, body, _delivery_id(argv[1]))
        return 0 if 200 <= status < 300 else 1
    if argv == ["check"]:
        query = {"service": env["SERVICE"], "environment": env["ENVIRONMENT"]}
        status = _send("GET", "/hooks/deploy/lock", query, b"", "")
        return {200: 0, 423: 3}.get(status, 1)
    print("usage: deploy_event.py event <status> | deploy_event.py check", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
