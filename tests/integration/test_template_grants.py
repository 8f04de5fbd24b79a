"""template.yaml grants each function what its code calls, on its own resources, and no more.

tests/integration/test_template_handlers.py runs the handlers with every AWS call checked
against their policies (a grant too narrow fails there); these check the other side: what a
function could do but must not, such as forge another step's files or read another's secrets.
The checks read the same policy statements (tests/template_stack.py's `Stack.allows`).
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterator
from typing import Any

import pytest
from coa_sync import keys

from tests.template_stack import (
    ACCOUNT,
    ROOT,
    Call,
    Stack,
    deployed,
    functions,
    iam_requests,
    load_template,
)

TEMPLATE = load_template()
FUNCTIONS = functions(TEMPLATE)
RUN = ("acme", "20261123T120000Z-0a1b2c3d")


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with deployed(TEMPLATE) as stack:
        yield stack


def allowed(stack: Stack, action: str, resource: str) -> set[str]:
    """The functions whose policy allows `action` on `resource`."""
    return {logical for logical in FUNCTIONS if stack.allows(logical, action, resource)}


def secret_readers(stack: Stack, name: str) -> set[str]:
    ((action, arn),) = iam_requests(Call("secretsmanager", "GetSecretValue", {"SecretId": name}))
    return allowed(stack, action, arn)


# --- S3: each step writes only its own files -----------------------------------------------------

WRITERS = {  # coa_sync.keys: who writes each of a run's files
    keys.source_key: {"FetchFunction"},
    keys.target_key: {"FetchFunction"},
    keys.manifest_key: {"FetchFunction"},  # written last: it starts the diff
    keys.plan_key: {"DiffFunction"},
    keys.report_key: set(FUNCTIONS),  # whichever step ends the run
}
READERS = {
    keys.source_key: {"DiffFunction"},
    keys.target_key: {"DiffFunction"},
    keys.manifest_key: {"DiffFunction"},
    # Approving a run queues the archives its plan held; a retried diff finishes queueing a stored plan.
    keys.plan_key: {"WebhookFunction", "DiffFunction"},
    keys.report_key: set(),
}


def test_each_function_writes_only_the_run_files_it_owns(stack):
    bucket = stack.attribute("SnapshotBucket", "Arn")
    for key_of, writers in WRITERS.items():
        assert allowed(stack, "s3:PutObject", f"{bucket}/{key_of(*RUN)}") == writers, key_of.__name__
        assert allowed(stack, "s3:GetObject", f"{bucket}/{key_of(*RUN)}") == READERS[key_of], key_of.__name__
    # Nothing else under a run, and the tenants' source files are the operator's: fetch only reads them.
    assert allowed(stack, "s3:PutObject", f"{bucket}/{keys.run_prefix(*RUN)}anything.json") == set()
    assert allowed(stack, "s3:PutObject", f"{bucket}/sources/acme/accounts.csv") == set()
    assert allowed(stack, "s3:GetObject", f"{bucket}/sources/acme/accounts.csv") == {"FetchFunction"}


# --- Secrets Manager: each function reads only the secrets it uses ----------------------------


def test_each_function_reads_only_the_secrets_it_uses(stack):
    prefix = stack.parameters["SecretsPrefix"]
    # The webhook too: an approval first makes one search with the tenant's Pleo credentials.
    assert secret_readers(stack, f"{prefix}acme/pleo") == {"FetchFunction", "WriterFunction", "WebhookFunction"}
    assert secret_readers(stack, f"{prefix}acme/thredfi") == {"FetchFunction"}  # a source's credentials
    # The public webhook reads the signing secrets (and Pleo's); nothing else reads the signing secrets.
    assert secret_readers(stack, f"{prefix}acme/webhook") == {"WebhookFunction"}
    assert secret_readers(stack, "other-app/acme/pleo") == set()


# --- DynamoDB and SQS: no listing where nothing lists, no polling but the writer's -----------


def test_only_the_functions_that_list_tenants_or_runs_may_scan_or_query(stack):
    table = stack.attribute("TenantsTable", "Arn")
    assert allowed(stack, "dynamodb:Scan", table) == {"FetchFunction"}  # the schedule's fan-out
    assert allowed(stack, "dynamodb:Query", table) == {"WebhookFunction"}  # approve: the runs after the one approved


CONSUMERS = {"ActionsQueue": ("WriterFunctionActions", "WriterFunction"),
             "RunsQueue": ("FetchFunctionRunStarts", "FetchFunction")}


def test_each_queue_is_polled_only_by_its_own_function_with_its_own_grants(stack):
    for queue in ("ActionsQueue", "ActionsDeadLetterQueue", "RunsQueue", "RunsDeadLetterQueue"):
        arn = stack.attribute(queue, "Arn")
        consumer = {CONSUMERS[queue][1]} if queue in CONSUMERS else set()
        for action in ("sqs:ReceiveMessage", "sqs:DeleteMessage"):
            assert allowed(stack, action, arn) == consumer, (queue, action)
    # A SAM SQS event would attach AWSLambdaSQSQueueExecutionRole (every queue of the account):
    # each mapping is a resource of its own instead (checkov's CKV2_COA_2 checks the generated roles).
    assert not [name for logical in FUNCTIONS for name, event in TEMPLATE["Resources"][logical]["Properties"]
                .get("Events", {}).items() if event["Type"] == "SQS"]
    for queue, (mapping_name, function) in CONSUMERS.items():
        mapping = stack.resolve(TEMPLATE["Resources"][mapping_name]["Properties"])
        assert (mapping["EventSourceArn"], mapping["FunctionName"]) == (stack.attribute(queue, "Arn"),
                                                                        stack.ref(function))


def test_only_the_schedules_fan_out_queues_runs_and_only_the_webhook_invokes_fetch(stack):
    assert allowed(stack, "sqs:SendMessage", stack.attribute("RunsQueue", "Arn")) == {"FetchFunction"}
    # Scheduled runs go through the runs queue, a few at a time: fetch no longer invokes itself.
    assert allowed(stack, "lambda:InvokeFunction", stack.attribute("FetchFunction", "Arn")) == {"WebhookFunction"}
    mapping = stack.resolve(TEMPLATE["Resources"]["FetchFunctionRunStarts"]["Properties"])
    assert mapping["BatchSize"] == 1 and int(mapping["ScalingConfig"]["MaximumConcurrency"]) >= 2


# --- Lambda: who may invoke what ---------------------------------------------------------------


def test_only_the_stacks_own_bucket_may_start_the_diff(stack):
    permission = stack.resolve(TEMPLATE["Resources"]["DiffFunctionManifestWrittenPermission"]["Properties"])
    assert permission == {"Action": "lambda:InvokeFunction", "FunctionName": stack.attribute("DiffFunction", "Arn"),
                          "Principal": "s3.amazonaws.com", "SourceArn": stack.attribute("SnapshotBucket", "Arn"),
                          "SourceAccount": ACCOUNT}
    (notification,) = stack.resolve(TEMPLATE["Resources"]["SnapshotBucket"]["Properties"]
                                    ["NotificationConfiguration"]["LambdaConfigurations"])
    assert notification["Function"] == permission["FunctionName"]


def test_failed_starts_keep_their_error_in_an_alarmed_queue(stack):
    queue = stack.attribute("RunsDeadLetterQueue", "Arn")
    for logical in ("FetchFunction", "DiffFunction"):
        config = stack.resolve(TEMPLATE["Resources"][logical]["Properties"]["EventInvokeConfig"])
        # The destination's record keeps the error; a function DLQ would keep only the event.
        assert config["DestinationConfig"]["OnFailure"] == {"Type": "SQS", "Destination": queue}, logical
        assert "DeadLetterQueue" not in TEMPLATE["Resources"][logical]["Properties"], logical
        assert 0 <= config["MaximumRetryAttempts"] <= 2 and 60 <= config["MaximumEventAgeInSeconds"] <= 21600
    # A scheduled run whose fetch failed twice lands there too, as its run request.
    runs = stack.resolve(TEMPLATE["Resources"]["RunsQueue"]["Properties"]["RedrivePolicy"])
    assert runs == {"deadLetterTargetArn": queue, "maxReceiveCount": 2}
    depth = [alarm for alarm in resources(stack, "AWS::CloudWatch::Alarm")
             if alarm.get("MetricName") == "ApproximateNumberOfMessagesVisible"
             and alarm["Dimensions"] == [{"Name": "QueueName", "Value": "coa-sync-dev-runs-dlq"}]]
    assert [(a["Threshold"], a["AlarmActions"]) for a in depth] == [(0, [{"Ref": "AlarmTopic"}])]


# --- Concurrency and the writer's time -------------------------------------------------------------


def effective_parameters(environment: str) -> dict[str, str]:
    """The template's Defaults with a samconfig.toml environment's parameter_overrides applied."""
    config = tomllib.loads((ROOT / "samconfig.toml").read_text())
    overrides = config[environment]["deploy"]["parameters"].get("parameter_overrides", [])
    defaults = {name: str(spec["Default"]) for name, spec in TEMPLATE["Parameters"].items()}
    return {**defaults, **dict(item.split("=", 1) for item in overrides)}


@pytest.mark.parametrize("environment", ["default", "prod"])
def test_reserved_concurrency_leaves_room_for_every_batch_sqs_hands_the_writer(environment):
    parameters = effective_parameters(environment)
    reserved, most = int(parameters["WriterReservedConcurrency"]), int(parameters["WriterMaxConcurrency"])
    assert reserved == 0 or reserved >= most, "a batch without a reserved slot is throttled for 35 minutes"
    assert 1 <= int(parameters["WebhookReservedConcurrency"]) <= 10  # small: public, and each call is short


def test_the_writer_duration_alarm_and_dashboard_follow_the_writers_timeout(stack):
    timeout_ms = TEMPLATE["Resources"]["WriterFunction"]["Properties"]["Timeout"] * 1000
    (alarm,) = [a for a in resources(stack, "AWS::CloudWatch::Alarm") if a.get("MetricName") == "Duration"]
    assert alarm["Dimensions"] == [{"Name": "FunctionName", "Value": stack.ref("WriterFunction")}]
    assert alarm["Threshold"] == 0.8 * timeout_ms
    (widget,) = [w for w in dashboard(stack)["widgets"] if "Writer duration" in w["properties"]["title"]]
    lines = {line["label"]: line["value"] for line in widget["properties"]["annotations"]["horizontal"]}
    assert lines == {"timeout": timeout_ms, "alarm": alarm["Threshold"]}


def resources(stack: Stack, kind: str) -> list[dict[str, Any]]:
    """The properties of every resource of a kind, resolved; an alarm's actions stay as written (the
    stand-in makes no SNS topic)."""
    unresolved = ("AlarmActions", "OKActions")
    return [{**stack.resolve({k: v for k, v in r["Properties"].items() if k not in unresolved}),
             **{k: v for k, v in r["Properties"].items() if k in unresolved}}
            for r in TEMPLATE["Resources"].values() if r["Type"] == kind]


def dashboard(stack: Stack) -> dict[str, Any]:
    (properties,) = resources(stack, "AWS::CloudWatch::Dashboard")
    return json.loads(properties["DashboardBody"])
