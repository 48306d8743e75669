"""Fixtures shared by every test directory."""

from __future__ import annotations

import os

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
