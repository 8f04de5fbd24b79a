"""The plan: what to do in Pleo so that it mirrors the AS's active chart of accounts.

A pure function of two snapshots, following Pleo's documented matching rules:
match by externalId only; no match -> create; archived match -> unarchive (with the AS's
name, code and tax code); active match that differs -> update; same -> nothing; active
Pleo account with no active AS account -> archive.

Anything ambiguous is reported, never guessed at: an externalId that appears more than
once on either side, or an AS item that could not be read, leaves that externalId alone.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from coa_sync.models import (
    AccountFields,
    Action,
    ActionKind,
    ItemError,
    Plan,
    PleoAccount,
    SourceAccount,
    SourceSnapshot,
    TargetSnapshot,
)

COMPARED_FIELDS = ("name", "code", "tax_code_external_id")


def plan(source: SourceSnapshot, target: TargetSnapshot) -> Plan:
    errors = [*source.errors, *target.errors]
    held = {error.external_id for error in errors if error.external_id is not None}

    source_dupes = _duplicates(account.external_id for account in source.accounts)
    for external_id in sorted(source_dupes):
        errors.append(
            ItemError(external_id=external_id, field="externalId",
                      message=f"appears {source_dupes[external_id]} times in the source; it is left alone")
        )
    target_dupes = _duplicates(account.external_id for account in target.accounts)
    for external_id in sorted(target_dupes):
        errors.append(
            ItemError(external_id=external_id, field="externalId", location="pleo",
                      message=f"{target_dupes[external_id]} Pleo accounts share it; it is left alone")
        )
    held |= source_dupes.keys() | target_dupes.keys()

    wanted = {a.external_id: a for a in source.accounts if a.active and a.external_id not in held}
    existing = {a.external_id: a for a in target.accounts if a.external_id not in held}

    actions: list[Action] = []
    noop = 0
    for external_id, account in wanted.items():
        action = _reconcile(account, existing.get(external_id))
        if action is None:
            noop += 1
        else:
            actions.append(action)
    for external_id, pleo in existing.items():
        if not pleo.archived and external_id not in wanted:
            actions.append(_archive(pleo))
    return Plan(actions=actions, noop=noop, errors=errors)


def _reconcile(account: SourceAccount, pleo: PleoAccount | None) -> Action | None:
    if pleo is None:
        return Action(kind=ActionKind.CREATE, external_id=account.external_id, desired=account.fields())
    # Compared in place: most accounts match, and building models only for actions keeps
    # a million-account diff fast.
    changes = changed_fields(pleo, account)
    if pleo.archived:
        kind = ActionKind.UNARCHIVE
    elif changes:
        kind = ActionKind.UPDATE
    else:
        return None
    return Action(kind=kind, external_id=account.external_id, account_id=pleo.id,
                  desired=account.fields(), before=pleo.fields(), changes=changes)


def _archive(pleo: PleoAccount) -> Action:
    # PUT is a full update: archiving resends what Pleo has, with archived set.
    fields = pleo.fields()
    return Action(kind=ActionKind.ARCHIVE, external_id=pleo.external_id, account_id=pleo.id,
                  desired=fields, before=fields)


def changed_fields(before: AccountFields, after: AccountFields) -> list[str]:
    return [name for name in COMPARED_FIELDS if getattr(before, name) != getattr(after, name)]


def _duplicates(external_ids: Iterable[str]) -> dict[str, int]:
    counts = Counter(external_ids)
    return {external_id: n for external_id, n in counts.items() if n > 1}
