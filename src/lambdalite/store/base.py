"""The metadata store contract.

Everything the control plane keeps lives in two shapes:

* **Documents**: JSON objects addressed by ``(kind, key)``, optionally grouped under a
  ``parent`` key, each carrying a ``revision`` (a fresh UUID on every write). Kinds used by the
  control plane: ``function`` (key = name), ``version`` (key = ``name:version``, parent = name),
  ``alias`` (key = ``name:alias``, parent = name). The revision doubles as AWS's
  ``RevisionId``, and conditional writes give optimistic concurrency without transactions
  spanning several calls.
* **Log events**: an append-only table of ``(group, stream, timestamp, message)`` rows with a
  monotonically increasing id used as a pagination token.
* **Queue messages**: a durable work queue (asynchronous invocations wait here). A message is
  committed before ``enqueue`` returns; a consumer *claims* ready messages under its owner
  name for a lease (visibility timeout), keeps the lease alive with ``renew``, and finishes each
  one with ``ack`` (delete, optionally enqueuing follow-up messages in the same transaction) or
  ``reschedule`` (back to the queue with a due time). A consumer that dies stops renewing, its
  leases run out, and another consumer claims the messages again: delivery is at-least-once.

Implementations must be safe to call from several threads at once (the log writer runs in a
worker thread) and must keep everything across restarts.
"""

from __future__ import annotations

import builtins
import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol


class Expect(enum.Enum):
    """Preconditions for ``put``/``delete`` besides an exact revision string."""

    ANY = "any"  # unconditional
    ABSENT = "absent"  # create only


@dataclass(frozen=True)
class Document:
    kind: str
    key: str
    parent: str
    data: dict[str, Any]
    revision: str


class DocumentExists(Exception):
    """``put(..., expect=Expect.ABSENT)`` found a document already there."""


class RevisionMismatch(Exception):
    """A conditional write found another revision, or no document at all."""


@dataclass(frozen=True)
class LogEvent:
    group: str
    stream: str
    timestamp: int  # epoch milliseconds
    message: str
    ingestion_time: int = 0  # epoch milliseconds; the store fills it in when 0
    id: int = 0  # assigned by the store, strictly increasing


@dataclass(frozen=True)
class LogStreamInfo:
    group: str
    stream: str
    first_event: int
    last_event: int
    last_ingestion: int
    stored_bytes: int


@dataclass(frozen=True)
class NewMessage:
    """A message to put on a queue. Times are epoch milliseconds; 0 means "now"."""

    queue: str
    body: dict[str, Any]
    payload: bytes = b""
    due_at: int = 0  # not claimable before this time
    enqueued_at: int = 0  # the age of the message counts from here


@dataclass(frozen=True)
class QueuedMessage:
    """A claimed message. ``deliveries`` counts claims, this one included."""

    id: int
    queue: str
    body: dict[str, Any]
    payload: bytes
    enqueued_at: int
    deliveries: int


@dataclass(frozen=True)
class Ack:
    """Finish message ``id``; ``follow_ups`` are enqueued in the same transaction."""

    id: int
    follow_ups: Sequence[NewMessage] = ()


@dataclass(frozen=True)
class Retry:
    """Return message ``id`` to its queue, claimable from ``due_at``, with a new body."""

    id: int
    due_at: int
    body: dict[str, Any]


@dataclass(frozen=True)
class QueueStats:
    queue: str
    depth: int  # every message on the queue, claimed or not
    claimed: int  # messages under a live lease
    oldest_enqueued_at: int  # epoch milliseconds


