"""``lambdalite images load FILE`` and ``lambdalite images ls``: the server's image store.

Both go through the server's ``/_lambdalite/images`` endpoint, so they work against a server
on another machine as well and the server checks every archive itself. ``load`` takes a
``docker save`` archive (also gzip-compressed), an OCI image archive, or an OCI image layout
directory, which is sent as a tar of itself.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import tarfile
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import httpx

_CHUNK = 1 << 20


def register(commands: Any) -> list[argparse.ArgumentParser]:
    images = commands.add_parser("images", help="load and list container images")
    actions = images.add_subparsers(dest="images_command", required=True)
    load = actions.add_parser(
        "load", help="load a `docker save` archive or an OCI image layout/archive"
    )
    load.add_argument("file", type=Path, help="archive file, or OCI image layout directory")
    load.add_argument(
        "--name",
        "-t",
        action="append",
        default=[],
        help="also name the image (repo:tag), for archives of one image; repeatable",
    )
    load.set_defaults(run=run_load)
    ls = actions.add_parser("ls", help="list loaded images")
    ls.add_argument("--json", action="store_true", help="print the raw records as JSON")
    ls.set_defaults(run=run_ls)
    return [load, ls]


def _chunks(stream: IO[bytes]) -> Iterator[bytes]:
    while chunk := stream.read(_CHUNK):
        yield chunk


def _layout_tar(folder: Path) -> IO[bytes]:
    """An OCI layout directory as a tar in a temporary file (deleted when closed)."""
    spool = tempfile.TemporaryFile()  # noqa: SIM115 - the caller closes it
    with tarfile.open(fileobj=spool, mode="w") as tar:
        for name in sorted(os.listdir(folder)):
            tar.add(folder / name, arcname=name)
    spool.seek(0)
    return spool


def run_load(args: argparse.Namespace) -> int:
    path: Path = args.file
    if not path.exists():
        raise SystemExit(f"lambdalite: {path}: no such file or directory")
    stream: IO[bytes] = _layout_tar(path) if path.is_dir() else path.open("rb")
    with stream:
        response = httpx.post(
            f"{args.endpoint_url.rstrip('/')}/_lambdalite/images",
            params=[("name", n) for n in args.name],
            content=_chunks(stream),
            headers={"content-type": "application/octet-stream"},
            timeout=httpx.Timeout(60.0, read=3600.0),
        )
    document = _document(response)
    if response.status_code != 200:
        raise SystemExit(
            f"lambdalite: cannot load {path}: {document.get('message', response.text)}"
        )
    for image in document["Images"]:
        names = ", ".join(image["names"]) or "(no name: use the digest)"
        print(f"loaded {image['digest']}  {names}  {_size(image['size'])}")
    return 0


def run_ls(args: argparse.Namespace) -> int:
    response = httpx.get(f"{args.endpoint_url.rstrip('/')}/_lambdalite/images", timeout=30)
    document = _document(response)
    if response.status_code != 200:
        raise SystemExit(f"lambdalite: {document.get('message', response.text)}")
    images = document["Images"]
    if args.json:
        print(json.dumps(images, indent=2))
        return 0
    out = io.StringIO()
    rows = [("NAME", "DIGEST", "SIZE", "LOADED")]
    for image in images:
        loaded = time.strftime("%Y-%m-%d %H:%M", time.localtime(image["loaded"]))
        short = image["digest"][:19]
        for name in image["names"] or ["<none>"]:
            rows.append((name, short, _size(image["size"]), loaded))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for row in rows:
        out.write("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() + "\n")
    print(out.getvalue(), end="")
    return 0


def _document(response: httpx.Response) -> dict[str, Any]:
    try:
        document = response.json()
    except ValueError:
        return {"message": response.text}
    return document if isinstance(document, dict) else {"message": response.text}


def _size(size: int) -> str:
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} B"
