"""The Node.js runtime family: the runtime client that runs inside each environment.

``bootstrap.js`` and the CommonJS modules beside it are package data, not Python: the
``node`` of the function's runtime runs ``bootstrap.js`` by path, and it loads its siblings
relative to itself, so the directory must ship whole.
"""

from __future__ import annotations

from pathlib import Path

from lambdalite.runtimes.nodejs.discovery import NodeFinder, node_major

__all__ = ["NodeFinder", "bootstrap_path", "node_major"]


def bootstrap_path() -> Path:
    """Absolute path of the runtime client entry point, ``bootstrap.js``."""
    return Path(__file__).resolve().with_name("bootstrap.js")
