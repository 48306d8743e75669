"""Choosing and opening a store from a database URL."""

from __future__ import annotations

import sqlite3
import sys
import threading
from pathlib import Path

import pytest
import sqlalchemy

from lambdalite.store import StoreConfigError, open_store
from lambdalite.store.base import LogEvent
from lambdalite.store.sql import SqlStore
from lambdalite.store.tables import SCHEMA_VERSION

from .conftest import POSTGRES_URL


def test_sqlite_url_creates_file_and_parent_directories(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "lambdalite.db"
    store = open_store(f"sqlite:///{path}")
    try:
        assert isinstance(store, SqlStore)
        store.put("function", "fn", {"x": 1})
    finally:
        store.close()
    assert path.is_file()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert conn.execute("SELECT id, version FROM schema_version").fetchall() == [
            (1, SCHEMA_VERSION)
        ]


def test_reopening_is_idempotent(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'lambdalite.db'}"
    for n in range(3):
        store = open_store(url)
        store.put("function", f"fn{n}", {})
        assert len(store.list("function")) == n + 1
        store.close()


def test_newer_schema_version_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'lambdalite.db'}"
    open_store(url).close()
    engine = sqlalchemy.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sqlalchemy.text("UPDATE schema_version SET version = 99"))
    engine.dispose()
    with pytest.raises(RuntimeError, match="schema version 99"):
        open_store(url)


def test_in_memory_sqlite_is_shared_by_threads() -> None:
    store = open_store("sqlite://")
    try:
        threads = [
            threading.Thread(
                target=lambda i=i: store.append_logs([LogEvent("g", f"s{i}", i, "m")] * 20)
            )
            for i in range(4)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(store.filter_log_events("g")) == 80
    finally:
        store.close()


@pytest.mark.parametrize("url", ["mysql://localhost/db", "lambdalite.db", "s3://bucket/x"])
def test_unknown_scheme_is_a_clear_error(url: str) -> None:
    with pytest.raises(
        StoreConfigError, match="scheme must be one of postgres, postgresql, sqlite"
    ):
        open_store(url)


def test_error_message_hides_the_password() -> None:
    with pytest.raises(StoreConfigError) as caught:
        open_store("mysql://admin:hunter2@db.example/x")
    assert "hunter2" not in str(caught.value)
    assert "admin:***@db.example" in str(caught.value)


@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
def test_postgres_without_driver_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, scheme: str
) -> None:
    # A None entry in sys.modules makes the module unimportable, as if not installed.
    monkeypatch.setitem(sys.modules, "psycopg", None)
    with pytest.raises(StoreConfigError, match=r"pip install 'lambdalite\[postgres\]'"):
        open_store(f"{scheme}://127.0.0.1:5432/test")


def test_sqlite_rejects_a_schema(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="PostgreSQL"):
        SqlStore(f"sqlite:///{tmp_path / 'x.db'}", schema="s")


@pytest.mark.postgres
def test_postgres_scheme_spellings_open_with_psycopg(postgres_schema: str) -> None:
    admin = sqlalchemy.create_engine(POSTGRES_URL.replace("postgresql://", "postgresql+psycopg://"))
    with admin.begin() as conn:
        conn.execute(sqlalchemy.text(f'CREATE SCHEMA "{postgres_schema}"'))
    admin.dispose()
    base = POSTGRES_URL.split("://", 1)[1]
    # libpq's own "options" parameter selects the schema, so no store argument is needed.
    query = f"?options=-csearch_path%3D{postgres_schema}"
    written = []
    for scheme in ("postgres", "postgresql"):
        store = open_store(f"{scheme}://{base}{query}")
        try:
            assert isinstance(store, SqlStore)
            store.put("function", scheme, {})
            written.append(scheme)
            assert [d.key for d in store.list("function")] == written
        finally:
            store.close()


@pytest.mark.postgres
def test_postgres_rejects_odd_schema_names(postgres_admin: sqlalchemy.Engine) -> None:
    with pytest.raises(ValueError, match="schema name"):
        SqlStore(POSTGRES_URL, schema='x"; DROP TABLE documents; --')
