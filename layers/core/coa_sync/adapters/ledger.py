"""Run state in the tenants table: per-tenant run lock, run records, webhook replay guard.

Items (single table, keys pk/sk, TTL attribute expiresAt):
  TENANT#<id> / LOCK                  runId, expiresAt, takenAt   the tenant's live run (one at a time)
  TENANT#<id> / RUN#<runId>           the run's record            history, status, counts per shard
  TENANT#<id> / SEQS#<runId>#<shard>  outcome sets of seqs        each action counted once (coa_sync.tally)
  TENANT#<id> / SIG#<signature>       expiresAt                   a webhook signature already used

Nothing here decides what a run may do (coa_sync.pipeline.runs does): each write is conditional
where two invocations could race, and says whether it took effect.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from coa_sync import tally
from coa_sync.adapters.aws import Attr, Key, if_condition_holds, table
from coa_sync.models import RunLock, RunRecord

LOCK_SK = "LOCK"
RUN_PREFIX = "RUN#"
SEQS_PREFIX = "SEQS#"
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

    def acquire(self, tenant_id: str, run_id: str, ttl_seconds: int) -> str | None:
        """Take the tenant's lock for run_id; a lock past its expiry is stale and is taken over.

        Taking it again for the same run id succeeds: the webhook takes it, fetch adopts it.
        Returns the run whose stale lock was taken over, if another's.
        """
        now = int(self._clock())
        taken = if_condition_holds(
            self._table.put_item,
            Item={"pk": _pk(tenant_id), "sk": LOCK_SK, "runId": run_id, "expiresAt": now + ttl_seconds,
                  "takenAt": now},
            ConditionExpression=Attr("pk").not_exists() | Attr("expiresAt").lt(now) | Attr("runId").eq(run_id),
            ReturnValues="ALL_OLD",
        )
        if taken is None:
            raise RunInProgressError(tenant_id, self.lock_holder(tenant_id) or "unknown")
        previous = taken.get("Attributes", {}).get("runId")
        return str(previous) if previous is not None and previous != run_id else None

    def lock(self, tenant_id: str) -> RunLock | None:
        """The tenant's lock as it is, stale or not: its run is the tenant's live run until another takes it."""
        item = self._table.get_item(Key={"pk": _pk(tenant_id), "sk": LOCK_SK}, ConsistentRead=True).get("Item")
        if item is None:
            return None
        expires = int(item["expiresAt"])
        return RunLock(str(item["runId"]), expires, int(item.get("takenAt", expires)))

    def lock_holder(self, tenant_id: str) -> str | None:
        """The run holding the tenant now; None if nobody does or the lock went stale."""
        lock = self.lock(tenant_id)
        return None if lock is None or lock.stale(self._clock()) else lock.run_id

    def renew(self, tenant_id: str, run_id: str, ttl_seconds: int) -> bool:
        """Push the lock's expiry on while run_id still holds it; False if it does not (its run is not live)."""
        now = int(self._clock())
        return if_condition_holds(
            self._table.update_item,
            Key={"pk": _pk(tenant_id), "sk": LOCK_SK},
            UpdateExpression="SET expiresAt = :expires, takenAt = :now",
            ConditionExpression=Attr("runId").eq(run_id),
            ExpressionAttributeValues={":expires": now + ttl_seconds, ":now": now},
        ) is not None

    def release(self, tenant_id: str, run_id: str) -> None:
        """Release the lock if this run still holds it (a stale run must not free a newer one's lock)."""
        if_condition_holds(self._table.delete_item, Key={"pk": _pk(tenant_id), "sk": LOCK_SK},
                            ConditionExpression=Attr("runId").eq(run_id))

    # -- run records ---------------------------------------------------------------------

    def start(self, record: RunRecord) -> bool:
        """Record a fetching run, unless a record of it exists that is past fetching; True if recorded."""
        return if_condition_holds(
            self._table.put_item, Item=self._item(record),
            ConditionExpression=Attr("pk").not_exists() | Attr("status").eq("fetching"),
        ) is not None

    def get(self, tenant_id: str, run_id: str) -> RunRecord | None:
        item = self._table.get_item(Key=_run_key(tenant_id, run_id), ConsistentRead=True).get("Item")
        return _record(item) if item else None

    def _item(self, record: RunRecord) -> dict[str, Any]:
        return {**_run_key(record.tenant_id, record.run_id), "expiresAt": int(self._clock()) + RUN_RETENTION_SECONDS,
                **record.model_dump(mode="json"), "tallies": {}}

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
            records += [_record(item) for item in page["Items"]]
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return records

    # -- progress, counted as the writer goes ---------------------------------------------

    def planned(self, record: RunRecord) -> RunRecord | None:
        """Move a fetching run to its planned status with its planned counts, once: None if it was not fetching."""
        response = if_condition_holds(
            self._table.update_item,
            Key=_run_key(record.tenant_id, record.run_id),
            UpdateExpression="SET planned = :planned, held = :held, unsupported = :unsupported, #status = :status, "
                             "progressAt = :now",
            ConditionExpression=Attr("status").eq("fetching"),
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={":planned": record.planned.model_dump(), ":held": record.held,
                                       ":unsupported": record.unsupported, ":status": record.status,
                                       ":now": self._now()},
            ReturnValues="ALL_NEW",
        )
        return _record(response["Attributes"]) if response else None

    def queued(self, tenant_id: str, run_id: str, count: int) -> None:
        """The diff has sent the run's first `count` actions (it only ever moves on)."""
        if_condition_holds(
            self._table.update_item,
            Key=_run_key(tenant_id, run_id),
            UpdateExpression="SET queued = :count, progressAt = :now",
            ConditionExpression=Attr("pk").exists() & (Attr("queued").not_exists() | Attr("queued").lt(count)),
            ExpressionAttributeValues={":count": count, ":now": self._now()},
        )

    def outcomes(self, tenant_id: str, run_id: str, seqs: set[int]) -> dict[int, dict[str, set[int]]]:
        """The outcome sets of the shards holding these seqs (coa_sync.tally), by shard."""
        shards = {}
        for shard in sorted(tally.by_shard(seqs)):
            item = self._table.get_item(Key=_seqs_key(tenant_id, run_id, shard), ConsistentRead=True).get("Item")
            shards[shard] = {name: {int(seq) for seq in item.get(name, ())} for name in tally.OUTCOMES} if item else {}
        return shards

    def record(self, tenant_id: str, run_id: str, outcomes: dict[str, set[int]]) -> RunRecord | None:
        """Add seqs to the run's outcome sets and its counts; the run as it is now (None if not in the ledger).

        Per shard: the sets grow (adding a seq twice changes nothing) and the shard's version goes up,
        in one write; then the run item takes the shard's counts unless a newer version got there first.
        """
        record = None
        shards: dict[int, dict[str, set[int]]] = {}
        for name, seqs in outcomes.items():
            for shard, part in tally.by_shard(seqs).items():
                shards.setdefault(shard, {})[name] = part
        for shard, sets in sorted(shards.items()):
            names = {f"#{name}": name for name in sets}
            grown = self._table.update_item(
                Key=_seqs_key(tenant_id, run_id, shard),
                UpdateExpression="ADD " + ", ".join([f"#{name} :{name}" for name in sets] + ["v :one"])
                                 + " SET expiresAt = :expires",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues={**{f":{name}": seqs for name, seqs in sets.items()}, ":one": 1,
                                           ":expires": int(self._clock()) + RUN_RETENTION_SECONDS},
                ReturnValues="ALL_NEW",
            )["Attributes"]
            version = int(grown["v"])
            counts = {**tally.counts({name: grown.get(name, ()) for name in tally.OUTCOMES}), "v": version}
            response = self._set_tally(tenant_id, run_id, str(shard), counts)
            if response is not None:
                record = _record(response["Attributes"])
        return record

    def _set_tally(self, tenant_id: str, run_id: str, shard: str, counts: dict[str, int]) -> dict[str, Any] | None:
        params = {
            "Key": _run_key(tenant_id, run_id),
            "UpdateExpression": "SET tallies.#shard = :counts, progressAt = :now",
            "ConditionExpression": "attribute_exists(pk) AND (attribute_not_exists(tallies.#shard) "
                                   "OR tallies.#shard.v < :v)",
            "ExpressionAttributeNames": {"#shard": shard},
            "ExpressionAttributeValues": {":counts": counts, ":v": counts["v"], ":now": self._now()},
            "ReturnValues": "ALL_NEW",
        }
        try:
            return if_condition_holds(self._table.update_item, **params)
        except ClientError as exc:  # a record from before tallies: give it an empty map, then set the shard's
            if exc.response["Error"]["Code"] != "ValidationException":
                raise
            if_condition_holds(self._table.update_item, Key=params["Key"], UpdateExpression="SET tallies = :empty",
                                ConditionExpression=Attr("pk").exists() & Attr("tallies").not_exists(),
                                ExpressionAttributeValues={":empty": {}})
            return if_condition_holds(self._table.update_item, **params)

    def count_unfenceable(self, tenant_id: str, run_id: str, superseded: int) -> None:
        """Count messages that carry no seq (queued before actions were fenced) as superseded."""
        if_condition_holds(self._table.update_item, Key=_run_key(tenant_id, run_id),
                            UpdateExpression="ADD superseded :n", ConditionExpression=Attr("pk").exists(),
                            ExpressionAttributeValues={":n": superseded})

    def reopen(self, record: RunRecord) -> RunRecord | None:
        """Open a closed run again to apply redriven actions; None if it changed meanwhile."""
        response = if_condition_holds(
            self._table.update_item,
            Key=_run_key(record.tenant_id, record.run_id),
            UpdateExpression="SET #status = :applying, progressAt = :now REMOVE endedAt, reportedAt",
            ConditionExpression=Attr("endedAt").eq(record.ended_at.isoformat() if record.ended_at else None),
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={":applying": "applying", ":now": self._now()},
            ReturnValues="ALL_NEW",
        )
        return _record(response["Attributes"]) if response else None

    def close(self, record: RunRecord, status: str, ended_at: str, error: str | None = None) -> bool:
        """Mark the run finished and release its lock, in one transaction; True only for the one caller that
        did it. (Two writes would leave a closed run holding its tenant if the caller died between them.)"""
        close = {
            "Key": _run_key(record.tenant_id, record.run_id),
            "UpdateExpression": "SET #status = :status, endedAt = :ended, #error = :error",
            "ConditionExpression": "attribute_not_exists(endedAt) OR endedAt = :none",
            "ExpressionAttributeNames": {"#status": "status", "#error": "error"},
            "ExpressionAttributeValues": {":status": status, ":ended": ended_at, ":error": error, ":none": None},
        }
        release = {"Key": {"pk": _pk(record.tenant_id), "sk": LOCK_SK}, "ConditionExpression": "runId = :run",
                   "ExpressionAttributeValues": {":run": record.run_id}}
        try:
            self._transact([("Update", close), ("Delete", release)])
            return True
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "TransactionCanceledException":
                raise
            reasons = [reason.get("Code") for reason in exc.response.get("CancellationReasons", [])]
            if reasons[:1] == ["ConditionalCheckFailed"]:
                return False  # closed already
        # The lock is another run's (or gone): close the run alone.
        return if_condition_holds(self._table.update_item, **close) is not None

    def reported(self, record: RunRecord, at: str) -> None:
        """The run's report is written and its end announced."""
        if_condition_holds(self._table.update_item, Key=_run_key(record.tenant_id, record.run_id),
                            UpdateExpression="SET reportedAt = :at", ConditionExpression=Attr("pk").exists(),
                            ExpressionAttributeValues={":at": at})

    def _transact(self, writes: list[tuple[str, dict[str, Any]]]) -> None:
        # The table's own client takes plain values, as the table does (boto3 types them for DynamoDB).
        self._table.meta.client.transact_write_items(
            TransactItems=[{kind: {**write, "TableName": self._table.name}} for kind, write in writes])

    def approve(self, record: RunRecord, held: int, approved_at: str, approved_by: str) -> RunRecord | None:
        """Turn a run's held archives into planned ones and reopen it; None if the run changed meanwhile."""
        response = if_condition_holds(
            self._table.update_item,
            Key=_run_key(record.tenant_id, record.run_id),
            UpdateExpression="SET planned.#archive = planned.#archive + :held, held = :none, "
                             "#status = :applying, approvedAt = :at, approvedBy = :by REMOVE endedAt, reportedAt",
            ConditionExpression=Attr("status").eq("needs_approval") & Attr("held").eq(held),
            ExpressionAttributeNames={"#status": "status", "#archive": "archive"},
            ExpressionAttributeValues={":held": held, ":none": 0, ":applying": "applying",
                                       ":at": approved_at, ":by": approved_by},
            ReturnValues="ALL_NEW",
        )
        return _record(response["Attributes"]) if response else None

    def _now(self) -> str:
        return datetime.fromtimestamp(self._clock(), UTC).isoformat()

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


def _seqs_key(tenant_id: str, run_id: str, shard: int) -> dict[str, str]:
    return {"pk": _pk(tenant_id), "sk": f"{SEQS_PREFIX}{run_id}#{shard:06d}"}


def _record(item: dict[str, Any]) -> RunRecord:
    """A run item as a record: its counts are what it had before tallies plus every shard's tally."""
    shards = list((item.get("tallies") or {}).values())
    if not shards:
        return RunRecord.model_validate(item)
    applied = {kind: int(item.get("applied", {}).get(kind, 0)) + sum(int(t.get(kind, 0)) for t in shards)
               for kind in tally.KINDS}
    return RunRecord.model_validate({
        **item, "applied": applied,
        "failed": int(item.get("failed", 0)) + sum(int(t.get("failed", 0)) for t in shards),
        "superseded": int(item.get("superseded", 0)) + sum(int(t.get("superseded", 0)) for t in shards),
    })
