"""SQS: the actions queue (SendMessageBatch, 10 at a time, many calls at once; leftovers handed back) and the
dead-letter queue.

Every action message carries its tenant as its MessageGroupId. On a standard queue that makes it a
fair queue: when one tenant's backlog takes more than its share of the writers, SQS hands out the
other tenants' messages first, so a quiet tenant's few actions are not stuck behind a noisy one's
initial sync ("Amazon SQS fair queues", SQS developer guide). Nothing else changes: no ordering,
no deduplication, as on any standard queue.
"""

from __future__ import annotations

import contextvars
import json
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from coa_sync.adapters.aws import POOL_CONNECTIONS, client
from coa_sync.batching import chunked
from coa_sync.models import ActionMessage, DeadLetter
from coa_sync.settings import lock_ttl

SQS_BATCH = 10  # SendMessageBatch's limit
SEND_THREADS = POOL_CONNECTIONS  # SendMessageBatch calls in flight at once, each mostly waiting on SQS
PAGE_THROUGH_SECONDS = 300  # long enough to read the whole DLQ once before any message reappears
# What SQS answers where StartMessageMoveTask is not offered.
MOVE_TASK_UNSUPPORTED = {"UnsupportedOperation", "AWS.SimpleQueueService.UnsupportedOperation", "InvalidAction"}
MAX_BATCH_ATTEMPTS = 5


class QueueSendError(RuntimeError):
    """SQS kept refusing some entries; the run cannot promise they were queued."""


class ActionQueue:
    def __init__(self, url: str, sqs: Any | None = None, *, threads: int = SEND_THREADS) -> None:
        self.url = url
        self._sqs = sqs or client("sqs")
        self._threads = threads

    def send(self, messages: Iterable[ActionMessage]) -> int:
        """Queue every message: how many. Up to `threads` SendMessageBatch calls at once (a standard queue
        keeps no order, so sending at once gives up no guarantee); it returns once all are queued, or raises
        QueueSendError once the calls under way have ended, what they sent still queued."""
        batches = ([{"Id": str(index), "MessageBody": message.model_dump_json(), **_envelope(message)}
                    for index, message in enumerate(chunk)] for chunk in chunked(messages, SQS_BATCH))
        return sum(_at_once(lambda entries: _send_batch(self._sqs, self.url, entries), batches, self._threads))

    def lock_ttl_seconds(self) -> int:
        """The run lock's TTL for this queue (settings.lock_ttl), from its VisibilityTimeout and maxReceiveCount."""
        attributes = self._sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["VisibilityTimeout",
                                                                                         "RedrivePolicy"])["Attributes"]
        redrive = json.loads(attributes.get("RedrivePolicy") or "{}")
        return lock_ttl(int(attributes.get("VisibilityTimeout", 30)), int(redrive.get("maxReceiveCount", 1)))

    def later(self, receipt_handles: Sequence[str], seconds: int) -> int:
        """Make received messages visible again in `seconds`, not after the queue's visibility timeout.

        Returns how many SQS refused (a receipt handle gone stale): those come back on their own, later."""
        refused = 0
        for chunk in chunked(receipt_handles, SQS_BATCH):
            entries = [{"Id": str(i), "ReceiptHandle": handle, "VisibilityTimeout": seconds}
                       for i, handle in enumerate(chunk)]
            response = self._sqs.change_message_visibility_batch(QueueUrl=self.url, Entries=entries)
            refused += len(response.get("Failed") or [])
        return refused

    def requeue(self, received: Sequence[tuple[str, ActionMessage]]) -> None:
        """Queue received messages (body, and the action it holds) afresh: their receive count starts again."""
        for chunk in chunked(received, SQS_BATCH):
            _send_batch(self._sqs, self.url, [
                {"Id": str(i), "MessageBody": body, **_envelope(message)}
                for i, (body, message) in enumerate(chunk)])


