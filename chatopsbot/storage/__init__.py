"""Storage: the one contract every backend keeps, and how to open one.

Storage is the spine of the bot. Beside the plugins' namespaced values it holds the **inbox**
(every acknowledged webhook, recorded before the 200, with its dedupe key) and the **outbox**
(every decided reply, recorded before it counts as decided, sent from there in order per
conversation). A crash therefore loses nothing acknowledged or decided.

:class:`Backend` is the contract; :mod:`chatopsbot.storage.sqlite` is the embedded default
(``path = ":memory:"`` keeps it in memory, for tests and the shell). A server backend for several
replicas implements the same protocol.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from attrs import frozen

__all__ = [
    "CARD_AUTHORS",
    "PROPOSALS",
    "TIMERS",
    "Backend",
    "NewMessage",
    "QueuedMessage",
    "StorageError",
    "Write",
    "open_backend",
]


# The runtime's own namespaces among the stored values, declared here once. Plugin names
# cannot contain ":", so no plugin's namespace can collide with them.
#: Which plugin sent which card (message id -> plugin), so form edits find their way back.
CARD_AUTHORS = "chatopsbot:card-authors"
#: Commands waiting for their caller's confirmation.
PROPOSALS = "chatopsbot:proposals"
#: Plugins' one-shot timers.
TIMERS = "chatopsbot:timers"


class StorageError(Exception):
    """The store cannot be opened or used; the message names the file and the cause."""


@frozen
class Write:
    """A namespaced value to store in the same transaction as something else."""

    namespace: str
    key: str
    value: str
    expires_at: float | None = None


@frozen
class NewMessage:
    """A decided message on its way into the outbox.

    ``lane`` orders messages (one conversation); ``account`` shares a rate limit; ``payload``
    and ``meta`` are JSON text the sender understands (the outbox itself never reads them).
    """

    lane: str
    account: str
    payload: str
    meta: str = "{}"


@frozen
class QueuedMessage:
    """An outbox row: queued (``state == "queued"``) or a dead letter (``"dead"``)."""

    id: int
    lane: str
    account: str
    payload: str
    meta: str
    created_at: float
    attempts: int = 0
    state: str = "queued"
    reason: str = ""
    error: str = ""
    failed_at: float | None = None


class Backend(Protocol):
    """Where everything durable lives. ``now`` is epoch seconds; expired entries are absent."""

    # Plugin values (and the runtime's own reserved namespaces).

    async def get(self, namespace: str, key: str, now: float) -> str | None:
        """The stored text, or ``None``."""
        ...

    async def put(self, namespace: str, key: str, value: str, expires_at: float | None) -> None:
        """Store ``value`` (replacing any), to expire at ``expires_at`` if given."""
        ...

    async def delete(self, namespace: str, key: str) -> bool:
        """Remove the key; True if it was there."""
        ...

    async def scan(self, namespace: str, prefix: str, now: float) -> list[tuple[str, str]]:
        """Every live ``(key, text)`` whose key starts with ``prefix``, in key order."""
        ...

    async def update(
        self,
        namespace: str,
        key: str,
        change: Callable[[str | None], str | None],
        now: float,
        expires_at: float | None,
    ) -> str | None:
        """Atomically replace the text with ``change(old)`` (``None`` deletes); return it.

        ``change`` runs inside the transaction, possibly on the storage thread: it must be a
        pure function of its argument.
        """
        ...

    async def purge(self, now: float) -> int:
        """Delete expired values and forgotten inbox keys; return how many rows went."""
        ...

    async def close(self) -> None:
        """Release the backend (waits for writes in progress)."""
        ...

    # The inbox: accepted webhooks.

    async def inbox_accept(self, key: str, body: bytes, now: float) -> bool:
        """Record an event durably under its dedupe ``key``; False if the key is known.

        A key is known while its event is pending and until the ``expires_at`` given when
        it was settled.
        """
        ...

    async def inbox_pending(self) -> list[tuple[str, bytes]]:
        """Events accepted but not settled (a crash came between), oldest first."""
        ...

    async def inbox_settle(self, key: str, expires_at: float) -> None:
        """Mark the event handled; its key is remembered until ``expires_at``."""
        ...

    # The outbox: decided messages.

    async def outbox_add(
        self,
        messages: Sequence[NewMessage],
        now: float,
        *,
        settle: tuple[str, float] | None = None,
    ) -> list[int]:
        """Queue ``messages`` (ids ascend in the order given) and, in the same transaction,
        settle the inbox key ``settle[0]`` (remembered until ``settle[1]``)."""
        ...

    async def outbox_head(self, lane: str) -> QueuedMessage | None:
        """The oldest queued message of ``lane``."""
        ...

    async def outbox_lanes(self) -> list[tuple[str, str]]:
        """Every ``(lane, account)`` with queued messages."""
        ...

    async def outbox_sent(self, message_id: int, writes: Sequence[Write] = ()) -> None:
        """Forget a sent message and store ``writes`` in the same transaction."""
        ...

    async def outbox_attempted(self, message_id: int, error: str) -> None:
        """Count a failed attempt on a message that stays queued."""
        ...

    async def outbox_dead(self, message_id: int, reason: str, error: str, now: float) -> None:
        """Move a message to the dead letters."""
        ...

    async def outbox_stats(self) -> tuple[int, float | None]:
        """How many messages are queued, and when the oldest of them was decided."""
        ...

    async def outbox_list(self, state: str, limit: int = 1000) -> list[QueuedMessage]:
        """Messages in ``state`` (``"queued"`` or ``"dead"``), oldest first."""
        ...

    async def outbox_requeue(self, ids: Sequence[int] | None, now: float) -> int:
        """Queue dead letters again (all of them with ``None``); return how many."""
        ...

    async def outbox_drop(self, ids: Sequence[int] | None) -> int:
        """Delete dead letters (all of them with ``None``); return how many."""
        ...


async def open_backend(path: str) -> Backend:
    """The backend for ``[storage] path``: a SQLite file, or ``:memory:`` for a throwaway one."""
    from chatopsbot.storage.sqlite import SqliteBackend

    return await SqliteBackend.open(path)
