"""Speed fixes for moto's SQS, applied by the local runner; what SQS does is unchanged.

- moto builds every queue attribute, including three message counts that each scan the
  whole queue, whenever it reads one setting, and it reads settings for every message
  sent: sending n messages cost O(n²) (2,500 actions took about 100 s). The counts become
  lazy: computed when something reads them (GetQueueAttributes), exactly as before.
- Each receive checks every message's visibility with a datetime-based clock (about 4 µs a
  call); the same epoch milliseconds from time.time() make a receive on a deep queue cheap.
- Each delete scanned the whole queue twice and rebuilt it; it now stops at the message.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from moto.sqs.exceptions import ReceiptHandleIsInvalid
from moto.sqs.models import Message, Queue

COUNTS = (
    "approximate_number_of_messages",
    "approximate_number_of_messages_delayed",
    "approximate_number_of_messages_not_visible",
)


class LazyCount:
    __slots__ = ("_compute",)

    def __init__(self, compute: Callable[[], int]) -> None:
        self._compute = compute

    def __int__(self) -> int:
        return self._compute()

    __index__ = __int__

    def __str__(self) -> str:
        return str(self._compute())

    __repr__ = __str__

    def __eq__(self, other: object) -> bool:
        return self._compute() == other

    __hash__ = None  # type: ignore[assignment]


def _visible(message: Message) -> bool:
    return time.time() * 1000 > message.visible_at


def _delayed(message: Message) -> bool:
    return time.time() * 1000 < message.delayed_until


def _delete_message(queue: Queue, receipt_handle: str) -> None:
    if receipt_handle in queue.deleted_messages:
        return  # deleting twice is fine, as in SQS
    for index, message in enumerate(queue._messages):
        if message.had_receipt_handle(receipt_handle):
            del queue._messages[index]
            queue.pending_messages.discard(message)
            queue.deleted_messages.update(message.all_receipt_handles)
            return
    raise ReceiptHandleIsInvalid()


def apply() -> None:
    Queue.delete_message = _delete_message  # type: ignore[method-assign]
    Message.visible = property(_visible)  # type: ignore[assignment,method-assign]
    Message.delayed = property(_delayed)  # type: ignore[assignment,method-assign]
    for name in COUNTS:
        count = getattr(Queue, name)
        if getattr(count.fget, "lazy", False):
            continue

        def lazy(queue: Queue, _count: Callable[[Queue], int] = count.fget) -> LazyCount:
            return LazyCount(lambda: _count(queue))

        lazy.lazy = True  # type: ignore[attr-defined]
        setattr(Queue, name, property(lazy))
