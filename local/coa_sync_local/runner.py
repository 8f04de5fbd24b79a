"""The whole pipeline in one process, on moto, calling the very handlers Lambda runs.

Each run starts cold: the handler modules are loaded afresh from their folders with the run's
environment (and kept warm for the rest of the run). The event flow is AWS's own: the run's
request goes to fetch as an asynchronous invocation; fetch writes the manifest; S3 sends its
object-created notification (here to a queue the runner polls, as Lambda's S3 trigger would);
the diff queues actions; the runner plays SQS's event source mapping for the writer: batches of
up to `writer_batch_size`, partial batch responses, failed messages reappear after
`visibility_timeout` seconds (unless the writer handed them back sooner), redrive to the DLQ
after `max_receive_count` receives.

By default it is a kind AWS: every event once, no function killed, warm containers. With
`aws_faults` it plays AWS's failure modes instead (coa_sync_local.aws_faults): second copies of
events arriving late, first tries killed at a virtual deadline and retried as Lambda and SQS
would, cold starts, messages handed to two writers at once.
"""

from __future__ import annotations

import contextvars
import functools
import gc
import importlib.resources
import importlib.util
import json
import os
import sys
import threading
import time
import uuid
import warnings
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, redirect_stdout
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, TextIO

import boto3
from aws_lambda_powertools.utilities import parameters
from botocore.exceptions import ClientError
from coa_sync import tokenbucket, wiring
from coa_sync.adapters import aws
from coa_sync.adapters.events import RunEvents
from coa_sync.adapters.ledger import Ledger, RunInProgressError
from coa_sync.adapters.pleo import API_CALLS
from coa_sync.adapters.queues import DeadLetterQueue, read_dead_letter
from coa_sync.adapters.snapshots import SnapshotStore
from coa_sync.adapters.tenants import TenantStore
from coa_sync.keys import manifest_key, plan_key
from coa_sync.models import (
    ActionKind,
    DeadLetter,
    Manifest,
    Plan,
    PlanCounts,
    RunRecord,
    RunRequest,
    Tenant,
    new_run_id,
)
from coa_sync.observability import NAMESPACE, SERVICE, logger, metrics
from coa_sync.pipeline import runs
from coa_sync.tokens import ReauthRequired, TokenStore
from moto import mock_aws
from moto.dynamodb.models import dynamodb_backends
from moto.s3.models import s3_backends
from moto.sqs import models as sqs_models
from moto.sqs.models import Message, SQSBackend, sqs_backends

from coa_sync_local import aws_faults, moto_atomic, moto_speedups, writer_containers
from coa_sync_local.aws_faults import ASYNC_RETRIES, AwsFaults, LambdaKilled, VirtualDeadline
from coa_sync_local.environ import environment as _environment
from coa_sync_local.state import LocalState, World

REGION = "eu-west-1"
BUCKET = "coa-sync-snapshots-local"
TABLE = "coa-sync-tenants-local"
# The functions' settings name a Pleo URL, as deployed; a run whose target is another system never calls it.
NO_PLEO = "http://127.0.0.1:9"
ACTIONS_QUEUE = "coa-sync-actions"
DEAD_LETTER_QUEUE = "coa-sync-actions-dlq"
S3_EVENTS_QUEUE = "coa-sync-s3-events"
SQS_RECEIVE_MAX = 10
S3_PARTITION = "aws"  # moto keeps S3 per account and partition


@dataclass
class FailedItem:
    external_id: str | None
    action: str | None
    reasons: list[str]


@dataclass
class RunResult:
    manifest: Manifest
    plan: Plan
    record: RunRecord
    applied: PlanCounts
    failed: list[FailedItem]
    pending: int
    api_calls: dict[str, int]
    seconds: float
    superseded: int = 0  # older runs' actions this command settled without applying them
    queued: dict[tuple[str, str], int] = field(default_factory=dict)  # still queued at the end, by (tenant, run)
    faults: dict[str, int] = field(default_factory=dict)  # the AWS faults played (--aws-faults)

    @property
    def run_id(self) -> str:
        return self.manifest.run_id

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "tenant_id": self.manifest.tenant_id,
            "status": self.record.status,
            "dry_run": self.manifest.dry_run,
            "planned": self.record.planned.model_dump(),
            "applied": self.applied.model_dump(),
            "failed": [{"externalId": f.external_id, "action": f.action, "reasons": f.reasons} for f in self.failed],
            "errors": [error.model_dump() for error in self.plan.errors],
            "notes": [note.model_dump() for note in self.plan.notes],
            "held": {"archive": self.record.held, "reason": self.plan.held_reason},
            "unsupported": {"count": self.record.unsupported,
                            "reasons": {str(kind): reason for kind, reason in self.plan.unsupported_reasons.items()},
                            "actions": [{"externalId": a.external_id, "action": str(a.kind)}
                                        for a in self.plan.unsupported]},
            "pending": self.pending,
            "superseded": self.superseded,
            "queued": [{"tenantId": tenant, "runId": run, "actions": count}
                       for (tenant, run), count in sorted(self.queued.items())],
            "api_calls": {kind: self.api_calls.get(kind, 0) for kind in ("search", "batch_create", "put")},
            **({"aws_faults": self.faults} if self.faults else {}),
        }


