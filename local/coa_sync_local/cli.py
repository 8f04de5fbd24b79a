"""coa-sync: the command line.

Exit codes and how failures are told (other tools script against them): coa_sync_local.errors.
"""

from __future__ import annotations

import argparse
import importlib.resources
import json
import os
import random
import sys
import time
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from coa_sync.adapters.pleo import PleoError, PleoRequestError
from coa_sync.adapters.pleo_connection import PleoConnections
from coa_sync.connectors import ConnectorError, ConnectorRequestError
from coa_sync.models import ArchiveGuard, FileSource, PleoTarget, SourceConfig, TargetConfig, Tenant
from coa_sync.sources import SourceFormatError, check_readable
from coa_sync.tokens import ReauthRequired
from pydantic import ValidationError

from coa_sync_local import arguments, aws_faults, control_cli, log_output, pleo_options, source_options, tenants_cli
from coa_sync_local import connect as oauth_connect
from coa_sync_local.errors import EXIT_BROKEN_PIPE, EXIT_INCOMPLETE, EXIT_OK, UsageError, report
from coa_sync_local.oauth_file import FileTokenStore, OAuthFileError
from coa_sync_local.render import SHOWN_ROWS, plan_table, result_text
from coa_sync_local.runner import NO_PLEO, TABLE, LocalRunner, RunnerOptions, RunResult
from coa_sync_local.signals import stopping_on_signals
from coa_sync_local.state import LocalState, default_directory

DEMO_COMPANY = "12abc3d4-e567-890e-1234-abc56e78fabc"


def main(argv: list[str] | None = None) -> int:
    """Every command's one exit: its own code, or how its failure is told (coa_sync_local.errors)."""
    argv = sys.argv[1:] if argv is None else argv
    try:
        if argv[:1] == ["emulator"]:  # its options are the emulator's own
            from coa_sync_local.emulators.pleo import main as emulator_main

            return emulator_main(argv[1:], prog="coa-sync emulator")
        args = _parser().parse_args(argv)
        with log_output.configured(args), stopping_on_signals():
            code = args.command(args)
        sys.stdout.flush()  # a closed pipe shows here, not at exit
        return code
    except BrokenPipeError:
        # The reader went away (`coa-sync dlq list | head`): say nothing more on stdout, not even at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except (Exception, KeyboardInterrupt) as exc:
        return report(exc, as_json="--json" in argv)


def _parser() -> argparse.ArgumentParser:
    parser = arguments.Parser(prog="coa-sync", description="Chart of Accounts sync into Pleo.")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    demo = commands.add_parser("demo", help="run a full sync against a built-in Pleo emulator with sample data")
    demo.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    demo.add_argument("--source", choices=source_options.API_KINDS, default=None,
                      help="read the sample chart from a built-in emulator of this accounting system "
                           "(default: the sample CSV file)")
    demo.add_argument("--source-shape", action="append", default=[], metavar="OPTION=VALUE",
                      help="play one of the system's documented alternatives: page_shape=links, error_shape=guide "
                           "(thredfi); list_shape=array (dualentry); page_shape=short, end=last_page (stackone)")
    _add_state_argument(demo)
    log_output.add_arguments(demo)
    demo.set_defaults(command=_demo)

    sync = commands.add_parser("sync", help="sync a chart of accounts file into Pleo (or a Pleo emulator)")
    _add_run_arguments(sync)
    sync.add_argument("--dry-run", action="store_true", help="write and print the plan; change nothing")
    sync.set_defaults(command=_sync)

    plan = commands.add_parser("plan", help="show what a sync would do (creates, updates before -> after, "
                                             "archives) and change nothing")
    _add_run_arguments(plan)
    plan.set_defaults(command=_sync, dry_run=True)

    oauth_connect.add_command(commands, _connect)
    control_cli.add_commands(commands)
    tenants_cli.add_commands(commands)
    commands.add_parser("emulator", help="serve the Pleo API emulator on 127.0.0.1 (see: coa-sync emulator --help)")
    return parser


