"""The ``Store`` on SQLAlchemy Core: SQLite by default, PostgreSQL for shared deployments.

Every conditional write is a single statement whose WHERE clause carries the condition
(``UPDATE ... WHERE revision = :expected``, or a plain INSERT against the primary key), and the
affected row count tells whether it applied. That keeps optimistic concurrency correct without
explicit locking or multi-statement transactions, on both backends.
"""

from __future__ import annotations

import builtins
import json
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

from sqlalchemy import (
    Connection,
    bindparam,
    delete,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

from lambdalite.store.base import (
    Ack,
    Document,
    DocumentExists,
    Expect,
    LogEvent,
    LogStreamInfo,
    NewMessage,
    QueuedMessage,
    QueueStats,
    Retry,
    RevisionMismatch,
)
from lambdalite.store.engine import build_engine, is_memory_sqlite, normalize_url
from lambdalite.store.sqllogs import SqlLogs
from lambdalite.store.sqlqueue import SqlQueue
from lambdalite.store.tables import SCHEMA_VERSION, documents, metadata, schema_version

_D = documents.c

_GET = select(_D.parent, _D.data, _D.revision).where(
    _D.kind == bindparam("kind"), _D.key == bindparam("key")
)


def _now_ms() -> int:
    return int(time.time() * 1000)


class SqlStore:
    """Documents, log events and queue messages in one SQL database.

    ``url`` is a SQLAlchemy-style URL: ``sqlite:///path/lambdalite.db`` (file and parent
    directory created on demand; ``sqlite://`` for a private in-memory database) or
    ``postgresql://user@host/db`` (driven by psycopg 3). ``schema`` confines a PostgreSQL
    store to one schema, created if needed.
    """

    def __init__(self, url: str, *, schema: str | None = None) -> None:
        parsed = normalize_url(url)
        self._engine = build_engine(parsed, schema=schema)
        dialect = self._engine.dialect.name
        self._postgres = dialect == "postgresql"
        # Reads are single statements: on PostgreSQL running them outside a transaction saves
        # the BEGIN/ROLLBACK round trips; SQLite's driver already reads without one.
        self._reader = (
            self._engine.execution_options(isolation_level="AUTOCOMMIT")
            if self._postgres
            else self._engine
        )
        self._guard: AbstractContextManager[Any] = (
            threading.RLock() if is_memory_sqlite(parsed) else nullcontext()
        )
        dialect_insert = postgresql.insert if self._postgres else sqlite.insert
        upsert = dialect_insert(documents)
        self._upsert = upsert.on_conflict_do_update(
            index_elements=[_D.kind, _D.key],
            set_={
                "parent": upsert.excluded.parent,
                "data": upsert.excluded.data,
                "revision": upsert.excluded.revision,
                "updated_at": upsert.excluded.updated_at,
            },
        )
        self._logs = SqlLogs(self._read, self._write, self._engine.dialect)
        self._queue = SqlQueue(self._read, self._write, postgres=self._postgres)
        try:
            self._create_schema(schema)
        except BaseException:
            self._engine.dispose()
            raise

    def __enter__(self) -> SqlStore:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- setup ---------------------------------------------------------------------------

    def _create_schema(self, schema: str | None) -> None:
        if schema is not None:
            with self._engine.begin() as conn:
                conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        try:
            metadata.create_all(self._engine)
        except (OperationalError, ProgrammingError, IntegrityError):
            # Another process created the tables between our existence check and CREATE;
            # a second pass sees them and does nothing.
            metadata.create_all(self._engine)
        try:
            with self._engine.begin() as conn:
                conn.execute(insert(schema_version).values(id=1, version=SCHEMA_VERSION))
        except IntegrityError:
            pass
        with self._engine.connect() as conn:
            found = conn.execute(select(schema_version.c.version)).scalar_one()
        if found > SCHEMA_VERSION:
            raise RuntimeError(
                f"the database uses schema version {found}, newer than this lambdalite "
                f"understands ({SCHEMA_VERSION}); upgrade lambdalite"
            )
        if found < SCHEMA_VERSION:
            # Every step so far only adds tables, which create_all has just done.
            with self._engine.begin() as conn:
                conn.execute(
                    update(schema_version)
                    .where(schema_version.c.version < SCHEMA_VERSION)
                    .values(version=SCHEMA_VERSION)
                )

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self._guard, self._reader.connect() as conn:
            yield conn

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with self._guard, self._engine.begin() as conn:
            yield conn

    # -- documents -----------------------------------------------------------------------

    def get(self, kind: str, key: str) -> Document | None:
        with self._read() as conn:
            row = conn.execute(_GET, {"kind": kind, "key": key}).first()
        if row is None:
            return None
        return Document(kind, key, row.parent, json.loads(row.data), row.revision)

    def list(self, kind: str, parent: str | None = None) -> builtins.list[Document]:
        stmt = select(_D.key, _D.parent, _D.data, _D.revision).where(_D.kind == kind)
        if parent is not None:
            stmt = stmt.where(_D.parent == parent)
        with self._read() as conn:
            rows = conn.execute(stmt.order_by(_D.key)).all()
        return [Document(kind, r.key, r.parent, json.loads(r.data), r.revision) for r in rows]

    def put(
        self,
        kind: str,
        key: str,
        data: dict[str, Any],
        *,
        parent: str = "",
        expect: Expect | str = Expect.ANY,
    ) -> Document:
        body = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
        revision = str(uuid.uuid4())
        now = _now_ms()
        values = {
            "kind": kind,
            "key": key,
            "parent": parent,
            "data": body,
            "revision": revision,
            "updated_at": now,
        }
        if expect is Expect.ANY:
            with self._write() as conn:
                conn.execute(self._upsert, values)
        elif expect is Expect.ABSENT:
            try:
                with self._write() as conn:
                    conn.execute(insert(documents), values)
            except IntegrityError:
                raise DocumentExists(f"{kind} {key!r} already exists") from None
        elif isinstance(expect, str):
            stmt = (
                update(documents)
                .where(_D.kind == kind, _D.key == key, _D.revision == expect)
                .values(
                    parent=parent, data=body, revision=revision, updated_at=values["updated_at"]
                )
            )
            with self._write() as conn:
                applied = conn.execute(stmt).rowcount
            if applied != 1:
                raise RevisionMismatch(f"{kind} {key!r} is not at revision {expect}")
        else:
            raise TypeError(f"expect must be an Expect or a revision string, not {expect!r}")
        # Hand back what a later get() returns, not the caller's (mutable) object.
        return Document(kind, key, parent, json.loads(body), revision)

    def delete(self, kind: str, key: str, *, expect: Expect | str = Expect.ANY) -> bool:
        stmt = delete(documents).where(_D.kind == kind, _D.key == key)
        if expect is Expect.ABSENT:
            raise ValueError("Expect.ABSENT has no meaning for delete")
        if isinstance(expect, str):
            stmt = stmt.where(_D.revision == expect)
        with self._write() as conn:
            removed = conn.execute(stmt).rowcount
        if removed == 0 and isinstance(expect, str):
            raise RevisionMismatch(f"{kind} {key!r} is not at revision {expect}")
        return bool(removed)

    def delete_children(self, parent: str) -> int:
        if not parent:
            # Top-level documents share the empty parent; wiping them all is never intended.
            raise ValueError("delete_children needs a non-empty parent")
        with self._write() as conn:
            return int(conn.execute(delete(documents).where(_D.parent == parent)).rowcount)

    # -- logs ----------------------------------------------------------------------------

    def append_logs(self, events: Sequence[LogEvent]) -> None:
        self._logs.append_logs(events)

    def append_log_lines(self, lines: Sequence[tuple[str, str, int, str]]) -> None:
        """``append_logs`` of (group, stream, timestamp, message) lines, ingested now."""
        self._logs.append_log_lines(lines)

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
        return self._logs.get_log_events(
            group, stream, start=start, end=end, after_id=after_id, before_id=before_id,
            limit=limit, newest_first=newest_first,
        )  # fmt: skip

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
        return self._logs.filter_log_events(
            group, streams, stream_prefix=stream_prefix, start=start, end=end,
            after_id=after_id, contains=contains, limit=limit,
        )  # fmt: skip

    def list_log_streams(self, group: str, prefix: str = "") -> builtins.list[LogStreamInfo]:
        return self._logs.list_log_streams(group, prefix)

    def list_log_groups(self, prefix: str = "") -> builtins.list[str]:
        return self._logs.list_log_groups(prefix)

    def delete_logs(self, group: str) -> int:
        return self._logs.delete_logs(group)

    # -- queue ---------------------------------------------------------------------------

    def enqueue(
        self, messages: Sequence[NewMessage], *, now: int | None = None
    ) -> builtins.list[int]:
        return self._queue.enqueue(messages, now=now)

    def claim(
        self, owner: str, limit: int, lease_ms: int, *, now: int | None = None
    ) -> builtins.list[QueuedMessage]:
        return self._queue.claim(owner, limit, lease_ms, now=now)

    def renew(
        self,
        owner: str,
        lease_ms: int,
        *,
        ids: Sequence[int] | None = None,
        now: int | None = None,
    ) -> int:
        return self._queue.renew(owner, lease_ms, ids=ids, now=now)

    def ack(self, owner: str, acks: Sequence[Ack]) -> set[int]:
        return self._queue.ack(owner, acks)

    def reschedule(self, owner: str, retries: Sequence[Retry]) -> set[int]:
        return self._queue.reschedule(owner, retries)

    def release(self, owner: str, *, now: int | None = None) -> int:
        return self._queue.release(owner, now=now)

    def queue_stats(self, *, now: int | None = None) -> builtins.list[QueueStats]:
        return self._queue.queue_stats(now=now)

    def purge(self, queue: str) -> int:
        return self._queue.purge(queue)

    def close(self) -> None:
        self._engine.dispose()