@dataclass
class LambdaContext:
    """What Powertools reads from Lambda's context object; with a virtual deadline (aws_faults), the
    remaining time is the one its calls spend."""

    function_name: str
    timeout_seconds: float = 900.0
    memory_limit_in_mb: int = 1024
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    deadline: VirtualDeadline | None = None
    _ends_at: float = field(default=0.0)

    def __post_init__(self) -> None:
        self._ends_at = time.monotonic() + self.timeout_seconds

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{REGION}:123456789012:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        if self.deadline is not None:
            return self.deadline.remaining_millis()
        return max(0, int((self._ends_at - time.monotonic()) * 1000))


@dataclass(frozen=True)
class _Late:
    """The second copy of an event (duplicate-events): delivered once the runner's writer step reaches `step`."""

    step: int
    function: str
    event: dict[str, Any]


@dataclass
class RunnerOptions:
    pleo_url: str | None  # None: commands that never reach Pleo (history, DLQ listing)
    writer_batch_size: int = 1000
    # Messages are received for the writer's timeout; one that failed comes back after this many seconds.
    visibility_timeout: int = 2
    max_receive_count: int = 5
    rate_limit_per_minute: int = 500
    rate_window_seconds: float = 60.0
    pleo_max_attempts: int = 5
    writer_timeout_seconds: float = 900.0
    drain_timeout_seconds: float = 600.0
    # What the handlers print (Powertools' metric blobs, as Lambda's log stream would get): to stderr, or dropped.
    show_function_output: bool = False
    # Actions of each kind (and held archives) read back into RunResult.plan, None: all. A report shows the
    # first few, and a large plan read back whole is as big as the queue was; the counts are the ledger's.
    plan_rows: int | None = None
    # AWS's failure modes to play (aws_faults.FAULTS), each choice drawn from this seed.
    aws_faults: tuple[str, ...] = ()
    aws_faults_seed: int = 0
    # Writer containers at once (the event source mapping's MaximumConcurrency): 1 plays the writer in this
    # process; more run each in its own process (coa_sync_local.writer_containers).
    writers: int = 1

    def __post_init__(self) -> None:
        if self.writers < 1:
            raise ValueError(f"writers must be >= 1, got {self.writers}")
        if self.writers > 1 and self.aws_faults:
            raise ValueError("AWS faults are played with one writer container (--writers 1) only")


Progress = Callable[[str], None]


def _holding_moto(method: Callable[..., Any]) -> Callable[..., Any]:
    """The runner's own reads and writes of moto's backends, one at a time with every AWS call the writer
    containers make through moto's server (coa_sync_local.writer_containers.lock)."""

    @functools.wraps(method)
    def holding(*args: Any, **kwargs: Any) -> Any:
        with writer_containers.lock:
            return method(*args, **kwargs)

    return holding


