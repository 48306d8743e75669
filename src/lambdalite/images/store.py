"""The local image store: what ``ImageUri`` is resolved against, since no registry is used.

Layout under ``root`` (``<data dir>/images``)::

    blobs/sha256/<hex>     manifests and configs, by digest
    layers/<hex>/          unpacked layers by diff-id, shared by every image that has them
    layers/<hex>.size      bytes of that layer
    rootfs/<hex>/          merged root file system per image (manifest digest), built on demand
    records/<hex>.json     one loaded image: digest, names, how to run it, size
    names.json             name (``repo:tag``) → digest
    tmp/                   work in progress; everything is published by ``rename``

Loading reads an archive (``source``), finds its images (``formats``), unpacks the layers it
does not have yet (``layers``) and records the images under their names; a name that moves to
a new image leaves the old one reachable by digest. Every method blocks (disk work): the
server calls them from a worker thread.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lambdalite.images import formats, layers, refs, rootfs
from lambdalite.images.errors import ImageError, ImageNotFound
from lambdalite.images.source import Source, open_source

MAX_IMAGE_BYTES = 10 * 1024**3  # AWS: 10 GB per image, uncompressed, layers included


@dataclass(frozen=True)
class ImageInfo:
    digest: str  # "sha256:<hex>" of the manifest
    names: tuple[str, ...]
    size: int  # uncompressed bytes of all layers
    loaded: float  # epoch seconds
    # How the image runs: Entrypoint, Cmd, Env, WorkingDir, User (what the image set).
    config: dict[str, Any] = field(default_factory=dict)
    layers: tuple[str, ...] = ()  # diff-ids, bottom first

    @property
    def hex(self) -> str:
        return self.digest.split(":", 1)[1]

    def as_json(self) -> dict[str, Any]:
        return {
            "digest": self.digest,
            "names": list(self.names),
            "size": self.size,
            "loaded": self.loaded,
            "config": self.config,
            "layers": list(self.layers),
        }


class ImageStore:
    def __init__(self, root: Path, *, max_bytes: int = MAX_IMAGE_BYTES) -> None:
        self.root = Path(root)
        self.max_bytes = max_bytes
        self._lock = threading.RLock()  # records and names
        self._rootfs_lock = threading.Lock()

    # -- paths ----------------------------------------------------------------------------
    def _dir(self, name: str) -> Path:
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _scratch(self, prefix: str) -> Path:
        return Path(tempfile.mkdtemp(prefix=prefix, dir=self._dir("tmp")))

    # -- loading --------------------------------------------------------------------------
    def load(self, path: Path, names: tuple[str, ...] = ()) -> list[ImageInfo]:
        """Load every image of the archive or layout at ``path``; ``names`` are added to it
        (allowed only when it holds one image). Raises ``ImageError`` saying what is wrong."""
        extra = tuple(self._checked_name(n) for n in names)
        scratch = self._scratch("load-")
        try:
            with open_source(path, scratch) as source:
                candidates = formats.find_images(source)
                if extra and len(candidates) != 1:
                    raise ImageError(
                        f"the archive holds {len(candidates)} images; a name can only be "
                        "given to an archive of one image"
                    )
                loaded = [self._load_one(source, c, extra, scratch) for c in candidates]
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return loaded

    def _checked_name(self, name: str) -> str:
        try:
            return refs.normalize(name)
        except ValueError as exc:
            raise ImageError(str(exc)) from exc

    def _load_one(
        self, source: Source, found: formats.Candidate, extra: tuple[str, ...], scratch: Path
    ) -> ImageInfo:
        budget = layers.Budget(self.max_bytes)
        for layer in found.layers:
            self._unpack_layer(source, layer, budget, scratch)
        config = formats.run_config(found.config)
        self._put_blob(found.manifest)
        self._put_blob(found.config)
        names = []
        for name in found.names + extra:
            try:
                names.append(refs.normalize(name))
            except ValueError:
                continue  # an annotation that is no usable name: reachable by digest
        info = ImageInfo(
            digest=found.digest,
            names=tuple(dict.fromkeys(names)),
            size=budget.used,
            loaded=time.time(),
            config=config,
            layers=tuple(layer.diff_id for layer in found.layers),
        )
        self._record(info)
        return info

    def _unpack_layer(
        self, source: Source, layer: formats.LayerBlob, budget: layers.Budget, scratch: Path
    ) -> None:
        hex_id = layer.diff_id.split(":", 1)[1]
        final = self._dir("layers") / hex_id
        size_file = final.with_name(hex_id + ".size")
        if final.is_dir() and size_file.exists():
            budget.take(int(size_file.read_text() or 0), f"layer {layer.diff_id}")
            return
        work = scratch / f"layer-{hex_id}"
        with source.open(layer.path) as blob:
            size = layers.unpack(
                blob, work, blob_digest=layer.digest, diff_id=layer.diff_id, budget=budget
            )
        _write_atomic(size_file, str(size).encode())
        try:
            os.rename(work, final)
        except OSError:
            if not final.is_dir():  # not "someone published it meanwhile"
                raise

    def _put_blob(self, data: bytes) -> None:
        hex_id = formats.sha256(data).split(":", 1)[1]
        path = self._dir("blobs/sha256") / hex_id
        if not path.exists():
            _write_atomic(path, data)

    def _record(self, info: ImageInfo) -> None:
        with self._lock:
            names = self._names()
            previous = self._read_record(info.hex)
            keep = previous.names if previous is not None else ()
            for name in info.names:
                old = names.get(name)
                if old is not None and old != info.digest:
                    self._drop_name(old, name)
                names[name] = info.digest
            merged = tuple(dict.fromkeys(keep + info.names))
            record = ImageInfo(
                info.digest, merged, info.size, info.loaded, info.config, info.layers
            )
            _write_atomic(
                self._dir("records") / f"{info.hex}.json", json.dumps(record.as_json()).encode()
            )
            _write_atomic(self.root / "names.json", json.dumps(names, sort_keys=True).encode())

    def _drop_name(self, digest: str, name: str) -> None:
        old = self._read_record(digest.split(":", 1)[1])
        if old is None:
            return
        rest = tuple(n for n in old.names if n != name)
        record = ImageInfo(old.digest, rest, old.size, old.loaded, old.config, old.layers)
        _write_atomic(
            self._dir("records") / f"{old.hex}.json", json.dumps(record.as_json()).encode()
        )

    # -- reading --------------------------------------------------------------------------
    def _names(self) -> dict[str, str]:
        try:
            data = json.loads((self.root / "names.json").read_bytes())
        except (OSError, ValueError):
            return {}
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}

    def _read_record(self, hex_id: str) -> ImageInfo | None:
        try:
            data = json.loads((self.root / "records" / f"{hex_id}.json").read_bytes())
        except (OSError, ValueError):
            return None
        return ImageInfo(
            digest=data["digest"],
            names=tuple(data.get("names") or ()),
            size=int(data.get("size") or 0),
            loaded=float(data.get("loaded") or 0),
            config=dict(data.get("config") or {}),
            layers=tuple(data.get("layers") or ()),
        )

    def images(self) -> list[ImageInfo]:
        """Every loaded image, newest first."""
        folder = self.root / "records"
        found = []
        if folder.is_dir():
            for path in folder.glob("*.json"):
                info = self._read_record(path.stem)
                if info is not None:
                    found.append(info)
        return sorted(found, key=lambda i: i.loaded, reverse=True)

    def resolve(self, reference: str) -> ImageInfo:
        """The image a reference names; ``ImageNotFound`` (or ``ValueError`` for text that
        is no reference)."""
        ref = refs.parse(reference)
        with self._lock:
            digest = ref.digest
            if digest is None:
                assert ref.name is not None
                digest = self._names().get(ref.name)
            info = self._read_record(digest.split(":", 1)[1]) if digest else None
        if info is None:
            raise ImageNotFound(f"no loaded image is named {reference}")
        return info

    def rootfs(self, info: ImageInfo) -> Path:
        """The merged root file system of ``info``, built the first time it is asked for."""
        final = self._dir("rootfs") / info.hex
        if final.is_dir():
            return final
        with self._rootfs_lock:
            if final.is_dir():
                return final
            work = self._scratch("rootfs-")
            try:
                folders = [self.root / "layers" / d.split(":", 1)[1] for d in info.layers]
                missing = [str(f) for f in folders if not f.is_dir()]
                if missing:
                    raise ImageError(f"image {info.digest} lost layers: {', '.join(missing)}")
                rootfs.build(folders, work / "tree")
                try:
                    os.rename(work / "tree", final)
                except OSError:
                    if not final.is_dir():  # not "another server sharing the store won"
                        raise
            finally:
                shutil.rmtree(work, ignore_errors=True)
        return final


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
