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

    def close(self) -> None:
        """Release connections."""