class LocalRunner:
    """Use as a context manager: it owns a moto world for its lifetime."""

    def __init__(self, options: RunnerOptions, progress: Progress | None = None,
                 state: LocalState | None = None) -> None:
        """With a `state`, the world is loaded from it at the start and saved to it as the run goes:
        after fetch, after the diff, after each writer invocation, and at the end."""
        self.options = options
        self.progress = progress or (lambda _message: None)
        self.state = state
        self.faults = AwsFaults(options.aws_faults, options.aws_faults_seed)
        self._stack = ExitStack()
        self._warm: dict[str, ModuleType] = {}  # one container per function, unless cold-starts
        self._late: list[_Late] = []
        self._step = 0  # writer batches so far: the clock late copies arrive by
        self._settled = 0
        self._superseded = 0
        self._current_run: str | None = None
        self._checkpoints = False
        self.containers: writer_containers.WriterContainers | None = None  # with writers > 1

    # -- the local AWS world ---------------------------------------------------------------

    def __enter__(self) -> LocalRunner:
        try:
            self._start()
        except BaseException:
            self._stack.close()  # a failed start leaves no moto world or environment behind
            raise
        return self

    def _start(self) -> None:
        moto_speedups.apply()
        # Two writers at once (sqs-duplicates) share Powertools' one Metrics object, so one may flush what the
        # other cleared; metrics are off locally anyway.
        self._stack.enter_context(warnings.catch_warnings())
        warnings.filterwarnings("ignore", "No application metrics to publish", UserWarning)
        # Lambda's logs go to CloudWatch; here to stderr, so stdout carries only results.
        logger.registered_handler.setStream(sys.stderr)
        self._function_output = sys.stderr if self.options.show_function_output else \
            self._stack.enter_context(open(os.devnull, "w"))  # noqa: SIM115 - closed with the runner
        self._stack.enter_context(_environment(self._environment()))
        self._stack.enter_context(mock_aws())
        _forget_cached_clients()
        self._stack.callback(_forget_cached_clients)
        self.s3 = boto3.client("s3", region_name=REGION)
        self.sqs = boto3.client("sqs", region_name=REGION)
        self.s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
        self.dlq_url = self.sqs.create_queue(QueueName=DEAD_LETTER_QUEUE)["QueueUrl"]
        self.actions_url = self.sqs.create_queue(
            QueueName=ACTIONS_QUEUE,
            Attributes={
                "VisibilityTimeout": str(self.options.visibility_timeout),
                "RedrivePolicy": json.dumps({"deadLetterTargetArn": self._arn(self.dlq_url),
                                             "maxReceiveCount": self.options.max_receive_count}),
            },
        )["QueueUrl"]
        boto3.client("dynamodb", region_name=REGION).create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                  {"AttributeName": "sk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
            # What the local state reads to save only the items that changed (coa_sync_local.state).
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "KEYS_ONLY"},
        )
        if self.state is not None:  # before S3 notifies anyone: restored files are not new runs
            self.state.restore(self._world())
        self.events_url = self.sqs.create_queue(QueueName=S3_EVENTS_QUEUE)["QueueUrl"]
        self.s3.put_bucket_notification_configuration(
            Bucket=BUCKET,
            NotificationConfiguration={"QueueConfigurations": [{
                "QueueArn": self._arn(self.events_url),
                "Events": ["s3:ObjectCreated:*"],
                "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "runs/"},
                                                   {"Name": "suffix", "Value": "manifest.json"}]}},
            }]},
        )
        self._stack.enter_context(_environment({"ACTIONS_QUEUE_URL": self.actions_url,
                                                 "DEAD_LETTER_QUEUE_URL": self.dlq_url}))
        self._drain_events()  # S3 sends a test event when notifications are set up
        if self.state is not None:
            self._close_interrupted_runs()
        # Several callers share this moto at once (the writer's tenant threads, the diff's sends, the containers).
        moto_atomic.apply()
        self._stack.enter_context(writer_containers.in_process_calls_locked())
        if self.options.writers > 1:
            self.containers = writer_containers.WriterContainers(
                self.options.writers, timeout_seconds=self.options.writer_timeout_seconds,
                show_function_output=self.options.show_function_output)
            self._stack.callback(self.containers.close)

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        try:
            if self.state is not None:
                if exc_type is not None:  # stopped (a signal, an error) with a run still open
                    self._close_interrupted_runs()
                self._save()
        finally:
            self._stack.close()

    def _world(self) -> World:
        account = self.actions_url.rsplit("/", 2)[1]
        return World(s3=s3_backends[account][S3_PARTITION], bucket=BUCKET,
                     dynamodb=dynamodb_backends[account][REGION], table=TABLE,
                     sqs=sqs_backends[account][REGION], queues=(ACTIONS_QUEUE, DEAD_LETTER_QUEUE))

    @_holding_moto
    def _save(self) -> None:
        """Write what changed to the local state, if there is one (see coa_sync_local.state)."""
        if self.state is not None:
            self.state.save(self._world())

    def _close_interrupted_runs(self) -> None:
        """A lock in the state is a run whose command ended before the run did (the state's own
        lock rules out a live one): close it as failed, so the tenant can run again."""
        ledger = Ledger(TABLE)
        finished = wiring.finisher(SnapshotStore(BUCKET), RunEvents("default"))
        for tenant in TenantStore(TABLE).all():
            lock = ledger.lock(tenant.tenant_id)
            if lock is not None:
                runs.orphaned(ledger, tenant.tenant_id, lock.run_id,
                              "interrupted: the coa-sync command ended before the run did", finished)

    def _environment(self) -> dict[str, str]:
        return {
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "SNAPSHOT_BUCKET": BUCKET,
            "TENANTS_TABLE": TABLE,
            "PLEO_RATE_LIMIT_PER_MINUTE": str(self.options.rate_limit_per_minute),
            "PLEO_RATE_WINDOW_SECONDS": str(self.options.rate_window_seconds),
            "PLEO_MAX_ATTEMPTS": str(self.options.pleo_max_attempts),
            "MAX_RECEIVE_COUNT": str(self.options.max_receive_count),
            "ACTIONS_VISIBILITY_TIMEOUT_SECONDS": str(self.options.visibility_timeout),
            "LEFTOVER_VISIBILITY_SECONDS": "0",
            # The writer's wait for a tenant's budget, as long a share of the window as 5 s is of a minute.
            "PLEO_BUDGET_WAIT_SECONDS": str(5.0 * self.options.rate_window_seconds / 60.0),
            "POWERTOOLS_SERVICE_NAME": SERVICE,
            "POWERTOOLS_METRICS_NAMESPACE": NAMESPACE,
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_LOG_LEVEL": os.environ.get("POWERTOOLS_LOG_LEVEL", "WARNING"),
            "POWERTOOLS_METRICS_DISABLED": os.environ.get("POWERTOOLS_METRICS_DISABLED", "true"),
        } | ({"PLEO_BASE_URL": self.options.pleo_url} if self.options.pleo_url else {})

    def _arn(self, queue_url: str) -> str:
        attributes = self.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
        return attributes["Attributes"]["QueueArn"]

    def add_tenant(self, tenant: Tenant, credentials: dict[str, str],
                   source_credentials: dict[str, str] | None = None, token_store: TokenStore | None = None,
                   target_credentials: dict[str, Any] | None = None) -> None:
        """Register a tenant and keep its Pleo (or target system's) and accounting-system credentials in (moto's)
        Secrets Manager.

        With a `token_store` (`--pleo-oauth FILE.json`), the tenant's OAuth tokens are read from and
        rotated into that store, not the secret (which then only says the tenant uses OAuth).
        """
        if token_store is not None:
            wiring.token_stores[tenant.pleo_secret_name] = token_store
            self._stack.callback(wiring.token_stores.pop, tenant.pleo_secret_name, None)
        if tenant.pleo_secret_name is not None:
            self.set_pleo_credentials(tenant, credentials)
        if source_credentials is not None:
            _put_secret(tenant.source.secret_name, source_credentials)  # type: ignore[union-attr]  # API sources
        if target_credentials is not None:
            _put_secret(tenant.target.secret_name, target_credentials)  # type: ignore[union-attr]  # API targets
        TenantStore(TABLE).put(tenant)

    def set_pleo_credentials(self, tenant: Tenant, credentials: dict[str, str]) -> None:
        """Also for a tenant restored from the state, which never keeps secrets. Warm handlers see the new
        value at once (deployed, a container may use the cached one for up to five minutes)."""
        _put_secret(tenant.pleo_secret_name, credentials)
        _forget_cached_secrets()

    def start_run(self, tenant_id: str, *, trigger: str = "schedule") -> None:
        """Start a run's fetch, as the runs queue does for a scheduled run; plan_started_runs() then plans it and
        apply_queued() applies it, with every other run started meanwhile (many tenants at once)."""
        self._deliver("fetch", RunRequest(tenant_id=tenant_id, trigger=trigger,  # type: ignore[arg-type]
                                          run_id=new_run_id()).model_dump(mode="json"))

    def plan_started_runs(self) -> None:
        """Each diff S3 has been notified of (the runs started so far), leaving their actions queued."""
        self._pump(writer=False)

    def apply_queued(self) -> int:
        """Play the writer over whatever waits in the actions queue (approved archives, redriven
        dead letters), as the deployed writer would; returns the messages still left."""
        if not self.options.pleo_url:
            raise ValueError("applying queued actions needs the Pleo URL")
        return self._pump()

    @_holding_moto
    def queued(self) -> Counter[tuple[str, str]]:
        """What waits in the actions queue (visible or being applied), by (tenant, run)."""
        sqs, name = _sqs_backend(self.actions_url)
        counts: Counter[tuple[str, str]] = Counter()
        for message in sqs.get_queue(name)._messages:
            tenant = ((message.message_attributes or {}).get("tenantId") or {}).get("StringValue")
            run = _run_of(message)
            if tenant is None or run is None:  # a message moved back from the DLQ by hand: read its body
                letter = read_dead_letter(message.body).message
                tenant, run = (letter.tenant_id, letter.run_id) if letter else ("?", "?")
            counts[(tenant, run)] += 1
        return counts

    # -- one run ---------------------------------------------------------------------------

    def run(self, tenant_id: str, *, dry_run: bool = False, trigger: str = "cli", settle_late: bool = True,
            ) -> RunResult:
        """One run, as the deployed pipeline plays it, until everything it queued has settled.

        With AWS faults on, second copies of events may arrive late; settle_late=False leaves those
        not due yet for the next run of this runner (a late replay into a newer run).
        """
        with _heap_set_aside():
            return self._run(tenant_id, dry_run=dry_run, trigger=trigger, settle_late=settle_late)

    def _run(self, tenant_id: str, *, dry_run: bool, trigger: str, settle_late: bool) -> RunResult:
        started = time.monotonic()
        API_CALLS.clear()
        self._warm.clear()  # a run's first invocation of each function is a cold start
        self._settled = 0
        self._superseded = 0
        self.progress(f"fetch: reading the source and Pleo for tenant {tenant_id}")
        # The request names its run, as the webhook's does: a second delivery of it is then the same run.
        request = RunRequest(tenant_id=tenant_id, trigger=trigger, dry_run=dry_run,  # type: ignore[arg-type]
                             run_id=new_run_id())
        fetched = self._deliver("fetch", request.model_dump(mode="json"))
        self._save()
        if fetched.get("skipped"):
            raise RunInProgressError(tenant_id, fetched.get("runningRunId") or "unknown")
        if fetched.get("needsReauth"):
            raise ReauthRequired(tenant_id, fetched["reason"])
        run_id = fetched["runId"]
        self._current_run = run_id
        self.progress("diff: planning, then queueing one message per action")
        # Every message queued, this run's and any an earlier command left: what the writer settles.
        pending = self._pump(writer=not dry_run, settle_late=settle_late)
        files = SnapshotStore(BUCKET)
        record = Ledger(TABLE).get(tenant_id, run_id)
        assert record is not None, "fetch records every run it starts"
        try:
            manifest = files.get(manifest_key(tenant_id, run_id), Manifest)
            plan = self._plan(files, plan_key(tenant_id, run_id), record)
        except ClientError:
            raise RuntimeError(f"run {run_id} was never planned ({record.status}: {record.error})") from None
        return RunResult(
            manifest=manifest,
            plan=plan,
            record=record,
            applied=record.applied.model_copy(update={"noop": plan.noop}),
            failed=self._failures(manifest.run_id),
            pending=pending,
            api_calls=dict(API_CALLS),
            seconds=time.monotonic() - started,
            superseded=self._superseded,
            queued=dict(self.queued()),
            faults=dict(self.faults.played),
        )

    def _plan(self, files: SnapshotStore, key: str, record: RunRecord) -> Plan:
        """The run's plan, with at most `plan_rows` actions of each kind, held archives and unsupported actions
        (see RunnerOptions)."""
        rows = self.options.plan_rows
        if rows is None:
            return files.get(key, Plan)
        planned, held = record.planned_actions, record.held
        seen, shown = 0, Counter[str]()

        def first_rows(item: dict[str, Any]) -> dict[str, Any] | None:
            # Plan's JSON lists its actions, then its held archives, then the unsupported actions.
            nonlocal seen
            if "kind" not in item or "desired" not in item:
                return item
            seen += 1
            group = item["kind"] if seen <= planned else "held" if seen <= planned + held else "unsupported"
            shown[group] += 1
            return item if shown[group] <= rows else None

        document = json.loads(zlib.decompress(files.read_bytes(key), wbits=zlib.MAX_WBITS | 16), object_hook=first_rows)
        for name in ("actions", "held", "unsupported"):
            document[name] = [action for action in document[name] if action is not None]
        return Plan.model_validate(document)

    # -- AWS's side of it: events, async invocations, the event source mapping ----------------

    def _deliver(self, function: str, event: dict[str, Any]) -> dict[str, Any]:
        """An asynchronous invocation (fetch, diff): retried twice if it fails when AWS faults are on, as
        Lambda does, and with duplicate-events a second copy queued to arrive late. The last try's answer."""
        if self.faults.twice():
            self._late.append(_Late(self._step + self.faults.late_by(), function, event))
            self.faults.count(f"{function} event delivered twice")
        tries = 1 + (ASYNC_RETRIES if self.faults.on("timeouts") else 0)
        for attempt in range(1, tries + 1):
            try:
                answer = self._invoke(function, event, first_try=attempt == 1)
            except LambdaKilled:
                if attempt == tries:
                    raise RuntimeError(f"{function} was killed at its timeout on every try") from None
                continue
            except Exception:
                if attempt == tries:
                    raise
                self.faults.count(f"{function} retried after an error")
                continue
            if function == "diff":
                for planned in answer.get("runs", []):
                    if "planned" in planned:
                        self.progress(f"diff: {_describe(PlanCounts(**planned['planned']))}")
            return answer
        raise AssertionError("unreachable")

    def _invoke(self, function: str, event: dict[str, Any], *, first_try: bool) -> Any:
        """One invocation in its container (warm, or fresh with cold-starts), under a virtual deadline
        when the timeouts fault picks it."""
        deadline = self.faults.deadline(function, first_try)
        if deadline is not None and not self._checkpoints:  # from now on, calls spend virtual time
            self._stack.enter_context(aws_faults.checkpoints())
            self._checkpoints = True
        timeout = deadline.timeout if deadline else (self.options.writer_timeout_seconds
                                                      if function == "writer" else 900.0)
        context = LambdaContext(f"coa-sync-{function}", timeout_seconds=timeout, deadline=deadline)
        with aws_faults.running_until(deadline):
            return _invoke(self._handler(function), event, context, self._function_output)

    def _handler(self, function: str) -> ModuleType:
        if self.faults.on("cold-starts"):
            _forget_process_memory()
            self.faults.count("cold starts")
            return _load_handler(function)
        if function not in self._warm:
            self._warm[function] = _load_handler(function)
        return self._warm[function]

    def _pump(self, *, writer: bool = True, settle_late: bool = True) -> int:
        """Deliver S3's notifications to the diff, late copies when due, and (with `writer`) play the SQS
        event source mapping, until nothing is left to do; returns the actions still queued."""
        with _heap_set_aside():
            deadline = time.monotonic() + self.options.drain_timeout_seconds
            while time.monotonic() < deadline:
                done = self._pump_step(writer=writer, settle_late=settle_late)
                if done is not None:
                    return done
            return self._in_flight()

    def _pump_step(self, *, writer: bool, settle_late: bool) -> int | None:
        """One turn of _pump: the actions still queued once nothing is left to do, else None."""
        events = self._drain_events()
        for event in events:
            self._deliver("diff", event)
        if events:
            self._save()
        due = [late for late in self._late if late.step <= self._step]
        if due:
            for late in due:
                self._late.remove(late)
                self._invoke_late(late)
            return None
        if writer and self._poll():
            return None
        if self._late and settle_late:
            self._step = min(late.step for late in self._late)  # nothing else to do: it arrives now
            return None
        if not writer or self._in_flight() == 0:
            return self._in_flight() if writer else 0
        if self.containers and self.containers.busy():
            self._settle_containers(self.containers.finished(wait=0.2))
        else:
            time.sleep(0.2)  # failed messages reappear after the visibility timeout
        return None

    def _invoke_late(self, late: _Late) -> None:
        try:
            self._invoke(late.function, late.event, first_try=False)
        except Exception as exc:  # a late copy failing is Lambda's business, not the run's
            self.progress(f"{late.function}: a late copy of an event failed: {type(exc).__name__}: {exc}")

    @_holding_moto
    def _drain_events(self) -> list[dict[str, Any]]:
        """S3's notifications so far (S3 hands them to Lambda itself: read from moto's queue in process)."""
        sqs, queue = _sqs_backend(self.events_url)
        events = []
        while messages := sqs.receive_message(queue, count=SQS_RECEIVE_MAX, wait_seconds_timeout=0,
                                              visibility_timeout=30):
            sqs.delete_message_batch(queue, [{"Id": str(i), "ReceiptHandle": message.receipt_handle}
                                             for i, message in enumerate(messages)])
            events += [body for body in (json.loads(message.body) for message in messages) if "Records" in body]
        return events

    def _poll(self) -> bool:
        """One turn of the SQS event source mapping: a batch received and handed to the writer (with containers:
        the batches they finished settled, and one received for each idle container); False if nothing was."""
        if self.containers is not None:
            finished = self.containers.finished()
            self._settle_containers(finished)
            handed = 0
            while self.containers.idle() and (batch := self._receive_batch()):
                arn = self._arn(self.actions_url)
                self.containers.submit(batch, {"Records": [_event_record(message, arn) for message in batch]})
                handed += 1
            return bool(finished or handed)
        batch = self._receive_batch()
        if batch:
            self._writer_step(batch)
            self._step += 1
        return bool(batch)

    def _settle_containers(self, finished: list[writer_containers.Finished]) -> None:
        for done in finished:
            if done.response is None:  # the invocation failed: Lambda hands the whole batch back
                self.progress(f"writer: an invocation failed: {done.error}")
                returned = {message.id for message in done.batch}
            else:
                returned = {failure["itemIdentifier"] for failure in done.response.get("batchItemFailures", [])}
            self._settle(done.batch, returned)
            self._step += 1

    def _writer_step(self, batch: list[Message]) -> None:
        """One batch through the writer, as Lambda's SQS event source mapping hands it over.

        Lambda's poller is part of AWS, not an SQS client: like moto's own event source
        mapping, it calls moto's SQS (ReceiveMessage, DeleteMessageBatch, ChangeMessageVisibility,
        within their limits) in process rather than through a boto3 client, so the queue keeps
        every rule of moto's SQS (visibility, receive counts, redrive) without two HTTP-shaped
        round trips per ten messages. A message whose invocation failed, or that the writer handed
        back without changing its visibility itself, reappears after `visibility_timeout` seconds.
        """
        arn = self._arn(self.actions_url)
        first_try = all(message.approximate_receive_count == 1 for message in batch)
        twins = self.faults.duplicated(batch)
        if twins:
            self.faults.count("messages delivered to two writers", len(twins))
        self._settle(batch, self._writers([batch, twins] if twins else [batch], arn, first_try))

    @_holding_moto
    def _settle(self, batch: list[Message], returned: set[str]) -> None:
        """As the event source mapping does after an invocation: delete what settled; what was handed back without
        a visibility of its own reappears after `visibility_timeout` seconds."""
        sqs, queue = _sqs_backend(self.actions_url)
        settled = [message for message in batch if message.id not in returned]
        back = [message for message in batch if message.id in returned]
        # Handed back with the visibility of the receive (the function's timeout): as if that much time passed.
        long_hidden = sqs_models.unix_time_millis() + self.options.visibility_timeout * 1000
        stale = [message for message in back if message.visible_at > long_hidden]
        for start in range(0, len(stale), SQS_RECEIVE_MAX):
            sqs.change_message_visibility_batch(queue, [
                {"Id": str(i), "ReceiptHandle": m.receipt_handle, "VisibilityTimeout": self.options.visibility_timeout}
                for i, m in enumerate(stale[start:start + SQS_RECEIVE_MAX])])
        for start in range(0, len(settled), SQS_RECEIVE_MAX):
            sqs.delete_message_batch(queue, [{"Id": str(i), "ReceiptHandle": m.receipt_handle}
                                             for i, m in enumerate(settled[start:start + SQS_RECEIVE_MAX])])
        self._settled += len(settled)
        self._save()
        # An action of another run is never applied: the writer superseded it (or it was a late copy of one).
        self._superseded += sum(_run_of(message) not in (self._current_run, None) for message in settled)
        total = self._settled + self._in_flight()  # settled so far and what is still queued
        self.progress(f"writer: {self._settled}/{total} actions settled" + (f", {len(back)} to retry" if back else ""))

    def _writers(self, batches: list[list[Message]], arn: str, first_try: bool) -> set[str]:
        """Invoke a writer per batch (at once: two containers, with sqs-duplicates); the message ids handed
        back (reported as failures, or in an invocation that was killed). Every copy must have settled for a
        message to be deleted."""
        returned: set[str] = set()
        lock = threading.Lock()

        def one(batch: list[Message], first: bool) -> None:
            event = {"Records": [_event_record(message, arn) for message in batch]}
            try:
                response = self._invoke("writer", event, first_try=first)
                failed = {failure["itemIdentifier"] for failure in response.get("batchItemFailures", [])}
            except LambdaKilled:
                failed = {message.id for message in batch}
            with lock:
                returned.update(failed)

        if len(batches) == 1:
            one(batches[0], first_try)
            return returned
        # One redirection around both: redirect_stdout swaps the process's sys.stdout, which two threads each
        # swapping and restoring would leave pointing anywhere.
        with redirect_stdout(self._function_output):
            twin = threading.Thread(target=contextvars.copy_context().run, args=(one, batches[1], False))
            twin.start()
            one(batches[0], first_try)
            twin.join()
        return returned

    @_holding_moto
    def _receive_batch(self) -> list[Message]:
        """Up to writer_batch_size messages, ten per ReceiveMessage, hidden for the writer's timeout."""
        sqs, queue = _sqs_backend(self.actions_url)
        batch: list[Message] = []
        while len(batch) < self.options.writer_batch_size:
            messages = sqs.receive_message(
                queue, count=min(SQS_RECEIVE_MAX, self.options.writer_batch_size - len(batch)),
                wait_seconds_timeout=0, visibility_timeout=int(self.options.writer_timeout_seconds),
                message_attribute_names=["All"])
            if not messages:
                break
            batch.extend(messages)
        return batch

    @_holding_moto
    def _in_flight(self) -> int:
        """Actions on the queue, visible or being applied (what ApproximateNumberOfMessages and
        ...NotVisible add up to, read from moto's queue as the event source mapping does)."""
        sqs, name = _sqs_backend(self.actions_url)
        queue = sqs.get_queue(name)
        return int(queue.approximate_number_of_messages) + int(queue.approximate_number_of_messages_not_visible)

    def dead_letters(self) -> list[DeadLetter]:
        """Everything in the DLQ, left there."""
        return DeadLetterQueue(self.dlq_url, self.sqs).letters()

    def _failures(self, run_id: str) -> list[FailedItem]:
        return [
            FailedItem(
                external_id=letter.message.action.external_id if letter.message else None,
                action=str(letter.message.action.kind) if letter.message else None,
                reasons=letter.reasons,
            )
            for letter in self.dead_letters()
            if letter.message is None or letter.message.run_id == run_id
        ]


