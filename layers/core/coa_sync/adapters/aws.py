"""boto3 clients, made once per process and shared by the adapters.

Lambda reuses a warm container's clients across invocations; the local runner gets the
same clients patched by moto.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import boto3
from botocore.config import Config

_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5})


@cache
def client(service: str) -> Any:
    return boto3.client(service, config=_CONFIG)  # type: ignore[call-overload]


@cache
def resource(service: str) -> Any:
    return boto3.resource(service, config=_CONFIG)  # type: ignore[call-overload]


def reset() -> None:
    """Forget cached clients (the local runner starts a fresh moto world per run)."""
    client.cache_clear()
    resource.cache_clear()
