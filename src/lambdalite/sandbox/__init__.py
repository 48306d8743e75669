"""Process isolation for execution environments: limits, output capture, reliable teardown."""

from lambdalite.sandbox.base import Limits, OutputCallback, Sandbox, SandboxBackend, describe_exit
from lambdalite.sandbox.process import ProcessSandbox, ProcessSandboxBackend, SandboxOptions

__all__ = [
    "Limits",
    "OutputCallback",
    "ProcessSandbox",
    "ProcessSandboxBackend",
    "Sandbox",
    "SandboxBackend",
    "SandboxOptions",
    "describe_exit",
]
