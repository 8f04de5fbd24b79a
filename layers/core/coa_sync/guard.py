"""The archive guard: no archive goes out while the source may not be what it seems.

Every archive of the plan is held back (creates, updates and unarchives still go), and the
plan says why, when:

- a source row could not be read for sure (a source error that names no externalId: a CSV
  row with a field count off, a broken quote, no readable externalId): it could be the row of
  any account, so no account can be taken as gone;
- the source has no active accounts at all while Pleo has some;
- the plan would archive more than max(min_archives, percent% of Pleo's active accounts): a
  source that suddenly returns far fewer accounts must not archive a tenant's whole chart.
"""

from __future__ import annotations

from coa_sync.models import ActionKind, Plan, SourceColumns, TargetColumns

DEFAULT_MIN_ARCHIVES = 10
DEFAULT_PERCENT = 10.0
NAMED_ROWS = 5  # unreadable rows named in the reason; the plan's errors list them all


def hold_archives(
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
    unread = [error.location or error.message for error in source.errors if error.external_id is None]
    if unread:
        named = ", ".join(unread[:NAMED_ROWS]) + (f" and {len(unread) - NAMED_ROWS} more" if len(unread) > NAMED_ROWS
                                                  else "")
        reason = (f"{len(unread)} source row(s) could not be read for sure ({named}): any of them may be an "
                  "account Pleo has, so none is taken as gone")
    elif True not in source.active:
        reason = f"the source has no active accounts; {len(archives)} archive(s) held back"
    elif len(archives) > limit:
        reason = (f"{len(archives)} of {active_in_pleo} active Pleo accounts would be archived, "
                  f"over the limit of max({min_archives}, {percent:g}%) = {limit:g}")
    else:
        return result
    kept = [action for action in result.actions if action.kind != ActionKind.ARCHIVE]
    return result.model_copy(update={"actions": kept, "held": archives, "held_reason": reason})