def _add_run_arguments(command: argparse.ArgumentParser) -> None:
    command.add_argument("--source", type=Path, metavar="FILE",
                         help="CSV or JSON with externalId,code,name,active[,taxCodeExternalId] "
                              "(for --source-kind file, the default)")
    command.add_argument("--pleo-url", type=arguments.http_url, metavar="URL",
                         help="Pleo API base URL (required unless --target-kind names another system)")
    command.add_argument("--company-id", type=arguments.text, metavar="ID", help="Pleo companyId (idem)")
    pleo_options.add_arguments(command.add_argument_group("Pleo credentials", pleo_options.HELP))
    command.add_argument("--tenant", default="local", type=arguments.tenant_id,
                         help="tenant id used for this run's files (default: local)")
    command.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    log_output.add_arguments(command)
    command.add_argument("--full", action="store_true",
                         help=f"print every planned row (past {SHOWN_ROWS}, the table shows the first of each kind)")
    _add_state_argument(command)
    faults = command.add_argument_group("AWS's failure modes, played locally (see docs/errors.md)")
    faults.add_argument("--aws-faults", metavar="LIST", type=_aws_faults, default=(),
                        help=f"comma-separated: {', '.join(aws_faults.FAULTS)}; or all")
    faults.add_argument("--aws-faults-seed", metavar="N", type=int, default=None,
                        help="the seed every fault is drawn from (default: random, printed)")
    command.add_argument("--writers", type=arguments.positive_int, default=1, metavar="K",
                         help="writer containers at once, each its own process sharing the rate budget, as "
                              "Lambda's poller with MaximumConcurrency K runs them (default 1: in this process)")
    guard = command.add_argument_group("mass-archive guard: hold archives back past max(MIN, PERCENT% of Pleo's "
                                       "active accounts)")
    guard.add_argument("--archive-guard-min", type=int, metavar="MIN", help="default 10")
    guard.add_argument("--archive-guard-percent", type=float, metavar="PERCENT", help="default 10")
    source_options.add_arguments(command)


def _add_state_argument(command: argparse.ArgumentParser) -> None:
    command.add_argument("--state-dir", type=Path, default=None,
                         help="where runs are kept for coa-sync runs/show/diff/approve/dlq "
                              f"(default: $COA_SYNC_STATE_DIR or {default_directory()})")


def _sync(args: argparse.Namespace) -> int:
    target, target_credentials = _target(args)
    credentials, token_store = {}, None
    if target is None:
        try:
            credentials, token_store = pleo_options.credentials(args)
        except ValueError as exc:
            raise UsageError(str(exc), code="usage") from None
    destination = {"target": target, "target_credentials": target_credentials}
    if source_options.wants_api_source(args):
        if args.source:
            raise UsageError("give --source FILE for a file, or --source-kind/--source-config, not both",
                             option="--source")
        try:
            source, source_credentials = source_options.source_from_args(args)
        except ValueError as exc:
            raise UsageError(str(exc), code="bad_source") from None
        return _run(source, args.pleo_url, args.company_id, credentials, args.tenant, args,
                    archive_guard=_archive_guard(args), source_credentials=source_credentials, token_store=token_store,
                    **destination)
    if args.source is None:
        raise UsageError("--source FILE is required (or --source-kind thredfi|dualentry|stackone)", code="usage",
                         option="--source")
    _check_source(args.source)
    return _run(args.source.resolve(), args.pleo_url, args.company_id, credentials, args.tenant, args,
                archive_guard=_archive_guard(args), token_store=token_store, **destination)


def _target(args: argparse.Namespace) -> tuple[TargetConfig | None, dict[str, Any] | None]:
    """Another system as the target (with its credentials), or None for Pleo, which needs its URL and company."""
    if not source_options.wants_api_target(args):
        for option, value in (("--pleo-url", args.pleo_url), ("--company-id", args.company_id)):
            if value is None:
                raise UsageError(f"{option} is required (or --target-kind thredfi|dualentry|stackone)",
                                 code="usage", option=option)
        return None, None
    try:
        return source_options.target_from_args(args)
    except ValueError as exc:
        raise UsageError(str(exc), code="bad_target") from None


