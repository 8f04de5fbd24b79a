"""Run history, reports, chart changes and dead letters, for the terminal."""

from __future__ import annotations

from coa_sync.history import ChartChange
from coa_sync.models import DeadLetter, Plan, PlanCounts, RunRecord
from coa_sync.tokens import RECONNECT_HINT

from coa_sync_local.render import field_change, first, table, unsupported_lines

KINDS = ("create", "update", "unarchive", "archive")


def runs_table(records: list[RunRecord], queued: dict[str, int] | None = None) -> str:
    """`queued`: actions waiting in the queue by run, where it can be read (locally); else planned less settled."""
    if not records:
        return "No runs yet."
    rows = [("run", "tenant", "trigger", "status", "planned c/u/un/a", "applied c/u/un/a", "failed", "superseded",
             "queued", "held")]
    for record in records:
        status = f"{record.status} (dry run)" if record.dry_run else record.status
        rows.append((record.run_id, record.tenant_id, record.trigger, status, _counts(record.planned),
                     _counts(record.applied), str(record.failed), str(record.superseded),
                     str(queued.get(record.run_id, 0) if queued is not None else record.unsettled),
                     str(record.held)))
    return table(rows)


def needs_reauth(tenants: dict[str, dict[str, str]]) -> str:
    """The tenants whose Pleo authorisation was refused for good, and how to connect them again."""
    lines = [f"Tenant {tenant_id} needs_reauth since {status.get('changedAt', '?')}: {status.get('reason') or '-'}"
             for tenant_id, status in sorted(tenants.items())]
    if lines:
        lines.append(f"Connect again: {RECONNECT_HINT}")
    return "\n".join(lines)


def report(record: RunRecord, plan: Plan | None, letters: list[DeadLetter], queued: int = 0) -> str:
    lines = [
        f"Run {record.run_id} of tenant {record.tenant_id}: {record.status}" + (" (dry run)" if record.dry_run else ""),
        f"  trigger   {record.trigger}",
        f"  started   {record.started_at:%Y-%m-%d %H:%M:%S %Z}",
        f"  ended     {record.ended_at:%Y-%m-%d %H:%M:%S %Z}" if record.ended_at else "  ended     -",
        f"  planned   {_spelled(record.planned)}",
        f"  applied   {_spelled(record.applied)}",
        f"  failed    {record.failed}",
        f"  superseded {record.superseded}" + (" (queued when a newer run of the tenant took over: never applied)"
                                                if record.superseded else ""),
    ]
    if queued:
        later = "the run has ended: superseded when delivered, never applied" if record.ended_at \
            else "waiting for the writer"
        lines.append(f"  queued    {queued} ({later})")
    if record.approved_at:
        lines.append(f"  approved  {record.approved_at:%Y-%m-%d %H:%M:%S %Z} ({record.approved_by})")
    if record.error:
        lines.append(f"  error     {record.error}")
    if plan and plan.held:
        lines.append(f"Archives held back: {plan.held_reason}")
        lines.extend(first([f"  = archive {a.external_id} ({a.desired.name})" for a in plan.held]))
        lines.append(f"Release them with: coa-sync approve {record.run_id}")
    if plan:
        lines.extend(unsupported_lines(plan))
    if plan and plan.errors:
        lines.append(f"{len(plan.errors)} item(s) set aside:")
        lines.extend(first([f"  ! {error}" for error in plan.errors]))
    if plan and plan.notes:
        lines.append(f"{len(plan.notes)} note(s) on how the source was read:")
        lines.extend(first([f"  * {note}" for note in plan.notes]))
    if letters:
        lines.append(f"{len(letters)} item(s) in the dead-letter queue:")
        lines.append(dead_letters(letters))
    return "\n".join(lines)


def chart_changes(first: RunRecord, second: RunRecord, changes: list[ChartChange]) -> str:
    heading = f"Source chart of tenant {first.tenant_id}, run {first.run_id} -> run {second.run_id}:"
    if not changes:
        return f"{heading}\nNo changes."
    rows = [("", "externalId", "change", "detail")]
    symbols = {"added": "+", "removed": "-", "changed": "~", "activated": "^", "deactivated": "v"}
    for change in changes:
        rows.append((symbols[change.kind], change.external_id, change.kind, _detail(change)))
    tally = {kind: sum(c.kind == kind for c in changes) for kind in symbols}
    summary = ", ".join(f"{count} {kind}" for kind, count in tally.items() if count)
    return f"{heading}\n{table(rows)}\n{summary}."


def dead_letters(letters: list[DeadLetter]) -> str:
    if not letters:
        return "The dead-letter queue is empty."
    rows = [("run", "tenant", "action", "externalId", "reasons")]
    for letter in letters:
        message = letter.message
        rows.append((message.run_id if message else "-", message.tenant_id if message else "-",
                     str(message.action.kind) if message else "-",
                     message.action.external_id if message else "(unreadable)", "; ".join(letter.reasons)))
    return table(rows, widest=100)


def _detail(change: ChartChange) -> str:
    if change.kind == "added":
        return f"{change.after.code or ''} {change.after.name}".strip()  # type: ignore[union-attr]
    if change.kind == "removed":
        return f"{change.before.code or ''} {change.before.name}".strip()  # type: ignore[union-attr]
    return ", ".join(field_change(name, change.before, change.after)  # type: ignore[arg-type]
                     for name in change.changes)


def _counts(counts: PlanCounts) -> str:
    return "/".join(str(getattr(counts, kind)) for kind in KINDS)


def _spelled(counts: PlanCounts) -> str:
    return ", ".join(f"{getattr(counts, kind)} {kind}" for kind in KINDS)
