"""The ``lambdalite`` command: ``serve`` runs the platform, the rest are API clients."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from lambdalite import __version__
from lambdalite.cli import functions, images, logs, server, stats
from lambdalite.client import endpoint_from_env


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lambdalite", description="A self-hostable, AWS Lambda-compatible platform."
    )
    parser.add_argument("--version", action="version", version=f"lambdalite {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    server.register(commands)
    for module in (functions, logs, stats, images):
        for sub in module.register(commands):
            sub.add_argument(
                "--endpoint-url",
                default=endpoint_from_env(),
                help="lambdalite server (default: $LAMBDALITE_ENDPOINT_URL, $AWS_ENDPOINT_URL "
                "or http://127.0.0.1:4566)",
            )
            sub.add_argument("--region", default="us-east-1")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        code = args.run(args)
    except KeyboardInterrupt:
        code = 130
    except Exception as exc:  # botocore ClientError and connection errors end up here
        print(f"lambdalite: {exc}", file=sys.stderr)
        code = 1
    sys.exit(code or 0)
