"""What an archive says it holds: images, each a config and an ordered list of layers.

Two formats are read:

* ``docker save``: ``manifest.json`` lists images as ``{Config, RepoTags, Layers}`` with
  paths inside the archive; layer tars are checked against the config's ``rootfs.diff_ids``.
  Such an archive carries no registry manifest, so one is derived (OCI, the config and the
  uncompressed layers) and its digest is the image's digest.
* OCI image layouts and archives: ``oci-layout`` and ``index.json`` pointing at manifests in
  ``blobs/sha256/``; nested indexes (multi-platform images) are followed to the manifest of
  this machine's platform. Names come from the ``org.opencontainers.image.ref.name`` and
  ``io.containerd.image.name`` annotations. Archives written by recent Docker versions hold
  both ``manifest.json`` and an OCI index; the OCI index wins, so the digest is the real one.

Nothing is unpacked here: ``Candidate`` says where every blob is and which digests it must
have; ``store.ImageStore`` verifies and unpacks them.
"""

from __future__ import annotations

import hashlib
import json
import platform
from dataclasses import dataclass
from typing import Any

from lambdalite.images.errors import ImageError
from lambdalite.images.refs import is_digest
from lambdalite.images.source import Source

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
_MANIFESTS = (OCI_MANIFEST, DOCKER_MANIFEST)
_INDEXES = (OCI_INDEX, DOCKER_LIST)
_REF_NAME = "org.opencontainers.image.ref.name"
_FULL_NAME = "io.containerd.image.name"
_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


@dataclass(frozen=True)
class LayerBlob:
    path: str  # member of the source
    digest: str | None  # of the blob as stored (None: not named by digest, docker save)
    diff_id: str  # of the uncompressed tar, from the config


@dataclass(frozen=True)
class Candidate:
    """One image found in an archive, not yet verified or unpacked."""

    digest: str  # manifest digest: the image's identity
    manifest: bytes
    config: bytes
    names: tuple[str, ...]
    layers: tuple[LayerBlob, ...]


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def blob_path(digest: str) -> str:
    if not is_digest(digest):
        raise ImageError(f"unsupported or malformed digest {digest!r} (only sha256 is read)")
    return "blobs/sha256/" + digest.split(":", 1)[1]


def machine_arch() -> str:
    return _ARCH.get(platform.machine(), platform.machine())


def find_images(source: Source) -> list[Candidate]:
    """Every image of the archive; ``ImageError`` when it is neither format."""
    if source.exists("index.json") and (
        source.exists("oci-layout") or not source.exists("manifest.json")
    ):
        return _oci_images(source)
    if source.exists("manifest.json"):
        return _docker_images(source)
    raise ImageError(
        "not an image archive: expected a `docker save` archive (manifest.json) or an OCI "
        "image layout (oci-layout, index.json)"
    )


# -- docker save ------------------------------------------------------------------------------
def _docker_images(source: Source) -> list[Candidate]:
    entries = source.read_json("manifest.json")
    if not isinstance(entries, list) or not entries:
        raise ImageError("manifest.json lists no images")
    found = []
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("Config"), str):
            raise ImageError("manifest.json: an entry has no Config")
        config = source.read_bytes(entry["Config"])
        diff_ids = _diff_ids(config, entry["Config"])
        paths = entry.get("Layers") or []
        if not isinstance(paths, list) or len(paths) != len(diff_ids):
            raise ImageError(
                f"manifest.json names {len(paths)} layers but the config has {len(diff_ids)}"
            )
        layers = tuple(LayerBlob(str(p), None, d) for p, d in zip(paths, diff_ids, strict=True))
        manifest = _derived_manifest(config, layers, source)
        names = tuple(str(n) for n in entry.get("RepoTags") or [])
        found.append(Candidate(sha256(manifest), manifest, config, names, layers))
    return found


def _derived_manifest(config: bytes, layers: tuple[LayerBlob, ...], source: Source) -> bytes:
    document = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": sha256(config), "size": len(config)},
        "layers": [
            {"mediaType": OCI_LAYER_TAR, "digest": layer.diff_id, "size": source.size(layer.path)}
            for layer in layers
        ],
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


# -- OCI --------------------------------------------------------------------------------------
def _oci_images(source: Source) -> list[Candidate]:
    index = source.read_json("index.json")
    manifests = index.get("manifests") if isinstance(index, dict) else None
    if not isinstance(manifests, list) or not manifests:
        raise ImageError("index.json lists no manifests")
    found: dict[str, Candidate] = {}
    for descriptor in manifests:
        names = _names(descriptor)
        digest, manifest = _platform_manifest(source, descriptor)
        known = found.get(digest)
        if known is not None:
            merged = known.names + tuple(n for n in names if n not in known.names)
            found[digest] = Candidate(digest, manifest, known.config, merged, known.layers)
            continue
        found[digest] = _oci_candidate(source, digest, manifest, names)
    return list(found.values())


