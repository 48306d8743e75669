"""``lambdalite serve``: build settings from flags and environment, then run the server."""

from __future__ import annotations

import argparse
import asyncio
import logging
from typing import Any

from lambdalite.config import DEFAULT_PORT, Settings


def register(commands: Any) -> None:
    serve = commands.add_parser("serve", help="run the lambdalite server")
    serve.add_argument("--host", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help=f"port (default {DEFAULT_PORT})")
    serve.add_argument("--data-dir", help="where code, logs and the database live")
    serve.add_argument(
        "--database-url", help="sqlite:///path or postgresql://... (default: SQLite in data-dir)"
    )
    serve.add_argument("--region", help="region in ARNs (default us-east-1)")
    serve.add_argument("--account-id", help="account id in ARNs (default 000000000000)")
    serve.add_argument("--account-concurrency", type=int, help="account concurrency limit")
    serve.add_argument("--keep-alive", type=float, help="seconds idle environments stay warm")
    serve.add_argument(
        "--keep-alive-policy",
        choices=["fixed", "hybrid-histogram"],
        help="fixed keep-alive (default) or adaptive per function from observed idle times",
    )
    serve.add_argument(
        "--keep-alive-bin", type=float, help="seconds per idle-time histogram bin (default 60)"
    )
    serve.add_argument(
        "--idle-memory-mb",
        type=int,
        help="MemorySize idle environments may hold together (default half the machine's)",
    )
    serve.add_argument(
        "--concurrent-inits",
        type=int,
        help="environments initializing at once, more wait their turn (default 0: from CPUs)",
    )
    serve.add_argument("--memory-enforcement", choices=["auto", "cgroup", "poll", "off"])
    serve.add_argument(
        "--sandbox",
        choices=["auto", "namespace", "process"],
        help="execution environment isolation (default auto: namespaces when possible)",
    )
    serve.add_argument(
        "--network-mode",
        choices=["host", "isolated"],
        help="host: functions share the host network (default); isolated: only the Runtime API",
    )
    serve.add_argument("--python-runtimes", help="python3.12=/path/to/python,...")
    serve.add_argument(
        "--credentials", help="keys accepted on AWS_IAM function URLs: AKID:SECRET[:ACCOUNT],..."
    )
    serve.add_argument(
        "--hot-reload-paths",
        help="directories functions may run from live (hot reload), separated by ':' "
        "(default: none)",
    )
    serve.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    serve.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from lambdalite.app import Server

    settings = Settings.from_env(
        host=args.host,
        port=args.port,
        data_dir=args.data_dir,
        database_url=args.database_url,
        region=args.region,
        account_id=args.account_id,
        account_concurrency=args.account_concurrency,
        keep_alive=args.keep_alive,
        keep_alive_policy=args.keep_alive_policy,
        keep_alive_bin=args.keep_alive_bin,
        idle_memory_mb=args.idle_memory_mb,
        concurrent_inits=args.concurrent_inits,
        memory_enforcement=args.memory_enforcement,
        sandbox=args.sandbox,
        network_mode=args.network_mode,
        python_runtimes=args.python_runtimes,
        log_level=args.log_level,
        credentials=args.credentials,
        hot_reload_paths=args.hot_reload_paths,
    )
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    asyncio.run(Server(settings).run())
    return 0
