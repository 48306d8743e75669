"""The Python runtime family: the runtime client that runs inside each environment.

``bootstrap.py`` is package data, not an importable part of lambdalite: an interpreter of the
function's runtime version, possibly older than the one running lambdalite, runs it by path.
``launcher.py`` starts it from cached bytecode and is what the platform should run. Both files
must be reachable together (they sit in one directory).
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["bootstrap_path", "launcher_path"]


def bootstrap_path() -> Path:
    """Absolute path of the runtime client script (runs standalone as well)."""
    return Path(__file__).resolve().with_name("bootstrap.py")


def launcher_path() -> Path:
    """Absolute path of the script to start: ``bootstrap.py`` from cached bytecode."""
    return Path(__file__).resolve().with_name("launcher.py")
