"""The two ways an image operation fails: a bad archive, or an image nobody loaded."""

from __future__ import annotations


class ImageError(Exception):
    """An archive that is not a usable image (format, digest, layer or size problem).

    The message names the archive member or digest at fault, so whoever built the archive
    can tell what to fix.
    """


class ImageNotFound(ImageError):
    """No loaded image answers to the reference."""
