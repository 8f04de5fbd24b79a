"""Starting a tenant's run from the scheduled fan-out: an asynchronous invoke of fetch itself."""

from __future__ import annotations

from coa_sync.adapters.aws import client
from coa_sync.models import RunRequest


class LambdaRunStarter:
    def __init__(self, function_name: str) -> None:
        self.function_name = function_name

    def __call__(self, request: RunRequest) -> None:
        client("lambda").invoke(FunctionName=self.function_name, InvocationType="Event",
                                Payload=request.model_dump_json().encode())
