"""Human-readable plans and results for the terminal."""

from __future__ import annotations

from coa_sync.models import AccountFields, Action, ActionKind, Plan

from coa_sync_local.runner import RunResult

SYMBOLS = {ActionKind.CREATE: "+", ActionKind.UPDATE: "~", ActionKind.UNARCHIVE: "^", ActionKind.ARCHIVE: "-"}
ORDER = [ActionKind.CREATE, ActionKind.UNARCHIVE, ActionKind.UPDATE, ActionKind.ARCHIVE]


def plan_table(plan: Plan) -> str:
    rows = [("", "action", "externalId", "code", "name", "change")]
    for kind in ORDER:
        for action in sorted((a for a in plan.actions if a.kind == kind), key=lambda a: a.external_id):
            rows.append((SYMBOLS[kind], kind.value, action.external_id, action.desired.code or "",
                         action.desired.name, _change(action)))
    counts = plan.counts()
    summary = (f"Plan: {counts.create} to create, {counts.unarchive} to unarchive, {counts.update} to update, "
               f"{counts.archive} to archive, {counts.noop} unchanged.")
    lines = [table(rows)] if len(rows) > 1 else ["No changes: Pleo already matches the source."]
    lines.append(summary)
    if plan.held:
        lines.append(f"Mass-archive guard: {plan.held_reason}. Held back:")
        lines.extend(f"  = archive {action.external_id} ({action.desired.name})" for action in plan.held)
    if plan.errors:
        lines.append(f"{len(plan.errors)} item(s) set aside:")
        lines.extend(f"  ! {error}" for error in plan.errors)
    return "\n".join(lines)


def result_text(result: RunResult) -> str:
    if result.manifest.dry_run:
        return f"Dry run {result.run_id}: nothing was changed in Pleo."
    applied = result.applied
    lines = [
        f"Run {result.run_id}: applied {applied.create} create, {applied.unarchive} unarchive, "
        f"{applied.update} update, {applied.archive} archive in {result.seconds:.1f}s "
        f"({sum(result.api_calls.values())} Pleo calls: " + ", ".join(
            f"{kind} {result.api_calls.get(kind, 0)}" for kind in ("search", "batch_create", "put")) + ").",
    ]
    if result.failed:
        lines.append(f"{len(result.failed)} item(s) failed and are in the dead-letter queue:")
        lines.extend(f"  x {item.action} {item.external_id}: {', '.join(item.reasons)}" for item in result.failed)
    if result.pending:
        lines.append(f"{result.pending} action(s) still pending when the run stopped waiting.")
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
