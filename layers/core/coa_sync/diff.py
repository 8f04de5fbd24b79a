"""The plan: what to do in Pleo so that it mirrors the AS's active chart of accounts.

A pure function of two snapshots, following Pleo's documented matching rules:
match by externalId only; no match -> create; archived match -> unarchive (with the AS's
name, code and tax code); active match that differs -> update; same -> nothing; active
Pleo account with no active AS account -> archive. Pleo's `metadata` is not compared: each
update, unarchive and archive carries it as read, for the PUT to send back.

Anything ambiguous is reported, never guessed at: an externalId that appears more than
once on either side, or an AS item that could not be read, leaves that externalId alone, and
the same externalId without whitespace around it too (its look-alike: "ext-1 " holds "ext-1").
An AS item that could not be tied to any externalId holds every archive (coa_sync.guard).

Both charts come as columns sorted by externalId (models.Columns), so one walk down the two
side by side pairs every account with its Pleo twin: no model, dict or set per account, and
models only for the accounts that need an action.
"""

from __future__ import annotations

import gc
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import compress, islice
from operator import eq, not_

from coa_sync.models import (
    AccountFields,
    Action,
    ActionKind,
    ItemError,
    Plan,
    SourceColumns,
    TargetColumns,
)

COMPARED_FIELDS = ("name", "code", "tax_code_external_id")

# The walk's rows: (externalId, live, name, code, taxCode), where live is "active" in the AS and
# "not archived" in Pleo, so an account that needs nothing has the very same row on both sides.
Row = tuple[str, bool, str, str | None, str | None]


def plan(source: SourceColumns, target: TargetColumns) -> Plan:
    errors = [*source.errors, *target.errors]
    held = {error.external_id for error in errors if error.external_id is not None}
    held |= {external_id.strip() for external_id in held}

    source_dupes = _duplicates(source.external_id)
    named = {error.external_id for error in source.errors}  # a file names its duplicates with their lines
    for external_id in sorted(source_dupes.keys() - named):
        errors.append(
            ItemError(external_id=external_id, field="externalId",
                      message=f"appears {source_dupes[external_id]} times in the source; it is left alone")
        )
    target_dupes = _duplicates(target.external_id)
    for external_id in sorted(target_dupes):
        errors.append(
            ItemError(external_id=external_id, field="externalId", location="pleo",
                      message=f"{target_dupes[external_id]} Pleo accounts share it; it is left alone")
        )
    held |= source_dupes.keys() | target_dupes.keys()

    with _gc_paused():
        actions, archives, noop = _walk(source, target, held)
        return Plan(actions=actions + archives, noop=noop, errors=errors, notes=source.notes)


def _walk(source: SourceColumns, target: TargetColumns, held: set[str]) -> tuple[list[Action], list[Action], int]:
    """Creates, updates and unarchives in source order, archives in Pleo order, and how many need nothing."""
    actions: list[Action] = []
    archives: list[Action] = []
    noop = 0
    pleo_rows: Iterator[Row] = zip(target.external_id, map(not_, target.archived), target.name, target.code,
                                   target.tax_code_external_id, strict=True)
    pleo, at = next(pleo_rows, None), 0  # Pleo's current row and its position, for its id
    rows: Iterator[Row] = zip(source.external_id, source.active, source.name, source.code,
                              source.tax_code_external_id, strict=True)
    for row in rows:
        external_id = row[0]
        if row == pleo and row[1] and external_id not in held:
            noop += 1  # the common case: an active account, alike on both sides
        else:
            # Pleo accounts sorted before this one have no AS account at all.
            while pleo is not None and pleo[0] < external_id:
                if pleo[1] and pleo[0] not in held:
                    archives.append(_archive(pleo, target.id[at], target.metadata))
                pleo, at = next(pleo_rows, None), at + 1
            if pleo is None or pleo[0] != external_id:  # no Pleo twin: stay on this Pleo row
                if row[1] and external_id not in held:
                    actions.append(Action(kind=ActionKind.CREATE, external_id=external_id, desired=_fields(row)))
                continue
            if external_id not in held:
                if not row[1]:  # inactive in the AS
                    if pleo[1]:
                        archives.append(_archive(pleo, target.id[at], target.metadata))
                elif pleo[1] and row[2:] == pleo[2:]:
                    noop += 1
                else:
                    actions.append(_reconcile(row, pleo, target.id[at], target.metadata))
        pleo, at = next(pleo_rows, None), at + 1
    while pleo is not None:
        if pleo[1] and pleo[0] not in held:
            archives.append(_archive(pleo, target.id[at], target.metadata))
        pleo, at = next(pleo_rows, None), at + 1
    return actions, archives, noop


def _reconcile(row: Row, pleo: Row, account_id: str, metadata: dict[str, dict]) -> Action:
    changes = [name for name, before, after in zip(COMPARED_FIELDS, pleo[2:], row[2:], strict=True) if before != after]
    kind = ActionKind.UPDATE if pleo[1] else ActionKind.UNARCHIVE
    return Action(kind=kind, external_id=row[0], account_id=account_id, desired=_fields(row), before=_fields(pleo),
                  changes=changes, metadata=metadata.get(account_id))


def _archive(pleo: Row, account_id: str, metadata: dict[str, dict]) -> Action:
    # PUT is a full update: archiving resends what Pleo has (its metadata too), with archived set.
    fields = _fields(pleo)
    return Action(kind=ActionKind.ARCHIVE, external_id=pleo[0], account_id=account_id, desired=fields, before=fields,
                  metadata=metadata.get(account_id))


def _fields(row: Row) -> AccountFields:
    return AccountFields(name=row[2], code=row[3], tax_code_external_id=row[4])


def changed_fields(before: AccountFields, after: AccountFields) -> list[str]:
    return [name for name in COMPARED_FIELDS if getattr(before, name) != getattr(after, name)]


def _duplicates(external_ids: list[str]) -> dict[str, int]:
    # Sorted, so copies sit side by side: an id found n times makes n - 1 equal neighbours.
    repeats = Counter(compress(external_ids, map(eq, external_ids, islice(external_ids, 1, None))))
    return {external_id: n + 1 for external_id, n in repeats.items()}


@contextmanager
def _gc_paused() -> Iterator[None]:
    # The snapshots are a few lists of millions of strings, and every full collection the new
    # actions set off would walk all of them; nothing made here forms a reference cycle.
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
