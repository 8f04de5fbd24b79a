"""coa-sync's run-control commands: runs, show, diff, approve, dlq list, dlq redrive.

Each works on the local state (the default; what `coa-sync sync` and `demo` left there) or
on a deployed stack (--stack NAME, with --profile/--region). Locally nothing runs in the
background, so `approve` and `dlq redrive` also apply what they queue, to each tenant's target:
the Pleo given by --pleo-url and its credentials, or the accounting system the tenant names with
--target-credential (the local state never keeps secrets).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from coa_sync.history import compare_charts
from coa_sync.models import RunRecord
from coa_sync.pipeline.approve import approve_run
from coa_sync.pipeline.redrive import reopen_for_redrive
from coa_sync.targets import PLEO

from coa_sync_local import arguments, log_output, pleo_options, render_runs, source_options
from coa_sync_local.control import Deployment, aws_deployment, local_deployment
from coa_sync_local.errors import EXIT_INCOMPLETE, EXIT_OK, UsageError
from coa_sync_local.runner import NO_PLEO
from coa_sync_local.state import default_directory

Command = Callable[[argparse.Namespace], int]


def add_commands(commands: Any) -> None:
    runs = command(commands, "runs", "list past runs, newest first", _runs)
    runs.add_argument("--tenant", type=arguments.tenant_id, help="only this tenant's runs")
    runs.add_argument("--limit", type=arguments.positive_int, default=20, help="at most this many (default: 20)")

    show = command(commands, "show", "print a run's report: status, counts, held archives, failed items", _show)
    show.add_argument("run_id", metavar="RUN_ID")
    show.add_argument("--tenant", type=arguments.tenant_id, help="the run's tenant (default: looked up)")

    diff = command(commands, "diff", "show how a tenant's source chart changed between two runs", _diff)
    diff.add_argument("run_a", metavar="RUN_A")
    diff.add_argument("run_b", metavar="RUN_B")
    diff.add_argument("--tenant", type=arguments.tenant_id, help="the runs' tenant (default: looked up)")

    approve = command(commands, "approve", "release the archives the mass-archive guard held back in a run",
                      _approve, pleo=True)
    approve.add_argument("run_id", metavar="RUN_ID")
    approve.add_argument("--tenant", type=arguments.tenant_id, help="the run's tenant (default: looked up)")

    dlq = commands.add_parser("dlq", help="the dead-letter queue: items that could not be applied, with reasons")
    dlq_commands = dlq.add_subparsers(required=True, metavar="ACTION")
    listing = command(dlq_commands, "list", "show every failed item with its reasons (they stay in the DLQ)",
                      _dlq_list)
    listing.add_argument("--run", metavar="RUN_ID", help="only this run's items")
    command(dlq_commands, "redrive", "move every failed item back to the actions queue for the writer to "
                                     "try again (after a fix)", _dlq_redrive, pleo=True)


def command(commands: Any, name: str, description: str, handler: Command, pleo: bool = False,
            ) -> argparse.ArgumentParser:
    """A subcommand that works on the local state or, with --stack, on a deployed stack."""
    parser = commands.add_parser(name, help=description, description=description)
    where = parser.add_argument_group("where the runs and tenants are (default: the local state)")
    where.add_argument("--state-dir", type=Path, default=None,
                       help=f"local state directory (default: ${'COA_SYNC_STATE_DIR'} or {default_directory()})")
    where.add_argument("--stack", metavar="NAME", help="a deployed coa-sync stack instead of the local state")
    where.add_argument("--profile", help="AWS profile for --stack (default: the usual AWS configuration)")
    where.add_argument("--region", help="AWS region for --stack")
    if pleo:
        local = parser.add_argument_group("the target to apply to, locally (a deployed writer needs none)")
        local.add_argument("--pleo-url", type=arguments.http_url, metavar="URL", help="Pleo API base URL")
        pleo_options.add_arguments(local)
        local.add_argument("--target-credential", action="append", default=[], metavar="KEY=VALUE",
                           help="a credential of the tenant's target, when it is an accounting system (as for sync)")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    log_output.add_arguments(parser)
    parser.set_defaults(command=handler)
    return parser


@contextmanager
def open_deployment(args: argparse.Namespace) -> Iterator[Deployment]:
    if args.stack:
        with aws_deployment(args.stack, args.profile, args.region) as deployment:
            yield deployment
        return
    if args.profile or args.region:
        raise UsageError("--profile and --region go with --stack NAME (a deployed stack)", code="usage",
                         option="--profile" if args.profile else "--region")
    pleo_url = getattr(args, "pleo_url", None)
    if pleo_url is None and getattr(args, "target_credential", None):
        pleo_url = NO_PLEO  # the items go to an accounting system
    with local_deployment(args.state_dir or default_directory(), pleo_url, progress=_progress) as deployment:
        yield deployment


# -- history ---------------------------------------------------------------------------------


def _runs(args: argparse.Namespace) -> int:
    with open_deployment(args) as deployment:
        records = deployment.runs(args.tenant, args.limit)
        tenant_ids = {record.tenant_id for record in records} | ({args.tenant} if args.tenant else set())
        reauth = deployment.needs_reauth(tenant_ids)
        queued = deployment.queued()
    listed = [{**record.model_dump(mode="json"), "queued": _queued(record, queued)} for record in records]
    text = "\n".join(filter(None, [render_runs.runs_table(records, queued), render_runs.needs_reauth(reauth)]))
    emit(args, {"runs": listed, "needsReauth": reauth}, text)
    return EXIT_OK


def _queued(record: RunRecord, queued: dict[str, int] | None) -> int:
    """The run's actions still on the queue (locally, counted there; on a stack, planned less settled)."""
    return queued.get(record.run_id, 0) if queued is not None else record.unsettled


