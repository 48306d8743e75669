"""The FunctionConfiguration document AWS returns, built from what the catalog stores."""

from __future__ import annotations

import hashlib
from typing import Any

from lambdalite.control import snapstart
from lambdalite.control.catalog import Resolved
from lambdalite.core.arn import LATEST, ArnFormatter

# Members kept verbatim from requests (CreateFunction / UpdateFunctionConfiguration).
STORED_MEMBERS = (
    "Runtime",
    "Role",
    "Handler",
    "Description",
    "Timeout",
    "MemorySize",
    "Environment",
    "TracingConfig",
    "EphemeralStorage",
    "Architectures",
    "PackageType",
    "LoggingConfig",
    "DeadLetterConfig",
    "VpcConfig",
    "KMSKeyArn",
    "Layers",
    "SnapStart",
    "ImageConfig",
    "FileSystemConfigs",
)

DEFAULTS: dict[str, Any] = {
    "Description": "",
    "Timeout": 3,
    "MemorySize": 128,
    "TracingConfig": {"Mode": "PassThrough"},
    "EphemeralStorage": {"Size": 512},
    "Architectures": ["x86_64"],
    "PackageType": "Zip",
}


def runtime_version_arn(region: str, runtime: str) -> str:
    digest = hashlib.sha256(f"lambdalite:{runtime}".encode()).hexdigest()
    return f"arn:aws:lambda:{region}::runtime:{digest}"


def render(resolved: Resolved, arns: ArnFormatter, *, qualified: bool) -> dict[str, Any]:
    """FunctionConfiguration for one version; ``qualified`` picks the ARN form AWS uses."""
    stored = resolved.config
    name = resolved.function.key
    out: dict[str, Any] = {
        "FunctionName": name,
        "FunctionArn": arns.function(name, resolved.version if qualified else None),
    }
    for member in STORED_MEMBERS:
        value = stored.get(member, DEFAULTS.get(member))
        if member == "Layers" and value:
            sizes = {i["Arn"]: i["CodeSize"] for i in stored.get("LayerInfo") or []}
            value = [{"Arn": arn, "CodeSize": sizes.get(arn, 0)} for arn in value]
        if member == "Environment" and value is not None:
            value = {"Variables": dict(value.get("Variables") or {})}
        if value is not None:
            out[member] = value
    if "ImageConfig" in out:  # reported as AWS does, wrapped
        out["ImageConfigResponse"] = {"ImageConfig": out.pop("ImageConfig")}
    out["CodeSize"] = resolved.code["size"]
    out["CodeSha256"] = resolved.code["sha256"]
    out["LastModified"] = stored["LastModified"]
    out["Version"] = resolved.version
    out["RevisionId"] = resolved.revision
    out["State"] = "Active"
    out["LastUpdateStatus"] = "Successful"
    snapstart.render(out, resolved)
    logging = dict(stored.get("LoggingConfig") or {})
    logging.setdefault("LogFormat", "Text")
    logging.setdefault("LogGroup", f"/aws/lambda/{name}")
    out["LoggingConfig"] = logging
    if out.get("Runtime"):
        out["RuntimeVersionConfig"] = {
            "RuntimeVersionArn": runtime_version_arn(arns.region, out["Runtime"])
        }
    return out


def is_latest(version: str) -> bool:
    return version == LATEST
