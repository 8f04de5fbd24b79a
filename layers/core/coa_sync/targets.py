"""What each destination can do, and the plan shaped by it: pure, no I/O.

A tenant's `target` (models.TargetConfig) is Pleo by default, or an accounting system. Each kind's
`Capabilities` say which actions it takes and how the next run finds what a copy wrote:

- by externalId (Pleo stores the externalId a create sends, and reads it back);
- by code (Thredfi and DualEntry: no documented read returns the key a create can send, so the
  account's code is the key on both sides: a copy writes the source account's code, as its code
  and, for Thredfi, as its `external_id`, and the next run reads it back through `code`).

`for_target` shapes a chart as the target holds it (in the second form where it matches by code,
and without tax codes where it holds none); `set_aside_unsupported` moves the actions the target
cannot take out of a plan, each kind with the reason, right after the diff planned them: they are
reported, never queued, never retried.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from coa_sync.models import ActionKind, ItemError, Plan, PleoAccount, SourceAccount, SourceSnapshot, TargetSnapshot

PLEO = "pleo"


class TargetError(Exception):
    """Writing to the target failed for now (network, 429, 5xx, a token not to be had): try again later."""


class TargetRequestError(TargetError):
    """The target refused the action; sending it again will not help."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}" if status else message)
        self.status = status  # 0: the target's connector answered reasons, not a status
        self.message = message


@dataclass(frozen=True)
class Capabilities:
    """What a target can do, so the plan is shaped around it."""

    max_batch: int  # creates one request carries (1: one request per create)
    idempotent_create: bool  # a create delivered twice leaves one account
    create: bool = True
    update: bool = False  # update and unarchive are both updates of an existing account
    archive: bool = False
    match_by: Literal["externalId", "code"] = "externalId"  # how the next run finds what a copy wrote
    tax_codes: bool = False  # whether an account holds a tax code (none of the accounting systems documents one)
    lacks: str = ""  # what the vendor's docs lack, for the reason an action is unsupported

    def supports(self, kind: ActionKind) -> bool:
        if kind is ActionKind.CREATE:
            return self.create
        if kind is ActionKind.ARCHIVE:
            return self.archive
        return self.update


# One entry per kind a tenant can name as its target (connectors.TARGETS builds each).
CAPABILITIES: dict[str, Capabilities] = {
    PLEO: Capabilities(max_batch=1000, idempotent_create=True, update=True, archive=True, tax_codes=True),
    "thredfi": Capabilities(max_batch=1, idempotent_create=True, archive=True, match_by="code",
                            lacks="Thredfi documents no endpoint that updates an account"),
    "dualentry": Capabilities(max_batch=1, idempotent_create=True, match_by="code",
                              lacks="DualEntry documents no endpoint that updates or archives an account"),
    "stackone": Capabilities(max_batch=1, idempotent_create=False, create=False, match_by="code",
                             lacks="StackOne's API documents no endpoint that creates, updates or archives "
                                   "accounts (it is read-only)"),
}


def capabilities_of(kind: str) -> Capabilities:
    try:
        return CAPABILITIES[kind]
    except KeyError:
        raise ValueError(f"{kind!r} cannot be a target; targets: {', '.join(CAPABILITIES)}") from None


def unsupported_reason(target: str, kind: ActionKind) -> str:
    verb = "update" if kind is ActionKind.UNARCHIVE else kind.value
    return f"unsupported by the target: {target} cannot {verb} accounts ({capabilities_of(target).lacks})"


def set_aside_unsupported(plan: Plan, target: str) -> Plan:
    """The plan with only the actions `target` can take; the others in `unsupported`, with each kind's reason."""
    capabilities = capabilities_of(target)
    kept = [action for action in plan.actions if capabilities.supports(action.kind)]
    if len(kept) == len(plan.actions):
        return plan
    unsupported = [action for action in plan.actions if not capabilities.supports(action.kind)]
    reasons = {action.kind: unsupported_reason(target, action.kind) for action in unsupported}
    return plan.model_copy(update={"actions": kept, "unsupported": unsupported, "unsupported_reasons": reasons})


def for_target(snapshot: SourceSnapshot, target: str) -> SourceSnapshot:
    """The chart as `target` holds it: keyed as it matches accounts (as read, or by code), and without tax
    codes where it holds none (else each account with one would differ from its copy every run)."""
    capabilities = capabilities_of(target)
    if capabilities.match_by == "code":
        snapshot = keyed_by_code(snapshot, target)
    if not capabilities.tax_codes and any(account.tax_code_external_id for account in snapshot.accounts):
        snapshot = snapshot.model_copy(update={"accounts": [
            account.model_copy(update={"tax_code_external_id": None}) for account in snapshot.accounts]})
    return snapshot


def as_target(snapshot: SourceSnapshot) -> TargetSnapshot:
    """An accounting system's chart, read as the target's: its key addresses each account (Thredfi's archive
    takes a code in its path), and an inactive account is an archived one."""
    return TargetSnapshot(errors=snapshot.errors, accounts=[
        PleoAccount(id=a.external_id, external_id=a.external_id, name=a.name, code=a.code,
                    tax_code_external_id=a.tax_code_external_id, archived=not a.active) for a in snapshot.accounts])


def keyed_by_code(snapshot: SourceSnapshot, system: str) -> SourceSnapshot:
    """The chart keyed by code, for a target that matches by code (see the module's docstring).

    An account without a code cannot be matched, so it is an error naming it. An error that named an
    externalId names none any more: the record's code is unknown, so it could be any account's, and
    the run holds every archive (coa_sync.guard) rather than archive its twin.
    """
    accounts = [account.model_copy(update={"external_id": account.code}) for account in snapshot.accounts
                if account.code]
    errors = [error if error.external_id is None else
              error.model_copy(update={"external_id": None, "message": f"externalId {error.external_id!r}: "
                                                                        f"{error.field + ': ' if error.field else ''}"
                                                                        f"{error.message}", "field": None})
              for error in snapshot.errors]
    errors += [_no_code(account, system) for account in snapshot.accounts if not account.code]
    return snapshot.model_copy(update={"accounts": accounts, "errors": errors})


def _no_code(account: SourceAccount, system: str) -> ItemError:
    # Named by its externalId for the reader. Among keys that are codes, it holds at most an account whose
    # code happens to read the same: left alone and reported, never acted on wrongly.
    return ItemError(external_id=account.external_id, field="code",
                     message=f"is missing: {system} as the target matches accounts by code, so this one cannot "
                             "be copied")
