"""An accounting system's connector as the writer's target (coa_sync.pipeline.write.Target).

The writer speaks in the Pleo client's terms (batch creates, a PUT per update or archive); this
turns each call into the connector's actions and its answer back: an action the system refused
(or cannot take) raises or fails with the connector's reasons, which go to the DLQ; a request
still failing after retries, or out of rate budget, is TargetError (tried again on a later
delivery); OutOfTimeError passes through (the writer hands the rest back). `account_id` is the
key the target's chart was read with (coa_sync.targets.as_target), which each connector
addresses its accounts by.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from coa_sync.adapters.pleo import BatchResult, NewAccount
from coa_sync.connectors.base import ConnectorError, ConnectorRequestError, TargetConnector, WriteResult
from coa_sync.models import AccountFields, Action, ActionKind, PleoAccount
from coa_sync.targets import TargetError, TargetRequestError


class ConnectorTarget:
    def __init__(self, connector: TargetConnector) -> None:
        self._connector = connector
        self.max_batch = connector.capabilities.max_batch

    def close(self) -> None:
        self._connector.close()

    def batch_create(self, company_id: str, accounts: Sequence[NewAccount]) -> BatchResult:
        result = self._write([Action(kind=ActionKind.CREATE, external_id=account.external_id, desired=account.fields)
                              for account in accounts])
        return BatchResult(created=dict.fromkeys(result.applied), failed=result.failed)

    def put(self, account_id: str, fields: AccountFields, *, archived: bool,
            metadata: dict[str, Any] | None = None) -> None:
        """An archive, or an update (which no connector takes: it fails with the reason)."""
        kind = ActionKind.ARCHIVE if archived else ActionKind.UPDATE
        result = self._write([Action(kind=kind, external_id=account_id, desired=fields)])
        if account_id not in result.applied:
            raise TargetRequestError(0, "; ".join(result.failed.get(account_id) or ["not applied"]))

    def find(self, company_id: str, external_id: str) -> PleoAccount | None:
        """Never asked: a connector settles a create delivered twice itself and never answers
        EXTERNAL_ID_ALREADY_EXISTS, the one failure the writer looks an account up for."""
        return None

    def _write(self, actions: list[Action]) -> WriteResult:
        try:
            return self._connector.write(actions)
        except ConnectorRequestError as exc:  # a refusal outside any one action (a token request, say)
            raise TargetRequestError(exc.status, str(exc)) from None
        except ConnectorError as exc:
            raise TargetError(str(exc)) from None
