"""The durable queue half of ``SqlStore``.

Every operation is one short transaction made of set-based statements, so the same code is
correct on SQLite (one writer at a time) and on PostgreSQL (many writers): a claim is a single
``UPDATE ... WHERE id IN (ready messages) RETURNING``, where PostgreSQL's ``FOR UPDATE SKIP
LOCKED`` lets several servers claim side by side without ever handing out one message twice;
an ack is a ``DELETE ... WHERE owner = me RETURNING id`` whose result decides which follow-up
messages are inserted in the same transaction.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any

from sqlalchemy import Connection, case, delete, func, insert, select, update

from lambdalite.store.base import Ack, NewMessage, QueuedMessage, QueueStats, Retry
from lambdalite.store.tables import queue_messages

_Q = queue_messages.c
# Statements with an IN list are split so no backend hits its bound-parameter limit.
_CHUNK = 500

Session = Callable[[], AbstractContextManager[Connection]]


def _now_ms() -> int:
    return int(time.time() * 1000)


def _dumps(body: dict[str, Any]) -> str:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"))


def _chunks(items: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


class SqlQueue:
    """Queue operations over ``read``/``write`` connection factories of one engine."""

    def __init__(self, read: Session, write: Session, *, postgres: bool) -> None:
        self._read = read
        self._write = write
        self._postgres = postgres

    def _rows(self, messages: Sequence[NewMessage], now: int) -> list[dict[str, Any]]:
        return [
            {
                "queue": m.queue,
                "body": _dumps(m.body),
                "payload": bytes(m.payload),
                "enqueued_at": m.enqueued_at or now,
                "ready_at": m.due_at or now,
                "owner": None,
                "deliveries": 0,
            }
            for m in messages
        ]

    def enqueue(self, messages: Sequence[NewMessage], *, now: int | None = None) -> list[int]:
        if not messages:
            return []
        rows = self._rows(messages, now or _now_ms())
        stmt = insert(queue_messages).returning(_Q.id, sort_by_parameter_order=True)
        with self._write() as conn:
            return [int(i) for i in conn.execute(stmt, rows).scalars()]

    def claim(
        self, owner: str, limit: int, lease_ms: int, *, now: int | None = None
    ) -> list[QueuedMessage]:
        if limit <= 0:
            return []
        now = now or _now_ms()
        ready = select(_Q.id).where(_Q.ready_at <= now).order_by(_Q.ready_at, _Q.id).limit(limit)
        if self._postgres:
            ready = ready.with_for_update(skip_locked=True)
        stmt = (
            update(queue_messages)
            .where(_Q.id.in_(ready.scalar_subquery()))
            .values(owner=owner, ready_at=now + lease_ms, deliveries=_Q.deliveries + 1)
            .returning(_Q.id, _Q.queue, _Q.body, _Q.payload, _Q.enqueued_at, _Q.deliveries)
        )
        with self._write() as conn:
            rows = conn.execute(stmt).all()
        claimed = [
            QueuedMessage(
                id=int(r.id),
                queue=r.queue,
                body=json.loads(r.body),
                payload=bytes(r.payload),
                enqueued_at=int(r.enqueued_at),
                deliveries=int(r.deliveries),
            )
            for r in rows
        ]
        claimed.sort(key=lambda m: m.id)
        return claimed

    def renew(
        self,
        owner: str,
        lease_ms: int,
        *,
        ids: Sequence[int] | None = None,
        now: int | None = None,
    ) -> int:
        now = now or _now_ms()
        stmt = update(queue_messages).where(_Q.owner == owner).values(ready_at=now + lease_ms)
        if ids is None:
            with self._write() as conn:
                return int(conn.execute(stmt).rowcount)
        renewed = 0
        with self._write() as conn:
            for chunk in _chunks(list(ids)):
                renewed += int(conn.execute(stmt.where(_Q.id.in_(chunk))).rowcount)
        return renewed

    def ack(self, owner: str, acks: Sequence[Ack]) -> set[int]:
        if not acks:
            return set()
        done: set[int] = set()
        now = _now_ms()
        with self._write() as conn:
            for chunk in _chunks(acks):
                ids = [a.id for a in chunk]
                stmt = (
                    delete(queue_messages).where(_Q.owner == owner, _Q.id.in_(ids)).returning(_Q.id)
                )
                deleted = {int(i) for i in conn.execute(stmt).scalars()}
                follow_ups = [m for a in chunk if a.id in deleted for m in a.follow_ups]
                if follow_ups:
                    conn.execute(insert(queue_messages), self._rows(follow_ups, now))
                done |= deleted
        return done

    def reschedule(self, owner: str, retries: Sequence[Retry]) -> set[int]:
        done: set[int] = set()
        if not retries:
            return done
        with self._write() as conn:
            for retry in retries:
                stmt = (
                    update(queue_messages)
                    .where(_Q.id == retry.id, _Q.owner == owner)
                    .values(owner=None, ready_at=retry.due_at, body=_dumps(retry.body))
                )
                if conn.execute(stmt).rowcount == 1:
                    done.add(retry.id)
        return done

    def release(self, owner: str, *, now: int | None = None) -> int:
        now = now or _now_ms()
        stmt = update(queue_messages).where(_Q.owner == owner).values(owner=None, ready_at=now)
        with self._write() as conn:
            return int(conn.execute(stmt).rowcount)

    def queue_stats(self, *, now: int | None = None) -> list[QueueStats]:
        now = now or _now_ms()
        leased = case((_Q.owner.is_not(None) & (_Q.ready_at > now), 1), else_=0)
        stmt = (
            select(
                _Q.queue,
                func.count().label("depth"),
                func.sum(leased).label("claimed"),
                func.min(_Q.enqueued_at).label("oldest"),
            )
            .group_by(_Q.queue)
            .order_by(_Q.queue)
        )
        with self._read() as conn:
            rows = conn.execute(stmt).all()
        return [QueueStats(r.queue, int(r.depth), int(r.claimed or 0), int(r.oldest)) for r in rows]

    def purge(self, queue: str) -> int:
        with self._write() as conn:
            return int(conn.execute(delete(queue_messages).where(_Q.queue == queue)).rowcount)
