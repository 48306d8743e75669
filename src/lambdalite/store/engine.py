"""Building a SQLAlchemy engine for a store URL.

Kept apart from the store itself because the per-backend connection tuning (SQLite pragmas,
PostgreSQL driver and schema selection) is the part most likely to grow, and it has nothing to
do with how documents or log events are laid out.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import StaticPool

# Seconds a SQLite writer waits for another writer's lock before giving up.
SQLITE_BUSY_TIMEOUT = 30.0

_SCHEMA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
# Spellings of PostgreSQL without an explicit driver, all served by psycopg 3.
_POSTGRES_BARE = {"postgresql", "postgres", "postgres+psycopg"}


def normalize_url(url: str) -> URL:
    """Parse ``url`` and pick the driver lambdalite ships with for bare scheme names."""
    parsed = make_url(url)
    if parsed.drivername in _POSTGRES_BARE:
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def is_memory_sqlite(url: URL) -> bool:
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


def build_engine(url: URL, *, schema: str | None = None) -> Engine:
    """An engine for ``url``; ``schema`` (PostgreSQL only) becomes the search path."""
    backend = url.get_backend_name()
    if backend == "sqlite":
        if schema is not None:
            raise ValueError("a schema can only be selected on PostgreSQL")
        return _sqlite_engine(url)
    if backend == "postgresql":
        return _postgres_engine(url, schema)
    raise ValueError(f"unsupported database URL scheme: {url.drivername!r}")


def _sqlite_engine(url: URL) -> Engine:
    connect_args: dict[str, Any] = {
        # The pool hands connections to whichever thread asks; SQLite itself is built
        # thread-safe, the check only guards against sharing without a pool.
        "check_same_thread": False,
        "timeout": SQLITE_BUSY_TIMEOUT,
    }
    if is_memory_sqlite(url):
        # A private in-memory database exists per connection, so every caller must share
        # the one connection; the store serializes access to it.
        engine = create_engine(url, connect_args=connect_args, poolclass=StaticPool)
    else:
        assert url.database is not None
        path = Path(url.database).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url.set(database=str(path)), connect_args=connect_args, pool_size=8)

    @event.listens_for(engine, "connect")
    def _tune(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            # WAL lets readers proceed while the log writer commits; NORMAL sync is durable
            # against process crashes, which is what a local control plane needs.
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT * 1000)}")
        finally:
            cursor.close()

    return engine


def _postgres_engine(url: URL, schema: str | None) -> Engine:
    connect_args: dict[str, Any] = {}
    if schema is not None:
        if not _SCHEMA_NAME.match(schema):
            raise ValueError(f"invalid PostgreSQL schema name: {schema!r}")
        # Set per connection by the server at login, so it survives rollbacks and needs
        # no extra round trip.
        connect_args["options"] = f"-csearch_path={schema}"
    # No pre-ping: it costs a round trip on every checkout. A connection the server dropped
    # fails one call and is then discarded; recycling bounds how stale a pooled one gets.
    return create_engine(url, connect_args=connect_args, pool_recycle=1800)
