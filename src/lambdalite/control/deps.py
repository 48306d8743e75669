"""What every control-plane service is built from; assembled once by the composition root."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from lambdalite.config import Settings
from lambdalite.control.catalog import Catalog
from lambdalite.core.arn import ArnFormatter
from lambdalite.invocation.model import Invoker


class CodeInfo(Protocol):
    @property
    def sha256_hex(self) -> str: ...
    @property
    def code_sha256_b64(self) -> str: ...
    @property
    def size(self) -> int: ...
    @property
    def unzipped_size(self) -> int: ...


class CodeStore(Protocol):
    def put_zip(self, data: bytes) -> CodeInfo: ...
    def unpacked(self, sha256_hex: str) -> Path: ...
    def zip_path(self, sha256_hex: str) -> Path: ...


class RuntimeCommandLike(Protocol):
    @property
    def argv(self) -> list[str]: ...


class Runtimes(Protocol):
    def resolve(self, runtime_id: str) -> RuntimeCommandLike | None: ...
    def is_known(self, runtime_id: str) -> bool: ...
    def is_supported(self, runtime_id: str) -> bool: ...
    def available(self) -> dict[str, str]: ...


@dataclass(frozen=True)
class Deps:
    settings: Settings
    catalog: Catalog
    arns: ArnFormatter
    code: CodeStore
    runtimes: Runtimes
    invoker: Invoker
