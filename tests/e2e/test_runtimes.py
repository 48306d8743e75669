"""Every Python runtime the machine has, the error for one it lacks, and environment lifetimes."""

from __future__ import annotations

import base64
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from lambdalite.runtimes.registry import RuntimeRegistry
from tests.e2e.harness import ServerProcess, create, zip_files

AVAILABLE = {r: p for r, p in RuntimeRegistry().available().items() if r.startswith("python")}
VERSION_APP = zip_files(
    {"app.py": "import sys\n\ndef handler(e, c):\n    return list(sys.version_info[:2])\n"}
)


@pytest.mark.parametrize("runtime", sorted(AVAILABLE))
def test_each_installed_python_runtime(lam: Any, name: str, runtime: str) -> None:
    create(lam, name, Runtime=runtime, Code={"ZipFile": VERSION_APP})
    response = lam.invoke(FunctionName=name, Payload=b"{}")
    assert "FunctionError" not in response
    major, minor = json.loads(response["Payload"].read())
    assert f"python{major}.{minor}" == runtime


def test_missing_interpreter_is_a_create_error(lam: Any, name: str) -> None:
    missing = [f"python3.{m}" for m in range(9, 15) if f"python3.{m}" not in AVAILABLE]
    if not missing:
        pytest.skip("every Python runtime from 3.9 to 3.14 is installed here")
    with pytest.raises(lam.exceptions.InvalidParameterValueException) as exc:
        create(lam, name, Runtime=missing[0])
    message = exc.value.response["Error"]["Message"]
    assert f"Runtime {missing[0]} is not available" in message
    assert "LAMBDALITE_PYTHON_RUNTIMES" in message


def test_unsupported_family_is_a_create_error(lam: Any, name: str) -> None:
    with pytest.raises(lam.exceptions.InvalidParameterValueException) as exc:
        create(lam, name, Runtime="java21", Handler="example.Handler::handleRequest")
    assert "java21 is not supported" in exc.value.response["Error"]["Message"]


def _processes_under(root: Path) -> list[int]:
    """Environment processes of the server using data directory ``root``.

    A process sandbox's runtime runs in the code directory under ``root``. A namespace
    sandbox's runtime sees only its own file system, but its init (named ``sandbox-init``,
    whose death takes every process of the sandbox with it) carries the server's data
    directory on its command line, as does the launcher that forks it.
    """
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
            comm = (entry / "comm").read_text().strip()
        except OSError:
            continue
        sandbox_init = comm == "sandbox-init" and f"--state={root}" in cmdline
        if cwd.startswith(str(root)) or sandbox_init:
            found.append(int(entry.name))
    return found


def test_keep_alive_and_clean_shutdown(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", keep_alive=1).start()
    try:
        lam = server.client()
        create(lam, "idle")
        first = lam.invoke(FunctionName="idle", Payload=b"{}", LogType="Tail")
        assert "Init Duration" in base64.b64decode(first["LogResult"]).decode()
        warm = lam.invoke(FunctionName="idle", Payload=b"{}", LogType="Tail")
        assert "Init Duration" not in base64.b64decode(warm["LogResult"]).decode()
        assert _processes_under(tmp_path / "data")
        deadline = time.monotonic() + 15
        while _processes_under(tmp_path / "data") and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _processes_under(tmp_path / "data"), "idle environment outlived keep-alive"
        cold = lam.invoke(FunctionName="idle", Payload=b"{}", LogType="Tail")
        assert "Init Duration" in base64.b64decode(cold["LogResult"]).decode()
        assert _processes_under(tmp_path / "data")
    finally:
        assert server.stop() == 0
    assert not _processes_under(tmp_path / "data"), "environments outlived the server"
