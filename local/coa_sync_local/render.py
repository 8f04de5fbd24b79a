"""Human-readable plans and results for the terminal."""

from __future__ import annotations

from coa_sync.models import AccountFields, Action, ActionKind, Plan

from coa_sync_local.runner import RunResult

SYMBOLS = {ActionKind.CREATE: "+", ActionKind.UPDATE: "~", ActionKind.UNARCHIVE: "^", ActionKind.ARCHIVE: "-"}
ORDER = [ActionKind.CREATE, ActionKind.UNARCHIVE, ActionKind.UPDATE, ActionKind.ARCHIVE]


# Past this many planned rows, the table shows the first rows of each kind and counts the rest
# (a 50 MB chart plans 800,000 creates); --full prints every row.
SHOWN_ROWS = 100
SHOWN_PER_KIND = 10
SHOWN_ITEMS = 20  # held archives, set-aside items and notes listed before "... and N more"


def plan_table(result: RunResult, full: bool = False) -> str:
    """The run's plan as a table. The counts are the run's (its plan may be read back in part: RunnerOptions)."""
    plan, counts = result.plan, result.record.planned
    rows = [("", "action", "externalId", "code", "name", "change")]
    total = sum(getattr(counts, kind.value) for kind in ORDER)
    per_kind = None if full or total <= SHOWN_ROWS else SHOWN_PER_KIND
    for kind in ORDER:
        actions = sorted((a for a in plan.actions if a.kind == kind), key=lambda a: a.external_id)
        for action in actions[:per_kind]:
            rows.append((SYMBOLS[kind], kind.value, action.external_id, action.desired.code or "",
                         action.desired.name, _change(action)))
        if per_kind is not None and getattr(counts, kind.value) > per_kind:
            more = getattr(counts, kind.value) - per_kind
            rows.append(("", "", f"... and {more:,} more to {kind.value}", "", "", ""))
    summary = (f"Plan: {counts.create} to create, {counts.unarchive} to unarchive, {counts.update} to update, "
               f"{counts.archive} to archive, {counts.noop} unchanged.")
    if len(rows) > 1:
        lines = [table(rows)]
    elif plan.held or plan.errors or plan.unsupported:
        lines = ["Nothing to apply now; see what is held back or set aside below."]
    else:
        lines = [f"No changes: {target_name(result)} already matches the source."]
    if per_kind is not None:
        summary += " Only the first rows of each kind are shown: --full shows all, and the run's plan.json.gz has them."
    lines.append(summary)
    if plan.held:
        lines.append(f"Archives held back: {plan.held_reason}.")
        lines.extend(first([f"  = archive {a.external_id} ({a.desired.name})" for a in plan.held], full,
                           result.record.held))
    lines.extend(unsupported_lines(plan, full, result.record.unsupported))
    if plan.errors:
        lines.append(f"{len(plan.errors)} item(s) set aside:")
        lines.extend(first([f"  ! {error}" for error in plan.errors], full))
    if plan.notes:
        lines.append(f"{len(plan.notes)} note(s) on how the source was read:")
        lines.extend(first([f"  * {note}" for note in plan.notes], full))
    return "\n".join(lines)


def unsupported_lines(plan: Plan, full: bool = False, total: int | None = None) -> list[str]:
    """The actions the target cannot take, with each kind's reason (none: no lines)."""
    if not plan.unsupported:
        return []
    total = len(plan.unsupported) if total is None else total
    return [f"{total} action(s) not taken, unsupported by the target:",
            *(f"  {reason}" for reason in plan.unsupported_reasons.values()),
            *first([f"  # {a.kind.value} {a.external_id} ({a.desired.name})" for a in plan.unsupported], full, total)]


def target_name(result: RunResult) -> str:
    kind = result.manifest.target_kind
    return {"pleo": "Pleo", "dualentry": "DualEntry", "stackone": "StackOne"}.get(kind, kind.capitalize())


def first(lines: list[str], full: bool = False, total: int | None = None) -> list[str]:
    """The first SHOWN_ITEMS lines and how many more there are of `total` (all of them when `full`)."""
    total = len(lines) if total is None else total
    if full or total <= SHOWN_ITEMS:
        return lines
    return [*lines[:SHOWN_ITEMS], f"  ... and {total - SHOWN_ITEMS:,} more"]


def result_text(result: RunResult) -> str:
    return "\n".join([_outcome(result), *queue_lines(result)])


def queue_lines(result: RunResult) -> list[str]:
    """What this command superseded, what is still queued and for which run, and the AWS faults played."""
    lines = []
    if result.superseded:
        lines.append(f"{result.superseded} action(s) queued by earlier runs were superseded, not applied: "
                     "a newer run of the tenant planned afresh.")
    for (tenant, run), count in sorted(result.queued.items()):
        later = "still to be applied" if run == result.run_id and result.record.ended_at is None else \
            "its run has ended: superseded when the writer next runs, never applied"
        lines.append(f"Still queued: {count} action(s) of run {run} (tenant {tenant}); {later}.")
    if result.faults:
        lines.append("AWS faults played: " + ", ".join(f"{what} {n}" for what, n in sorted(result.faults.items())))
    return lines


def _outcome(result: RunResult) -> str:
    if result.manifest.dry_run:
        return f"Dry run {result.run_id}: nothing was changed in {target_name(result)}."
    applied = result.applied
    lines = [
        f"Run {result.run_id}: applied {applied.create} create, {applied.unarchive} unarchive, "
        f"{applied.update} update, {applied.archive} archive in {result.seconds:.1f}s "
        f"({sum(result.api_calls.values())} Pleo calls: " + ", ".join(
            f"{kind} {result.api_calls.get(kind, 0)}" for kind in ("search", "batch_create", "put")) + ").",
    ]
    if result.failed:
        lines.append(f"{len(result.failed)} item(s) failed and are in the dead-letter queue:")
        lines.extend(first([f"  x {item.action} {item.external_id}: {', '.join(item.reasons)}"
                            for item in result.failed]))
    if result.pending:
        lines.append(f"{result.pending} action(s) still pending when the run stopped waiting.")
    if result.plan.held:
        lines.append(f"Release the held archives with: coa-sync approve {result.run_id}")
    return "\n".join(lines)


def _change(action: Action) -> str:
    if action.kind == ActionKind.CREATE:
        return "new"
    if action.kind == ActionKind.ARCHIVE:
        return "not active in the source"
    assert action.before is not None
    changes = ", ".join(field_change(name, action.before, action.desired) for name in action.changes)
    if action.kind == ActionKind.UNARCHIVE:
        return f"archived in Pleo{'; ' + changes if changes else ''}"
    return changes


def field_change(name: str, before: AccountFields, after: AccountFields) -> str:
    label = {"tax_code_external_id": "taxCode"}.get(name, name)
    return f"{label}: {getattr(before, name)!r} -> {getattr(after, name)!r}"


def table(rows: list[tuple[str, ...]], widest: int = 40) -> str:
    """Left-aligned columns; a cell longer than `widest` is cut short with an ellipsis."""
    widths = [min(widest, max(len(row[i]) for row in rows)) for i in range(len(rows[0]))]
    out = []
    for row in rows:
        cells = [cell if len(cell) <= widths[i] else cell[: widths[i] - 1] + "…" for i, cell in enumerate(row)]
        out.append("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(cells)).rstrip())
    return "\n".join(out)
