"""Service-side checks the model cannot express, with AWS's error types and messages.

The wire layer already enforces the model's own constraints (lengths, patterns, ranges) as
``ValidationException``. The model's upper bounds now cover newer modes (32 GB, 5400 s), so
the standard-function quotas live here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from lambdalite.core.errors import InvalidParameterValueException

MAX_MEMORY_MB = 10240
MAX_TIMEOUT_S = 900
MAX_EPHEMERAL_MB = 10240
MAX_ENV_BYTES = 4096
MAX_SYNC_PAYLOAD = 6 * 1024 * 1024
MAX_ASYNC_PAYLOAD = 1024 * 1024
MAX_TAGS = 50
MAX_POLICY_BYTES = 20480
MAX_LAYERS = 5

RESERVED_ENV_KEYS = frozenset(
    {
        "_HANDLER",
        "_X_AMZN_TRACE_ID",
        "AWS_DEFAULT_REGION",
        "AWS_REGION",
        "AWS_EXECUTION_ENV",
        "AWS_LAMBDA_FUNCTION_NAME",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        "AWS_LAMBDA_FUNCTION_VERSION",
        "AWS_LAMBDA_INITIALIZATION_TYPE",
        "AWS_LAMBDA_LOG_GROUP_NAME",
        "AWS_LAMBDA_LOG_STREAM_NAME",
        "AWS_ACCESS_KEY",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_LAMBDA_RUNTIME_API",
        "LAMBDA_TASK_ROOT",
        "LAMBDA_RUNTIME_DIR",
    }
)


def _above(member: str, value: int, limit: int) -> InvalidParameterValueException:
    return InvalidParameterValueException(
        f"1 validation error detected: Value '{value}' at '{member}' failed to satisfy "
        f"constraint: Member must have value less than or equal to {limit}"
    )


def check_sizes(config: Mapping[str, Any]) -> None:
    memory = config.get("MemorySize")
    if memory is not None and memory > MAX_MEMORY_MB:
        raise _above("memorySize", memory, MAX_MEMORY_MB)
    timeout = config.get("Timeout")
    if timeout is not None and timeout > MAX_TIMEOUT_S:
        raise _above("timeout", timeout, MAX_TIMEOUT_S)
    storage = (config.get("EphemeralStorage") or {}).get("Size")
    if storage is not None and storage > MAX_EPHEMERAL_MB:
        raise _above("ephemeralStorage.size", storage, MAX_EPHEMERAL_MB)
    layers = config.get("Layers")
    if layers is not None and len(layers) > MAX_LAYERS:
        raise InvalidParameterValueException(f"Cannot reference more than {MAX_LAYERS} layers.")


def check_environment(variables: Mapping[str, str]) -> None:
    reserved = sorted(k for k in variables if k in RESERVED_ENV_KEYS)
    if reserved:
        raise InvalidParameterValueException(
            "Lambda was unable to configure your environment variables because the environment "
            "variables you have provided contains reserved keys that are currently not supported "
            f"for modification. Reserved keys used in this request: {', '.join(reserved)}"
        )
    measured = json.dumps(dict(variables), separators=(",", ":"))
    if sum(len(k.encode()) + len(str(v).encode()) for k, v in variables.items()) > MAX_ENV_BYTES:
        raise InvalidParameterValueException(
            "Lambda was unable to configure your environment variables because the environment "
            "variables you have provided exceeded the 4KB limit. String measured: " + measured
        )
