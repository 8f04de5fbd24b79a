"""SQS: the actions queue (SendMessageBatch, 10 at a time) and the dead-letter queue."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

from coa_sync.adapters.aws import client
from coa_sync.batching import chunked
from coa_sync.models import ActionMessage, DeadLetter

SQS_BATCH = 10  # SendMessageBatch's limit
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
                {
                    "Id": str(index),
                    "MessageBody": message.model_dump_json(),
                    "MessageAttributes": _attributes(message.tenant_id, message.run_id, message.action.kind),
                }
                for index, message in enumerate(chunk)
            ]
            _send_batch(self._sqs, self.url, entries)
            sent += len(entries)
        return sent


class DeadLetterQueue:
    def __init__(self, url: str, sqs: Any | None = None) -> None:
        self.url = url
        self._sqs = sqs or client("sqs")

    def send(self, letter: DeadLetter) -> None:
        message = letter.message
        attributes = _attributes(message.tenant_id, message.run_id, message.action.kind) if message else {}
        self._sqs.send_message(QueueUrl=self.url, MessageBody=letter.model_dump_json(),
                               MessageAttributes=attributes)


def _attributes(tenant_id: str, run_id: str, kind: str) -> dict[str, Any]:
    return {
        "tenantId": {"DataType": "String", "StringValue": tenant_id},
        "runId": {"DataType": "String", "StringValue": run_id},
        "action": {"DataType": "String", "StringValue": str(kind)},
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