def _put_secret(name: str, value: dict[str, str]) -> None:
    secrets = boto3.client("secretsmanager", region_name=REGION)
    try:
        secrets.create_secret(Name=name, SecretString=json.dumps(value))
    except secrets.exceptions.ResourceExistsException:
        secrets.put_secret_value(SecretId=name, SecretString=json.dumps(value))


def _describe(counts: PlanCounts) -> str:
    return ", ".join(f"{value} {name}" for name, value in counts.model_dump().items())


def _sqs_record(message: dict[str, Any], queue_arn: str) -> dict[str, Any]:
    """An SQS message as Lambda's event source mapping hands it to the function."""
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": message.get("Attributes", {}),
        "messageAttributes": {
            name: {"stringValue": value.get("StringValue"), "dataType": value["DataType"],
                   "stringListValues": [], "binaryListValues": []}
            for name, value in message.get("MessageAttributes", {}).items()
        },
        "md5OfBody": message["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": REGION,
    }


@contextmanager
def _heap_set_aside() -> Iterator[None]:
    """Keep the garbage collector off what earlier steps left alive (the snapshots, the plan, the
    queued messages, what moto and Pleo's emulator keep: 100,000s of objects for a large chart)
    while a run goes on; each handler invocation sets aside what exists when it starts.

    Deployed, each function runs in its own process with only its own heap; here they share one,
    and each full collection walked all of it: about 10 s of the writer loop for 100,000 actions.
    gc.freeze() moves those objects to a generation the collector skips; reference counting
    still frees them as ever, and they are handed back afterwards (unless something froze
    objects before, which is left as it was).
    """
    frozen_before = gc.get_freeze_count()
    gc.freeze()
    try:
        yield
    finally:
        if not frozen_before:
            gc.unfreeze()


