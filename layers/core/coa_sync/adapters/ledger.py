"""Run state in the tenants table: per-tenant run lock, run records, webhook replay guard.

Items (single table, keys pk/sk, TTL attribute expiresAt):
  TENANT#<id> / LOCK            runId, expiresAt      one run at a time per tenant
  TENANT#<id> / RUN#<runId>     the run's record      history, status, counts
  TENANT#<id> / SIG#<signature> expiresAt             a webhook signature already used
"""

from __future__ import annotations

import time
from typing import Any

from coa_sync.adapters.aws import Attr, Key, if_condition_holds, table
from coa_sync.models import RunRecord

LOCK_SK = "LOCK"
RUN_PREFIX = "RUN#"
SIGNATURE_PREFIX = "SIG#"
RUN_RETENTION_SECONDS = 400 * 24 * 3600


class RunInProgressError(RuntimeError):
    """Another run of the tenant holds the lock."""

    def __init__(self, tenant_id: str, run_id: str) -> None:
        super().__init__(f"tenant {tenant_id!r} has run {run_id} in progress")
        self.run_id = run_id


class Ledger:
    def __init__(self, table_name: str, dynamodb: Any | None = None, clock=time.time) -> None:
        self._table = table(table_name, dynamodb)
        self._clock = clock

    # -- the lock ------------------------------------------------------------------------

    def acquire(self, tenant_id: str, run_id: str, ttl_seconds: int) -> None:
        """Take the tenant's lock for run_id; a lock past its expiry is stale and is taken over.

        Taking it again for the same run id succeeds: the webhook takes it, fetch adopts it.
        """
        now = int(self._clock())
        taken = if_condition_holds(
            self._table.put_item,
            Item={"pk": _pk(tenant_id), "sk": LOCK_SK, "runId": run_id, "expiresAt": now + ttl_seconds},
            ConditionExpression=Attr("pk").not_exists() | Attr("expiresAt").lt(now) | Attr("runId").eq(run_id),
        )
        if taken is None:
            raise RunInProgressError(tenant_id, self.lock_holder(tenant_id) or "unknown")

    def lock_holder(self, tenant_id: str) -> str | None:
        item = self._table.get_item(Key={"pk": _pk(tenant_id), "sk": LOCK_SK}, ConsistentRead=True).get("Item")
        if item is None or int(item["expiresAt"]) < int(self._clock()):
            return None
        return str(item["runId"])

    def release(self, tenant_id: str, run_id: str) -> None:
        """Release the lock if this run still holds it (a stale run must not free a newer one's lock)."""
        if_condition_holds(self._table.delete_item, Key={"pk": _pk(tenant_id), "sk": LOCK_SK},
                           ConditionExpression=Attr("runId").eq(run_id))

    # -- run records ---------------------------------------------------------------------

    def save(self, record: RunRecord) -> None:
        item = {**_run_key(record.tenant_id, record.run_id),
                "expiresAt": int(self._clock()) + RUN_RETENTION_SECONDS, **record.model_dump(mode="json")}
        self._table.put_item(Item=item)

    def get(self, tenant_id: str, run_id: str) -> RunRecord | None:
        item = self._table.get_item(Key=_run_key(tenant_id, run_id), ConsistentRead=True).get("Item")
        return RunRecord.model_validate(item) if item else None

    def runs(self, tenant_id: str, limit: int = 50) -> list[RunRecord]:
        """The tenant's most recent runs, newest first (run ids sort by time)."""
        return self._runs(Key("pk").eq(_pk(tenant_id)) & Key("sk").begins_with(RUN_PREFIX), limit)

    def runs_after(self, tenant_id: str, run_id: str) -> list[RunRecord]:
        """The tenant's runs that started after run_id, newest first."""
        # The RUN# keys from this run's on sort below "RUN$" ("$" follows "#").
        later = Key("pk").eq(_pk(tenant_id)) & Key("sk").between(RUN_PREFIX + run_id, "RUN$")
        return [record for record in self._runs(later) if record.run_id != run_id]

    def _runs(self, condition: Any, limit: int | None = None) -> list[RunRecord]:
        records: list[RunRecord] = []
        kwargs: dict[str, Any] = {"KeyConditionExpression": condition, "ScanIndexForward": False}
        while limit is None or len(records) < limit:
            page = self._table.query(**kwargs, **({"Limit": limit - len(records)} if limit else {}))
            records += [RunRecord.model_validate(item) for item in page["Items"]]
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return records

    # -- progress, counted as the writer goes ---------------------------------------------

    def planned(self, record: RunRecord) -> None:
        self._table.update_item(
            Key=_run_key(record.tenant_id, record.run_id),
            UpdateExpression="SET planned = :planned, held = :held, #status = :status",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={":planned": record.planned.model_dump(), ":held": record.held,
                                       ":status": record.status},
        )

    def add(self, tenant_id: str, run_id: str, applied: dict[str, int], failed: int) -> RunRecord | None:
        """Count settled actions; None if the run is not in the ledger."""
        names = {f"#{kind}": kind for kind in applied}
        additions = [f"applied.#{kind} :{kind}" for kind in applied] + ["failed :failed"]
        response = if_condition_holds(
            self._table.update_item,
            Key=_run_key(tenant_id, run_id),
            UpdateExpression="ADD " + ", ".join(additions),
            ConditionExpression=Attr("pk").exists(),
            **({"ExpressionAttributeNames": names} if names else {}),
            ExpressionAttributeValues={**{f":{kind}": count for kind, count in applied.items()}, ":failed": failed},
            ReturnValues="ALL_NEW",
        )
        return RunRecord.model_validate(response["Attributes"]) if response else None

    def close(self, record: RunRecord, status: str, ended_at: str, error: str | None = None) -> bool:
        """Mark the run finished; True only for the one caller that did it."""
        return if_condition_holds(
            self._table.update_item,
            Key=_run_key(record.tenant_id, record.run_id),
            UpdateExpression="SET #status = :status, endedAt = :ended, #error = :error",
            ConditionExpression=Attr("endedAt").not_exists() | Attr("endedAt").eq(None),
            ExpressionAttributeNames={"#status": "status", "#error": "error"},
            ExpressionAttributeValues={":status": status, ":ended": ended_at, ":error": error},
        ) is not None

    def approve(self, record: RunRecord, held: int, approved_at: str, approved_by: str) -> RunRecord | None:
        """Turn a run's held archives into planned ones and reopen it; None if the run changed meanwhile."""
        response = if_condition_holds(
            self._table.update_item,
            Key=_run_key(record.tenant_id, record.run_id),
            UpdateExpression="SET planned.#archive = planned.#archive + :held, held = :none, "
                             "#status = :applying, approvedAt = :at, approvedBy = :by REMOVE endedAt",
            ConditionExpression=Attr("status").eq("needs_approval") & Attr("held").eq(held),
            ExpressionAttributeNames={"#status": "status", "#archive": "archive"},
            ExpressionAttributeValues={":held": held, ":none": 0, ":applying": "applying",
                                       ":at": approved_at, ":by": approved_by},
            ReturnValues="ALL_NEW",
        )
        return RunRecord.model_validate(response["Attributes"]) if response else None

    # -- webhook replays -----------------------------------------------------------------

    def first_use(self, tenant_id: str, signature: str, ttl_seconds: int) -> bool:
        """Record a webhook signature; False if it was seen before (a replay)."""
        return if_condition_holds(
            self._table.put_item,
            Item={"pk": _pk(tenant_id), "sk": SIGNATURE_PREFIX + signature,
                  "expiresAt": int(self._clock()) + ttl_seconds},
            ConditionExpression=Attr("pk").not_exists(),
        ) is not None


def _pk(tenant_id: str) -> str:
    return f"TENANT#{tenant_id}"


def _run_key(tenant_id: str, run_id: str) -> dict[str, str]:
    return {"pk": _pk(tenant_id), "sk": RUN_PREFIX + run_id}
