"""Runs started and looked up over the signed webhook.

Every answer to a caller who has not proven the tenant's secret is the same 401, whether
the tenant exists or not, so the webhook never tells which tenants exist.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from coa_sync import signing
from coa_sync.adapters.ledger import RunInProgressError
from coa_sync.models import Model, RunRecord, RunRequest, Tenant, Trigger, new_run_id
from coa_sync.pipeline.approve import ApprovalError, PleoUnreachableError
from coa_sync.pipeline.runs import RunLedger

MAX_BODY_BYTES = 16 * 1024
# A secret nobody knows: unknown tenants are checked against it, so they take as long to refuse.
_NO_SECRET = secrets.token_hex(32)


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any] = field(default_factory=dict)


class StartOptions(Model):
    dry_run: bool = False


class ApproveBody(Model):
    """Names the run again: the signature covers the body only, so the body must say which run."""

    run_id: str


@dataclass
class Webhook:
    tenant: Callable[[str], Tenant | None]
    secret: Callable[[str], str]  # secret name -> value
    ledger: RunLedger
    first_use: Callable[[str, str, int], bool]  # (tenant, signature, ttl) -> not seen before
    start: Callable[[RunRequest], None]
    # (tenant, run_id) -> the reopened run; raises ApprovalError (PleoUnreachableError), LookupError or
    # RunInProgressError
    approve: Callable[[str, str], RunRecord]
    lock_ttl_seconds: int
    # tenant -> its Pleo OAuth connection ({"status": "connected" | "needs_reauth", ...}), None without one
    connection: Callable[[str], dict[str, str] | None] = lambda _tenant_id: None

    def start_run(self, tenant_id: str, body: bytes, headers: Mapping[str, str], now: float) -> Answer:
        tenant = self._admitted(tenant_id, body, headers, now)
        if isinstance(tenant, Answer):
            return tenant
        if not tenant.enabled:
            return Answer(404, {"message": "no such tenant"})
        # An empty body is refused: a GET's signature (over no body) must not start a run.
        try:
            options = StartOptions.model_validate_json(body)
        except ValidationError as exc:
            return Answer(400, {"message": f"invalid body (a JSON object, e.g. {{}}): {exc.errors()[0]['msg']}"})
        return self.launch(tenant_id, "webhook", options.dry_run)

    def launch(self, tenant_id: str, trigger: Trigger, dry_run: bool = False) -> Answer:
        """Start a run of the tenant (202), unless one is in progress (409)."""
        run_id = new_run_id()
        try:
            self.ledger.acquire(tenant_id, run_id, self.lock_ttl_seconds)
        except RunInProgressError as busy:
            return Answer(409, {"message": "a run is in progress", "runId": busy.run_id})
        try:
            self.start(RunRequest(tenant_id=tenant_id, trigger=trigger, run_id=run_id, dry_run=dry_run))
        except Exception:
            self.ledger.release(tenant_id, run_id)
            raise
        return Answer(202, {"runId": run_id, "tenantId": tenant_id, "dryRun": dry_run})

    def approve_run(self, tenant_id: str, run_id: str, body: bytes, headers: Mapping[str, str], now: float) -> Answer:
        """Release the archives the mass-archive guard held back in the run (see coa_sync.pipeline.approve)."""
        refused = self._admitted(tenant_id, body, headers, now)
        if isinstance(refused, Answer):
            return refused
        try:
            named = ApproveBody.model_validate_json(body).run_id
        except ValidationError:
            named = None
        if named != run_id:
            return Answer(400, {"message": f'the body must be {{"runId": "{run_id}"}}, naming the run in the path'})
        try:
            record = self.approve(tenant_id, run_id)
        except LookupError:
            return Answer(404, {"message": "no such run"})
        except PleoUnreachableError as exc:  # nothing was released: the same call can be made again
            return Answer(502, {"message": str(exc)})
        except ApprovalError as exc:
            return Answer(409, {"message": str(exc)})
        except RunInProgressError as busy:
            return Answer(409, {"message": "another run is in progress", "runId": busy.run_id})
        return Answer(200, record.model_dump(mode="json"))

    def run_status(self, tenant_id: str, run_id: str, headers: Mapping[str, str], now: float) -> Answer:
        if self._authenticated(tenant_id, b"", headers, now) is None:
            return _unauthorized()
        record = self.ledger.get(tenant_id, run_id)
        if record is None:
            return Answer(404, {"message": "no such run"})
        connection = self.connection(tenant_id)
        return Answer(200, record.model_dump(mode="json") | ({"pleoConnection": connection} if connection else {}))

    def _admitted(self, tenant_id: str, body: bytes, headers: Mapping[str, str], now: float) -> Tenant | Answer:
        """A POST's tenant, or the answer refusing it: too big, not signed by the tenant, or a replay."""
        if len(body) > MAX_BODY_BYTES:
            return Answer(413, {"message": f"body over {MAX_BODY_BYTES} bytes"})
        tenant = self._authenticated(tenant_id, body, headers, now)
        if tenant is None:
            return _unauthorized()
        if not self.first_use(tenant_id, headers.get(signing.SIGNATURE_HEADER, ""), 2 * signing.TOLERANCE_SECONDS):
            return Answer(409, {"message": "this signature was used before: sign each request afresh"})
        return tenant

    def _authenticated(self, tenant_id: str, body: bytes, headers: Mapping[str, str], now: float) -> Tenant | None:
        try:
            tenant = self.tenant(tenant_id)
        except ValueError:
            tenant = None
        secret = _NO_SECRET
        if tenant is not None and tenant.webhook_secret_name:
            try:
                secret = self.secret(tenant.webhook_secret_name)
            except ValueError:  # the secret is missing or malformed: nobody can be let in
                secret = _NO_SECRET
        try:
            signing.verify(secret, headers.get(signing.TIMESTAMP_HEADER), headers.get(signing.SIGNATURE_HEADER),
                           body, now)
        except signing.SignatureError:
            return None
        return tenant if secret != _NO_SECRET else None


def _unauthorized() -> Answer:
    return Answer(401, {"message": "missing, invalid or expired signature"})