def _show(args: argparse.Namespace) -> int:
    with open_deployment(args) as deployment:
        record = deployment.find_run(args.run_id, args.tenant)
        plan = deployment.plan(record)
        letters = deployment.letters(record.run_id)
        reauth = deployment.needs_reauth({record.tenant_id})
        queued = _queued(record, deployment.queued())
    document = {
        "run": {**record.model_dump(mode="json"), "queued": queued},
        "errors": [error.model_dump() for error in plan.errors] if plan else [],
        "held": {"reason": plan.held_reason, "archives": [a.external_id for a in plan.held]} if plan else None,
        "unsupported": {"reasons": {str(kind): why for kind, why in plan.unsupported_reasons.items()},
                        "actions": [{"externalId": a.external_id, "action": str(a.kind)} for a in plan.unsupported]}
        if plan else None,
        "failed": [letter.model_dump(mode="json") for letter in letters],
        "pleoConnection": reauth.get(record.tenant_id),
    }
    text = "\n".join(filter(None, [render_runs.report(record, plan, letters, queued),
                                    render_runs.needs_reauth(reauth)]))
    emit(args, document, text)
    return EXIT_OK


def _diff(args: argparse.Namespace) -> int:
    with open_deployment(args) as deployment:
        first = deployment.find_run(args.run_a, args.tenant)
        second = deployment.find_run(args.run_b, args.tenant)
        if first.tenant_id != second.tenant_id:
            raise UsageError(f"run {args.run_a} is tenant {first.tenant_id!r}'s, run {args.run_b} is "
                             f"{second.tenant_id!r}'s: compare two runs of one tenant")
        changes = compare_charts(deployment.source(first).accounts, deployment.source(second).accounts)
    emit(args, {"tenantId": first.tenant_id, "from": first.run_id, "to": second.run_id,
                "changes": [change.model_dump() for change in changes]},
         render_runs.chart_changes(first, second, changes))
    return EXIT_OK


# -- approve and redrive ---------------------------------------------------------------------


def _approve(args: argparse.Namespace) -> int:
    with open_deployment(args) as deployment:
        record = deployment.find_run(args.run_id, args.tenant)
        _local_credentials(args, deployment, {record.tenant_id})
        approved = approve_run(record.tenant_id, record.run_id, approved_by="cli", ledger=deployment.ledger,
                               files=deployment.files, actions=deployment.actions, finished=deployment.finished,
                               check_pleo=deployment.check_pleo, ttl_seconds=deployment.actions.lock_ttl_seconds())
        if deployment.runner is None:
            emit(args, {"run": approved.model_dump(mode="json")},
                 f"Approved: {approved.planned.archive - record.planned.archive} archive(s) of run "
                 f"{approved.run_id} queued; the writer applies them. Follow with: coa-sync show "
                 f"{approved.run_id} --stack {args.stack}")
            return EXIT_OK
        pending = deployment.runner.apply_queued()
        final = deployment.find_run(record.run_id, record.tenant_id)
        letters = deployment.letters(record.run_id)
    retry = ("\nWhat the target refused waits in the dead-letter queue with its reasons: fix the cause, then "
             "coa-sync dlq redrive (with the target's URL and credentials, as here) applies it." if letters else "")
    emit(args, {"run": final.model_dump(mode="json"), "pending": pending,
                "failed": [letter.model_dump(mode="json") for letter in letters]},
         render_runs.report(final, None, letters) + retry)
    return EXIT_INCOMPLETE if pending or final.failed else EXIT_OK


