"""Metadata store: pick an implementation from a database URL.

The table below is the single place that maps URL schemes to implementations; the modules are
imported only when chosen, so a SQLite-only install never needs the PostgreSQL driver.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import cast

from lambdalite.store.base import Store

# URL scheme (before any "+driver") -> (module:class, extra Python module the backend needs).
IMPLEMENTATIONS: dict[str, tuple[str, str | None]] = {
    "sqlite": ("lambdalite.store.sql:SqlStore", None),
    "postgresql": ("lambdalite.store.sql:SqlStore", "psycopg"),
    "postgres": ("lambdalite.store.sql:SqlStore", "psycopg"),
}


class StoreConfigError(Exception):
    """The database URL names no usable backend (unknown scheme or missing driver)."""


def open_store(url: str) -> Store:
    """Open the store for ``url`` (``sqlite:///...`` or ``postgresql://...``)."""
    scheme = url.split("://", 1)[0].split("+", 1)[0].lower() if "://" in url else ""
    if scheme not in IMPLEMENTATIONS:
        known = ", ".join(sorted(IMPLEMENTATIONS))
        raise StoreConfigError(
            f"unsupported database URL {_redact(url)!r}: scheme must be one of {known}"
        )
    target, driver = IMPLEMENTATIONS[scheme]
    if driver is not None and importlib.util.find_spec(driver) is None:
        raise StoreConfigError(
            f"the {scheme} backend needs the {driver} package: pip install 'lambdalite[postgres]'"
        )
    module_name, class_name = target.split(":")
    implementation = getattr(importlib.import_module(module_name), class_name)
    return cast(Store, implementation(url))


def _redact(url: str) -> str:
    """The URL without a password, for error messages."""
    head, sep, rest = url.partition("://")
    if sep and "@" in rest:
        credentials, _, host = rest.rpartition("@")
        user = credentials.split(":", 1)[0]
        return f"{head}://{user}:***@{host}" if ":" in credentials else url
    return url


__all__ = ["IMPLEMENTATIONS", "Store", "StoreConfigError", "open_store"]
