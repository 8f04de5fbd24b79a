"""boto3 clients, made once per process when first used, and shared by the adapters.

Importing boto3 takes a cold start ~0.2 s and each client ~30-80 ms more, so both wait for the
first call that needs them: a path pays for the clients it uses (a scheduled fetch never touches
S3), and an adapter can be built at import time for free. Lambda reuses a warm container's
clients across invocations; the local runner gets the same clients patched by moto.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import cache
from types import SimpleNamespace
from typing import Any

_lock = threading.Lock()  # boto3's default session must not build two clients at once
POOL_CONNECTIONS = 16  # botocore's default is 10


class OnFirstUse:
    """Stands in for a boto3 client, resource or table; makes it when an attribute is first asked for.

    `per_thread`: one for each thread that uses it. boto3's resources, unlike its clients, are not safe to share
    between threads (the writer applies tenants on threads of their own); a table's copies are cheap, sharing one
    service resource and its client."""

    def __init__(self, make: Callable[[], Any], *, per_thread: bool = False) -> None:
        self._make = make
        self._held: Any = threading.local() if per_thread else SimpleNamespace()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):  # copy, pickle and the like probe for these: not a use
            raise AttributeError(name)
        made = getattr(self._held, "made", None)
        if made is None:
            with _lock:
                made = getattr(self._held, "made", None)
                if made is None:
                    made = self._held.made = self._make()
        return getattr(made, name)


def client(service: str) -> Any:
    return OnFirstUse(lambda: _client(service))


def resource(service: str) -> Any:
    return OnFirstUse(lambda: _resource(service))


def table(name: str, dynamodb: Any | None = None) -> Any:
    """A DynamoDB table, of the given resource or of the shared one (made on first use in each thread)."""
    return OnFirstUse(lambda: (dynamodb if dynamodb is not None else _resource("dynamodb")).Table(name),
                      per_thread=True)


# boto3.dynamodb.conditions' Attr and Key, importing boto3 only when first called.
def Attr(name: str) -> Any:
    from boto3.dynamodb import conditions

    return conditions.Attr(name)


def Key(name: str) -> Any:
    from boto3.dynamodb import conditions

    return conditions.Key(name)


@cache
def _client(service: str) -> Any:
    import boto3

    return boto3.client(service, config=_config())  # type: ignore[call-overload]


@cache
def _resource(service: str) -> Any:
    import boto3

    return boto3.resource(service, config=_config())  # type: ignore[call-overload]


@cache
def _config() -> Any:
    from botocore.config import Config

    # A connection for each call in flight: the actions queue sends up to this many at once (queues.SEND_THREADS).
    return Config(retries={"mode": "standard", "max_attempts": 5}, max_pool_connections=POOL_CONNECTIONS)


def if_condition_holds(write: Callable[..., dict[str, Any]], **params: Any) -> dict[str, Any] | None:
    """A conditional write's answer; None when its condition did not hold (another writer got there first)."""
    from botocore.exceptions import ClientError

    try:
        return write(**params)
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
            return None
        raise


def reset() -> None:
    """Forget cached clients (the local runner starts a fresh moto world per run)."""
    _client.cache_clear()
    _resource.cache_clear()
