"""Function log events in SQL: the log half of ``SqlStore``.

Log rows are written on every invocation (START, END, REPORT lines), so the INSERT is compiled
once for the dialect and handed to the driver's executemany, which skips the per-row parameter
processing of a Core insert yet keeps SQLAlchemy's transaction, error translation and
invalidation of broken connections. Reads are single statements in the shape CloudWatch
Logs' GetLogEvents, FilterLogEvents, DescribeLogStreams and DescribeLogGroups need.
"""

from __future__ import annotations

import builtins
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any

from sqlalchemy import ColumnElement, Connection, LargeBinary, cast, delete, func, insert, select
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.elements import KeyedColumnElement

from lambdalite.store.base import LogEvent, LogStreamInfo
from lambdalite.store.tables import log_events

Session = Callable[[], AbstractContextManager[Connection]]
Rows = builtins.list[tuple[Any, ...]] | builtins.list[dict[str, Any]]

_L = log_events.c
_EVENTS = select(_L.id, _L.group_name, _L.stream_name, _L.timestamp, _L.ingestion_time, _L.message)
_LOG_COLUMNS = ("group_name", "stream_name", "timestamp", "ingestion_time", "message")


class SqlLogs:
    def __init__(self, read: Session, write: Session, dialect: Dialect) -> None:
        self._read = read
        self._write = write
        self._postgres = dialect.name == "postgresql"
        self._contains = func.strpos if self._postgres else func.instr
        compiled = (
            insert(log_events).inline().compile(dialect=dialect, column_keys=list(_LOG_COLUMNS))
        )
        self._log_insert = str(compiled)
        self._log_positional = dialect.positional

    def append_logs(self, events: Sequence[LogEvent]) -> None:
        if not events:
            return
        now = int(time.time() * 1000)
        # PostgreSQL text cannot hold NUL; replacing it on every backend keeps one behaviour
        # and never loses a batch over a stray byte a function printed.
        rows: Rows = [
            (
                e.group,
                e.stream,
                e.timestamp,
                e.ingestion_time or now,
                e.message.replace("\x00", "\ufffd"),
            )
            for e in events
        ]
        self._insert_logs(rows)

    def append_log_lines(self, lines: Sequence[tuple[str, str, int, str]]) -> None:
        """``append_logs`` of events given as (group, stream, timestamp, message), all
        ingested now: what the log sink buffers, without an object per line."""
        if not lines:
            return
        now = int(time.time() * 1000)
        rows: Rows = [
            (group, stream, timestamp, now, message.replace("\x00", "\ufffd"))
            for group, stream, timestamp, message in lines
        ]
        self._insert_logs(rows)

    def _insert_logs(self, rows: Rows) -> None:
        if not self._log_positional:
            rows = [dict(zip(_LOG_COLUMNS, row, strict=True)) for row in rows]
        with self._write() as conn:
            conn.exec_driver_sql(self._log_insert, rows)

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
        stmt = _EVENTS.where(_L.group_name == group, _L.stream_name == stream)
        stmt = stmt.where(*_time_and_id(start, end, after_id, before_id))
        stmt = stmt.order_by(_L.id.desc() if newest_first else _L.id).limit(limit)
        with self._read() as conn:
            return [_event(r) for r in conn.execute(stmt)]

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
        stmt = _EVENTS.where(_L.group_name == group)
        if streams is not None:
            if not streams:
                return []
            stmt = stmt.where(_L.stream_name.in_(builtins.list(streams)))
        if stream_prefix:
            stmt = stmt.where(_has_prefix(_L.stream_name, stream_prefix))
        stmt = stmt.where(*_time_and_id(start, end, after_id, None))
        for term in contains:
            stmt = stmt.where(self._contains(_L.message, term) > 0)
        with self._read() as conn:
            return [_event(r) for r in conn.execute(stmt.order_by(_L.id).limit(limit))]

    def list_log_streams(self, group: str, prefix: str = "") -> builtins.list[LogStreamInfo]:
        if self._postgres:
            size: ColumnElement[int] = func.octet_length(_L.message)
        else:
            size = func.length(cast(_L.message, LargeBinary))
        stmt = (
            select(
                _L.stream_name,
                func.min(_L.timestamp).label("first_event"),
                func.max(_L.timestamp).label("last_event"),
                func.max(_L.ingestion_time).label("last_ingestion"),
                func.sum(size).label("stored_bytes"),
            )
            .where(_L.group_name == group)
            .group_by(_L.stream_name)
            .order_by(_L.stream_name)
        )
        if prefix:
            stmt = stmt.where(_has_prefix(_L.stream_name, prefix))
        with self._read() as conn:
            rows = conn.execute(stmt).all()
        return [
            LogStreamInfo(
                group=group,
                stream=r.stream_name,
                first_event=int(r.first_event),
                last_event=int(r.last_event),
                last_ingestion=int(r.last_ingestion),
                stored_bytes=int(r.stored_bytes or 0),
            )
            for r in rows
        ]

    def list_log_groups(self, prefix: str = "") -> builtins.list[str]:
        stmt = select(_L.group_name).distinct().order_by(_L.group_name)
        if prefix:
            stmt = stmt.where(_has_prefix(_L.group_name, prefix))
        with self._read() as conn:
            return builtins.list(conn.execute(stmt).scalars())

    def delete_logs(self, group: str) -> int:
        with self._write() as conn:
            return int(conn.execute(delete(log_events).where(_L.group_name == group)).rowcount)


def _has_prefix(column: KeyedColumnElement[str], prefix: str) -> ColumnElement[bool]:
    # substr() compares code points on both backends; LIKE would ignore ASCII case on SQLite.
    return func.substr(column, 1, len(prefix)) == prefix


def _time_and_id(
    start: int | None, end: int | None, after_id: int, before_id: int | None
) -> builtins.list[ColumnElement[bool]]:
    conditions: builtins.list[ColumnElement[bool]] = []
    if start is not None:
        conditions.append(_L.timestamp >= start)
    if end is not None:
        conditions.append(_L.timestamp < end)
    if after_id:
        conditions.append(_L.id > after_id)
    if before_id is not None:
        conditions.append(_L.id < before_id)
    return conditions


def _event(row: Any) -> LogEvent:
    return LogEvent(
        group=row.group_name,
        stream=row.stream_name,
        timestamp=row.timestamp,
        message=row.message,
        ingestion_time=row.ingestion_time,
        id=row.id,
    )
