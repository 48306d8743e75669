"""What the function and alias services tell the rest of the control plane.

Async settings, provisioned concurrency, reservations and queued events hang off a function
or one of its qualifiers; these hooks keep them consistent when the function's configuration
changes or when the function, a version or an alias is deleted, without the services that own
functions knowing about any of them.
"""

from __future__ import annotations

from typing import Any, Protocol


class Lifecycle(Protocol):
    def check_config(self, config: dict[str, Any]) -> None:
        """Reject configuration members that point at things that do not exist."""

    async def function_deleted(self, name: str) -> None:
        """The function and everything under it is gone."""

    async def qualifier_deleted(self, name: str, qualifier: str) -> None:
        """A version or alias of the function is gone."""
