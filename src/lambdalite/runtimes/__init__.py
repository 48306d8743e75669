"""Language runtimes: the clients that run inside execution environments, and their registry."""

from lambdalite.runtimes.nodejs import bootstrap_path as node_bootstrap_path
from lambdalite.runtimes.python import bootstrap_path, launcher_path
from lambdalite.runtimes.registry import (
    KNOWN_RUNTIMES,
    NODE_RUNTIMES,
    PYTHON_RUNTIMES,
    SUPPORTED_RUNTIMES,
    RuntimeCommand,
    RuntimeRegistry,
)

__all__ = [
    "KNOWN_RUNTIMES",
    "NODE_RUNTIMES",
    "PYTHON_RUNTIMES",
    "SUPPORTED_RUNTIMES",
    "RuntimeCommand",
    "RuntimeRegistry",
    "bootstrap_path",
    "launcher_path",
    "node_bootstrap_path",
]
