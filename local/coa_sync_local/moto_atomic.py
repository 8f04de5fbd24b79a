"""One thing moto's DynamoDB does otherwise than DynamoDB, made as DynamoDB does it: item writes are atomic.

DynamoDB applies a write to an item as one step: a conditional write checks its condition and
writes, or fails, with no other write to that item in between ("Condition expressions",
"Atomic counters" in the DynamoDB developer guide). moto's in-memory backend reads the item,
checks the condition and writes it back in Python, with no lock: on the threads of moto_server
(ThreadedMotoServer), or of one process sharing moto in process, two conditional writes can both
pass their check and the second overwrite the first. Every call of the backend that reads or writes
items is made to hold one lock, so each happens whole, as on AWS (more strictly: DynamoDB serializes
writes per item, this all of them). What each call answers is unchanged.

Applied where several processes or threads share one moto (tests of the shared rate budget,
processes of one local deployment); a single-threaded run does not need it.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

from moto.dynamodb.models import DynamoDBBackend

# The backend's calls that read or write items (DynamoDBBackend's own methods of those names).
ITEM_CALLS = ("put_item", "get_item", "update_item", "delete_item", "query", "scan", "transact_write_items",
              "batch_get_item", "batch_write_item", "transact_get_items", "execute_statement",
              "execute_transaction", "batch_execute_statement")
_lock = threading.RLock()  # reentrant: transact_write_items calls the backend's own item calls


def _atomic(call: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(call)
    def whole(backend: DynamoDBBackend, *args: Any, **kwargs: Any) -> Any:
        with _lock:
            return call(backend, *args, **kwargs)

    whole.__wrapped_atomic__ = True  # type: ignore[attr-defined]
    return whole


def apply() -> None:
    """Make moto's DynamoDB item calls atomic (idempotent)."""
    for name in ITEM_CALLS:
        call = getattr(DynamoDBBackend, name)
        if not getattr(call, "__wrapped_atomic__", False):
            setattr(DynamoDBBackend, name, _atomic(call))
