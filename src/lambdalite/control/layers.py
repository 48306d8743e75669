"""Layer versions: publish, read, list, delete, and resolving a function's ``Layers``.

A layer version is an immutable zip stored in the code store like a function package.
Documents: ``layer`` (key = name) holds the next version number (numbers are never reused,
even after deletes), ``layerversion`` (key = ``name:N``, parent = ``layer:name``, which no
function name can be, so deleting a function of the same name leaves them alone) one version.
Functions keep, next to the ARNs they asked for, the resolved size and package digest of each
layer, so a deleted layer version keeps working for the functions already using it, as on AWS.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from lambdalite.control.deps import Deps
from lambdalite.control.layerpolicy import LayerPolicies
from lambdalite.control.paging import paginate
from lambdalite.core.clock import iso_timestamp
from lambdalite.core.errors import (
    InvalidParameterValueException,
    ResourceNotFoundException,
)
from lambdalite.store.base import DocumentExists, Expect, RevisionMismatch

LAYER, LAYER_VERSION = "layer", "layerversion"
LAYER_PATH = "/_lambdalite/code/"
MAX_TOTAL_UNZIPPED = 250 * 1024 * 1024
_VERSION_ARN = re.compile(
    r"^arn:aws[a-zA-Z-]*:lambda:([a-z0-9-]+):(\d{12}):layer:([a-zA-Z0-9-_]+):(\d+)$"
)
_LAYER_ARN = re.compile(r"^arn:aws[a-zA-Z-]*:lambda:([a-z0-9-]+):(\d{12}):layer:([a-zA-Z0-9-_]+)$")


class LayerService:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps
        self.store = deps.catalog.store
        settings = deps.settings
        self.region, self.account = settings.region, settings.account_id
        self.merged_root = settings.data_dir / "layers-merged"
        self.policies = LayerPolicies(self.store)

    # -- names ----------------------------------------------------------------------------
    def layer_arn(self, name: str) -> str:
        return f"arn:aws:lambda:{self.region}:{self.account}:layer:{name}"

    def _name(self, given: str) -> str:
        match = _LAYER_ARN.match(given)
        return match.group(3) if match else given

    def _get(self, name: str, version: int) -> dict[str, Any]:
        doc = self.store.get(LAYER_VERSION, f"{name}:{version}")
        if doc is None:
            raise ResourceNotFoundException("The resource you requested does not exist.")
        return dict(doc.data)

    # -- operations -----------------------------------------------------------------------
    async def publish_layer_version(self, params: dict[str, Any]) -> dict[str, Any]:
        name = self._name(params["LayerName"])
        content = params.get("Content") or {}
        if "S3Bucket" in content or "S3Key" in content:
            raise InvalidParameterValueException(
                "Layer content from S3 (S3Bucket/S3Key) is not supported by this lambdalite "
                "server yet; upload the layer with ZipFile."
            )
        data = content.get("ZipFile")
        if not data:
            raise InvalidParameterValueException(
                "Please provide a source for layer content: ZipFile."
            )
        info = self.deps.code.put_zip(data)
        number = self._next_number(name)
        record: dict[str, Any] = {
            "name": name,
            "version": number,
            "sha": info.sha256_hex,
            "sha256": info.code_sha256_b64,
            "size": info.size,
            "unzipped": info.unzipped_size,
            "Description": params.get("Description", ""),
            "CreatedDate": iso_timestamp(),
        }
        for member in ("CompatibleRuntimes", "CompatibleArchitectures", "LicenseInfo"):
            if params.get(member):
                record[member] = params[member]
        self.store.put(LAYER_VERSION, f"{name}:{number}", record, parent=_parent(name))
        return self._render(record)

    def _next_number(self, name: str) -> int:
        """Take the next version number; concurrent publishers each get their own."""
        while True:
            counter = self.store.get(LAYER, name)
            number = int(counter.data["next"]) if counter else 1
            expect: Expect | str = counter.revision if counter else Expect.ABSENT
            try:
                self.store.put(LAYER, name, {"next": number + 1}, expect=expect)
            except (DocumentExists, RevisionMismatch):
                continue
            return number

    async def get_layer_version(self, params: dict[str, Any]) -> dict[str, Any]:
        name = self._name(params["LayerName"])
        return self._render(self._get(name, int(params["VersionNumber"])))

    async def get_layer_version_by_arn(self, params: dict[str, Any]) -> dict[str, Any]:
        return self._render(self.resolve(params["Arn"], error=ResourceNotFoundException))

    async def list_layer_versions(self, params: dict[str, Any]) -> dict[str, Any]:
        name = self._name(params["LayerName"])
        records = [dict(d.data) for d in self.store.list(LAYER_VERSION, parent=_parent(name))]
        records = [r for r in records if self._matches(r, params)]
        records.sort(key=lambda r: -int(r["version"]))
        page, marker = paginate(records, params.get("Marker"), params.get("MaxItems"), 50)
        out: dict[str, Any] = {"LayerVersions": [self._item(r) for r in page]}
        if marker:
            out["NextMarker"] = marker
        return out

    async def list_layers(self, params: dict[str, Any]) -> dict[str, Any]:
        layers: list[dict[str, Any]] = []
        for counter in sorted(self.store.list(LAYER), key=lambda d: d.key):
            records = [
                dict(d.data) for d in self.store.list(LAYER_VERSION, parent=_parent(counter.key))
            ]
            matching = [r for r in records if self._matches(r, params)]
            if not matching:
                continue
            latest = max(matching, key=lambda r: int(r["version"]))
            layers.append(
                {
                    "LayerName": counter.key,
                    "LayerArn": self.layer_arn(counter.key),
                    "LatestMatchingVersion": self._item(latest),
                }
            )
        page, marker = paginate(layers, params.get("Marker"), params.get("MaxItems"), 50)
        out: dict[str, Any] = {"Layers": page}
        if marker:
            out["NextMarker"] = marker
        return out

    async def delete_layer_version(self, params: dict[str, Any]) -> dict[str, Any]:
        # Deleting a missing version succeeds, as on AWS; the stored zip stays because
        # functions that use the version keep running it.
        name = self._name(params["LayerName"])
        self.store.delete(LAYER_VERSION, f"{name}:{int(params['VersionNumber'])}")
        return {}

    # -- permissions (see layerpolicy.py) ------------------------------------------------
    def _policy_target(self, params: dict[str, Any]) -> tuple[str, int, str]:
        name, version = self._name(params["LayerName"]), int(params["VersionNumber"])
        return name, version, f"{self.layer_arn(name)}:{version}"

    async def add_layer_version_permission(self, params: dict[str, Any]) -> dict[str, Any]:
        return self.policies.add(*self._policy_target(params), params)

    async def get_layer_version_policy(self, params: dict[str, Any]) -> dict[str, Any]:
        return self.policies.get(*self._policy_target(params))

    async def remove_layer_version_permission(self, params: dict[str, Any]) -> dict[str, Any]:
        self.policies.remove(*self._policy_target(params), params)
        return {}

    # -- functions' layers ----------------------------------------------------------------
    def resolve(
        self, arn: str, error: type[Exception] = InvalidParameterValueException
    ) -> dict[str, Any]:
        match = _VERSION_ARN.match(arn)
        if match is None:
            raise InvalidParameterValueException(f"Invalid layer version ARN: {arn}")
        region, account, name, version = match.groups()
        doc = None
        if (region, account) == (self.region, self.account):
            doc = self.store.get(LAYER_VERSION, f"{name}:{int(version)}")
        if doc is None:
            raise error(f"Layer version {arn} does not exist.")
        return dict(doc.data)

    def resolve_function_layers(self, arns: list[str], code_unzipped: int) -> list[dict[str, Any]]:
        """What the function's config keeps about its layers; checks the 250 MB total."""
        resolved = []
        total = code_unzipped
        for arn in arns:
            record = self.resolve(arn)
            total += int(record["unzipped"])
            resolved.append(
                {
                    "Arn": arn,
                    "CodeSize": record["size"],
                    "sha": record["sha"],
                    "unzipped": record["unzipped"],
                }
            )
        if total > MAX_TOTAL_UNZIPPED:
            raise InvalidParameterValueException(
                "Function code combined with layers exceeds the maximum allowed size of "
                f"{MAX_TOTAL_UNZIPPED} bytes. The actual size is {total} bytes."
            )
        return resolved

    def merged_tree(self, shas: list[str]) -> Path:
        """One read-only ``/opt`` tree for an ordered list of layer packages (later wins),
        built once per distinct list and shared by every environment using it."""
        key = hashlib.sha256(":".join(shas).encode()).hexdigest()
        final = self.merged_root / key
        if final.is_dir():
            return final
        self.merged_root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=self.merged_root))
        try:
            for sha in shas:
                _overlay(self.deps.code.unpacked(sha), staging)
            os.chmod(staging, 0o755)
            os.rename(staging, final)
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
            if not final.is_dir():
                raise
        return final

    # -- rendering ------------------------------------------------------------------------
    @staticmethod
    def _matches(record: dict[str, Any], params: dict[str, Any]) -> bool:
        runtime = params.get("CompatibleRuntime")
        arch = params.get("CompatibleArchitecture")
        if runtime and runtime not in (record.get("CompatibleRuntimes") or []):
            return False
        return not (arch and arch not in (record.get("CompatibleArchitectures") or []))

    def _item(self, record: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {
            "LayerVersionArn": f"{self.layer_arn(record['name'])}:{record['version']}",
            "Version": int(record["version"]),
            "Description": record.get("Description", ""),
            "CreatedDate": record["CreatedDate"],
        }
        for member in ("CompatibleRuntimes", "CompatibleArchitectures", "LicenseInfo"):
            if record.get(member):
                out[member] = record[member]
        return out

    def _render(self, record: dict[str, Any]) -> dict[str, Any]:
        out = self._item(record)
        out["LayerArn"] = self.layer_arn(record["name"])
        out["Content"] = {
            "Location": f"{self.deps.settings.base_url}{LAYER_PATH}{record['sha']}.zip",
            "CodeSha256": record["sha256"],
            "CodeSize": record["size"],
        }
        return out


def _overlay(source: Path, target: Path) -> None:
    """Copy ``source`` over ``target``: files of ``source`` replace those already there."""
    for directory, dirs, files in os.walk(source):
        relative = Path(directory).relative_to(source)
        into = target / relative
        into.mkdir(mode=0o755, exist_ok=True)
        for name in dirs + files:
            origin, dest = Path(directory) / name, into / name
            if origin.is_dir() and not origin.is_symlink():
                if dest.is_symlink() or dest.is_file():
                    dest.unlink()
                continue
            if dest.is_dir() and not dest.is_symlink():
                shutil.rmtree(dest)
            elif dest.exists() or dest.is_symlink():
                dest.unlink()
            if origin.is_symlink():
                os.symlink(os.readlink(origin), dest)
            else:
                shutil.copy2(origin, dest)
        dirs[:] = [d for d in dirs if not (Path(directory) / d).is_symlink()]


def _parent(name: str) -> str:
    return f"layer:{name}"
