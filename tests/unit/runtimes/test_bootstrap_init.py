"""INIT-phase failures of the Python bootstrap: what is posted to /init/error and logged."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from lambdalite.runtimes import RuntimeCommand

from .peer import NBSP, Event, Run, run_bootstrap, write_code


def init_failure(runtime: RuntimeCommand, root: Path, handler: str) -> tuple[Run, dict[str, Any]]:
    run = run_bootstrap(runtime, root, handler, [Event()])
    assert run.returncode == 1, (run.stdout, run.stderr)
    assert run.peer.next_calls == [], "a failed INIT must not ask for events"
    assert len(run.peer.init_errors) == 1
    posted = run.peer.init_errors[0]
    document: dict[str, Any] = posted.json()
    assert posted.headers["Lambda-Runtime-Function-Error-Type"] == document["errorType"]
    assert document["requestId"] == ""
    return run, document


@pytest.mark.parametrize(
    ("files", "handler", "error_type", "message"),
    [
        (
            {"app.py": "import not_installed_anywhere\n"},
            "app.handler",
            "Runtime.ImportModuleError",
            "Unable to import module 'app': No module named 'not_installed_anywhere'",
        ),
        (
            {},
            "missing.handler",
            "Runtime.ImportModuleError",
            "Unable to import module 'missing': No module named 'missing'",
        ),
        (
            {"app.py": "def other(event, context):\n    pass\n"},
            "app.nope",
            "Runtime.HandlerNotFound",
            "Handler 'nope' missing on module 'app'",
        ),
        (
            {"app.py": ""},
            "app",
            "Runtime.MalformedHandlerName",
            "Bad handler 'app': not enough values to unpack (expected 2, got 1)",
        ),
        (
            {},
            "sys.handler",
            "Runtime.BuiltInModuleConflict",
            "Cannot use built-in module sys as a handler module",
        ),
    ],
    ids=["import-inside-module", "no-module", "no-handler", "malformed", "builtin"],
)
def test_handler_resolution_failures(
    runtime: RuntimeCommand,
    tmp_path: Path,
    files: dict[str, str],
    handler: str,
    error_type: str,
    message: str,
) -> None:
    write_code(tmp_path, files)
    run, document = init_failure(runtime, tmp_path, handler)
    assert document == {
        "errorMessage": message,
        "errorType": error_type,
        "requestId": "",
        "stackTrace": [],
    }
    assert run.stdout_lines() == [
        f"[ERROR] {error_type}: {message}\rTraceback (most recent call last):"
    ]


def test_syntax_error(runtime: RuntimeCommand, tmp_path: Path) -> None:
    write_code(tmp_path, {"app.py": "import os\n\nx = = 1\n"})
    run, document = init_failure(runtime, tmp_path, "app.handler")
    app = tmp_path / "app.py"
    assert document == {
        "errorMessage": "Syntax error in module 'app': invalid syntax (app.py, line 3)",
        "errorType": "Runtime.UserCodeSyntaxError",
        "requestId": "",
        "stackTrace": [f'  File "{app}" Line 3\n    x = = 1\n'],
    }
    assert run.stdout_lines() == [
        "[ERROR] Runtime.UserCodeSyntaxError: Syntax error in module 'app': "
        "invalid syntax (app.py, line 3)\rTraceback (most recent call last):"
        f'\r{NBSP * 2}File "{app}" Line 3\r{NBSP * 4}x = = 1'
    ]


def test_exception_during_module_init(runtime: RuntimeCommand, tmp_path: Path) -> None:
    write_code(tmp_path, {"app.py": "import os\nraise KeyError('boom')\n"})
    run, document = init_failure(runtime, tmp_path, "app.handler")
    assert document["errorType"] == "KeyError"
    assert document["errorMessage"] == "'boom'"
    app = tmp_path / "app.py"
    assert document["stackTrace"][-1] == (
        f"  File \"{app}\", line 2, in <module>\n    raise KeyError('boom')\n"
    )
    assert not any("bootstrap.py" in frame for frame in document["stackTrace"])
    (line,) = run.stdout_lines()
    assert line.startswith("[ERROR] KeyError: 'boom'\rTraceback (most recent call last):\r")
    assert line.endswith(f"{NBSP * 4}raise KeyError('boom')")


def test_module_init_output_and_sigterm(runtime: RuntimeCommand, tmp_path: Path) -> None:
    write_code(
        tmp_path,
        {
            "app.py": """
                import sys
                print("initialising")
                print("to stderr", file=sys.stderr)

                def handler(event, context):
                    return "ok"
            """
        },
    )
    event = Event()
    run = run_bootstrap(runtime, tmp_path, "app.handler", [event])
    assert run.response(event) == "ok"
    assert run.stdout_lines() == ["initialising"]
    assert run.stderr == "to stderr\n"
    assert run.returncode == 0, "SIGTERM while waiting for an event exits cleanly"


def test_refuses_to_start_without_a_runtime_api(runtime: RuntimeCommand, tmp_path: Path) -> None:
    proc = subprocess.run(
        runtime.argv,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "_HANDLER": "app.handler"},
        capture_output=True,
        timeout=30,
    )
    assert proc.returncode == 1
    assert proc.stderr == b"AWS_LAMBDA_RUNTIME_API is not set\n"
