"""Container image functions (``PackageType: Image``) in the control plane.

``ImageUri`` is resolved against the local image store (``lambdalite images load``), not a
registry. What a function stores for its code is then the image's digest (``CodeSha256`` is
its hex, as AWS reports an image's digest; ``CodeSize`` is 0), the URI as given, and the
resolved form ``<repository>@sha256:<hex>``: a function keeps running the image it was created
or updated with, even when the name later moves to another image, as on AWS.

The checks follow AWS's wording: a Runtime, Handler or Layers with an image, an ImageUri for
a .zip function or none for an image function on update, a missing image. ``ImageConfig``
(``EntryPoint``, ``Command``, ``WorkingDirectory``) overrides the image's own settings when
the function runs; ``GetFunctionConfiguration`` reports it as ``ImageConfigResponse``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from lambdalite.core.errors import InvalidParameterValueException, ServiceException
from lambdalite.images import ImageError, ImageInfo, ImageNotFound, ImageStore
from lambdalite.invocation.model import ImageLaunch

IMAGE = "Image"
NO_RUNTIME = (
    "Please don't provide Handler or Runtime or Layer when the intended function PackageType "
    "is Image."
)


def is_image(config: dict[str, Any]) -> bool:
    return config.get("PackageType") == IMAGE


def is_image_code(code: dict[str, Any]) -> bool:
    return "image_digest" in code


def resolved_uri(uri: str, digest: str) -> str:
    """``<repository>@<digest>``: the URI without its tag or digest, pinned to ``digest``."""
    repository = uri.split("@", 1)[0]
    last = repository.rsplit("/", 1)
    if ":" in last[-1]:
        repository = repository[: repository.rfind(":")]
    return f"{repository}@{digest}"


class ImageFunctions:
    def __init__(self, store: ImageStore) -> None:
        self.store = store

    # -- validation -------------------------------------------------------------------------
    def check_create(self, config: dict[str, Any], code: dict[str, Any]) -> None:
        if not is_image(config):
            raise InvalidParameterValueException(
                "Please don't provide ImageUri when the intended function PackageType is Zip."
            )
        if config.get("Runtime") or config.get("Handler") or config.get("Layers"):
            raise InvalidParameterValueException(NO_RUNTIME)
        if "ImageUri" not in code or set(code) - {"ImageUri"}:
            raise InvalidParameterValueException(
                "Please provide ImageUri, and only ImageUri, as the code of a function with "
                "PackageType Image."
            )

    def check_update_code(self, config: dict[str, Any], params: dict[str, Any]) -> None:
        if is_image(config) and "ImageUri" not in params:
            raise InvalidParameterValueException(
                "Please provide ImageUri when updating a function with packageType Image."
            )
        if not is_image(config) and "ImageUri" in params:
            raise InvalidParameterValueException(
                "Please don't provide ImageUri when updating a function with packageType Zip."
            )

    def check_update_config(self, config: dict[str, Any], changes: dict[str, Any]) -> None:
        if "PackageType" in changes and changes["PackageType"] != config.get("PackageType", "Zip"):
            raise InvalidParameterValueException(
                "The package type of a function cannot be changed; create a new function."
            )
        if not is_image(config) and "ImageConfig" in changes:
            raise InvalidParameterValueException(
                "ImageConfig can only be set on functions with PackageType Image."
            )
        if is_image(config) and any(changes.get(k) for k in ("Runtime", "Handler", "Layers")):
            raise InvalidParameterValueException(NO_RUNTIME)

    # -- code -------------------------------------------------------------------------------
    def _resolve(self, uri: str) -> ImageInfo:
        try:
            return self.store.resolve(uri)
        except ValueError as exc:
            raise InvalidParameterValueException(
                f"Source image {uri} is not valid. Provide a valid source image."
            ) from exc
        except ImageNotFound as exc:
            raise InvalidParameterValueException(
                f"Source image {uri} does not exist. Provide a valid source image."
            ) from exc

    async def code_record(self, uri: str) -> dict[str, Any]:
        """The stored code of a function running the image ``uri``; its root file system is
        built now (once per image), so the first invocation does not wait for it."""
        info = self._resolve(uri)
        try:
            await asyncio.to_thread(self.store.rootfs, info)
        except (ImageError, OSError) as exc:
            raise ServiceException(f"Image {uri} cannot be prepared: {exc}") from exc
        return {
            "sha": info.hex,
            "sha256": info.hex,
            "size": 0,
            "unzipped": 0,
            "image_uri": uri,
            "image_digest": info.digest,
            "resolved_uri": resolved_uri(uri, info.digest),
        }

    @staticmethod
    def location(code: dict[str, Any]) -> dict[str, Any]:
        """``Code`` of GetFunction for an image function."""
        return {
            "RepositoryType": "ECR",
            "ImageUri": code["image_uri"],
            "ResolvedImageUri": code["resolved_uri"],
        }

    # -- running ----------------------------------------------------------------------------
    def launch(self, config: dict[str, Any], code: dict[str, Any]) -> tuple[ImageLaunch, str]:
        """How the function starts, and its handler (``_HANDLER``: the first word of CMD)."""
        try:
            info = self.store.resolve(code["image_digest"])
            rootfs = self.store.rootfs(info)
        except (ImageError, OSError) as exc:
            raise ServiceException(
                f"The image of this function ({code['image_uri']}) is no longer available in "
                f"the image store: {exc}"
            ) from exc
        overrides = config.get("ImageConfig") or {}
        image = info.config
        entrypoint = overrides.get("EntryPoint", image.get("Entrypoint") or [])
        command = overrides.get("Command", image.get("Cmd") or [])
        workdir = overrides.get("WorkingDirectory") or image.get("WorkingDir") or "/"
        env = {}
        for item in image.get("Env") or []:
            key, _, value = str(item).partition("=")
            if key:
                env[key] = value
        argv = tuple(str(a) for a in [*entrypoint, *command])
        handler = str(command[0]) if command else ""
        return ImageLaunch(rootfs=rootfs, argv=argv, workdir=str(workdir), env=env), handler
