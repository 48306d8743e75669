"""Isolation for execution environments: limits, output capture, reliable teardown.

``process`` sandboxes are process groups with limits; ``namespace`` sandboxes add Linux
namespaces, a private read-only root, a uid of their own, no capabilities and seccomp.
``selection.choose_backend`` picks one from the settings (see docs/sandboxes.md).
"""

from lambdalite.sandbox.base import (
    Layout,
    Limits,
    OutputCallback,
    Sandbox,
    SandboxBackend,
    describe_exit,
)
from lambdalite.sandbox.namespace import (
    NamespaceOptions,
    NamespaceSandbox,
    NamespaceSandboxBackend,
    NamespaceUnavailable,
)
from lambdalite.sandbox.process import ProcessSandbox, ProcessSandboxBackend, SandboxOptions
from lambdalite.sandbox.selection import SandboxUnavailable, choose_backend

__all__ = [
    "Layout",
    "Limits",
    "NamespaceOptions",
    "NamespaceSandbox",
    "NamespaceSandboxBackend",
    "NamespaceUnavailable",
    "OutputCallback",
    "ProcessSandbox",
    "ProcessSandboxBackend",
    "Sandbox",
    "SandboxBackend",
    "SandboxOptions",
    "SandboxUnavailable",
    "choose_backend",
    "describe_exit",
]
