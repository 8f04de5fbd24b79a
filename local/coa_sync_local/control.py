"""Where the run-control commands (runs, show, diff, approve, dlq, tenants, status) find runs and
tenants: the local embedded default (moto, loaded from the state directory) or a deployed stack.

Both give the same stores, so each command is written once against `Deployment`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from coa_sync import keys, wiring
from coa_sync.adapters.events import RunEvents
from coa_sync.adapters.ledger import Ledger
from coa_sync.adapters.pleo_connection import PleoConnections
from coa_sync.adapters.queues import ActionQueue, DeadLetterQueue
from coa_sync.adapters.snapshots import SnapshotStore
from coa_sync.adapters.tenants import TenantStore
from coa_sync.models import DeadLetter, Manifest, Plan, RunRecord, SourceColumns, SourceSnapshot
from coa_sync.pipeline import connect as pipeline_connect
from coa_sync.pipeline.approve import CheckPleo
from coa_sync.pipeline.runs import Finished
from coa_sync.settings import PleoSettings

from coa_sync_local import runner as local
from coa_sync_local.state import LocalState

# The stack outputs a deployment is found by (template.yaml's Outputs).
STACK_OUTPUTS = ("SnapshotBucketName", "TenantsTableName", "ActionsQueueUrl", "ActionsDeadLetterQueueUrl")
EVENT_BUS = "default"


class DeploymentError(RuntimeError):
    """The deployment could not be reached or is not a coa-sync stack."""


@dataclass
class Deployment:
    name: str  # for messages: "local state in ~/.local/state/coa-sync" or "stack coa-sync"
    tenants: TenantStore
    ledger: Ledger
    files: SnapshotStore
    actions: ActionQueue
    dead_letters: DeadLetterQueue
    finished: Finished
    connections: PleoConnections
    # Does Pleo answer with a tenant's credentials? (approve asks before it releases anything)
    check_pleo: CheckPleo
    # Local only: applies queued actions now, as the deployed writer does by itself.
    runner: local.LocalRunner | None = None
    # A stack only (the local state keeps no secrets): its Secrets Manager, and the prefix its functions may read.
    secrets: Any | None = None
    secrets_prefix: str | None = None

    def find_run(self, run_id: str, tenant_id: str | None = None) -> RunRecord:
        for candidate in self._tenant_ids(tenant_id):
            if record := self.ledger.get(candidate, run_id):
                return record
        where = f"tenant {tenant_id!r}" if tenant_id else "any tenant"
        raise LookupError(f"no run {run_id} for {where} in the {self.name}")

    def runs(self, tenant_id: str | None = None, limit: int = 20) -> list[RunRecord]:
        """The most recent runs, newest first, of one tenant or of all."""
        records = [record for candidate in self._tenant_ids(tenant_id) for record in self.ledger.runs(candidate, limit)]
        return sorted(records, key=lambda record: record.run_id, reverse=True)[:limit]

    def plan(self, record: RunRecord) -> Plan | None:
        """The run's plan; None if the run never got that far."""
        return self._get(keys.plan_key(record.tenant_id, record.run_id), Plan)

    def source(self, record: RunRecord) -> SourceSnapshot:
        manifest = self._get(keys.manifest_key(record.tenant_id, record.run_id), Manifest)
        if manifest is None:
            raise LookupError(f"run {record.run_id} has no snapshots (status {record.status}: {record.error})")
        return self.files.get(manifest.source_key, SourceColumns).snapshot()

    def needs_reauth(self, tenant_ids: set[str]) -> dict[str, dict[str, str]]:
        """Of these tenants, those whose Pleo authorisation was refused for good, with their status."""
        found = {tenant_id: self.connections.status(tenant_id) for tenant_id in sorted(tenant_ids)}
        return {tenant_id: status for tenant_id, status in found.items()
                if status is not None and status["status"] == "needs_reauth"}

    def queued(self) -> dict[str, int] | None:
        """Actions waiting in the actions queue, by run; None where the queue cannot be read through (a stack)."""
        if self.runner is None:
            return None
        return {run: count for (_, run), count in self.runner.queued().items()}

    def letters(self, run_id: str | None = None) -> list[DeadLetter]:
        return [letter for letter in self.dead_letters.letters()
                if run_id is None or (letter.message is not None and letter.message.run_id == run_id)]

    def _tenant_ids(self, tenant_id: str | None) -> list[str]:
        return [tenant_id] if tenant_id else [tenant.tenant_id for tenant in self.tenants.all()]

    def _get(self, key: str, model: Any) -> Any:
        try:
            return self.files.get(key, model)
        except ClientError as exc:
            if exc.response["Error"]["Code"] in ("NoSuchKey", "404"):
                return None
            raise


@contextmanager
def local_deployment(state_dir: Path, pleo_url: str | None = None, progress: local.Progress | None = None,
                     ) -> Iterator[Deployment]:
    with LocalState(state_dir) as state, \
            local.LocalRunner(local.RunnerOptions(pleo_url=pleo_url), progress=progress, state=state) as runner:
        files = SnapshotStore(local.BUCKET, runner.s3)
        tenants = TenantStore(local.TABLE)
        yield Deployment(
            name=f"local state in {state_dir}",
            tenants=tenants,
            ledger=Ledger(local.TABLE),
            files=files,
            actions=ActionQueue(runner.actions_url, runner.sqs),
            dead_letters=DeadLetterQueue(runner.dlq_url, runner.sqs),
            finished=wiring.finisher(files, RunEvents(EVENT_BUS, boto3.client("events", region_name=local.REGION))),
            connections=PleoConnections(local.TABLE),
            # The runner's environment names the Pleo to apply to (--pleo-url); the command gives the credentials.
            check_pleo=wiring.pleo_check(PleoSettings(), tenants.get) if pleo_url else _no_pleo,
            runner=runner,
        )


