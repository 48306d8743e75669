"""Store backends for the contract suite.

Each backend hands out stores on one isolated location: a fresh SQLite file in a temporary
directory, or a fresh PostgreSQL schema dropped afterwards. ``open()`` can be called again to
reopen the same location, which the persistence tests rely on.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import sqlalchemy

from lambdalite.store.base import Store
from lambdalite.store.sql import SqlStore

POSTGRES_URL = os.environ.get("LAMBDALITE_TEST_DATABASE_URL", "postgresql://127.0.0.1:5432/test")


def _admin_url(url: str) -> str:
    head, _, rest = url.partition("://")
    if head in ("postgresql", "postgres"):
        return f"postgresql+psycopg://{rest}"
    return url


@dataclass
class StoreBackend:
    name: str
    factory: Callable[[], Store]
    opened: list[Store] = field(default_factory=list)

    def open(self) -> Store:
        store = self.factory()
        self.opened.append(store)
        return store

    def close_all(self) -> None:
        for store in self.opened:
            store.close()


@pytest.fixture(scope="session")
def postgres_admin() -> Iterator[sqlalchemy.Engine]:
    """An engine on the test server; skips when it is down, except in CI where it must be up."""
    engine = sqlalchemy.create_engine(_admin_url(POSTGRES_URL), connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text("SELECT 1"))
    except sqlalchemy.exc.OperationalError as exc:
        engine.dispose()
        message = f"PostgreSQL at {POSTGRES_URL} is unreachable: {exc.orig}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    yield engine
    engine.dispose()


@pytest.fixture
def postgres_schema(postgres_admin: sqlalchemy.Engine) -> Iterator[str]:
    name = f"lt_{uuid.uuid4().hex[:16]}"
    yield name
    with postgres_admin.begin() as conn:
        conn.execute(sqlalchemy.text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))


@pytest.fixture(
    params=[
        pytest.param("sqlite"),
        pytest.param("postgres", marks=pytest.mark.postgres),
    ]
)
def store_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreBackend]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'data' / 'lambdalite.db'}"
        backend = StoreBackend("sqlite", lambda: SqlStore(url))
    else:
        schema = request.getfixturevalue("postgres_schema")
        backend = StoreBackend("postgres", lambda: SqlStore(POSTGRES_URL, schema=schema))
    yield backend
    backend.close_all()


@pytest.fixture
def store(store_backend: StoreBackend) -> Store:
    return store_backend.open()
