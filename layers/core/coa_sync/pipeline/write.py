"""writer: apply a batch of action messages to Pleo.

Creates of one tenant go out together in batch calls of up to 1000 items; updates,
unarchives and archives are one PUT each. Every message ends in one of three outcomes:

- APPLIED: Pleo has what the action asked for;
- DEAD: it can never succeed as it is; it went to the DLQ with its reasons;
- RETRY: it may succeed later (429, 5xx, network, time running out); SQS delivers it again.

A tenant whose Pleo authorisation is refused for good (tokens.ReauthRequired: needs_reauth) gets
no further call: its messages go to the DLQ with the reason, which says how to reconnect, and the
report names the tenant, for its run to be failed with that message.

Every message is safe to deliver twice: a create that meets EXTERNAL_ID_ALREADY_EXISTS is
reconciled with the account that exists (an earlier try got through), and PUT is a full update
(it sends back the account's metadata as read, so nothing another tool stored there is lost).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from pydantic import ValidationError

from coa_sync.adapters.pleo import (
    MAX_BATCH,
    BatchResult,
    NewAccount,
    PleoError,
    PleoRequestError,
)
from coa_sync.batching import chunked
from coa_sync.diff import changed_fields
from coa_sync.models import AccountFields, ActionKind, ActionMessage, DeadLetter, PleoAccount, Tenant
from coa_sync.tokens import ReauthRequired

ALREADY_EXISTS = "EXTERNAL_ID_ALREADY_EXISTS"


class Outcome(StrEnum):
    APPLIED = "applied"
    DEAD = "dead"
    RETRY = "retry"


class Pleo(Protocol):
    def batch_create(self, company_id: str, accounts: Sequence[NewAccount]) -> BatchResult: ...
    def put(self, account_id: str, fields: AccountFields, *, archived: bool,
            metadata: dict[str, Any] | None = None) -> PleoAccount: ...
    def find(self, company_id: str, external_id: str) -> PleoAccount | None: ...
    def close(self) -> None: ...


class DeadLetters(Protocol):
    def send(self, letter: DeadLetter) -> None: ...


@dataclass(frozen=True)
class Record:
    message_id: str
    body: str
    receive_count: int = 1  # SQS's ApproximateReceiveCount: this is the message's n-th delivery


@dataclass
class WriteReport:
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    applied: Counter[str] = field(default_factory=Counter)
    dead: list[DeadLetter] = field(default_factory=list)
    # Per (tenant, run): actions applied by kind, and "failed" for those sent to the DLQ.
    runs: dict[tuple[str, str], Counter[str]] = field(default_factory=dict)
    # Why each message left to retry could not be applied this time.
    retry_reasons: dict[str, str] = field(default_factory=dict)
    # Tenants whose Pleo authorisation was refused for good (needs_reauth), and why.
    reauth: dict[str, str] = field(default_factory=dict)

    def count(self, message: ActionMessage, key: str, n: int = 1) -> None:
        self.runs.setdefault((message.tenant_id, message.run_id), Counter())[key] += n


class _TenantUnavailable(Exception):
    """Pleo is failing for this tenant right now: leave its other messages for a later delivery."""


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
    pleo_for: Callable[[Tenant], Pleo]
    dead_letters: DeadLetters
    # Seconds left before the caller must stop (Lambda's remaining time less a margin).
    time_left: Callable[[], float] = lambda: float("inf")
    # The queue's maxReceiveCount. A message still failing on its last delivery goes to the DLQ from here,
    # with the reason, and counts as failed for its run: SQS's own redrive would move it there bare and
    # uncounted, and its run would never finish (holding the tenant's run lock until it goes stale).
    max_receive_count: int | None = None
    report: WriteReport = field(default_factory=WriteReport)
    # The messages of the Pleo request in flight: if it fails, they failed with it; the rest were never sent.
    _sending: list[list[tuple[Record, ActionMessage]]] = field(default_factory=list)

    def apply(self, records: Sequence[Record]) -> WriteReport:
        self.report = WriteReport()
        by_tenant: dict[str, list[tuple[Record, ActionMessage]]] = {}
        redriven: list[tuple[Record, ActionMessage]] = []
        for record in records:
            message, from_dlq = _action_message(record.body)
            if isinstance(message, str):
                self._dead([record], DeadLetter(reasons=[message], body=record.body))
                continue
            by_tenant.setdefault(message.tenant_id, []).append((record, message))
            if from_dlq:
                redriven.append((record, message))
        for tenant_id, items in by_tenant.items():
            self._apply_tenant(tenant_id, items)
        self._give_up_on_last_deliveries([item for items in by_tenant.values() for item in items])
        # A redriven item was counted failed when it went to the DLQ; settled now, it is counted
        # again by its new outcome (applied, or failed once more), so its old failure is taken back.
        for record, message in redriven:
            if self.report.outcomes.get(record.message_id) in (Outcome.APPLIED, Outcome.DEAD):
                self.report.count(message, "failed", -1)
        return self.report

    def _give_up_on_last_deliveries(self, items: list[tuple[Record, ActionMessage]]) -> None:
        if self.max_receive_count is None:
            return
        for record, message in items:
            if self.report.outcomes.get(record.message_id) == Outcome.RETRY \
                    and record.receive_count >= self.max_receive_count:
                problem = self.report.retry_reasons.get(record.message_id, "transient error")
                reason = f"still failing after {record.receive_count} deliveries (transient errors): {problem}"
                self._dead([record], DeadLetter(reasons=[reason], message=message))

    def _apply_tenant(self, tenant_id: str, items: list[tuple[Record, ActionMessage]]) -> None:
        try:
            tenant = self.tenant(tenant_id)
            if tenant is None:
                raise LookupError(f"unknown tenant {tenant_id!r}")
            pleo = self.pleo_for(tenant)
        except (LookupError, ValueError) as exc:
            for record, message in items:
                self._dead([record], DeadLetter(reasons=[str(exc)], message=message))
            return
        # The same action delivered twice in one batch is applied once; all its copies share the outcome.
        groups: dict[tuple[str, str], list[tuple[Record, ActionMessage]]] = {}
        for record, message in items:
            groups.setdefault((message.action.kind, message.action.external_id), []).append((record, message))
        creates = [group for (kind, _), group in groups.items() if kind == ActionKind.CREATE]
        puts = [group for (kind, _), group in groups.items() if kind != ActionKind.CREATE]
        self._sending = []
        try:
            for chunk in chunked(creates, MAX_BATCH):
                self._create(pleo, tenant.company_id, chunk)
            for group in puts:
                self._put(pleo, group)
        except _TenantUnavailable as exc:
            # What the failed request carried failed with it; what came after it was never sent.
            problem = str(exc.__cause__ or exc)
            for group in self._sending:
                self._retry_unsettled(group, problem)
            unsent = f"not sent, as an earlier request failed: {problem}" if exc.__cause__ else problem
            for group in [*creates, *puts]:
                self._retry_unsettled(group, unsent)
        except ReauthRequired as exc:
            self.report.reauth[tenant_id] = str(exc)
            for group in [*creates, *puts]:
                if group[0][0].message_id not in self.report.outcomes:
                    self._settle_dead(group, [str(exc)])
        finally:
            pleo.close()

    def _create(self, pleo: Pleo, company_id: str, groups: list[list[tuple[Record, ActionMessage]]]) -> None:
        self._check_time()
        accounts = [NewAccount(group[0][1].action.external_id, group[0][1].action.desired) for group in groups]
        self._sending = groups
        try:
            result = pleo.batch_create(company_id, accounts)
        except PleoRequestError as exc:
            for group in groups:
                self._settle_dead(group, [exc.message])
            return
        except PleoError as exc:
            raise _TenantUnavailable from exc
        for group in groups:
            action = group[0][1].action
            if action.external_id in result.created:
                self._settle(group, Outcome.APPLIED)
                continue
            reasons = result.failed.get(action.external_id)
            if reasons is None:  # neither created nor failed: ask again later
                self._retry_unsettled(group, "batch create: Pleo's answer names it neither created nor failed")
            elif reasons == [ALREADY_EXISTS]:
                self._reconcile(pleo, company_id, group)
            else:
                self._settle_dead(group, reasons)

    def _reconcile(self, pleo: Pleo, company_id: str, group: list[tuple[Record, ActionMessage]]) -> None:
        """An account with this externalId exists: make it what the create asked for."""
        action = group[0][1].action
        self._check_time()
        self._sending = [group]
        try:
            existing = pleo.find(company_id, action.external_id)
            if existing is None:
                self._settle_dead(group, [ALREADY_EXISTS, "but no account with this externalId can be found"])
                return
            if existing.archived or changed_fields(existing.fields(), action.desired):
                self._check_time()
                pleo.put(existing.id, action.desired, archived=False, metadata=existing.metadata)
        except PleoRequestError as exc:
            self._settle_dead(group, [ALREADY_EXISTS, exc.message])
            return
        except PleoError as exc:
            raise _TenantUnavailable from exc
        self._settle(group, Outcome.APPLIED)

    def _put(self, pleo: Pleo, group: list[tuple[Record, ActionMessage]]) -> None:
        action = group[0][1].action
        if action.account_id is None:
            self._settle_dead(group, [f"{action.kind} without a Pleo account id"])
            return
        self._check_time()
        self._sending = [group]
        try:
            pleo.put(action.account_id, action.desired, archived=action.kind == ActionKind.ARCHIVE,
                     metadata=action.metadata)
        except PleoRequestError as exc:
            if exc.status == 404 and action.kind == ActionKind.ARCHIVE:
                self._settle(group, Outcome.APPLIED)  # gone from Pleo: nothing left to archive
            else:
                self._settle_dead(group, [exc.message])
            return
        except PleoError as exc:
            raise _TenantUnavailable from exc
        self._settle(group, Outcome.APPLIED)

    def _check_time(self) -> None:
        if self.time_left() <= 0:
            raise _TenantUnavailable("not sent: the writer's time ran out")

    def _settle(self, group: list[tuple[Record, ActionMessage]], outcome: Outcome) -> None:
        for record, _ in group:
            self.report.outcomes[record.message_id] = outcome
        if outcome == Outcome.APPLIED:
            message = group[0][1]
            self.report.applied[message.action.kind] += 1
            self.report.count(message, message.action.kind)

    def _settle_dead(self, group: list[tuple[Record, ActionMessage]], reasons: list[str]) -> None:
        self._dead([record for record, _ in group], DeadLetter(reasons=reasons, message=group[0][1]))

    def _dead(self, records: list[Record], letter: DeadLetter) -> None:
        self.dead_letters.send(letter)
        self.report.dead.append(letter)
        if letter.message is not None:
            self.report.count(letter.message, "failed")
        for record in records:
            self.report.outcomes[record.message_id] = Outcome.DEAD

    def _retry_unsettled(self, group: list[tuple[Record, ActionMessage]], problem: str) -> None:
        for record, _ in group:
            if self.report.outcomes.setdefault(record.message_id, Outcome.RETRY) == Outcome.RETRY:
                self.report.retry_reasons.setdefault(record.message_id, problem)
