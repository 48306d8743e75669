"""Container images without Docker: a local image store and root file systems for sandboxes.

``lambdalite images load`` puts ``docker save`` archives and OCI image layouts/archives in the
store (``store.ImageStore``); a function with ``PackageType: Image`` names one by ``ImageUri``
and runs with the image's merged layers as its root file system. See ``docs/images.md``.
"""

from lambdalite.images.errors import ImageError, ImageNotFound
from lambdalite.images.store import MAX_IMAGE_BYTES, ImageInfo, ImageStore

__all__ = ["MAX_IMAGE_BYTES", "ImageError", "ImageInfo", "ImageNotFound", "ImageStore"]
