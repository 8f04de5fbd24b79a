"""Starting a tenant's run: an asynchronous invoke of fetch (the webhook's one run), or a message on the runs
queue (the schedule's fan-out), which fetch drains a few at a time (the queue's event source mapping)."""

from __future__ import annotations

from coa_sync.adapters.aws import client
from coa_sync.models import RunRequest


class LambdaRunStarter:
    def __init__(self, function_name: str) -> None:
        self.function_name = function_name

    def __call__(self, request: RunRequest) -> None:
        client("lambda").invoke(FunctionName=self.function_name, InvocationType="Event",
                                Payload=request.model_dump_json().encode())


class QueueRunStarter:
    """However many tenants the schedule starts, at most the mapping's MaximumConcurrency fetch at once."""

    def __init__(self, queue_url: str) -> None:
        self.queue_url = queue_url

    def __call__(self, request: RunRequest) -> None:
        client("sqs").send_message(QueueUrl=self.queue_url, MessageBody=request.model_dump_json())
