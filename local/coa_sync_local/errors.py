"""The command line's contract with scripts: exit codes, and how a failure is told.

    0    everything planned was applied (or the command did what it was asked)
    1    the run ended, but some items failed, were set aside or were held back (each is reported)
    2    bad input or configuration (an option, the source file, credentials Pleo refused, a run
         that cannot be approved, ...): nothing was changed
    3    an unexpected error (a bug): the message and a traceback on stderr
    130, 143, 129  stopped by SIGINT (Ctrl-C), SIGTERM or SIGHUP (what was done so far is kept)
    141  stdout was closed early (`coa-sync dlq list | head`): the rest was not printed

README.md has the same table.

A failure prints `coa-sync: error: <message>` on stderr (a stop: `coa-sync: stopped by SIGTERM; ...`) and,
under `--json`, one object on stdout:
`{"error": {"message", "code", "option"?, ...}}` (`code` says what kind of failure, `option` names
the option that was wrong). Commands raise UsageError (or an exception listed in `describe`);
`cli.main` tells it, in one place.
"""

from __future__ import annotations

import json
import sys
import traceback
from typing import Any

EXIT_OK, EXIT_INCOMPLETE, EXIT_BAD_INPUT, EXIT_INTERNAL = 0, 1, 2, 3
EXIT_INTERRUPTED, EXIT_BROKEN_PIPE = 130, 141


class UsageError(Exception):
    """Bad input or configuration: exit 2. `option` names the option at fault; `code` the kind of failure."""

    def __init__(self, message: str, *, code: str = "bad_input", option: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.option = option
        self.details = details

    def to_json(self) -> dict[str, Any]:
        option = {"option": self.option} if self.option else {}
        return {"error": {"message": self.message, "code": self.code, **option, **self.details}}


def describe(exc: BaseException) -> tuple[UsageError, int]:
    """What a command's exception tells the user, and the exit code."""
    from coa_sync.adapters.ledger import RunInProgressError
    from coa_sync.adapters.tenants import TenantConfigError
    from coa_sync.pipeline.approve import ApprovalError

    from coa_sync_local.control import DeploymentError
    from coa_sync_local.signals import Stopped
    from coa_sync_local.state import StateBusyError, StateError

    if isinstance(exc, UsageError):
        return exc, EXIT_BAD_INPUT
    if isinstance(exc, Stopped):
        return UsageError(f"stopped by {exc}; what was done so far is kept (see: coa-sync runs)",
                          code="stopped"), exc.exit_code
    if isinstance(exc, KeyboardInterrupt):
        return UsageError("interrupted", code="interrupted"), EXIT_INTERRUPTED
    known = {StateBusyError: "state_busy", StateError: "state", LookupError: "not_found",
             ApprovalError: "not_approvable", RunInProgressError: "run_in_progress",
             DeploymentError: "stack_unreadable", TenantConfigError: "bad_tenant"}
    for kind, code in known.items():
        if isinstance(exc, kind):
            # A KeyError's str() is the repr of its message: take the message itself.
            return UsageError(str(exc.args[0]) if isinstance(exc, LookupError) and exc.args else str(exc),
                              code=code), EXIT_BAD_INPUT
    return UsageError(f"unexpected error: {type(exc).__name__}: {exc}", code="internal"), EXIT_INTERNAL


def report(exc: BaseException, as_json: bool) -> int:
    """Tell the failure (stderr; and stdout under --json) and answer its exit code."""
    error, exit_code = describe(exc)
    if exit_code == EXIT_INTERNAL:
        traceback.print_exception(exc, file=sys.stderr)
    stopped = error.code in ("stopped", "interrupted")  # asked for, not an error
    print(f"coa-sync: {'' if stopped else 'error: '}{error.message}", file=sys.stderr)
    if as_json:
        print(json.dumps(error.to_json(), ensure_ascii=False))
    return exit_code