class Store(Protocol):
    # -- documents ---------------------------------------------------------------------
    def get(self, kind: str, key: str) -> Document | None:
        """The document, or None."""

    def list(self, kind: str, parent: str | None = None) -> list[Document]:
        """Documents of ``kind`` (under ``parent`` when given), ordered by key."""

    def put(
        self,
        kind: str,
        key: str,
        data: dict[str, Any],
        *,
        parent: str = "",
        expect: Expect | str = Expect.ANY,
    ) -> Document:
        """Write a document with a new revision and return it.

        ``expect`` is ``Expect.ANY`` (upsert), ``Expect.ABSENT`` (raise ``DocumentExists`` if
        present) or a revision string (raise ``RevisionMismatch`` unless the stored document
        has exactly that revision).
        """

    def delete(self, kind: str, key: str, *, expect: Expect | str = Expect.ANY) -> bool:
        """Delete one document; False if there was none. A revision string is checked as in put."""

    def delete_children(self, parent: str) -> int:
        """Delete every document (of any kind) whose parent is ``parent``; return the count."""

    # -- logs --------------------------------------------------------------------------
    def append_logs(self, events: Sequence[LogEvent]) -> None:
        """Store a batch of log events in order (NUL characters are stored as U+FFFD)."""

    def get_log_events(
        self,
        group: str,
        stream: str,
        *,
        start: int | None = None,
        end: int | None = None,
        after_id: int = 0,
        before_id: int | None = None,
        limit: int = 10000,
        newest_first: bool = False,
    ) -> builtins.list[LogEvent]:
        """Events of one stream with start <= timestamp < end and after_id < id < before_id.

        Ordered by id ascending, or descending with ``newest_first`` (then ``limit`` keeps
        the newest ones).
        """

    def filter_log_events(
        self,
        group: str,
        streams: Sequence[str] | None = None,
        *,
        stream_prefix: str | None = None,
        start: int | None = None,
        end: int | None = None,
        after_id: int = 0,
        contains: Sequence[str] = (),
        limit: int = 10000,
    ) -> builtins.list[LogEvent]:
        """Events across streams of a group, ordered by id; ``contains`` terms must all match."""

    def list_log_streams(self, group: str, prefix: str = "") -> builtins.list[LogStreamInfo]:
        """Streams of a group that have events, ordered by name."""

    def list_log_groups(self, prefix: str = "") -> builtins.list[str]:
        """Groups that have events, ordered by name."""

    def delete_logs(self, group: str) -> int:
        """Remove every event of a group; return the count."""

    # -- queue -------------------------------------------------------------------------
    def enqueue(
        self, messages: Sequence[NewMessage], *, now: int | None = None
    ) -> builtins.list[int]:
        """Store messages in one transaction and return their ids once it has committed.

        Ids are strictly increasing and never reused.
        """

    def claim(
        self, owner: str, limit: int, lease_ms: int, *, now: int | None = None
    ) -> builtins.list[QueuedMessage]:
        """Lease up to ``limit`` ready messages to ``owner`` until ``now + lease_ms``.

        A message is ready when its due time has come and it is not under a live lease (a
        lease that ran out counts as none). Oldest ready first. Concurrent claims, from this
        or other processes, never return the same message while its lease is live.
        """

    def renew(
        self,
        owner: str,
        lease_ms: int,
        *,
        ids: Sequence[int] | None = None,
        now: int | None = None,
    ) -> int:
        """Extend the leases ``owner`` holds (only on ``ids`` when given) to ``now + lease_ms``.

        Returns how many were extended. A consumer renews only the messages it is still
        working on, so one it lost track of comes back when its lease runs out.
        """

    def ack(self, owner: str, acks: Sequence[Ack]) -> set[int]:
        """Delete messages ``owner`` still holds and enqueue their follow-ups, atomically.

        Returns the ids that were deleted; a message whose lease was lost to another owner is
        left alone, and its follow-ups are not enqueued.
        """

    def reschedule(self, owner: str, retries: Sequence[Retry]) -> set[int]:
        """Release messages ``owner`` holds back to their queue with new due times and bodies.

        Returns the ids that were updated.
        """

    def release(self, owner: str, *, now: int | None = None) -> int:
        """Make every message ``owner`` holds claimable again at once; return how many."""

    def queue_stats(self, *, now: int | None = None) -> builtins.list[QueueStats]:
        """Per queue: messages, messages under a live lease, and the oldest enqueue time."""

    def purge(self, queue: str) -> int:
        """Delete every message of ``queue``; return the count."""

    def close(self) -> None:
        """Release connections."""
