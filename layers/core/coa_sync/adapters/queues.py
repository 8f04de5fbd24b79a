"""SQS: the actions queue (SendMessageBatch, 10 at a time; leftovers handed back) and the dead-letter queue."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from coa_sync.adapters.aws import client
from coa_sync.batching import chunked
from coa_sync.models import ActionMessage, DeadLetter
from coa_sync.settings import lock_ttl

SQS_BATCH = 10  # SendMessageBatch's limit
PAGE_THROUGH_SECONDS = 300  # long enough to read the whole DLQ once before any message reappears
# What SQS answers where StartMessageMoveTask is not offered.
MOVE_TASK_UNSUPPORTED = {"UnsupportedOperation", "AWS.SimpleQueueService.UnsupportedOperation", "InvalidAction"}
MAX_BATCH_ATTEMPTS = 5


class QueueSendError(RuntimeError):
    """SQS kept refusing some entries; the run cannot promise they were queued."""


class ActionQueue:
    def __init__(self, url: str, sqs: Any | None = None) -> None:
        self.url = url
        self._sqs = sqs or client("sqs")

    def send(self, messages: Iterable[ActionMessage]) -> int:
        sent = 0
        for chunk in chunked(messages, SQS_BATCH):
            entries = [
                {"Id": str(index), "MessageBody": message.model_dump_json(),
                 "MessageAttributes": _message_attributes(message)}
                for index, message in enumerate(chunk)
            ]
            _send_batch(self._sqs, self.url, entries)
            sent += len(entries)
        return sent

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
                {"Id": str(i), "MessageBody": body, "MessageAttributes": _message_attributes(message)}
                for i, (body, message) in enumerate(chunk)])


class DeadLetterQueue:
    def __init__(self, url: str, sqs: Any | None = None) -> None:
        self.url = url
        self._sqs = sqs or client("sqs")

    def send(self, letter: DeadLetter) -> None:
        attributes = _message_attributes(letter.message) if letter.message else {}
        self._sqs.send_message(QueueUrl=self.url, MessageBody=letter.model_dump_json(),
                               MessageAttributes=attributes)

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
                {"Id": str(i), "MessageBody": m["Body"], "MessageAttributes": m.get("MessageAttributes", {})}
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


def _message_attributes(message: ActionMessage) -> dict[str, Any]:
    return {
        "tenantId": {"DataType": "String", "StringValue": message.tenant_id},
        "runId": {"DataType": "String", "StringValue": message.run_id},
        "action": {"DataType": "String", "StringValue": str(message.action.kind)},
    }


def _send_batch(sqs: Any, url: str, entries: Sequence[dict[str, Any]]) -> None:
    """SendMessageBatch can fail per entry; resend those that failed as the sender's fault is not theirs."""
    pending = list(entries)
    for attempt in range(1, MAX_BATCH_ATTEMPTS + 1):
        response = sqs.send_message_batch(QueueUrl=url, Entries=pending)
        failed = response.get("Failed") or []
        if not failed:
            return
        permanent = [f for f in failed if f.get("SenderFault")]
        if permanent:
            detail = "; ".join(f"{f['Id']}: {f.get('Code')} {f.get('Message', '')}".strip() for f in permanent)
            raise QueueSendError(f"SQS refused {len(permanent)} message(s): {detail}")
        retry_ids = {f["Id"] for f in failed}
        pending = [entry for entry in pending if entry["Id"] in retry_ids]
        time.sleep(0.1 * 2**attempt)
    raise QueueSendError(f"SQS kept failing {len(pending)} message(s) after {MAX_BATCH_ATTEMPTS} attempts")
