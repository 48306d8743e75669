"""SnapStart runtime hooks for function code: the interface of AWS's ``snapshot-restore-py``.

Functions written for Lambda import ``register_before_snapshot`` and ``register_after_restore``
from this module name, so the runtime client puts it on ``sys.path`` (after the function's own
directories, so a copy vendored in a deployment package wins, as it does on Lambda). Both work
as plain decorators and as calls with extra arguments for the hook. The runtime client reads
the registrations through ``get_before_snapshot`` and ``get_after_restore`` and runs them:
before-snapshot hooks in the reverse order of registration, after-restore hooks in the order
of registration, which is how Lambda orders them.

Standard library only; it runs inside the function's interpreter.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Hook = tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]

_before_snapshot: list[Hook] = []
_after_restore: list[Hook] = []

__all__ = [
    "get_after_restore",
    "get_before_snapshot",
    "register_after_restore",
    "register_before_snapshot",
]


def register_before_snapshot(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run ``func(*args, **kwargs)`` once initialization is done, before the snapshot."""
    _before_snapshot.append((func, args, kwargs))
    return func


def register_after_restore(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run ``func(*args, **kwargs)`` in every environment restored from the snapshot."""
    _after_restore.append((func, args, kwargs))
    return func


def get_before_snapshot() -> list[Hook]:
    """The before-snapshot registrations, in the order they were made."""
    return _before_snapshot


def get_after_restore() -> list[Hook]:
    """The after-restore registrations, in the order they were made."""
    return _after_restore
