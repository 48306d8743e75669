"""CreateFunction, GetFunction, ListFunctions, UpdateFunctionCode/Configuration, DeleteFunction."""

from __future__ import annotations

from typing import Any

from lambdalite.control import snapstart
from lambdalite.control.catalog import VERSION, Resolved
from lambdalite.control.configuration import STORED_MEMBERS, render
from lambdalite.control.deps import Deps
from lambdalite.control.hooks import Lifecycle
from lambdalite.control.hotreload import HOT_RELOAD_BUCKET, HotReload, hot_location
from lambdalite.control.images import ImageFunctions, is_image, is_image_code
from lambdalite.control.layers import MAX_TOTAL_UNZIPPED, LayerService
from lambdalite.control.limiter import ConcurrencyLimiter
from lambdalite.control.limits import check_environment, check_sizes
from lambdalite.control.paging import paginate
from lambdalite.control.versions import VersionService
from lambdalite.core.arn import LATEST, VERSION_RE, parse_function
from lambdalite.core.clock import iso_timestamp
from lambdalite.core.errors import (
    InvalidParameterValueException,
    ResourceConflictException,
    ResourceNotFoundException,
    ValidationException,
)

CODE_PATH = "/_lambdalite/code/"
DEPRECATED = ("python2.7", "python3.6", "python3.7", "python3.8")


