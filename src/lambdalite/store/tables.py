"""Table definitions shared by every SQL backend.

Names that are ordered in listings (document keys, log groups and streams) use the "C"
collation on PostgreSQL so that both backends sort by code point, the way SQLite's default
BINARY collation does; otherwise listings would come back in locale order on one backend and
byte order on the other.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, MetaData, Table, Text
from sqlalchemy.types import TypeEngine

SCHEMA_VERSION = 1

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

# One row (id = 1) holding the version of the schema above; a future migration step reads it,
# upgrades, and bumps it.
schema_version = Table(
    "schema_version",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("version", Integer, nullable=False),
)
