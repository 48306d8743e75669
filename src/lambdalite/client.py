"""botocore clients for the CLI: lambdalite's own commands use the public API like any user."""

from __future__ import annotations

import os
from typing import Any

DEFAULT_ENDPOINT = "http://127.0.0.1:4566"


def endpoint_from_env() -> str:
    return (
        os.environ.get("LAMBDALITE_ENDPOINT_URL")
        or os.environ.get("AWS_ENDPOINT_URL")
        or DEFAULT_ENDPOINT
    )


def make_client(service: str, endpoint: str, region: str = "us-east-1") -> Any:
    """A botocore client; credentials are dummies unless the user configured real ones."""
    import botocore.config
    import botocore.session

    session = botocore.session.get_session()
    credentials = session.get_credentials()
    keys: dict[str, str] = {}
    if credentials is None:
        keys = {"aws_access_key_id": "lambdalite", "aws_secret_access_key": "lambdalite"}
    config = botocore.config.Config(
        retries={"max_attempts": 1}, read_timeout=960, connect_timeout=5
    )
    return session.create_client(
        service, region_name=region, endpoint_url=endpoint, config=config, **keys
    )
