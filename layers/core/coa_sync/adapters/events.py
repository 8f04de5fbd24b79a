"""EventBridge: a SyncRunCompleted event when a run ends, for whoever wants to react to it."""

from __future__ import annotations

from typing import Any

from coa_sync.adapters.aws import client
from coa_sync.models import RunRecord

SOURCE = "coa-sync"
RUN_COMPLETED = "SyncRunCompleted"


class RunEvents:
    def __init__(self, bus_name: str, events: Any | None = None) -> None:
        self.bus_name = bus_name
        self._events = events or client("events")

    def completed(self, record: RunRecord) -> None:
        response = self._events.put_events(Entries=[{
            "Source": SOURCE, "DetailType": RUN_COMPLETED, "Detail": record.model_dump_json(),
            "EventBusName": self.bus_name,
        }])
        if response.get("FailedEntryCount"):
            entry = response["Entries"][0]
            problem = f"{entry.get('ErrorCode')} {entry.get('ErrorMessage')}"
            raise RuntimeError(f"EventBridge refused {RUN_COMPLETED}: {problem}")