class DeadLetterQueue:
    def __init__(self, url: str, sqs: Any | None = None) -> None:
        self.url = url
        self._sqs = sqs or client("sqs")

    def send(self, letter: DeadLetter) -> None:
        envelope = _envelope(letter.message) if letter.message else {"MessageAttributes": {}}
        self._sqs.send_message(QueueUrl=self.url, MessageBody=letter.model_dump_json(), **envelope)

    def letters(self) -> list[DeadLetter]:
        """Everything in the DLQ, left there.

        Each message read stays hidden until the whole queue has been paged through, then is
        made visible again: read with a zero visibility timeout, SQS may hand back the same
        first ten every time, and the rest would never be seen.
        """
        letters: list[DeadLetter] = []
        handles: list[str] = []
        while messages := self._receive():
            for message in messages:
                letters.append(read_dead_letter(message["Body"]))
                handles.append(message["ReceiptHandle"])
        for chunk in chunked(handles, SQS_BATCH):
            self._sqs.change_message_visibility_batch(QueueUrl=self.url, Entries=[
                {"Id": str(i), "ReceiptHandle": handle, "VisibilityTimeout": 0} for i, handle in enumerate(chunk)])
        return letters

    def redrive(self, destination_url: str) -> Redrive:
        """Move every dead letter back to the queue it came from, for the writer to try again.

        SQS's own StartMessageMoveTask where the endpoint has it (it moves the messages
        server-side, at its own pace); else receive, send, delete, ten at a time.
        """
        count = int(self._sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["ApproximateNumberOfMessages"])
                    ["Attributes"]["ApproximateNumberOfMessages"])
        try:
            task = self._sqs.start_message_move_task(SourceArn=self._arn(self.url),
                                                     DestinationArn=self._arn(destination_url))
            return Redrive(count, task_handle=task["TaskHandle"])
        except NotImplementedError:  # endpoints without the operation (moto says so this way)
            pass
        except ClientError as exc:
            if exc.response["Error"]["Code"] not in MOVE_TASK_UNSUPPORTED:
                raise
        moved = 0
        while messages := self._receive():
            _send_batch(self._sqs, destination_url, [
                {"Id": str(i), "MessageBody": m["Body"], "MessageAttributes": m.get("MessageAttributes", {}),
                 **_group(m.get("MessageAttributes", {}).get("tenantId", {}).get("StringValue"))}
                for i, m in enumerate(messages)])
            self._sqs.delete_message_batch(QueueUrl=self.url, Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)])
            moved += len(messages)
        return Redrive(moved)

    def _receive(self) -> list[dict[str, Any]]:
        return self._sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=SQS_BATCH,
                                         VisibilityTimeout=PAGE_THROUGH_SECONDS,
                                         MessageAttributeNames=["All"]).get("Messages", [])

    def _arn(self, url: str) -> str:
        return self._sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


@dataclass(frozen=True)
class Redrive:
    """How many dead letters went back; task_handle when SQS moves them itself (asynchronously)."""

    messages: int
    task_handle: str | None = None


def read_dead_letter(body: str) -> DeadLetter:
    """The writer's own dead letters carry reasons; SQS's redrive moves the bare message."""
    try:
        return DeadLetter.model_validate_json(body)
    except ValueError:
        pass
    try:
        return DeadLetter(reasons=["still failing after every delivery (transient errors)"],
                          message=ActionMessage.model_validate_json(body))
    except ValueError:
        return DeadLetter(reasons=["unreadable message"], body=body)


def _envelope(message: ActionMessage) -> dict[str, Any]:
    """What SQS is told besides the body: the attributes the writer logs by, and the tenant's fair share."""
    attributes = {
        "tenantId": {"DataType": "String", "StringValue": message.tenant_id},
        "runId": {"DataType": "String", "StringValue": message.run_id},
        "action": {"DataType": "String", "StringValue": str(message.action.kind)},
    }
    return {"MessageAttributes": attributes, **_group(message.tenant_id)}


def _group(tenant_id: str | None) -> dict[str, str]:
    return {"MessageGroupId": tenant_id} if tenant_id else {}


def _at_once(send: Callable[[list[dict[str, Any]]], int], batches: Iterator[list[dict[str, Any]]],
             threads: int) -> Iterator[int]:
    """Each batch sent on one of `threads` threads, a few batches ahead at most; what each sent, as they end.

    The first failure stops it: no batch is started after it, those under way end, then it is raised."""
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="sqs-send") as pool:
        pending: set[Future[int]] = set()
        try:
            for entries in batches:
                if len(pending) >= 2 * threads:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    yield from (future.result() for future in done)
                # Each call runs in its caller's context (a copy each: one context cannot be entered twice at once).
                pending.add(pool.submit(contextvars.copy_context().run, send, entries))
            done, pending = wait(pending)
            yield from (future.result() for future in done)
        finally:
            for future in pending:
                future.cancel()


def _send_batch(sqs: Any, url: str, entries: Sequence[dict[str, Any]]) -> int:
    """SendMessageBatch can fail per entry; resend those that failed as the sender's fault is not theirs.
    How many were sent: all of them, or QueueSendError."""
    pending = list(entries)
    for attempt in range(1, MAX_BATCH_ATTEMPTS + 1):
        response = sqs.send_message_batch(QueueUrl=url, Entries=pending)
        failed = response.get("Failed") or []
        if not failed:
            return len(entries)
        permanent = [f for f in failed if f.get("SenderFault")]
        if permanent:
            detail = "; ".join(f"{f['Id']}: {f.get('Code')} {f.get('Message', '')}".strip() for f in permanent)
            raise QueueSendError(f"SQS refused {len(permanent)} message(s): {detail}")
        retry_ids = {f["Id"] for f in failed}
        pending = [entry for entry in pending if entry["Id"] in retry_ids]
        time.sleep(0.1 * 2**attempt)
    raise QueueSendError(f"SQS kept failing {len(pending)} message(s) after {MAX_BATCH_ATTEMPTS} attempts")
