"""The mass-archive guard: a source that suddenly returns nothing, or far fewer accounts,
must not archive a tenant's whole chart.

When a plan would archive more than max(min_archives, percent% of Pleo's active accounts),
or the source has no active accounts at all while Pleo has some, every archive is held back
(creates, updates and unarchives still go) and the plan says why.
"""

from __future__ import annotations

from coa_sync.models import ActionKind, Plan, SourceSnapshot, TargetSnapshot

DEFAULT_MIN_ARCHIVES = 10
DEFAULT_PERCENT = 10.0


def hold_mass_archive(
    result: Plan,
    source: SourceSnapshot,
    target: TargetSnapshot,
    *,
    min_archives: int = DEFAULT_MIN_ARCHIVES,
    percent: float = DEFAULT_PERCENT,
) -> Plan:
    archives = [action for action in result.actions if action.kind == ActionKind.ARCHIVE]
    if not archives:
        return result
    active_in_pleo = sum(not account.archived for account in target.accounts)
    limit = max(min_archives, active_in_pleo * percent / 100)
    if not any(account.active for account in source.accounts):
        reason = f"the source has no active accounts; {len(archives)} archive(s) held back"
    elif len(archives) > limit:
        reason = (f"{len(archives)} of {active_in_pleo} active Pleo accounts would be archived, "
                  f"over the limit of max({min_archives}, {percent:g}%) = {limit:g}")
    else:
        return result
    kept = [action for action in result.actions if action.kind != ActionKind.ARCHIVE]
    return result.model_copy(update={"actions": kept, "held": archives, "held_reason": reason})
