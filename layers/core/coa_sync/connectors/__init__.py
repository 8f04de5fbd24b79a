"""Connectors to accounting systems, behind one interface, chosen by a tenant's source `kind`.

    source_for(config, deps) -> SourceConnector   # .read_accounts() -> SourceSnapshot
    target_for(config, deps) -> TargetConnector   # .capabilities, .write(actions) -> WriteResult

`config` is the tenant's source config (models.SourceConfig: FileSource, ThredfiSource,
DualEntrySource, StackOneSource), or its target (models.TargetConfig, of the same models);
credentials come from Secrets Manager by its `secretName`; rate budgets from `deps.budget` (per
process by default); every wait is bounded by `deps.deadline`. What each target can do is
coa_sync.targets.CAPABILITIES. Use a connector as a context manager
(`contextlib.closing`) or call close().
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from coa_sync import deadline as deadlines
from coa_sync.adapters.secrets import secret_json
from coa_sync.connectors.base import (
    ConnectorError,
    ConnectorRequestError,
    ConnectorResponseError,
    ConnectorTransientError,
    SourceConnector,
    TargetConnector,
    WriteResult,
    read_secret_model,
)
from coa_sync.connectors.file import FileConnector, ObjectReader
from coa_sync.models import DualEntrySource, FileSource, StackOneSource, ThredfiSource
from coa_sync.targets import Capabilities
from coa_sync.tokenbucket import BudgetFactory, bucket_for

if TYPE_CHECKING:
    from coa_sync.connectors import dualentry, stackone, thredfi


@dataclass(frozen=True)
class ConnectorDeps:
    """What connectors are built with: an S3 reader for files, secrets, rate budgets, the caller's deadline,
    and test seams."""

    files: ObjectReader | None = None
    secret: Callable[[str], Any] = secret_json
    budget: BudgetFactory = bucket_for  # (key, Rate) -> RateBudget: swap in a budget shared across containers
    deadline: deadlines.Deadline = deadlines.NONE
    options: dict[str, Any] = field(default_factory=dict)  # e.g. transport, sleep, max_attempts (tests)


def _file(config: FileSource, deps: ConnectorDeps) -> FileConnector:
    return FileConnector(config, deps.files)


def _thredfi(config: ThredfiSource, deps: ConnectorDeps) -> thredfi.ThredfiConnector:
    from coa_sync.connectors import thredfi

    credentials = read_secret_model(deps.secret(config.secret_name), thredfi.ThredfiCredentials, config.secret_name,
                                    "partnerUuid and apiKey")
    return thredfi.ThredfiConnector(config, credentials, budget=deps.budget, deadline=deps.deadline,
                                     **deps.options)


def _dualentry(config: DualEntrySource, deps: ConnectorDeps) -> dualentry.DualEntryConnector:
    from coa_sync.connectors import dualentry

    credentials = read_secret_model(deps.secret(config.secret_name), dualentry.DualEntryCredentials,
                                    config.secret_name, "apiKey")
    return dualentry.DualEntryConnector(config, credentials, budget=deps.budget, deadline=deps.deadline,
                                         **deps.options)


def _stackone(config: StackOneSource, deps: ConnectorDeps) -> stackone.StackOneConnector:
    from coa_sync.connectors import stackone

    credentials = read_secret_model(deps.secret(config.secret_name), stackone.StackOneCredentials,
                                    config.secret_name, "apiKey")
    return stackone.StackOneConnector(config, credentials, budget=deps.budget, deadline=deps.deadline,
                                       **deps.options)


# kind -> factory. Every kind is a source; every API kind a target too, which takes the actions its
# capabilities list (StackOne none: it is read-only). Each factory imports its system's module: a run loads
# the connectors its tenant uses.
SOURCES: dict[str, Callable[[Any, ConnectorDeps], SourceConnector]] = {
    "file": _file, "thredfi": _thredfi, "dualentry": _dualentry, "stackone": _stackone,
}
TARGETS: dict[str, Callable[[Any, ConnectorDeps], TargetConnector]] = {
    "thredfi": _thredfi, "dualentry": _dualentry, "stackone": _stackone,
}
# Why a source kind cannot be a target.
READ_ONLY = {"file": "a file is read, never written"}


def source_for(config: Any, deps: ConnectorDeps | None = None) -> SourceConnector:
    try:
        factory = SOURCES[config.kind]
    except KeyError:
        raise ValueError(f"no source connector for kind {config.kind!r}; known: {', '.join(SOURCES)}") from None
    return factory(config, deps or ConnectorDeps())


def target_for(config: Any, deps: ConnectorDeps | None = None) -> TargetConnector:
    try:
        factory = TARGETS[config.kind]
    except KeyError:
        why = READ_ONLY.get(config.kind, "no connector writes to it")
        raise ValueError(f"{config.kind!r} cannot be a target: {why}; targets: {', '.join(TARGETS)}") from None
    return factory(config, deps or ConnectorDeps())


__all__ = [
    "READ_ONLY", "SOURCES", "TARGETS", "Capabilities", "ConnectorDeps", "ConnectorError", "ConnectorRequestError",
    "ConnectorResponseError", "ConnectorTransientError", "SourceConnector", "TargetConnector", "WriteResult",
    "source_for", "target_for",
]
