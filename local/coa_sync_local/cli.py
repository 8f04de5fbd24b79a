"""coa-sync: the command line.

Exit codes (other tools script against them): 0 everything planned was applied;
1 some items failed, were set aside or were held back by the mass-archive guard (each is
reported); 2 bad input or configuration.
"""

from __future__ import annotations

import argparse
import importlib.resources
import json
import sys
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

from coa_sync.adapters.pleo import PleoError, PleoRequestError
from coa_sync.adapters.pleo_connection import PleoConnections
from coa_sync.connectors import ConnectorError, ConnectorRequestError
from coa_sync.models import ArchiveGuard, FileSource, SourceConfig, Tenant
from coa_sync.sources import SourceFormatError, read_source
from coa_sync.tokens import ReauthRequired
from pydantic import ValidationError

from coa_sync_local import connect as oauth_connect
from coa_sync_local import control_cli, pleo_options, source_options, tenants_cli
from coa_sync_local.oauth_file import FileTokenStore, OAuthFileError
from coa_sync_local.render import plan_table, result_text
from coa_sync_local.runner import TABLE, LocalRunner, RunnerOptions, RunResult
from coa_sync_local.signals import Stopped, stopping_on_signals
from coa_sync_local.state import LocalState, StateError, default_directory

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2
DEMO_COMPANY = "12abc3d4-e567-890e-1234-abc56e78fabc"