def _connect(args: argparse.Namespace) -> int:
    try:
        app = oauth_connect.app_from_args(args)
        out = args.out.expanduser().resolve()
        oauth_connect.connect(app, out, open_browser=not args.no_browser, timeout=args.timeout, say=_progress)
    except (ValueError, oauth_connect.ConnectError) as exc:
        raise UsageError(str(exc)) from None
    print(f"Connected to Pleo: the tokens are in {out} (mode 0600); sync with --pleo-oauth {out}")
    return EXIT_OK


def _faults(args: argparse.Namespace) -> tuple[tuple[str, ...], int]:
    """--aws-faults and the seed they are drawn from (given, or random and said); none for the demo."""
    faults, seed = getattr(args, "aws_faults", ()), getattr(args, "aws_faults_seed", None)
    seed = seed if seed is not None else random.randrange(2**32)  # noqa: S311 - reproducible faults, not secrets
    if faults:
        _progress(f"AWS faults: {', '.join(faults)} (seed {seed}; --aws-faults-seed {seed} plays them again)")
    return faults, seed


def _aws_faults(listed: str) -> tuple[str, ...]:
    try:
        return aws_faults.parse(listed)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _archive_guard(args: argparse.Namespace) -> ArchiveGuard | None:
    given = {"min_archives": args.archive_guard_min, "percent": args.archive_guard_percent}
    if all(value is None for value in given.values()):
        return None
    try:
        return ArchiveGuard(**{name: value for name, value in given.items() if value is not None})
    except ValidationError as exc:
        problem = exc.errors()[0]
        option = "--archive-guard-min" if "min_archives" in problem["loc"] else "--archive-guard-percent"
        raise UsageError(f"argument {option}: {problem['msg']}", option=option) from None


def _demo(args: argparse.Namespace) -> int:
    from coa_sync_local.emulators.pleo import PleoEmulator  # only the demo needs a server

    samples = importlib.resources.files("coa_sync_local") / "samples"
    api_key = f"demo-{uuid.uuid4().hex}"
    started = time.monotonic()
    pleo_seed = json.loads((samples / "pleo-accounts.json").read_text())
    with PleoEmulator() as pleo, ExitStack() as stack:
        source: Path | SourceConfig = Path(str(samples / "accounts.csv"))
        source_credentials = None
        if args.source_shape and not args.source:
            raise UsageError("--source-shape plays an accounting system's alternative: give --source KIND too")
        if args.source:
            try:
                source, source_credentials, pleo_seed = stack.enter_context(source_options.demo_source(
                    args.source, (samples / "accounts.csv").read_text(), pleo_seed, args.source_shape))
            except ValueError as exc:
                raise UsageError(str(exc)) from None
            _progress(f"{args.source} emulator serving at {source.base_url}")  # type: ignore[union-attr]
        pleo.add_company(DEMO_COMPANY, api_keys=[api_key], accounts=pleo_seed)
        _progress(f"Pleo emulator serving at {pleo.url}")
        code = _run(source, pleo.url, DEMO_COMPANY, {"apiKey": api_key}, "demo", args,
                    source_credentials=source_credentials)
        if not args.json:
            print("\nPleo now holds (active):")
            for account in pleo.accounts(DEMO_COMPANY):
                if not account["archived"]:
                    print(f"  {account['code'] or '':>6}  {account['name']}  ({account['externalId']})")
            print(f"\nDemo finished in {time.monotonic() - started:.1f}s. The run is kept in the local state: "
                  "see it with `coa-sync runs` and `coa-sync show RUN_ID`.")
    return code