@contextmanager
def aws_deployment(stack: str, profile: str | None = None, region: str | None = None) -> Iterator[Deployment]:
    """A deployed stack, found by its outputs, with the caller's AWS credentials (profile/region)."""
    session, config, outputs, parameters = _stack(stack, profile, region, STACK_OUTPUTS)
    sqs = session.client("sqs", config=config)
    files = SnapshotStore(outputs["SnapshotBucketName"], session.client("s3", config=config))
    dynamodb = session.resource("dynamodb", config=config)
    tenants = TenantStore(outputs["TenantsTableName"], dynamodb)
    secrets = session.client("secretsmanager", config=config)
    yield Deployment(
        name=f"stack {stack}",
        tenants=tenants,
        ledger=Ledger(outputs["TenantsTableName"], dynamodb),
        files=files,
        actions=ActionQueue(outputs["ActionsQueueUrl"], sqs),
        dead_letters=DeadLetterQueue(outputs["ActionsDeadLetterQueueUrl"], sqs),
        finished=wiring.finisher(files, RunEvents(EVENT_BUS, session.client("events", config=config))),
        connections=PleoConnections(outputs["TenantsTableName"], dynamodb),
        check_pleo=_stack_pleo_check(stack, parameters, outputs, tenants, secrets),
        secrets=secrets,
        secrets_prefix=outputs.get("SecretsPrefix"),
    )


def _stack_pleo_check(stack: str, parameters: dict[str, str], outputs: dict[str, str], tenants: TenantStore,
                      secrets: Any) -> CheckPleo:
    """The check the stack's own webhook makes: the stack's PleoBaseUrl, the tenant's secret (read here with
    the caller's AWS credentials)."""
    if "PleoBaseUrl" not in parameters:
        def no_url(_tenant_id: str, _external_id: str) -> None:
            raise DeploymentError(f"stack {stack!r} has no PleoBaseUrl parameter to check Pleo with")
        return no_url
    # Secrets are read through Powertools (as the functions read them), with the caller's credentials.
    from aws_lambda_powertools.utilities import parameters as powertools

    powertools.base.DEFAULT_PROVIDERS["secrets"] = powertools.SecretsProvider(boto3_client=secrets)
    settings = PleoSettings(pleo_base_url=parameters["PleoBaseUrl"], tenants_table=outputs["TenantsTableName"],
                            snapshot_bucket=outputs["SnapshotBucketName"])
    return wiring.pleo_check(settings, tenants.get)


def _no_pleo(_tenant_id: str, _external_id: str) -> None:
    raise DeploymentError("this command does not reach Pleo: give --pleo-url")


def connect_link(stack: str, profile: str | None, region: str | None, tenant_id: str, expires: int) -> str:
    """A signed link that connects the deployed tenant to Pleo by OAuth (coa_sync.pipeline.connect)."""
    session, config, outputs, _ = _stack(stack, profile, region, ("WebhookUrl", "SecretsPrefix", "TenantsTableName"))
    if TenantStore(outputs["TenantsTableName"], session.resource("dynamodb", config=config)).get(tenant_id) is None:
        raise DeploymentError(f"no tenant {tenant_id!r} in stack {stack}")
    name = f"{outputs['SecretsPrefix']}pleo-oauth"
    try:
        secret = json.loads(session.client("secretsmanager", config=config).get_secret_value(
            SecretId=name)["SecretString"])
        key = secret["linkKey"]
    except (BotoCoreError, ClientError, ValueError, KeyError, TypeError) as exc:
        raise DeploymentError(f"stack {stack!r} has no secret {name} with the OAuth client and linkKey: "
                              f"{type(exc).__name__} (docs/deploy.md, Connect a tenant by OAuth 2.0)") from None
    return pipeline_connect.connect_link(outputs["WebhookUrl"], key, tenant_id, expires)


def _stack(stack: str, profile: str | None, region: str | None, needed: tuple[str, ...]
           ) -> tuple[boto3.Session, Config, dict[str, str], dict[str, str]]:
    """(session, client config, outputs, parameters) of a deployed coa-sync stack that has the `needed` outputs."""
    try:
        session = boto3.Session(profile_name=profile, region_name=region)
        config = Config(retries={"mode": "standard", "max_attempts": 5})
        described = session.client("cloudformation", config=config).describe_stacks(StackName=stack)
    except (BotoCoreError, ClientError) as exc:
        raise DeploymentError(f"cannot read stack {stack!r}: {exc}") from None
    outputs = {output["OutputKey"]: output["OutputValue"] for output in described["Stacks"][0].get("Outputs", [])}
    if missing := [name for name in needed if name not in outputs]:
        raise DeploymentError(f"stack {stack!r} is not a coa-sync stack: no output {', '.join(missing)}")
    parameters = {p["ParameterKey"]: p["ParameterValue"] for p in described["Stacks"][0].get("Parameters", [])}
    return session, config, outputs, parameters