def _names(descriptor: Any) -> tuple[str, ...]:
    annotations = descriptor.get("annotations") or {} if isinstance(descriptor, dict) else {}
    full = annotations.get(_FULL_NAME)
    ref = annotations.get(_REF_NAME)
    if isinstance(full, str) and full:
        return (full,)
    # A ref name may be a whole reference or just a tag; a bare tag names nothing useful.
    if isinstance(ref, str) and ref and ("/" in ref or ":" in ref):
        return (ref,)
    return ()


def _read_blob(source: Source, descriptor: Any, what: str) -> tuple[str, bytes]:
    if not isinstance(descriptor, dict) or not isinstance(descriptor.get("digest"), str):
        raise ImageError(f"{what}: descriptor without a digest")
    digest = descriptor["digest"]
    data = source.read_bytes(blob_path(digest))
    if sha256(data) != digest:
        raise ImageError(f"{what} {digest}: content does not match its digest")
    return digest, data


def _platform_manifest(source: Source, descriptor: Any, depth: int = 0) -> tuple[str, bytes]:
    digest, data = _read_blob(source, descriptor, "manifest")
    document = _json(data, digest)
    kind = document.get("mediaType") or descriptor.get("mediaType")
    if kind in _INDEXES or (kind is None and "manifests" in document):
        if depth > 2:
            raise ImageError(f"index {digest} nests too deep")
        wanted = machine_arch()
        for child in document.get("manifests") or []:
            arch = (child.get("platform") or {}).get("architecture")
            if arch in (None, wanted) and (child.get("platform") or {}).get("os") in (
                None,
                "linux",
            ):
                return _platform_manifest(source, child, depth + 1)
        raise ImageError(f"index {digest} has no image for linux/{wanted}")
    if kind not in _MANIFESTS and kind is not None:
        raise ImageError(f"manifest {digest}: unsupported media type {kind}")
    return digest, data


def _oci_candidate(
    source: Source, digest: str, manifest: bytes, names: tuple[str, ...]
) -> Candidate:
    document = _json(manifest, digest)
    config_digest, config = _read_blob(source, document.get("config"), "config")
    diff_ids = _diff_ids(config, config_digest)
    descriptors = document.get("layers") or []
    if not isinstance(descriptors, list) or len(descriptors) != len(diff_ids):
        raise ImageError(
            f"manifest {digest} names {len(descriptors)} layers but its config has {len(diff_ids)}"
        )
    layers = []
    for descriptor, diff_id in zip(descriptors, diff_ids, strict=True):
        if not isinstance(descriptor, dict) or not isinstance(descriptor.get("digest"), str):
            raise ImageError(f"manifest {digest}: a layer has no digest")
        kind = str(descriptor.get("mediaType", ""))
        if "zstd" in kind:
            raise ImageError(f"layer {descriptor['digest']}: zstd layers are not supported")
        layers.append(LayerBlob(blob_path(descriptor["digest"]), descriptor["digest"], diff_id))
    return Candidate(digest, manifest, config, names, tuple(layers))


def _json(data: bytes, what: str) -> dict[str, Any]:
    try:
        document = json.loads(data)
    except ValueError as exc:
        raise ImageError(f"{what} is not valid JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise ImageError(f"{what} is not a JSON object")
    return document


def _diff_ids(config: bytes, what: str) -> list[str]:
    document = _json(config, f"config {what}")
    rootfs = document.get("rootfs") or {}
    diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    if not isinstance(diff_ids, list) or not all(
        isinstance(d, str) and is_digest(d) for d in diff_ids
    ):
        raise ImageError(f"config {what}: rootfs.diff_ids is missing or not sha256 digests")
    return [str(d) for d in diff_ids]


def run_config(config: bytes) -> dict[str, Any]:
    """The part of an image config that says how to run it (``Entrypoint``, ``Cmd``, ...)."""
    document = _json(config, "config")
    inner = document.get("config") or {}
    out: dict[str, Any] = {}
    for key in ("Entrypoint", "Cmd", "Env"):
        value = inner.get(key)
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            out[key] = list(value)
    for key in ("WorkingDir", "User"):
        if isinstance(inner.get(key), str) and inner[key]:
            out[key] = inner[key]
    out["Architecture"] = str(document.get("architecture") or "")
    out["Os"] = str(document.get("os") or "")
    return out
