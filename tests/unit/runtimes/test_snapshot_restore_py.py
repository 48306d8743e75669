"""The ``snapshot_restore_py`` module functions import: decorators and calls register hooks."""

from __future__ import annotations

import importlib.util
import types
from pathlib import Path

import lambdalite.runtimes.python as python_runtime

MODULE = Path(python_runtime.__file__).parent / "modules" / "snapshot_restore_py.py"


def _fresh() -> types.ModuleType:
    spec = importlib.util.spec_from_file_location("snapshot_restore_py_under_test", MODULE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_decorators_and_calls_register_in_order() -> None:
    hooks = _fresh()
    calls: list[tuple[str, object]] = []

    @hooks.register_before_snapshot
    def first() -> None:
        calls.append(("first", None))

    def tagged(tag: str, extra: int = 0) -> None:
        calls.append((tag, extra))

    assert first.__name__ == "first"  # the decorator hands the function back
    hooks.register_before_snapshot(tagged, "second", extra=2)
    hooks.register_after_restore(tagged, "restored")
    assert [func for func, _, _ in hooks.get_before_snapshot()] == [first, tagged]
    for func, args, kwargs in hooks.get_before_snapshot():
        func(*args, **kwargs)
    for func, args, kwargs in hooks.get_after_restore():
        func(*args, **kwargs)
    assert calls == [("first", None), ("second", 2), ("restored", 0)]
