"""Code packages: validated, content-addressed zips and their extracted trees."""

from __future__ import annotations

from lambdalite.blobs.archive import MAX_UNZIPPED, MAX_ZIPPED
from lambdalite.blobs.packing import zip_directory
from lambdalite.blobs.store import CodeInfo, CodeStore

__all__ = ["MAX_UNZIPPED", "MAX_ZIPPED", "CodeInfo", "CodeStore", "zip_directory"]