class UsageError(Exception):
    """Bad input or configuration: exit 2 with this message."""


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["emulator"]:  # its options are the emulator's own
        from coa_sync_local.emulators.pleo import main as emulator_main

        return emulator_main(argv[1:])
    args = _parser().parse_args(argv)
    try:
        with stopping_on_signals():
            return args.command(args)
    except (UsageError, StateError) as exc:
        print(f"coa-sync: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Stopped as stopped:
        print(f"coa-sync: stopped by {stopped}; what was done so far is kept (see: coa-sync runs)", file=sys.stderr)
        return stopped.exit_code
    except KeyboardInterrupt:
        print("coa-sync: interrupted", file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="coa-sync", description="Chart of Accounts sync into Pleo.")
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
    command.add_argument("--pleo-url", required=True, metavar="URL", help="Pleo API base URL")
    command.add_argument("--company-id", required=True, metavar="ID", help="Pleo companyId")
    pleo_options.add_arguments(command.add_argument_group("Pleo credentials", pleo_options.HELP))
    command.add_argument("--tenant", default="local", help="tenant id used for this run's files (default: local)")
    command.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    _add_state_argument(command)
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
    try:
        credentials, token_store = pleo_options.credentials(args)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if source_options.wants_api_source(args):
        if args.source:
            raise UsageError("give --source FILE for a file, or --source-kind/--source-config, not both")
        try:
            source, source_credentials = source_options.source_from_args(args)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        return _run(source, args.pleo_url, args.company_id, credentials, args.tenant, dry_run=args.dry_run,
                    as_json=args.json, state_dir=args.state_dir, archive_guard=_archive_guard(args),
                    source_credentials=source_credentials, token_store=token_store)
    if args.source is None:
        raise UsageError("--source FILE is required (or --source-kind thredfi|dualentry|stackone)")
    _check_source(args.source)
    return _run(args.source.resolve(), args.pleo_url, args.company_id, credentials, args.tenant,
                dry_run=args.dry_run, as_json=args.json, state_dir=args.state_dir, archive_guard=_archive_guard(args),
                token_store=token_store)


def _connect(args: argparse.Namespace) -> int:
    try:
        app = oauth_connect.app_from_args(args)
        out = args.out.expanduser().resolve()
        oauth_connect.connect(app, out, open_browser=not args.no_browser, timeout=args.timeout, say=_progress)
    except (ValueError, oauth_connect.ConnectError) as exc:
        raise UsageError(str(exc)) from None
    print(f"Connected to Pleo: the tokens are in {out} (mode 0600); sync with --pleo-oauth {out}")
    return EXIT_OK


def _archive_guard(args: argparse.Namespace) -> ArchiveGuard | None:
    given = {"min_archives": args.archive_guard_min, "percent": args.archive_guard_percent}
    if all(value is None for value in given.values()):
        return None
    try:
        return ArchiveGuard(**{name: value for name, value in given.items() if value is not None})
    except ValidationError as exc:
        raise UsageError(f"--archive-guard-min/--archive-guard-percent: {exc.errors()[0]['msg']}") from None


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
        code = _run(source, pleo.url, DEMO_COMPANY, {"apiKey": api_key}, "demo", dry_run=False, as_json=args.json,
                    state_dir=args.state_dir, source_credentials=source_credentials)
        if not args.json:
            print("\nPleo now holds (active):")
            for account in pleo.accounts(DEMO_COMPANY):
                if not account["archived"]:
                    print(f"  {account['code'] or '':>6}  {account['name']}  ({account['externalId']})")
            print(f"\nDemo finished in {time.monotonic() - started:.1f}s. The run is kept in the local state: "
                  "see it with `coa-sync runs` and `coa-sync show RUN_ID`.")
    return code


def _check_source(path: Path) -> None:
    """Read the file once up front, so a file that cannot be read at all is a usage error."""
    try:
        read_source(path.read_bytes(), path.name)
    except OSError as exc:
        raise UsageError(f"cannot read source {path}: {exc.strerror}") from None
    except SourceFormatError as exc:
        raise UsageError(str(exc)) from None


def _run(source: Path | SourceConfig, pleo_url: str, company_id: str, credentials: dict[str, str], tenant_id: str,
         *, dry_run: bool, as_json: bool, state_dir: Path | None, archive_guard: ArchiveGuard | None = None,
         source_credentials: dict[str, str] | None = None, token_store: FileTokenStore | None = None) -> int:
    if not pleo_url.startswith(("http://", "https://")):
        raise UsageError(f"--pleo-url must be an http(s) URL, not {pleo_url!r}")
    tenant = Tenant(tenant_id=tenant_id, company_id=company_id, pleo_secret_name=f"coa-sync/{tenant_id}/pleo",
                    source=FileSource(uri=str(source)) if isinstance(source, Path) else source,
                    archive_guard=archive_guard)
    with LocalState(state_dir or default_directory()) as state, \
            LocalRunner(RunnerOptions(pleo_url=pleo_url), progress=_progress, state=state) as runner:
        if token_store is not None:  # needs_reauth shows in `coa-sync runs` and `show` too
            token_store.on_needs_reauth = lambda reason: PleoConnections(TABLE).mark_needs_reauth(tenant_id, reason)
        runner.add_tenant(tenant, credentials, source_credentials, token_store=token_store)
        try:
            result = runner.run(tenant_id, dry_run=dry_run)
        except (ReauthRequired, OAuthFileError) as exc:
            raise UsageError(str(exc)) from None
        except PleoRequestError as exc:
            raise UsageError(f"Pleo refused the request ({exc}); check --pleo-url, --company-id and credentials") \
                from None
        except PleoError as exc:
            raise UsageError(f"Pleo at {pleo_url} could not be read: {exc}") from None
        except ConnectorRequestError as exc:
            raise UsageError(f"the accounting system refused the request ({exc}); check its URL, settings and "
                             "credentials") from None
        except ConnectorError as exc:
            raise UsageError(f"the accounting system could not be read: {exc}") from None
    _print(result, as_json)
    incomplete = result.failed or result.plan.errors or result.plan.held or result.pending
    return EXIT_FAILED if incomplete else EXIT_OK


def _print(result: RunResult, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result.to_json()))
        return
    print(plan_table(result.plan))
    print()
    print(result_text(result))


def _progress(message: str) -> None:
    print(f"[coa-sync] {message}", file=sys.stderr, flush=True)




if __name__ == "__main__":
    sys.exit(main())