class FunctionService:
    def __init__(
        self,
        deps: Deps,
        versions: VersionService,
        limiter: ConcurrencyLimiter,
        lifecycle: Lifecycle | None = None,
    ) -> None:
        self.deps = deps
        self.catalog = deps.catalog
        self.versions = versions
        self.limiter = limiter
        self.lifecycle = lifecycle
        # Set by the composition root; without it functions cannot reference layers.
        self.layers: LayerService | None = None
        # Set by the composition root: the ``hot-reload`` code source (live directories).
        self.hot_reload: HotReload | None = None
        # Set by the composition root: container images (PackageType Image).
        self.images: ImageFunctions | None = None

    # -- create ---------------------------------------------------------------------------
    async def create_function(self, params: dict[str, Any]) -> dict[str, Any]:
        name = params["FunctionName"]
        if len(name) > 64 and not name.startswith("arn:") and ":function:" not in name:
            raise ValidationException(
                f"1 validation error detected: Value '{name}' at 'functionName' failed to "
                "satisfy constraint: Member must have length less than or equal to 64"
            )
        ref = parse_function(name)
        if ref.qualifier is not None:
            raise InvalidParameterValueException(f"Unqualified function name expected, got: {name}")
        self.deps.arns.check_ref(ref)
        config = {m: params[m] for m in STORED_MEMBERS if m in params}
        package_type = config.get("PackageType", "Zip")
        if package_type == "Image" or "ImageUri" in params["Code"]:
            if self.images is None:
                raise InvalidParameterValueException(
                    "Container image functions (PackageType Image) are not supported by this "
                    "lambdalite server; deploy a .zip package with Code.ZipFile."
                )
            self.images.check_create(config, params["Code"])
        elif not config.get("Runtime") or not config.get("Handler"):
            raise InvalidParameterValueException(
                "Runtime and Handler are mandatory parameters for functions created with "
                "deployment packages."
            )
        self._check_config(config)
        snapstart.check_config(config)
        code = await self._new_code(config, params["Code"])
        self._attach_layers(config, code)
        if self.catalog.find_function(ref.name) is not None:
            raise ResourceConflictException(f"Function already exist: {ref.name}")
        config["LastModified"] = iso_timestamp()
        data: dict[str, Any] = {
            "config": config,
            "code": code,
            "tags": dict(params.get("Tags") or {}),
            "policies": {},
            "reserved": None,
            "next_version": 1,
            "published": None,
        }
        doc = self.catalog.create_function(ref.name, data)
        resolved = Resolved(doc, LATEST, config, code, doc.revision)
        if params.get("Publish"):
            published = await self.versions.publish(ref.name, {})
            return published
        return render(resolved, self.deps.arns, qualified=False)

    async def _new_code(self, config: dict[str, Any], source: dict[str, Any]) -> dict[str, Any]:
        """The code record of ``source``: an image (resolved in the image store) for
        ``PackageType: Image``, otherwise a package."""
        if is_image(config) and self.images is not None:
            return await self.images.code_record(source["ImageUri"])
        return self._store_code(source)

    def _store_code(self, code: dict[str, Any]) -> dict[str, Any]:
        if code.get("S3Bucket") == HOT_RELOAD_BUCKET and self.hot_reload is not None:
            return self.hot_reload.code_record(code)
        if "S3Bucket" in code or "S3Key" in code:
            raise InvalidParameterValueException(
                "Code from S3 (S3Bucket/S3Key) is not supported by this lambdalite server yet; "
                "upload the package with ZipFile."
            )
        if "ImageUri" in code:
            raise InvalidParameterValueException(
                "Container images (ImageUri) are not supported by this lambdalite server yet."
            )
        data = code.get("ZipFile")
        if not data:
            raise InvalidParameterValueException(
                "Please provide a source for function code: ZipFile."
            )
        info = self.deps.code.put_zip(data)
        return {
            "sha": info.sha256_hex,
            "sha256": info.code_sha256_b64,
            "size": info.size,
            "unzipped": info.unzipped_size,
        }

    def _check_config(self, config: dict[str, Any]) -> None:
        runtime = config.get("Runtime")
        if runtime is not None:
            self._check_runtime(runtime)
        check_sizes(config)
        env = config.get("Environment")
        if env is not None:
            check_environment(env.get("Variables") or {})
        if self.lifecycle is not None:
            self.lifecycle.check_config(config)

    def _attach_layers(self, config: dict[str, Any], code: dict[str, Any]) -> None:
        """Resolve ``Layers`` to what runs (``LayerInfo``), checking existence and sizes."""
        arns = list(config.get("Layers") or [])
        if not arns:
            config.pop("LayerInfo", None)
            return
        if self.layers is None:
            raise InvalidParameterValueException("Layers are not supported by this server.")
        config["LayerInfo"] = self.layers.resolve_function_layers(arns, int(code["unzipped"]))

    def _check_total(self, config: dict[str, Any], code: dict[str, Any]) -> None:
        """New code must still fit beside the layers the function already uses."""
        layers = config.get("LayerInfo") or []
        total = int(code["unzipped"]) + sum(int(i.get("unzipped", 0)) for i in layers)
        if total > MAX_TOTAL_UNZIPPED:
            raise InvalidParameterValueException(
                "Function code combined with layers exceeds the maximum allowed size of "
                f"{MAX_TOTAL_UNZIPPED} bytes. The actual size is {total} bytes."
            )

    def _check_runtime(self, runtime: str) -> None:
        runtimes = self.deps.runtimes
        if runtime in DEPRECATED:
            raise InvalidParameterValueException(
                f"The runtime parameter of {runtime} is no longer supported for creating or "
                "updating AWS Lambda functions. We recommend you use a supported runtime while "
                "creating or updating functions."
            )
        if not runtimes.is_known(runtime):
            known = sorted(runtimes.available())
            raise InvalidParameterValueException(
                f"Value {runtime} at 'runtime' failed to satisfy constraint: Member must satisfy "
                f"enum value set: [{', '.join(known)}] or be a valid ARN"
            )
        if not runtimes.is_supported(runtime):
            raise InvalidParameterValueException(
                f"Runtime {runtime} is not supported by this lambdalite server yet. Supported "
                f"runtimes: {', '.join(sorted(runtimes.available()))}."
            )
        if runtimes.resolve(runtime) is None:
            node = runtime.startswith("nodejs")
            setting = "LAMBDALITE_NODE_RUNTIMES" if node else "LAMBDALITE_PYTHON_RUNTIMES"
            wanted = f"Node.js {runtime[6:-2]}" if node else "an interpreter for it"
            raise InvalidParameterValueException(
                f"Runtime {runtime} is not available on this lambdalite server: {wanted} "
                f"was not found. Install it, or map it with {setting}="
                f"'{runtime}=/path/to/interpreter'. Available: "
                f"{', '.join(sorted(runtimes.available())) or 'none'}."
            )

    # -- read -----------------------------------------------------------------------------
    def _resolve(self, identifier: str, qualifier: str | None) -> tuple[Resolved, bool]:
        ref = parse_function(identifier, qualifier)
        self.deps.arns.check_ref(ref)
        q = ref.qualifier
        if q is None or q == LATEST:
            return self.catalog.version(ref.name, LATEST), q is not None
        if VERSION_RE.match(q):
            return self.catalog.version(ref.name, q), True
        alias = self.catalog.alias(ref.name, q)
        return self.catalog.version(ref.name, alias.data["FunctionVersion"]), True

    async def get_function_configuration(self, params: dict[str, Any]) -> dict[str, Any]:
        resolved, qualified = self._resolve(params["FunctionName"], params.get("Qualifier"))
        return render(resolved, self.deps.arns, qualified=qualified)

    async def get_function(self, params: dict[str, Any]) -> dict[str, Any]:
        resolved, qualified = self._resolve(params["FunctionName"], params.get("Qualifier"))
        out: dict[str, Any] = {
            "Configuration": render(resolved, self.deps.arns, qualified=qualified),
            "Code": {
                "RepositoryType": "S3",
                "Location": hot_location(resolved.code)
                or f"{self.deps.settings.base_url}{CODE_PATH}{resolved.code['sha']}.zip",
            },
        }
        if is_image_code(resolved.code):
            out["Code"] = ImageFunctions.location(resolved.code)
        data = resolved.function.data
        if data.get("tags"):
            out["Tags"] = dict(data["tags"])
        if data.get("reserved") is not None:
            out["Concurrency"] = {"ReservedConcurrentExecutions": data["reserved"]}
        return out

    async def list_functions(self, params: dict[str, Any]) -> dict[str, Any]:
        everything = params.get("FunctionVersion") == "ALL"
        items: list[dict[str, Any]] = []
        for doc in self.catalog.functions():
            latest = Resolved(doc, LATEST, doc.data["config"], doc.data["code"], doc.revision)
            items.append(render(latest, self.deps.arns, qualified=everything))
            if everything:
                for vdoc in self.catalog.versions(doc.key):
                    number = vdoc.key.rsplit(":", 1)[1]
                    resolved = Resolved(
                        doc, number, vdoc.data["config"], vdoc.data["code"], vdoc.revision
                    )
                    items.append(render(resolved, self.deps.arns, qualified=True))
        page, marker = paginate(items, params.get("Marker"), params.get("MaxItems"), 50)
        out: dict[str, Any] = {"Functions": page}
        if marker:
            out["NextMarker"] = marker
        return out

    # -- update ---------------------------------------------------------------------------
    async def update_function_code(self, params: dict[str, Any]) -> dict[str, Any]:
        doc = self._latest(params["FunctionName"])
        if self.images is not None:
            self.images.check_update_code(doc.data["config"], params)
        code = await self._new_code(doc.data["config"], params)
        data = dict(doc.data)
        config = dict(data["config"])
        if params.get("Architectures"):
            config["Architectures"] = params["Architectures"]
        self._check_total(config, code)
        if params.get("DryRun"):
            preview = Resolved(doc, LATEST, config, code, doc.revision)
            return render(preview, self.deps.arns, qualified=False)
        config["LastModified"] = iso_timestamp()
        data.update(config=config, code=code)
        new = self.catalog.update_function(doc, data, params.get("RevisionId"))
        await self.deps.invoker.retire(doc.key, LATEST)
        if params.get("Publish"):
            return await self.versions.publish(doc.key, {})
        return render(
            Resolved(new, LATEST, config, code, new.revision), self.deps.arns, qualified=False
        )

    async def update_function_configuration(self, params: dict[str, Any]) -> dict[str, Any]:
        doc = self._latest(params["FunctionName"])
        changes = {m: params[m] for m in STORED_MEMBERS if m in params}
        if self.images is not None:
            self.images.check_update_config(doc.data["config"], changes)
        elif "PackageType" in changes or "ImageConfig" in changes:
            raise InvalidParameterValueException(
                "PackageType and ImageConfig cannot be changed for a .zip function."
            )
        self._check_config(changes)
        data = dict(doc.data)
        config = dict(data["config"])
        config.update(changes)
        snapstart.check_config(config)
        if "Layers" in changes:
            self._attach_layers(config, data["code"])
        config["LastModified"] = iso_timestamp()
        data["config"] = config
        new = self.catalog.update_function(doc, data, params.get("RevisionId"))
        await self.deps.invoker.retire(doc.key, LATEST)
        return render(
            Resolved(new, LATEST, config, data["code"], new.revision),
            self.deps.arns,
            qualified=False,
        )

    def _latest(self, identifier: str) -> Any:
        ref = parse_function(identifier)
        self.deps.arns.check_ref(ref)
        if ref.qualifier not in (None, LATEST):
            raise InvalidParameterValueException(
                "Only $LATEST can be updated; published versions are immutable."
            )
        return self.catalog.function(ref.name)

    # -- delete ---------------------------------------------------------------------------
    async def delete_function(self, params: dict[str, Any]) -> dict[str, Any]:
        ref = parse_function(params["FunctionName"], params.get("Qualifier"))
        self.deps.arns.check_ref(ref)
        self.catalog.function(ref.name)
        q = ref.qualifier
        if q is None:
            self.catalog.delete_function(ref.name)
            self.limiter.forget(ref.name)
            await self.deps.invoker.retire(ref.name)
            if self.lifecycle is not None:
                await self.lifecycle.function_deleted(ref.name)
            return {"StatusCode": 204}
        if q == LATEST:
            raise InvalidParameterValueException(
                "$LATEST version cannot be deleted without deleting the function."
            )
        if not VERSION_RE.match(q):
            raise InvalidParameterValueException(
                "Deletion of aliases is not supported; use DeleteAlias."
            )
        self.catalog.version(ref.name, q)
        users = [
            a.key.split(":", 1)[1]
            for a in self.catalog.aliases(ref.name)
            if a.data["FunctionVersion"] == q
            or q in ((a.data.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {})
        ]
        if users:
            raise ResourceConflictException(
                f"Unable to delete version because the following aliases reference it: {users}"
            )
        if not self.catalog.delete_child(VERSION, ref.name, q):
            raise ResourceNotFoundException(
                f"Function not found: {self.deps.arns.function(ref.name, q)}"
            )
        await self.deps.invoker.retire(ref.name, q)
        if self.lifecycle is not None:
            await self.lifecycle.qualifier_deleted(ref.name, q)
        return {"StatusCode": 204}