def _run_of(message: Message) -> str | None:
    attribute = (message.message_attributes or {}).get("runId") or {}
    return attribute.get("StringValue")


def _sqs_backend(queue_url: str) -> tuple[SQSBackend, str]:
    """moto's SQS for the queue at this URL (https://sqs.<region>.amazonaws.com/<account>/<name>), and its name."""
    account, name = queue_url.rsplit("/", 2)[1:]
    return sqs_backends[account][REGION], name


def _event_record(message: Message, queue_arn: str) -> dict[str, Any]:
    """A message moto's SQS handed out, as Lambda's event source mapping hands it to the function:
    the attributes ReceiveMessage answers for AttributeNames=All."""
    attributes = {"SenderId": message.sender_id, "SentTimestamp": str(message.sent_timestamp),
                  "ApproximateReceiveCount": str(message.approximate_receive_count),
                  "ApproximateFirstReceiveTimestamp": str(message.approximate_first_receive_timestamp)}
    if message.deduplication_id is not None:
        attributes["MessageDeduplicationId"] = message.deduplication_id
    if message.group_id is not None:
        attributes["MessageGroupId"] = message.group_id
    if message.system_attributes and message.system_attributes.get("AWSTraceHeader"):
        attributes["AWSTraceHeader"] = message.system_attributes["AWSTraceHeader"].get("StringValue")
    if message.sequence_number is not None:
        attributes["SequenceNumber"] = message.sequence_number
    return _sqs_record({"MessageId": message.id, "ReceiptHandle": message.receipt_handle, "Body": message.body,
                        "MD5OfBody": message.body_md5, "Attributes": attributes,
                        "MessageAttributes": message.message_attributes}, queue_arn)


