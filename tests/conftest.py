"""Fixtures shared by every test directory."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

POSTGRES_URL = os.environ.get("LAMBDALITE_TEST_DATABASE_URL", "postgresql://127.0.0.1:5432/test")


def postgres_available() -> bool:
    try:
        import psycopg

        with psycopg.connect(POSTGRES_URL, connect_timeout=3):
            return True
    except Exception:
        return False


def require_postgres() -> None:
    """Skip locally when PostgreSQL is not there; in CI a missing server is a failure."""
    if postgres_available():
        return
    if os.environ.get("CI"):
        pytest.fail(f"PostgreSQL is required in CI but unreachable at {POSTGRES_URL}")
    pytest.skip(f"PostgreSQL unreachable at {POSTGRES_URL}")


@pytest.fixture
def postgres_schema_url() -> Iterator[str]:
    """A database URL whose connections use a fresh schema, dropped afterwards."""
    require_postgres()
    import psycopg

    schema = f"lambdalite_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in POSTGRES_URL else "?"
    yield f"{POSTGRES_URL}{sep}options=-csearch_path%3D{schema}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