def _dlq_list(args: argparse.Namespace) -> int:
    with open_deployment(args) as deployment:
        letters = deployment.letters(args.run)
    emit(args, {"letters": [letter.model_dump(mode="json") for letter in letters]},
         render_runs.dead_letters(letters))
    return EXIT_OK


def _dlq_redrive(args: argparse.Namespace) -> int:
    with open_deployment(args) as deployment:
        letters = deployment.letters()
        if letters:
            _local_credentials(args, deployment, {letter.message.tenant_id for letter in letters if letter.message})
        # The writer applies only a live run's actions: each letter's run is opened again where it may be.
        reopened = reopen_for_redrive(letters, deployment.ledger, deployment.actions.lock_ttl_seconds())
        moved = deployment.dead_letters.redrive(deployment.actions.url)
        stale = [f"run {run}: {why}" for run, why in sorted(reopened.superseded.items())]
        note = f"\nSuperseded when they arrive, not applied: {'; '.join(stale)}." if stale else ""
        if deployment.runner is None:
            how = (f"SQS is moving them (task {moved.task_handle})" if moved.task_handle
                   else "they are in the actions queue")
            emit(args, {"moved": moved.messages, "taskHandle": moved.task_handle, "superseded": reopened.superseded},
                 f"Redrive: {moved.messages} item(s) going back to the writer; {how}.{note}")
            return EXIT_OK
        pending = deployment.runner.apply_queued() if moved.messages else 0
        still_failing = deployment.letters()
    emit(args, {"moved": moved.messages, "pending": pending, "superseded": reopened.superseded,
                "failed": [letter.model_dump(mode="json") for letter in still_failing]},
         f"Redrive: {moved.messages} item(s) sent back to the writer and applied; "
         f"{len(still_failing)} in the dead-letter queue now.{note}\n" + render_runs.dead_letters(still_failing))
    return EXIT_INCOMPLETE if pending or still_failing else EXIT_OK


def _local_credentials(args: argparse.Namespace, deployment: Deployment, tenant_ids: set[str]) -> None:
    """Locally the command applies the items itself: each tenant's target needs its credentials (and Pleo its
    URL), given now and kept in the local AWS for this command only. Deployed, the writer has its own."""
    if deployment.runner is None:
        return
    tenants = [tenant for tenant_id in sorted(tenant_ids) if (tenant := deployment.tenants.get(tenant_id))]
    to_pleo = [tenant for tenant in tenants if tenant.target.kind == PLEO]
    others = sorted({tenant.target.kind for tenant in tenants} - {PLEO})
    if to_pleo and not (args.pleo_url and pleo_options.given(args)):
        raise UsageError("locally this command applies the items itself: give --pleo-url and the Pleo "
                         f"credentials (--pleo-oauth FILE.json, ${pleo_options.API_KEY_ENV}, --pleo-api-key-file, "
                         "--pleo-api-key or --pleo-token) of the Pleo they go to", code="usage",
                         option="--pleo-url" if not args.pleo_url else "--pleo-api-key")
    if others and not args.target_credential:
        raise UsageError(f"locally this command applies the items itself: give the credentials of the tenant's "
                         f"{' and '.join(others)} target (--target-credential KEY=VALUE, as for sync)", code="usage",
                         option="--target-credential")
    try:
        pleo, token_store = pleo_options.credentials(args) if to_pleo else ({}, None)
        target = source_options.key_values(args.target_credential, "--target-credential")
    except ValueError as exc:
        raise UsageError(str(exc), code="usage") from None
    for tenant in tenants:
        if tenant.target.kind == PLEO:
            deployment.runner.add_tenant(tenant, pleo, token_store=token_store)
        else:
            deployment.runner.add_tenant(tenant, {}, target_credentials=target)


def emit(args: argparse.Namespace, document: dict[str, Any], text: str) -> None:
    print(json.dumps(document, ensure_ascii=False) if args.json else text)


def _progress(message: str) -> None:
    print(f"[coa-sync] {message}", file=sys.stderr, flush=True)
