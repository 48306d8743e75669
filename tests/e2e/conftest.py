"""End-to-end fixtures: real servers on SQLite and PostgreSQL, real boto3 clients."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import POSTGRES_URL, require_postgres
from tests.e2e.harness import ServerProcess


def _postgres_schema() -> tuple[str, str]:
    import psycopg

    schema = f"lambdalite_e2e_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in POSTGRES_URL else "?"
    return schema, f"{POSTGRES_URL}{sep}options=-csearch_path%3D{schema}"


def _drop_schema(schema: str) -> None:
    import psycopg

    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@contextlib.contextmanager
def _empty_store(kind: str) -> Iterator[str | None]:
    """None selects the embedded SQLite default; otherwise a PostgreSQL URL in a fresh schema."""
    if kind == "sqlite":
        yield None
        return
    require_postgres()
    schema, url = _postgres_schema()
    try:
        yield url
    finally:
        _drop_schema(schema)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """One store for every test of a module (each test uses its own function names)."""
    with _empty_store(request.param) as url:
        yield url


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, store_url: str | None
) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("server"), store_url, keep_alive=30).start()
    yield proc
    code = proc.stop()
    assert code == 0, proc.output()


@pytest.fixture(scope="module")
def lam(server: ServerProcess) -> Any:
    return server.client("lambda")


@pytest.fixture
def name() -> str:
    return f"fn-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture(params=["sqlite", "postgres"])
def fresh_store_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """Like ``store_url`` but a new, empty store for each test."""
    with _empty_store(request.param) as url:
        yield url
