"""writer: apply a batch of action messages to each tenant's target (Pleo, or an accounting system).

Creates of one tenant go out together in batch calls of up to the target's max_batch items (1000 for
Pleo; one a request for a system that has no batch endpoint); updates, unarchives and archives are one
request each (a PUT to Pleo). The target is built in coa_sync.wiring (Target: the Pleo client, or a
connector behind coa_sync.connectors.target). Every message ends in one of these outcomes:

- APPLIED: the target has what the action asked for;
- DEAD: it can never succeed as it is; it went to the DLQ with its reasons;
- SUPERSEDED: its run is not the tenant's live run any more, or the tenant's destination (its Pleo
  company, or its target) changed (coa_sync.pipeline.fence): counted for its run, never applied, never dead-lettered;
- DUPLICATE: another delivery of an action that already reached its end: nothing done again;
- RETRY: it may succeed later (429, 5xx, network); SQS delivers it again after its visibility
  timeout, and on its last delivery the writer dead-letters it with the reason;
- LEFTOVER: not started because the invocation's time ran out (coa_sync.deadline), or because the
  tenant's Pleo rate budget has no request for it within the writer's budget wait: back on the queue
  within seconds (once the budget has room again), never dead-lettered for it, while the writer goes
  on with the other tenants' actions in the batch;
- REQUEUED: a leftover on what would be its last delivery, queued afresh as a new message (so
  SQS's own redrive cannot count it out either); this copy is settled.

The tenants of a batch are applied at once (up to `tenants_at_once`), each paced by its own rate budget: a
batch holding many small tenants takes about as long as its busiest one, not as long as all of them one after
another. Each tenant is applied by a copy of the writer with its own report; the copies share only the adapters
(boto3 clients are safe across threads) and the deadline.

A tenant whose Pleo authorisation is refused for good (tokens.ReauthRequired: needs_reauth) gets
no further call: its messages go to the DLQ with the reason, which says how to reconnect, and the
report names the tenant, for its run to be failed with that message.

Every message is safe to deliver twice: a create that meets EXTERNAL_ID_ALREADY_EXISTS is
reconciled with the account that exists (an earlier try got through), a PUT is a full update
(it sends back the account's metadata as read, so nothing another tool stored there is lost),
and an action is counted once per seq (coa_sync.tally).
"""

from __future__ import annotations

import contextvars
import copy
import math
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from pydantic import ValidationError

from coa_sync import deadline as deadlines
from coa_sync import tally
from coa_sync.adapters.pleo import BatchResult, NewAccount, PleoBudgetSpent
from coa_sync.batching import chunked
from coa_sync.deadline import OutOfTimeError
from coa_sync.diff import changed_fields
from coa_sync.models import AccountFields, ActionKind, ActionMessage, DeadLetter, PleoAccount, RunLock, Tenant
from coa_sync.pipeline.fence import superseded_because
from coa_sync.pipeline.runs import Settled
from coa_sync.targets import TargetError, TargetRequestError
from coa_sync.tokens import ReauthRequired

ALREADY_EXISTS = "EXTERNAL_ID_ALREADY_EXISTS"
MAX_VISIBILITY = 900  # seconds a handed-back message may stay hidden: the writer's timeout, at most


class Outcome(StrEnum):
    APPLIED = "applied"
    DEAD = "dead"
    SUPERSEDED = "superseded"
    DUPLICATE = "duplicate"
    RETRY = "retry"
    LEFTOVER = "leftover"
    REQUEUED = "requeued"


RETURNED = (Outcome.RETRY, Outcome.LEFTOVER)  # left on the queue; every other outcome is settled


class Target(Protocol):
    """Where a tenant's actions go: the Pleo client, or an accounting system's connector as a target
    (coa_sync.connectors.target). Refusals raise TargetRequestError, failures worth another try TargetError."""

    max_batch: int

    def batch_create(self, company_id: str, accounts: Sequence[NewAccount]) -> BatchResult: ...
    def put(self, account_id: str, fields: AccountFields, *, archived: bool,
            metadata: dict[str, Any] | None = None) -> PleoAccount | None: ...
    def find(self, company_id: str, external_id: str) -> PleoAccount | None: ...
    def close(self) -> None: ...


class DeadLetters(Protocol):
    def send(self, letter: DeadLetter) -> None: ...


class Fences(Protocol):
    """What the writer reads and renews of the run ledger (coa_sync.adapters.ledger.Ledger)."""

    def lock(self, tenant_id: str) -> RunLock | None: ...
    def renew(self, tenant_id: str, run_id: str, ttl_seconds: int) -> bool: ...
    def outcomes(self, tenant_id: str, run_id: str, seqs: set[int]) -> dict[int, dict[str, set[int]]]: ...


