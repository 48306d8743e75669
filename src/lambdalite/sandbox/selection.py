"""Choosing the sandbox backend from the settings, and saying clearly what was chosen.

``sandbox``:

* ``auto``: namespace sandboxes when this host can run them (root, namespaces, seccomp; a
  test sandbox is started to be sure), else plain process sandboxes, with a warning that
  says how much weaker that is and why namespaces were not used;
* ``namespace``: namespace sandboxes or refuse to start;
* ``process``: plain process sandboxes.

``network_mode=isolated`` needs namespace sandboxes; a server asked for it never falls back
to sharing the host network.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from lambdalite.sandbox.namespace import (
    NETWORK_MODES,
    NamespaceSandboxBackend,
    NamespaceUnavailable,
)
from lambdalite.sandbox.process import ProcessSandboxBackend

if TYPE_CHECKING:
    from lambdalite.config import Settings

log = logging.getLogger(__name__)

SANDBOX_KINDS = ("auto", "namespace", "process")


class SandboxUnavailable(RuntimeError):
    """The sandbox the settings ask for cannot run on this host."""


def choose_backend(settings: Settings) -> ProcessSandboxBackend:
    """A prepared backend for ``settings``; raises ``SandboxUnavailable`` or ``ValueError``."""
    if settings.sandbox not in SANDBOX_KINDS:
        raise ValueError(f"sandbox must be one of {SANDBOX_KINDS}, not {settings.sandbox!r}")
    if settings.network_mode not in NETWORK_MODES:
        raise ValueError(
            f"network_mode must be one of {NETWORK_MODES}, not {settings.network_mode!r}"
        )
    isolated = settings.network_mode == "isolated"
    if settings.sandbox == "process" and isolated:
        raise ValueError("network_mode=isolated needs sandbox=namespace (or auto)")
    if settings.sandbox != "process":
        backend = NamespaceSandboxBackend(settings)
        try:
            backend.prepare()
        except NamespaceUnavailable as exc:
            if settings.sandbox == "namespace" or isolated:
                raise SandboxUnavailable(f"namespace sandboxes unavailable: {exc}") from exc
            log.warning("namespace sandboxes unavailable here (%s)", exc)
        else:
            log.info("execution environments: %s", backend.isolation)
            return backend
    fallback = ProcessSandboxBackend(settings)
    fallback.prepare()
    log.warning("execution environments: %s", fallback.isolation)
    return fallback
