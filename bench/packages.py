"""The functions the suite deploys, as zip deployment packages built in memory.

The boto3 variant brings boto3 in its package, precompiled (see ``boto3_package``).
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import shutil
import subprocess
import zipfile
from pathlib import Path

HELLO = """\
def handler(event, context):
    return {"message": "hello world"}
"""

BOTO3 = """\
import boto3


def handler(event, context):
    return {"message": "hello world", "boto3": boto3.__version__}
"""

ECHO = """\
def handler(event, context):
    return event
"""

ECHO_LOGGING = """\
def handler(event, context):
    print("handled one event")
    return event
"""

NOOP = """\
def handler(event, context):
    return None
"""

# Reports what the environment looks like from inside: namespaces (to tell whether a sandbox
# backend isolates), the interpreter and the process id.
PROBE = """\
import os
import sys


def handler(event, context):
    ns = {}
    for kind in ("pid", "mnt", "net", "user", "uts", "ipc"):
        try:
            ns[kind] = os.readlink("/proc/self/ns/" + kind)
        except OSError:
            ns[kind] = None
    return {"pid": os.getpid(), "ns": ns, "executable": sys.executable,
            "python": sys.version.split()[0]}
"""

# Checks in with the benchmark's barrier and blocks until released: N invocations blocked
# here at once prove N environments exist at once.
BARRIER = """\
import socket


def handler(event, context):
    with socket.create_connection((event["host"], event["port"])) as conn:
        conn.sendall(b"1")
        conn.recv(1)
    return None
"""

# A trace-replay body: runs for the duration the replay drew for this invocation.
SLEEPER = """\
import time


def handler(event, context):
    time.sleep(event.get("ms", 0) / 1000.0)
    return None
"""

BOTO3_DEPENDENCIES = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six", "urllib3")


def zip_source(source: str, name: str = "app.py") -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
        info.external_attr = 0o644 << 16
        zf.writestr(info, source)
    return buf.getvalue()


def interpreter_has(interpreter: str, module: str) -> bool:
    done = subprocess.run(
        [interpreter, "-c", f"import {module}"], capture_output=True, timeout=60, check=False
    )
    return done.returncode == 0


def boto3_package(interpreter: str, scratch: Path) -> bytes:
    """The boto3 hello world with boto3 and its dependencies inside, already compiled.

    AWS's Python runtimes carry boto3 precompiled, so importing it costs reading bytecode,
    not compiling source. A host interpreter may have no boto3, and a sandbox may not show
    the host's site-packages at all, so the package brings its own copy (the benchmark
    environment's), compiled once with the interpreter that will import it. The bytecode is
    "unchecked-hash": valid whatever modification times the extracted files get, and never
    rewritten, as on the read-only code directory of a Lambda function.
    """
    tag = hashlib.sha256(interpreter.encode()).hexdigest()[:12]
    cached = scratch / f"boto3-{tag}.zip"
    if cached.exists():
        return cached.read_bytes()
    site = scratch / f"boto3-{tag}"
    for module in BOTO3_DEPENDENCIES:
        origin = _origin(module)
        if origin.name == "__init__.py":
            ignore = shutil.ignore_patterns("__pycache__")
            shutil.copytree(origin.parent, site / origin.parent.name, ignore=ignore)
        else:
            site.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, site / origin.name)
    (site / "app.py").write_text(BOTO3)
    subprocess.run(
        [
            interpreter,
            "-m",
            "compileall",
            "-q",
            "-j",
            "0",
            "--invalidation-mode",
            "unchecked-hash",
            str(site),
        ],
        capture_output=True,
        timeout=600,
        check=True,
    )
    with zipfile.ZipFile(cached, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for path in sorted(site.rglob("*")):
            if path.is_file():
                zf.write(path, str(path.relative_to(site)))
    shutil.rmtree(site, ignore_errors=True)
    return cached.read_bytes()


def _origin(module: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise RuntimeError(f"{module} is not installed in the benchmark's environment")
    return Path(spec.origin)