class Redelivery(Protocol):
    """Handing messages back to the actions queue (coa_sync.adapters.queues.ActionQueue)."""

    def later(self, receipt_handles: Sequence[str], seconds: int) -> int: ...
    def requeue(self, received: Sequence[tuple[str, ActionMessage]]) -> None: ...


@dataclass(frozen=True)
class Record:
    message_id: str
    body: str
    receive_count: int = 1  # SQS's ApproximateReceiveCount: this is the message's n-th delivery
    receipt_handle: str = ""


@dataclass
class WriteReport:
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    applied: dict[str, int] = field(default_factory=dict)
    dead: list[DeadLetter] = field(default_factory=list)
    # Per (tenant, run): the seqs of its actions by outcome, for the ledger (coa_sync.tally).
    runs: dict[tuple[str, str], Settled] = field(default_factory=dict)
    # Why each message left to retry could not be applied this time; why each superseded one was.
    retry_reasons: dict[str, str] = field(default_factory=dict)
    superseded: dict[str, str] = field(default_factory=dict)
    # Tenants whose Pleo authorisation was refused for good (needs_reauth), and why.
    reauth: dict[str, str] = field(default_factory=dict)

    def count(self, message: ActionMessage, outcome: str) -> None:
        settled = self.runs.setdefault((message.tenant_id, message.run_id), Settled({}))
        if message.seq is None:
            settled.unfenceable += outcome == "superseded"
        else:
            settled.outcomes.setdefault(outcome, set()).add(message.seq)

    def returned(self) -> set[str]:
        return {message_id for message_id, outcome in self.outcomes.items() if outcome in RETURNED}

    def merge(self, other: WriteReport) -> None:
        """Add another tenant's report (each message, tenant and run is in one report only)."""
        self.outcomes.update(other.outcomes)
        for kind, count in other.applied.items():
            self.applied[kind] = self.applied.get(kind, 0) + count
        self.dead += other.dead
        for key, settled in other.runs.items():
            mine = self.runs.setdefault(key, Settled({}))
            mine.unfenceable += settled.unfenceable
            for outcome, seqs in settled.outcomes.items():
                mine.outcomes.setdefault(outcome, set()).update(seqs)
        self.retry_reasons.update(other.retry_reasons)
        self.superseded.update(other.superseded)
        self.reauth.update(other.reauth)


class _TenantUnavailable(Exception):
    """The target is failing for this tenant right now: leave its other messages for a later delivery."""


class _OutOfTime(Exception):
    """No time left to start another request: hand back everything not yet settled."""


class _BudgetSpent(Exception):
    """The tenant's rate budget has no request in time: hand its unsettled items back, visible again in
    `seconds` (when the budget has room), and go on with the other tenants."""

    def __init__(self, seconds: int) -> None:
        super().__init__(seconds)
        self.seconds = seconds


Item = tuple[Record, ActionMessage]


def _action_message(body: str) -> tuple[ActionMessage | str, bool]:
    """The action, or why it cannot be read; and whether it is a dead letter moved back from the DLQ
    (which brings its action along)."""
    try:
        return ActionMessage.model_validate_json(body), False
    except ValidationError as exc:
        problem = f"unreadable action message: {exc.errors()[0]['msg']}"
    try:
        letter = DeadLetter.model_validate_json(body)
    except ValidationError:
        return problem, False
    return (letter.message, True) if letter.message is not None else (problem, False)


