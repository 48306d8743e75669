"""``deploy``, ``invoke`` and ``ls``: thin wrappers over the Lambda API."""

from __future__ import annotations

import argparse
import base64
import json
import sys
from pathlib import Path
from typing import Any

from lambdalite.blobs import zip_directory
from lambdalite.cli.watch import run_watch
from lambdalite.client import make_client

DEFAULT_ROLE = "arn:aws:iam::000000000000:role/lambda-role"


def register(commands: Any) -> list[argparse.ArgumentParser]:
    deploy = commands.add_parser("deploy", help="zip a directory and create or update a function")
    deploy.add_argument("directory", type=Path)
    deploy.add_argument("--name", required=True)
    deploy.add_argument("--runtime", default="python3.11")
    deploy.add_argument("--handler", default="app.handler")
    deploy.add_argument("--env", action="append", default=[], metavar="KEY=VALUE")
    deploy.add_argument("--memory", type=int)
    deploy.add_argument("--timeout", type=int)
    deploy.add_argument("--role", default=DEFAULT_ROLE)
    deploy.add_argument("--publish", action="store_true", help="publish a version as well")
    deploy.add_argument(
        "--watch",
        action="store_true",
        help="run the function from the directory itself (hot reload) and keep watching it; "
        "falls back to redeploying a zip on every change when the server does not allow it",
    )
    deploy.set_defaults(run=run_deploy)

    invoke = commands.add_parser("invoke", help="invoke a function and print its result")
    invoke.add_argument("name")
    invoke.add_argument("--payload", default="{}", help="JSON event (default {})")
    invoke.add_argument("--qualifier")
    invoke.add_argument("--event", action="store_true", help="asynchronous invocation")
    invoke.add_argument("--tail", action="store_true", help="print the invocation's log")
    invoke.set_defaults(run=run_invoke)

    ls = commands.add_parser("ls", help="list functions")
    ls.set_defaults(run=run_ls)
    return [deploy, invoke, ls]


def _env(pairs: list[str]) -> dict[str, str]:
    env = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"lambdalite: --env expects KEY=VALUE, got {pair!r}")
        env[key] = value
    return env


def run_deploy(args: argparse.Namespace) -> int:
    if not args.directory.is_dir():
        raise SystemExit(f"lambdalite: {args.directory} is not a directory")
    client = make_client("lambda", args.endpoint_url, args.region)
    config: dict[str, Any] = {"Runtime": args.runtime, "Handler": args.handler}
    if args.env:
        config["Environment"] = {"Variables": _env(args.env)}
    if args.memory:
        config["MemorySize"] = args.memory
    if args.timeout:
        config["Timeout"] = args.timeout
    if args.watch:
        return run_watch(args, client, config)
    package = zip_directory(args.directory)
    try:
        client.get_function(FunctionName=args.name)
        exists = True
    except client.exceptions.ResourceNotFoundException:
        exists = False
    if exists:
        client.update_function_configuration(FunctionName=args.name, **config)
        client.get_waiter("function_updated_v2").wait(FunctionName=args.name)
        result = client.update_function_code(
            FunctionName=args.name, ZipFile=package, Publish=args.publish
        )
        action = "updated"
    else:
        result = client.create_function(
            FunctionName=args.name,
            Role=args.role,
            Code={"ZipFile": package},
            Publish=args.publish,
            **config,
        )
        action = "created"
    print(
        f"{action} {result['FunctionArn']} (version {result['Version']}, "
        f"{result['CodeSize']} bytes, sha256 {result['CodeSha256']})"
    )
    return 0


def run_invoke(args: argparse.Namespace) -> int:
    client = make_client("lambda", args.endpoint_url, args.region)
    try:
        json.loads(args.payload)
    except ValueError as exc:
        raise SystemExit(f"lambdalite: --payload is not valid JSON: {exc}") from None
    extra: dict[str, Any] = {}
    if args.qualifier:
        extra["Qualifier"] = args.qualifier
    if args.tail and not args.event:
        extra["LogType"] = "Tail"
    response = client.invoke(
        FunctionName=args.name,
        Payload=args.payload.encode(),
        InvocationType="Event" if args.event else "RequestResponse",
        **extra,
    )
    if args.event:
        print(f"accepted ({response['StatusCode']})")
        return 0
    if "LogResult" in response:
        sys.stderr.write(base64.b64decode(response["LogResult"]).decode(errors="replace"))
    body = response["Payload"].read().decode(errors="replace")
    print(body)
    return 1 if response.get("FunctionError") else 0


def run_ls(args: argparse.Namespace) -> int:
    client = make_client("lambda", args.endpoint_url, args.region)
    rows = []
    for page in client.get_paginator("list_functions").paginate():
        for fn in page["Functions"]:
            rows.append(
                (
                    fn["FunctionName"],
                    fn.get("Runtime", "-"),
                    str(fn["MemorySize"]),
                    fn["LastModified"],
                )
            )
    widths = [
        max([len(h), *(len(r[i]) for r in rows)])
        for i, h in enumerate(("NAME", "RUNTIME", "MEMORY", "LAST MODIFIED"))
    ]
    for row in [("NAME", "RUNTIME", "MEMORY", "LAST MODIFIED"), *rows]:
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
    return 0
