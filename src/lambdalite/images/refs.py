"""Image references: how a name given by a user is matched against loaded images.

A loaded image is known by its manifest digest and by the names its archive gave it
(``RepoTags`` of ``docker save``, the ref-name annotations of an OCI layout) or the names the
loader added. References are compared in a normal form so that what people write in a
Dockerfile, on a command line or in a Lambda ``ImageUri`` finds the same image:

* a name without a tag means ``:latest``;
* Docker Hub's implicit prefixes are dropped (``docker.io/library/app`` is ``app``);
* ``name@sha256:<hex>`` and ``sha256:<hex>`` name an image by digest (the name part of the
  first is not checked: any registry and repository may hold that digest, as with ECR URIs
  copied from another account).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_NAME = re.compile(r"[a-z0-9]+(?:[._/:-][a-zA-Z0-9_.-]+)*")
_HUB_PREFIXES = ("docker.io/", "index.docker.io/")
_LIBRARY = "library/"


@dataclass(frozen=True)
class Reference:
    """A parsed reference: a normal name (``repo:tag``), a digest, or both."""

    name: str | None
    digest: str | None


def is_digest(text: str) -> bool:
    return bool(_DIGEST.fullmatch(text))


def normalize(name: str) -> str:
    """``repo:tag`` in normal form; raises ``ValueError`` for something that is no name."""
    name = name.strip()
    if not name or any(c.isspace() for c in name) or not _NAME.fullmatch(name.lower()):
        raise ValueError(f"not an image name: {name!r}")
    for prefix in _HUB_PREFIXES:
        if name.startswith(prefix):
            name = name[len(prefix) :]
            break
    if name.startswith(_LIBRARY) and "/" not in name[len(_LIBRARY) :]:
        name = name[len(_LIBRARY) :]
    last = name.rsplit("/", 1)[-1]
    if ":" not in last:
        name += ":latest"
    repository = name[: name.rfind(":")]
    if repository != repository.lower():
        raise ValueError(f"repository names are lowercase: {name!r}")
    return name


def parse(text: str) -> Reference:
    """Parse ``repo[:tag]``, ``repo[:tag]@sha256:<hex>`` or ``sha256:<hex>``."""
    text = text.strip()
    if is_digest(text):
        return Reference(None, text)
    if "@" in text:
        name, digest = text.split("@", 1)
        if not is_digest(digest):
            raise ValueError(f"not an image digest: {digest!r}")
        return Reference(normalize(name) if name else None, digest)
    return Reference(normalize(text), None)
