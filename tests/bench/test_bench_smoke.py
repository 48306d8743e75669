"""The benchmark command runs end to end and writes well-formed results (no timing checks)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FLOORS = ("floors.python_s", "floors.fork", "floors.loopback", "floors.echo")


def test_quick_floors_write_results(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--quick",
            "--only",
            "floors",
            "--results-dir",
            str(tmp_path),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    files = list(tmp_path.glob("*.json"))
    assert len(files) == 1
    results = json.loads(files[0].read_text())
    assert results["schema"] == "lambdalite-bench/1"
    assert results["mode"] == "quick"
    assert results["machine"]["cpus"] >= 1
    figures = {f["key"]: f for f in results["figures"]}
    assert set(FLOORS) <= set(figures)
    for key in FLOORS:
        figure = figures[key]
        assert figure["status"] == "ok", figure
        values = figure["values"]
        assert values["n"] > 0
        assert 0 < values["p50_ms"] <= values["p99_ms"] <= values["max_ms"]
    # every target of the issue is listed, measured or not
    assert len(results["targets"]) == 7
    assert all(t["met"] is None for t in results["targets"])
    assert "python -S -c pass" in done.stdout
    assert str(files[0]) in done.stdout
