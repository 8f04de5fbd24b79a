"""The mass-archive guard: a source that suddenly returns nothing, or far fewer accounts,
must not archive a tenant's whole chart.

When a plan would archive more than max(min_archives, percent% of Pleo's active accounts),
or the source has no active accounts at all while Pleo has some, every archive is held back
(creates, updates and unarchives still go) and the plan says why.
"""

from __future__ import annotations

from coa_sync.models import ActionKind, Plan, SourceColumns, TargetColumns

DEFAULT_MIN_ARCHIVES = 10
DEFAULT_PERCENT = 10.0


def hold_mass_archive(
    result: Plan,
    source: SourceColumns,
    target: TargetColumns,
    *,
    min_archives: int = DEFAULT_MIN_ARCHIVES,
    percent: float = DEFAULT_PERCENT,
) -> Plan:
    archives = [action for action in result.actions if action.kind == ActionKind.ARCHIVE]
    if not archives:
        return result
    active_in_pleo = target.archived.count(False)
    limit = max(min_archives, active_in_pleo * percent / 100)
    if True not in source.active:
        reason = f"the source has no active accounts; {len(archives)} archive(s) held back"
    elif len(archives) > limit:
        reason = (f"{len(archives)} of {active_in_pleo} active Pleo accounts would be archived, "
                  f"over the limit of max({min_archives}, {percent:g}%) = {limit:g}")
    else:
        return result
    kept = [action for action in result.actions if action.kind != ActionKind.ARCHIVE]
    return result.model_copy(update={"actions": kept, "held": archives, "held_reason": reason})
