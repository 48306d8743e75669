"""Marker/MaxItems pagination as the List* operations do it."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import TypeVar

from lambdalite.core.errors import InvalidParameterValueException

T = TypeVar("T")


def paginate(
    items: Sequence[T], marker: str | None, max_items: int | None, cap: int
) -> tuple[list[T], str | None]:
    """Return one page and the marker of the next (None on the last page).

    The marker is an opaque offset; lists are ordered by key so offsets stay meaningful
    between calls unless items are deleted meanwhile, which AWS does not promise either.
    """
    start = 0
    if marker:
        try:
            start = int(base64.urlsafe_b64decode(marker.encode()).decode())
        except ValueError:
            raise InvalidParameterValueException(f"Invalid marker: {marker}") from None
    size = min(max_items or cap, cap)
    page = list(items[start : start + size])
    end = start + len(page)
    if end < len(items):
        return page, base64.urlsafe_b64encode(str(end).encode()).decode()
    return page, None
