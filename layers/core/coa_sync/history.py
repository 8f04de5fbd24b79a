"""How a tenant's source chart changed between two runs (`coa-sync diff RUN_A RUN_B`).

A pure function of two source snapshots' accounts, matched by externalId like the sync itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from coa_sync.diff import changed_fields
from coa_sync.models import AccountFields, Model, SourceAccount

ChangeKind = Literal["added", "removed", "changed", "activated", "deactivated"]


class ChartChange(Model):
    external_id: str
    kind: ChangeKind
    before: AccountFields | None = None
    after: AccountFields | None = None
    changes: list[str] = []  # the fields whose values differ


def compare_charts(before: Iterable[SourceAccount], after: Iterable[SourceAccount]) -> list[ChartChange]:
    """Every externalId whose account was added, removed, (de)activated or edited, by externalId.

    An externalId listed twice in one snapshot is compared by its last row, as the file reads.
    """
    old = {account.external_id: account for account in before}
    new = {account.external_id: account for account in after}
    changes = []
    for external_id in sorted(old.keys() | new.keys()):
        a, b = old.get(external_id), new.get(external_id)
        if a is None:
            changes.append(ChartChange(external_id=external_id, kind="added", after=b.fields()))  # type: ignore[union-attr]
            continue
        if b is None:
            changes.append(ChartChange(external_id=external_id, kind="removed", before=a.fields()))
            continue
        edited = changed_fields(a, b)
        if a.active != b.active:
            kind: ChangeKind = "activated" if b.active else "deactivated"
        elif edited:
            kind = "changed"
        else:
            continue
        changes.append(ChartChange(external_id=external_id, kind=kind, before=a.fields(), after=b.fields(),
                                   changes=edited))
    return changes