def _check_source(path: Path) -> None:
    """Check the file as a whole up front (its rows are the run's to read), so one that cannot be read at all
    is a usage error."""
    try:
        check_readable(path.read_bytes(), path.name)
    except OSError as exc:
        raise UsageError(f"cannot read source {path}: {exc.strerror}", code="bad_source", option="--source") \
            from None
    except SourceFormatError as exc:
        raise UsageError(str(exc), code="bad_source", option="--source") from None


def _run(source: Path | SourceConfig, pleo_url: str | None, company_id: str | None, credentials: dict[str, str],
         tenant_id: str, args: argparse.Namespace, *, archive_guard: ArchiveGuard | None = None,
         source_credentials: dict[str, str] | None = None, token_store: FileTokenStore | None = None,
         target: TargetConfig | None = None, target_credentials: dict[str, Any] | None = None) -> int:
    """One run, reported as `args` ask (--dry-run, --json, --full, --verbose, --state-dir); into Pleo, or into
    `target`."""
    to_pleo = target is None
    tenant = Tenant(tenant_id=tenant_id, company_id=company_id,
                    pleo_secret_name=f"coa-sync/{tenant_id}/pleo" if to_pleo else None,
                    source=FileSource(uri=str(source)) if isinstance(source, Path) else source,
                    target=target or PleoTarget(), archive_guard=archive_guard)
    # The report shows every row only with --full: a large plan is not read back whole otherwise.
    faults, seed = _faults(args)
    writers = getattr(args, "writers", 1)
    if writers > 1 and faults:
        raise UsageError("--aws-faults plays AWS's failure modes with one writer: give --writers 1 (the default)",
                         code="usage", option="--writers")
    if writers > 1 and token_store is not None:
        raise UsageError("--pleo-oauth keeps its tokens in this process: give --writers 1 (the default)",
                         code="usage", option="--writers")
    options = RunnerOptions(pleo_url=pleo_url or NO_PLEO, show_function_output=log_output.functions_print(args),
                            plan_rows=None if getattr(args, "full", False) else SHOWN_ROWS,
                            aws_faults=faults, aws_faults_seed=seed, writers=writers)
    with LocalState(args.state_dir or default_directory()) as state, \
            LocalRunner(options, progress=_progress, state=state) as runner:
        if token_store is not None:  # needs_reauth shows in `coa-sync runs` and `show` too
            token_store.on_needs_reauth = lambda reason: PleoConnections(TABLE).mark_needs_reauth(tenant_id, reason)
        runner.add_tenant(tenant, credentials, source_credentials, token_store=token_store,
                          target_credentials=target_credentials)
        try:
            result = runner.run(tenant_id, dry_run=getattr(args, "dry_run", False))
        except (ReauthRequired, OAuthFileError) as exc:
            raise UsageError(str(exc), code="pleo_refused") from None
        except PleoRequestError as exc:
            raise UsageError(f"Pleo refused the request ({exc}); check --pleo-url, --company-id and credentials",
                             code="pleo_refused", status=exc.status) from None
        except PleoError as exc:
            raise UsageError(f"Pleo at {pleo_url} could not be read: {exc}", code="pleo_unreachable") from None
        except ConnectorRequestError as exc:
            raise UsageError(f"the accounting system refused the request ({exc}); check its URL, settings and "
                             "credentials", code="source_refused", status=exc.status) from None
        except ConnectorError as exc:
            raise UsageError(f"the accounting system could not be read: {exc}", code="source_unreachable") from None
    _print(result, args.json, getattr(args, "full", False))
    incomplete = result.failed or result.plan.errors or result.record.held or result.record.unsupported \
        or result.pending
    return EXIT_INCOMPLETE if incomplete else EXIT_OK


def _print(result: RunResult, as_json: bool, full: bool) -> None:
    if as_json:
        print(json.dumps(result.to_json()))
        return
    print(plan_table(result, full))
    print()
    print(result_text(result))


def _progress(message: str) -> None:
    print(f"[coa-sync] {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