@dataclass
class Writer:
    tenant: Callable[[str], Tenant | None]
    target_for: Callable[[Tenant], Target]
    dead_letters: DeadLetters
    fences: Fences
    queue: Redelivery
    lock_ttl_seconds: int
    # The invocation's remaining time less what the handler keeps to report (the target's client has it too).
    deadline: deadlines.Deadline = deadlines.NONE
    # The queue's maxReceiveCount. A message still failing on its last delivery goes to the DLQ from here,
    # with the reason, and counts as failed for its run: SQS's own redrive would move it there bare and
    # uncounted, and its run would never finish (holding the tenant's run lock until it goes stale).
    max_receive_count: int | None = None
    leftover_visibility_seconds: int = 5
    # Tenants of one batch applied at once, each on a thread of its own (WRITER_TENANTS_AT_ONCE).
    tenants_at_once: int = 16
    clock: Callable[[], float] = time.time
    report: WriteReport = field(default_factory=WriteReport)
    # The messages of the target request in flight: if it fails, they failed with it; the rest were never sent.
    _sending: list[list[tuple[Record, ActionMessage]]] = field(default_factory=list)
    _redriven: set[str] = field(default_factory=set, init=False, repr=False)  # message ids moved back from the DLQ
    # Leftovers to be visible again later than leftover_visibility_seconds (their tenant's budget), by message id.
    _back_in: dict[str, int] = field(default_factory=dict, init=False, repr=False)

    def apply(self, records: Sequence[Record]) -> WriteReport:
        self.report = WriteReport()
        by_tenant: dict[str, list[Item]] = {}
        self._redriven = set()
        self._back_in = {}
        for record in records:
            message, from_dlq = _action_message(record.body)
            if isinstance(message, str):
                self._dead([record], DeadLetter(reasons=[message], body=record.body))
                continue
            by_tenant.setdefault(message.tenant_id, []).append((record, message))
            if from_dlq:
                self._redriven.add(record.message_id)
        self._each_tenant(by_tenant)
        everything = [item for items in by_tenant.values() for item in items]
        self._give_up_on_last_deliveries(everything)
        self._hand_back_leftovers(everything)
        return self.report

    def _each_tenant(self, by_tenant: dict[str, list[Item]]) -> None:
        """Every tenant's items applied, up to tenants_at_once at a time, each by a copy of this writer; their
        reports merged into this one's. Once one runs out of time, those not started are left over."""
        out_of_time = threading.Event()
        merge = threading.Lock()

        def one(tenant_id: str, items: list[Item]) -> None:
            worker = copy.copy(self)
            worker.report, worker._sending, worker._back_in = WriteReport(), [], {}
            try:
                if out_of_time.is_set() or self.deadline.left() <= 0:
                    raise _OutOfTime
                worker._apply_tenant(tenant_id, items)
            except _OutOfTime:
                out_of_time.set()
                worker._leave(items, Outcome.LEFTOVER, "out of time")
            finally:
                with merge:
                    self.report.merge(worker.report)
                    self._back_in.update(worker._back_in)

        if len(by_tenant) == 1 or self.tenants_at_once <= 1:
            for tenant_id, items in by_tenant.items():
                one(tenant_id, items)
            return
        with ThreadPoolExecutor(max_workers=min(self.tenants_at_once, len(by_tenant)),
                                thread_name_prefix="writer-tenant") as pool:
            # Each in a copy of the caller's context (Powertools' and the local runner's context variables).
            futures = [pool.submit(contextvars.copy_context().run, one, tenant_id, items)
                       for tenant_id, items in by_tenant.items()]
        for future in futures:
            future.result()  # an unexpected error fails the invocation, as it did applied one tenant at a time

    # -- fencing -------------------------------------------------------------------------

    def _apply_tenant(self, tenant_id: str, items: list[Item]) -> None:
        try:
            tenant = self.tenant(tenant_id)
            if tenant is None:
                raise LookupError(f"unknown tenant {tenant_id!r}")
        except (LookupError, ValueError) as exc:
            for record, message in items:
                self._dead([record], DeadLetter(reasons=[str(exc)], message=message))
            return
        live = self._live_items(tenant, items)
        if not live:
            return
        try:
            target = self.target_for(tenant)
        except (LookupError, ValueError) as exc:
            for record, message in live:
                self._dead([record], DeadLetter(reasons=[str(exc)], message=message))
            return
        try:
            self._write(target, tenant, live)
        finally:
            target.close()

    def _live_items(self, tenant: Tenant, items: list[Item]) -> list[Item]:
        """The items of the tenant's live run still to be applied; every other item is settled here."""
        lock = self.fences.lock(tenant.tenant_id)
        live_run = lock.run_id if lock else None
        live: list[Item] = []
        for record, message in items:
            why = superseded_because(message, live_run, tenant.destination)
            if why is None:
                live.append((record, message))
            else:
                self._supersede(record, message, why)
        if not live or lock is None:
            return []
        # Renewed as the run makes progress. Not taken over while this batch applies: read just now, it expires
        # more than half a TTL (far longer than an invocation) from now, or it was renewed just now.
        if lock.due_for_renewal(self.clock(), self.lock_ttl_seconds) \
                and not self.fences.renew(tenant.tenant_id, lock.run_id, self.lock_ttl_seconds):
            for record, message in live:  # taken over between the read and the renewal
                self._supersede(record, message, f"run {lock.run_id} lost the tenant's lock")
            return []
        shards = self.fences.outcomes(tenant.tenant_id, lock.run_id, {message.seq for _, message in live
                                                                    if message.seq is not None})
        fresh = []
        for record, message in live:
            assert message.seq is not None  # fenceable
            if tally.done(shards.get(tally.shard_of(message.seq), {}), message.seq,
                          redriven=record.message_id in self._redriven):
                self.report.outcomes[record.message_id] = Outcome.DUPLICATE
            else:
                fresh.append((record, message))
        return fresh

    def _supersede(self, record: Record, message: ActionMessage, why: str) -> None:
        self.report.outcomes[record.message_id] = Outcome.SUPERSEDED
        self.report.superseded[record.message_id] = why
        self.report.count(message, "superseded")

    # -- applying ------------------------------------------------------------------------

    def _write(self, target: Target, tenant: Tenant, items: list[Item]) -> None:
        # The same action delivered twice in one batch is applied once; all its copies share the outcome.
        groups: dict[tuple[str, str], list[Item]] = {}
        for record, message in items:
            groups.setdefault((message.action.kind, message.action.external_id), []).append((record, message))
        creates = [group for (kind, _), group in groups.items() if kind == ActionKind.CREATE]
        puts = [group for (kind, _), group in groups.items() if kind != ActionKind.CREATE]
        self._sending = []
        try:
            for chunk in chunked(creates, target.max_batch):
                self._create(target, tenant.destination, chunk)
            for group in puts:
                self._put(target, group)
        except _TenantUnavailable as exc:
            # What the failed request carried failed with it; what came after it was never sent.
            problem = str(exc.__cause__ or exc)
            for group in self._sending:
                self._leave(group, Outcome.RETRY, problem)
            unsent = f"not sent, as an earlier request failed: {problem}" if exc.__cause__ else problem
            for group in [*creates, *puts]:
                self._leave(group, Outcome.RETRY, unsent)
        except ReauthRequired as exc:
            self.report.reauth[tenant.tenant_id] = str(exc)
            for group in [*creates, *puts]:
                if group[0][0].message_id not in self.report.outcomes:
                    self._settle_dead(group, [str(exc)])
        except _OutOfTime as exc:
            for group in [*creates, *puts]:
                self._leave(group, Outcome.LEFTOVER, str(exc.__cause__ or exc))
            raise
        except _BudgetSpent as exc:  # this tenant's, not the others': they go on
            for group in [*creates, *puts]:
                self._leave(group, Outcome.LEFTOVER, str(exc.__cause__))
                for record, _ in group:
                    if self.report.outcomes[record.message_id] == Outcome.LEFTOVER:
                        self._back_in[record.message_id] = exc.seconds

    def _create(self, target: Target, company_id: str, groups: list[list[Item]]) -> None:
        self._check_time()
        accounts = [NewAccount(group[0][1].action.external_id, group[0][1].action.desired) for group in groups]
        self._sending = groups
        try:
            result = target.batch_create(company_id, accounts)
        except OutOfTimeError as exc:
            raise _OutOfTime from exc
        except PleoBudgetSpent as exc:
            raise _BudgetSpent(self._visible_again_in(exc.retry_after)) from exc
        except TargetRequestError as exc:
            for group in groups:
                self._settle_dead(group, [exc.message])
            return
        except TargetError as exc:
            raise _TenantUnavailable from exc
        existing = []
        for group in groups:  # every answer recorded before any reconcile, which may stop for time or budget
            action = group[0][1].action
            if action.external_id in result.created:
                self._applied(group)
                continue
            reasons = result.failed.get(action.external_id)
            if reasons is None:  # neither created nor failed: ask again later
                self._leave(group, Outcome.RETRY, "batch create: the answer names it neither created nor failed")
            elif reasons == [ALREADY_EXISTS]:
                existing.append(group)
            else:
                self._settle_dead(group, reasons)
        for group in existing:
            self._reconcile(target, company_id, group)

    def _reconcile(self, target: Target, company_id: str, group: list[Item]) -> None:
        """An account with this externalId exists: make it what the create asked for."""
        action = group[0][1].action
        self._check_time()
        self._sending = [group]
        try:
            existing = target.find(company_id, action.external_id)
            if existing is None:
                self._settle_dead(group, [ALREADY_EXISTS, "but no account with this externalId can be found"])
                return
            if existing.archived or changed_fields(existing.fields(), action.desired):
                self._check_time()
                target.put(existing.id, action.desired, archived=False, metadata=existing.metadata)
        except OutOfTimeError as exc:
            raise _OutOfTime from exc
        except PleoBudgetSpent as exc:
            raise _BudgetSpent(self._visible_again_in(exc.retry_after)) from exc
        except TargetRequestError as exc:
            self._settle_dead(group, [ALREADY_EXISTS, exc.message])
            return
        except TargetError as exc:
            raise _TenantUnavailable from exc
        self._applied(group)

    def _put(self, target: Target, group: list[Item]) -> None:
        action = group[0][1].action
        if action.account_id is None:
            self._settle_dead(group, [f"{action.kind} without the target's account id"])
            return
        self._check_time()
        self._sending = [group]
        try:
            target.put(action.account_id, action.desired, archived=action.kind == ActionKind.ARCHIVE,
                       metadata=action.metadata)
        except OutOfTimeError as exc:
            raise _OutOfTime from exc
        except PleoBudgetSpent as exc:
            raise _BudgetSpent(self._visible_again_in(exc.retry_after)) from exc
        except TargetRequestError as exc:
            if exc.status == 404 and action.kind == ActionKind.ARCHIVE:
                self._applied(group)  # gone from the target: nothing left to archive
            else:
                self._settle_dead(group, [exc.message])
            return
        except TargetError as exc:
            raise _TenantUnavailable from exc
        self._applied(group)

    def _visible_again_in(self, retry_after: float) -> int:
        """When a message handed back for its tenant's budget is worth delivering again: once a token is due."""
        return min(MAX_VISIBILITY, max(self.leftover_visibility_seconds, math.ceil(retry_after)))

    def _check_time(self) -> None:
        if self.deadline.left() <= 0:
            raise _OutOfTime("not sent: the writer's time ran out")

    # -- outcomes ------------------------------------------------------------------------

    def _applied(self, group: list[Item]) -> None:
        for record, _ in group:
            self.report.outcomes[record.message_id] = Outcome.APPLIED
        message = group[0][1]
        self.report.applied[message.action.kind] = self.report.applied.get(message.action.kind, 0) + 1
        self.report.count(message, str(message.action.kind))

    def _settle_dead(self, group: list[Item], reasons: list[str]) -> None:
        self._dead([record for record, _ in group], DeadLetter(reasons=reasons, message=group[0][1]))

    def _dead(self, records: list[Record], letter: DeadLetter) -> None:
        self.dead_letters.send(letter)
        self.report.dead.append(letter)
        if letter.message is not None:
            self.report.count(letter.message, "failed")
        for record in records:
            self.report.outcomes[record.message_id] = Outcome.DEAD

    def _leave(self, group: list[Item], outcome: Outcome, problem: str) -> None:
        """Hand unsettled items back to the queue (RETRY or LEFTOVER); settled ones keep their outcome."""
        for record, _ in group:
            if self.report.outcomes.setdefault(record.message_id, outcome) in RETURNED:
                self.report.outcomes[record.message_id] = outcome
                self.report.retry_reasons.setdefault(record.message_id, problem)

    def _give_up_on_last_deliveries(self, items: list[Item]) -> None:
        if self.max_receive_count is None:
            return
        for record, message in items:
            if self.report.outcomes.get(record.message_id) == Outcome.RETRY \
                    and record.receive_count >= self.max_receive_count:
                problem = self.report.retry_reasons.get(record.message_id, "transient error")
                reason = f"still failing after {record.receive_count} deliveries (transient errors): {problem}"
                self._dead([record], DeadLetter(reasons=[reason], message=message))

    def _hand_back_leftovers(self, items: list[Item]) -> None:
        """Leftovers come back within seconds, not after the visibility timeout; one on what would be its last
        delivery is queued afresh (and this copy settled), so running out of time never dead-letters it."""
        leftovers = [(record, message) for record, message in items
                     if self.report.outcomes.get(record.message_id) == Outcome.LEFTOVER]
        last = self.max_receive_count or 0
        fresh = [(record, message) for record, message in leftovers if last and record.receive_count >= last]
        if fresh:
            self.queue.requeue([(record.body, message) for record, message in fresh])
            for record, _ in fresh:
                self.report.outcomes[record.message_id] = Outcome.REQUEUED
        later: dict[int, list[str]] = {}
        for record, _ in leftovers:
            if self.report.outcomes[record.message_id] == Outcome.LEFTOVER and record.receipt_handle:
                seconds = self._back_in.get(record.message_id, self.leftover_visibility_seconds)
                later.setdefault(seconds, []).append(record.receipt_handle)
        for seconds, handles in sorted(later.items()):
            self.queue.later(handles, seconds)
