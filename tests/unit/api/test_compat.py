"""docs/compatibility.md generation and its staleness check."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import botocore

from lambdalite.api.compat import render_compatibility
from lambdalite.api.spec import ServiceSpec

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "scripts" / "gen-compat"


def test_table_lists_every_operation(lambda_spec: ServiceSpec, logs_spec: ServiceSpec) -> None:
    text = render_compatibility(
        lambda_spec, logs_spec, {"lambda": {"Invoke", "CreateFunction"}, "logs": {"GetLogEvents"}}
    )
    assert f"botocore {botocore.__version__}" in text
    for name in lambda_spec.operations:
        assert f"| `{name}` |" in text
    assert "| `Invoke` | POST | `/2015-03-31/functions/{FunctionName}/invocations` | yes |" in text
    assert "| `ListLayers` | GET | `/2018-10-31/layers` | no |" in text
    assert f"2 of {len(lambda_spec.operations)} operations implemented" in text
    assert "| `GetLogEvents` |" in text
    assert "| `PutLogEvents` |" not in text


def test_script_writes_then_checks(tmp_path: Path) -> None:
    output = tmp_path / "compatibility.md"

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, str(SCRIPT), "--output", str(output), *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)

    missing = run("--check")
    assert missing.returncode == 1
    assert "stale" in missing.stderr
    assert run().returncode == 0
    assert output.read_text().startswith("# AWS API compatibility")
    assert run("--check").returncode == 0
    output.write_text(output.read_text() + "edited\n")
    stale = run("--check")
    assert stale.returncode == 1
    assert "run scripts/gen-compat" in stale.stderr
