"""``lambdalite deploy DIR --watch``: run a function from a directory while you edit it.

The function's code source becomes the directory itself (the ``hot-reload`` marker bucket),
so the server serves every edit from the next invocation on, with no upload. That needs the
server to share this machine's file system and to allow the directory (``--hot-reload-paths``).
When it does not, the command falls back to what works against any server: it uploads a zip
of the directory now and again after every change. Either way it keeps running, printing what
changed, until interrupted.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from lambdalite.blobs import zip_directory
from lambdalite.blobs.livedir import entries

HOT_RELOAD_BUCKET = "hot-reload"
INTERVAL = 0.3


def run_watch(args: argparse.Namespace, client: Any, config: dict[str, Any]) -> int:
    if args.publish:
        raise SystemExit("lambdalite: --publish and --watch do not go together")
    directory = args.directory.resolve()
    live = {"S3Bucket": HOT_RELOAD_BUCKET, "S3Key": str(directory)}
    try:
        result, action = _deploy(args, client, config, live)
        hot = True
    except ClientError as exc:
        error = exc.response.get("Error", {})
        if error.get("Code") != "InvalidParameterValueException":
            raise
        print(f"hot reload not available: {error.get('Message')}", flush=True)
        print("uploading a zip of the directory after every change instead", flush=True)
        result, action = _deploy(args, client, config, {"ZipFile": zip_directory(directory)})
        hot = False
    mode = "hot reload" if hot else "redeploy on change"
    print(f"{action} {result['FunctionArn']} ({mode} from {directory})", flush=True)
    print(f"watching {directory}; Ctrl-C to stop", flush=True)
    try:
        _loop(args, client, directory, hot)
    except KeyboardInterrupt:
        print("stopped watching", flush=True)
    return 0


def _deploy(
    args: argparse.Namespace, client: Any, config: dict[str, Any], code: dict[str, Any]
) -> tuple[dict[str, Any], str]:
    try:
        client.get_function(FunctionName=args.name)
    except client.exceptions.ResourceNotFoundException:
        created = client.create_function(
            FunctionName=args.name, Role=args.role, Code=code, **config
        )
        return created, "created"
    client.update_function_configuration(FunctionName=args.name, **config)
    client.get_waiter("function_updated_v2").wait(FunctionName=args.name)
    return client.update_function_code(FunctionName=args.name, **code), "updated"


def _loop(args: argparse.Namespace, client: Any, directory: Path, hot: bool) -> None:
    before = entries(directory)
    while True:
        time.sleep(INTERVAL)
        now = entries(directory)
        if now == before:
            continue
        changed = sorted(
            {name for name in now.keys() | before.keys() if now.get(name) != before.get(name)}
        )
        before = now
        shown = ", ".join(changed[:5]) + (
            f" and {len(changed) - 5} more" if len(changed) > 5 else ""
        )
        stamp = time.strftime("%H:%M:%S")
        if hot:
            print(f"{stamp} changed: {shown} (served from the next invocation)", flush=True)
            continue
        client.get_waiter("function_updated_v2").wait(FunctionName=args.name)
        result = client.update_function_code(
            FunctionName=args.name, ZipFile=zip_directory(directory)
        )
        print(f"{stamp} changed: {shown}; redeployed (sha256 {result['CodeSha256']})", flush=True)
