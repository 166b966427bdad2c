"""Storage: the one contract every backend keeps, and how to open one.

Storage is the spine of the bot. Beside the plugins' namespaced values it holds the **inbox**
(every acknowledged webhook, recorded before the 200, with its dedupe key) and the **outbox**
(every decided reply, recorded before it counts as decided, sent from there in order per
conversation). A crash therefore loses nothing acknowledged or decided. The **audit log**
(:mod:`chatopsbot.audit`) is written there too, with the replies of the act it records.

:class:`Backend` is the contract; :mod:`chatopsbot.storage.sqlite` is the embedded default
(``path = ":memory:"`` keeps it in memory, for tests and the shell). A server backend for several
replicas implements the same protocol.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from attrs import frozen

from chatopsbot.audit import AuditEntry, AuditQuery, fold_name
from chatopsbot.errors import ChatopsbotError

__all__ = [
    "AUDIT_COLUMNS",
    "CARD_AUTHORS",
    "LAST_SENT",
    "OUTBOX_COLUMNS",
    "PROPOSALS",
    "TIMERS",
    "Added",
    "Backend",
    "Export",
    "NewMessage",
    "QueuedMessage",
    "StorageError",
    "Write",
    "audit_from_row",
    "audit_row",
    "audit_where",
    "checked_writes",
    "message_from_row",
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
#: When each Zoom account was last sent to (wall-clock seconds), so a process that takes over
#: right after another does not exceed the account's quota in the second they share.
LAST_SENT = "chatopsbot:last-sent"


class StorageError(ChatopsbotError):
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
    #: Someone waits for the result (``ctx.send``), perhaps on another replica: the sender
    #: keeps it for them (see :meth:`Backend.outbox_result`).
    waited: bool = False


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
    waited: bool = False


@frozen
class Added:
    """What :meth:`Backend.outbox_add` wrote: the new messages' ids, in the order given, and
    which of them was the oldest queued message of its lane once written (nothing older was
    waiting), so the sender can take it without reading it back."""

    ids: tuple[int, ...] = ()
    heads: frozenset[int] = frozenset()


@frozen
class Export:
    """A backend's data, for copying it into another: ``values`` are ``(namespace, key, text,
    expires_at)``, ``events`` ``(key, body, received_at)``, ``messages`` in id order, ``audit``
    the audit log in the order written."""

    values: tuple[tuple[str, str, str, float | None], ...]
    events: tuple[tuple[str, bytes, float], ...]
    messages: tuple[QueuedMessage, ...]
    audit: tuple[AuditEntry, ...] = ()


class Backend(Protocol):
    """Where everything durable lives. ``now`` is epoch seconds; expired entries are absent.

    ``shared`` tells whether several processes may use the storage at once (PostgreSQL): then
    leases decide who sends and runs jobs, and notifications carry news between them.
    """

    @property
    def shared(self) -> bool:
        """Whether other processes may use this storage at the same time."""
        ...

    @property
    def path(self) -> str:
        """Where the data is (a file, or a URL with its password hidden)."""
        ...

    # Plugin values (and the runtime's own reserved namespaces).

    async def get(self, namespace: str, key: str, now: float) -> str | None:
        """The stored text, or ``None``."""
        ...

    async def put(
        self,
        namespace: str,
        key: str,
        value: str,
        expires_at: float | None,
        *,
        defer: bool = False,
    ) -> None:
        """Store ``value`` (replacing any), to expire at ``expires_at`` if given.

        ``defer``: the write may become durable against power loss a moment after it returns
        (it is against a crash of the process at once): only for what a power loss makes moot.
        """
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
        pure function of its argument. An exception from it writes nothing and propagates.
        """
        ...

    async def get_many(self, namespace: str, keys: Sequence[str], now: float) -> dict[str, str]:
        """The live keys among ``keys`` and their text, read in one snapshot (one statement):
        a multi-key write is seen whole or not at all."""
        ...

    async def update_many(
        self,
        namespace: str,
        keys: Sequence[str],
        change: Callable[[dict[str, str]], Mapping[str, str | None]],
        now: float,
        expires_at: float | None,
    ) -> dict[str, str]:
        """Atomically read ``keys`` (the live ones, as ``{key: text}``), apply ``change`` and
        write what it returns (``None`` deletes; a key it leaves out stays as it is); return the
        live keys' text afterwards.

        ``change`` may only write keys among ``keys`` (:class:`ValueError` otherwise). An
        exception from it writes nothing and propagates. The keys are locked for the whole
        step, also against :meth:`update` of any one of them and across processes sharing the
        storage; ``change`` runs inside the transaction, possibly on the storage thread, and
        must be a pure function of its argument.
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

    async def inbox_release(self, key: str) -> None:
        """Give a pending event up (this process stops before handling it): the next
        :meth:`inbox_reclaim` takes it whatever its age."""
        ...

    async def inbox_reclaim(self, before: float, now: float) -> list[tuple[str, bytes]]:
        """Take over events pending since before ``before`` (their handler's process is gone):
        they count as received ``now``, so no other process takes them too."""
        ...

    # The outbox: decided messages.

    async def outbox_add(
        self,
        messages: Sequence[NewMessage],
        now: float,
        *,
        settle: tuple[str, float] | None = None,
        audit: Sequence[AuditEntry] = (),
        defer: bool = False,
    ) -> Added:
        """Queue ``messages`` (ids ascend in the order given) and, in the same transaction,
        settle the inbox key ``settle[0]`` (remembered until ``settle[1]``) and record the
        ``audit`` entries.

        If that event is not pending (it was settled already: an earlier try committed and
        its answer was lost), nothing is written (no messages, no audit entries: they were
        written by that earlier try) and no ids are returned.

        :attr:`Added.heads` names the messages that were the oldest queued of their lane when
        written.

        ``defer``: the write may become durable against power loss a moment after it returns
        (it is against a crash of the process at once): only for a write that settles an
        event, which such a loss would leave pending, to be handled again.
        """
        ...

    async def outbox_head(self, lane: str) -> QueuedMessage | None:
        """The oldest queued message of ``lane``."""
        ...

    async def outbox_lanes(self) -> list[tuple[str, str]]:
        """Every ``(lane, account)`` with queued messages."""
        ...

    async def outbox_sent(
        self,
        message_id: int,
        writes: Sequence[Write] = (),
        *,
        result: str | None = None,
        lane: str | None = None,
    ) -> QueuedMessage | None:
        """Forget a sent message and store ``writes`` in the same transaction; return the
        next queued message of ``lane`` (when given), saving the sender a read.

        With ``result`` (for a message someone waits for) the row is kept, marked sent, until
        :meth:`purge` runs an hour later.

        A backend may make this durable against power loss a moment after it returns: lost,
        it makes the message go again, never go missing.
        """
        ...

    async def outbox_result(self, message_id: int) -> tuple[str, str] | None:
        """``("sent", result)`` or ``("dead", error)`` for a finished message that was waited
        for; ``None`` while it is queued (or unknown)."""
        ...

    async def outbox_attempted(self, message_id: int, error: str) -> None:
        """Count a failed attempt on a message that stays queued."""
        ...

    async def outbox_dead(
        self, message_id: int, reason: str, error: str, now: float, *, attempted: bool = True
    ) -> None:
        """Move a message to the dead letters; ``attempted``: after one more try (not when it
        expired waiting)."""
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

    async def outbox_forget(self, account: str, lane: str | None = None) -> int:
        """Delete messages of ``account``: all of them (queued, dead letters, results kept for
        a waiter) or, with ``lane`` (compared without case, as JIDs are), that lane's queued
        ones; return how many went."""
        ...

    # The audit log.

    async def audit_add(self, entries: Sequence[AuditEntry]) -> None:
        """Record ``entries`` in one transaction (for acts without an inbox event: hooks)."""
        ...

    async def audit_query(self, query: AuditQuery) -> list[AuditEntry]:
        """The entries ``query`` matches (see :meth:`AuditQuery.matches`), newest first, the
        last written first among entries of the same time; at most ``query.limit``."""
        ...

    async def audit_purge(self, before: float) -> int:
        """Delete entries recorded before ``before``; return how many went."""
        ...

    async def audit_forget(self, account: str) -> int:
        """Delete the entries of ``account`` (it removed the app); return how many went."""
        ...

    # Moving a bot's data from one backend to another (``chatopsbot migrate --from --to``).

    async def export(self) -> Export:
        """Everything worth keeping: values, unfinished events, queued and dead messages, the
        audit log."""
        ...

    async def load(self, data: Export) -> None:
        """Add ``data`` (from :meth:`export`) in one transaction; messages keep their order."""
        ...

    # Coordination between processes sharing the storage.

    async def hold_lease(self, name: str) -> bool:
        """Take the lease ``name``, or confirm this process still holds it.

        A lease is held by one process at a time and released when that process dies.
        """
        ...

    async def release_lease(self, name: str) -> None:
        """Give the lease up (on shutdown), so another process takes it at once."""
        ...

    def holds(self, name: str) -> bool:
        """Whether this process still holds the lease, as far as it knows right now (no I/O):
        False as soon as the connection that held it is known to be gone."""
        ...

    async def notify(self, channel: str, payload: str) -> None:
        """Tell every process listening on ``channel`` (this one too)."""
        ...

    async def listen(self, channel: str, callback: Callable[[str], None]) -> None:
        """Call ``callback(payload)`` on the loop for each notification on ``channel``."""
        ...


def message_from_row(row: Sequence[Any]) -> QueuedMessage:
    """A :class:`QueuedMessage` from a row of the outbox's columns, in their declared order."""
    return QueuedMessage(
        id=int(row[0]),
        lane=str(row[1]),
        account=str(row[2]),
        payload=str(row[3]),
        meta=str(row[4]),
        created_at=float(row[5]),
        attempts=int(row[6]),
        state=str(row[7]),
        reason=str(row[8]),
        error=str(row[9]),
        failed_at=None if row[10] is None else float(row[10]),
        waited=bool(row[11]),
    )


#: The audit table's columns (beside its id and ``actor_fold``), in :class:`AuditEntry` order.
AUDIT_COLUMNS = (
    "at, kind, actor_id, actor_name, actor_jid, account_id, conversation, conversation_name, "
    "what, detail, result, ref"
)


def audit_row(entry: AuditEntry) -> tuple[Any, ...]:
    """The values to insert: :data:`AUDIT_COLUMNS`, then ``actor_fold``."""
    return (
        entry.at,
        entry.kind,
        entry.actor_id,
        entry.actor_name,
        entry.actor_jid,
        entry.account_id,
        entry.conversation,
        entry.conversation_name,
        entry.what,
        entry.detail,
        entry.result,
        entry.ref,
        fold_name(entry.actor_name),
    )


def audit_from_row(row: Sequence[Any]) -> AuditEntry:
    """An :class:`AuditEntry` from a row of :data:`AUDIT_COLUMNS`."""
    return AuditEntry(float(row[0]), *(str(v) for v in row[1:12]))


def audit_where(query: AuditQuery, mark: Callable[[int], str]) -> tuple[str, list[Any]]:
    """The ``WHERE`` condition (``TRUE`` for none) and its arguments for ``query``'s filters.

    ``mark(n)`` writes the n-th placeholder (``?`` or ``$n``). The SQL is the same on both
    backends (``substr`` rather than ``LIKE``, so ``%`` and ``_`` in a name mean themselves)
    and says what :meth:`AuditQuery.matches` says.
    """
    terms: list[str] = []
    args: list[Any] = []

    def arg(value: Any) -> str:
        args.append(value)
        return mark(len(args))

    if query.since is not None:
        terms.append(f"at >= {arg(query.since)}")
    if query.until is not None:
        terms.append(f"at < {arg(query.until)}")
    if query.user is not None:
        terms.append(
            f"(actor_id = {arg(query.user)} OR actor_jid = {arg(query.user)} "
            f"OR actor_fold = {arg(fold_name(query.user))})"
        )
    if query.command is not None:
        space, colon = query.prefixes
        size = len(space)
        terms.append(
            f"(what = {arg(query.command)} OR substr(what, 1, {arg(size)}) = {arg(space)} "
            f"OR substr(what, 1, {arg(size)}) = {arg(colon)})"
        )
    return (" AND ".join(terms) or "TRUE"), args


#: The outbox's columns, in the order :func:`message_from_row` reads them.
OUTBOX_COLUMNS = (
    "id, lane, account, payload, meta, created_at, attempts, state, reason, error, failed_at, "
    "waited"
)


def checked_writes(keys: Sequence[str], writes: Mapping[str, str | None]) -> dict[str, str | None]:
    """``writes`` (from an :meth:`Backend.update_many` change), refused with :class:`ValueError`
    if it names a key that was not locked."""
    stray = sorted(set(writes) - set(keys))
    if stray:
        raise ValueError(f"update_many may only write the keys it was given, not {stray[0]!r}")
    return dict(writes)


async def open_backend(path: str = "", *, url: str = "") -> Backend:
    """The backend for ``[storage]``: PostgreSQL for a ``url``, else the SQLite file ``path``
    (``:memory:`` for a throwaway one)."""
    if url:
        from chatopsbot.storage.postgres import PostgresBackend

        return await PostgresBackend.open(url)
    from chatopsbot.storage.sqlite import SqliteBackend

    return await SqliteBackend.open(path)
