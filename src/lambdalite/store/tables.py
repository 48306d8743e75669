"""Table definitions shared by every SQL backend.

Names that are ordered in listings (document keys, log groups and streams) use the "C"
collation on PostgreSQL so that both backends sort by code point, the way SQLite's default
BINARY collation does; otherwise listings would come back in locale order on one backend and
byte order on the other.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, LargeBinary, MetaData, Table, Text
from sqlalchemy.types import TypeEngine

# 1: documents, log events. 2: queue messages (opening a version 1 database adds the table).
SCHEMA_VERSION = 2

metadata = MetaData()


def _name() -> TypeEngine[str]:
    return Text().with_variant(Text(collation="C"), "postgresql")


# SQLite only gives AUTOINCREMENT (ids never reused, even after deletes) to a column declared
# exactly INTEGER PRIMARY KEY; PostgreSQL wants BIGINT so the id never runs out.
_EventId = BigInteger().with_variant(Integer(), "sqlite")

documents = Table(
    "documents",
    metadata,
    Column("kind", _name(), primary_key=True),
    Column("key", _name(), primary_key=True),
    Column("parent", _name(), nullable=False, default=""),
    Column("data", Text, nullable=False),
    Column("revision", Text, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Index("documents_parent", "parent"),
)

log_events = Table(
    "log_events",
    metadata,
    Column("id", _EventId, primary_key=True, autoincrement=True),
    Column("group_name", _name(), nullable=False),
    Column("stream_name", _name(), nullable=False),
    Column("timestamp", BigInteger, nullable=False),
    Column("ingestion_time", BigInteger, nullable=False),
    Column("message", Text, nullable=False),
    Index("log_events_stream", "group_name", "stream_name", "id"),
    Index("log_events_group", "group_name", "id"),
    sqlite_autoincrement=True,
)

# The durable queue. ``ready_at`` is the one time a claim looks at: the due time while a message
# waits, the lease expiry while an owner holds it; so "claimable" is ``ready_at <= now`` on a
# single index whether the message is new, rescheduled, or abandoned by a crashed owner.
queue_messages = Table(
    "queue_messages",
    metadata,
    Column("id", _EventId, primary_key=True, autoincrement=True),
    Column("queue", _name(), nullable=False),
    Column("body", Text, nullable=False),
    Column("payload", LargeBinary, nullable=False),
    Column("enqueued_at", BigInteger, nullable=False),
    Column("ready_at", BigInteger, nullable=False),
    Column("owner", Text, nullable=True),
    Column("deliveries", Integer, nullable=False, default=0),
    Index("queue_messages_ready", "ready_at", "id"),
    Index("queue_messages_owner", "owner"),
    Index("queue_messages_queue", "queue", "enqueued_at"),
    sqlite_autoincrement=True,
)

# One row (id = 1) holding the version of the schema above; opening an older database creates
# the missing tables and bumps it.
schema_version = Table(
    "schema_version",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("version", Integer, nullable=False),
)