def _invoke(module: Any, event: dict[str, Any], context: LambdaContext, output: TextIO) -> Any:
    """Call a handler as Lambda does: what it prints goes to the log stream (`output` here, so stdout keeps
    only results: Powertools prints a metrics blob every 100 values, even with metrics disabled), and
    its metrics end with the invocation (disabled, Powertools never clears them and they pile up)."""
    gc.freeze()  # what earlier steps and invocations left is not this invocation's heap: see _heap_set_aside
    try:
        with redirect_stdout(output):
            return module.handler(event, context)
    finally:
        metrics.clear_metrics()


def _load_handler(name: str) -> ModuleType:
    """A cold start: the function's app.py loaded afresh, reading the current environment."""
    path = importlib.resources.files("coa_sync_functions") / name / "app.py"
    spec = importlib.util.spec_from_file_location(f"coa_sync_lambda_{name}_{uuid.uuid4().hex}", str(path))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _forget_cached_clients() -> None:
    aws.reset()
    parameters.clear_caches()
    parameters.base.DEFAULT_PROVIDERS.clear()


def _forget_cached_secrets() -> None:
    """Secret values read before; their providers (and boto3 sessions) stay."""
    for provider in parameters.base.DEFAULT_PROVIDERS.values():
        provider.clear_cache()


def _forget_process_memory() -> None:
    """What a fresh Lambda container starts without: AWS clients, cached secrets, rate-limiter windows."""
    _forget_cached_clients()
    tokenbucket.forget()


__all__ = ["ActionKind", "FailedItem", "LambdaContext", "LocalRunner", "RunResult", "RunnerOptions"]
