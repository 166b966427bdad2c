"""``chatopsbot outbox list|retry|drop``: what an operator sees of the outbox, and can do about it.

Works on the storage file the config names, whether or not the bot is running: a running bot
finds requeued messages at its next rescan of storage (within ``RESCAN`` seconds).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import TextIO

from chatopsbot.storage import Backend, QueuedMessage

__all__ = ["outbox_command"]

#: How often a running bot looks for messages queued by another process.
RESCAN = 30


def _preview(message: QueuedMessage, width: int = 60) -> str:
    """The message's text, as far as it can be told from the stored call."""
    try:
        call = json.loads(message.payload)
        body = call.get("body") or {}
        content = body.get("content") or {}
        parts = [content.get("head", {}).get("text", "")]
        parts += [
            item.get("text", "") for item in content.get("body", []) if isinstance(item, dict)
        ]
        text = " | ".join(p for p in parts if isinstance(p, str) and p) or call.get("method", "")
    except (ValueError, AttributeError, TypeError):
        text = "?"
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _age(since: float | None, now: float) -> str:
    if since is None:
        return "-"
    seconds = max(0, int(now - since))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


async def outbox_command(
    backend: Backend,
    action: str,
    ids: Sequence[int],
    *,
    every: bool,
    queued: bool,
    out: TextIO,
) -> int:
    """Run ``outbox list|retry|drop``; return the exit status."""
    now = time.time()
    if action == "list":
        depth, oldest = await backend.outbox_stats()
        dead = await backend.outbox_list("dead")
        print(
            f"queued: {depth} message(s)"
            + (f", oldest decided {_age(oldest, now)} ago" if oldest is not None else ""),
            file=out,
        )
        print(f"dead letters: {len(dead)}", file=out)
        rows = dead + (await backend.outbox_list("queued") if queued else [])
        for m in rows:
            when = m.failed_at if m.state == "dead" else m.created_at
            print(
                f"  {m.id:>6} {m.state:<6} {m.reason or '-':<8} {_age(when, now):>4} "
                f"tries={m.attempts} to={m.lane} {_preview(m)!r}",
                file=out,
            )
            if m.error:
                print(f"         {m.error[:200]}", file=out)
        return 0
    if not ids and not every:
        print(f"chatopsbot outbox {action}: name the message ids, or --all", file=out)
        return 2
    chosen = None if every else list(ids)
    if action == "retry":
        count = await backend.outbox_requeue(chosen, now)
        print(
            f"requeued {count} dead letter(s); a running bot sends them within {RESCAN} s, "
            "in their original place in their conversation",
            file=out,
        )
    else:
        count = await backend.outbox_drop(chosen)
        print(f"dropped {count} dead letter(s)", file=out)
    if chosen is not None and count < len(chosen):
        print(f"({len(chosen) - count} of the ids named are not dead letters)", file=out)
        return 1
    return 0
