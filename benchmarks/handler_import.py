"""Cold-start proxy: each handler in a fresh interpreter, with the environment the deployed function has.

- import: importing functions/<name>/app.py (what Lambda's init phase runs);
- first and second invocation: the handler then called twice in that same process with two
  equivalent events (two tenants), against moto and the Pleo emulator on 127.0.0.1. The first
  call pays, once, whatever the import left for first use (boto3 and httpx, clients, pydantic
  validators, X-Ray patches, the TLS context); the second shows a warm call.

moto runs in this process; the probes reach it over HTTP (AWS_ENDPOINT_URL) through a small
bridge, so a probe imports boto3 and builds its clients itself, exactly as in Lambda.

    python -m benchmarks.handler_import     # import times only: median and best of 7 per handler
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS = ("fetch", "diff", "writer", "webhook")
REGION = "eu-west-1"
ENVIRONMENT = {
    "AWS_REGION": REGION,
    "AWS_DEFAULT_REGION": REGION,
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "TENANTS_TABLE": "coa-sync-tenants",
    "SNAPSHOT_BUCKET": "coa-sync-snapshots",
    "ACTIONS_QUEUE_URL": f"https://sqs.{REGION}.amazonaws.com/123456789012/coa-sync-actions",
    "DEAD_LETTER_QUEUE_URL": f"https://sqs.{REGION}.amazonaws.com/123456789012/coa-sync-actions-dlq",
    "PLEO_BASE_URL": "https://external.staging.pleo.io",
    "FETCH_FUNCTION_NAME": "coa-sync-fetch",
    "POWERTOOLS_SERVICE_NAME": "coa-sync",
    "POWERTOOLS_METRICS_NAMESPACE": "CoaSync",
    "POWERTOOLS_LOG_LEVEL": "INFO",
    # What the Lambda runtime adds with the template's Tracing: Active. LAMBDA_TASK_ROOT is what tells
    # Powertools and the X-Ray SDK they run in Lambda: tracing on, the X-Ray SDK in its Lambda mode.
    "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12",
    "AWS_XRAY_DAEMON_ADDRESS": "127.0.0.1:2000",
    "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
}
# Set by the local runner and the tests, never by the template: it would turn tracing off.
NOT_DEPLOYED = ("POWERTOOLS_TRACE_DISABLED", "POWERTOOLS_METRICS_DISABLED")
PROBE = """
import importlib.util, sys, time
started = time.perf_counter()
spec = importlib.util.spec_from_file_location("app", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
print((time.perf_counter() - started) * 1000)
"""
# PROBE, then each event of the JSON file argv[2] handled in turn; the last line of stdout is the result.
INVOKE = PROBE.replace("print(", "imported = (") + """
import json, uuid
class Context:  # what Powertools and the writer read from Lambda's context
    function_name, memory_limit_in_mb, deadline = "coa-sync", 512, time.monotonic() + 300
    invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:coa-sync"
    aws_request_id = str(uuid.uuid4())
    def get_remaining_time_in_millis(self):
        return int((self.deadline - time.monotonic()) * 1000)
times, results = [imported], []
for event in json.loads(open(sys.argv[2]).read()):
    started = time.perf_counter()
    results.append(module.handler(event, Context()))
    times.append((time.perf_counter() - started) * 1000)
print(json.dumps({"ms": times, "results": results}))
"""


def environment(function: str, **extra: str) -> dict[str, str]:
    """The process environment of a cold start of `function` (its layer on PYTHONPATH)."""
    inherited = {name: value for name, value in os.environ.items() if name not in NOT_DEPLOYED}
    return {**inherited, **ENVIRONMENT, "LAMBDA_TASK_ROOT": str(ROOT / "functions" / function),
            "AWS_LAMBDA_FUNCTION_NAME": f"coa-sync-{function}", "_HANDLER": "app.handler",
            "PYTHONPATH": str(ROOT / "layers" / "core"), **extra}


def app(function: str) -> str:
    return str(ROOT / "functions" / function / "app.py")


def measure(function: str, repeats: int = 7, **extra: str) -> list[float]:
    env = environment(function, **extra)
    return [float(subprocess.run([sys.executable, "-c", PROBE, app(function)], env=env, capture_output=True,
                                 text=True, check=True).stdout) for _ in range(repeats)]


def invoke(function: str, events: Sequence[Any], env: dict[str, str]) -> tuple[list[float], list[Any]]:
    """(import ms, then ms per event) and the handler's answers, from one fresh interpreter."""
    with tempfile.NamedTemporaryFile("w", suffix=".json") as file:
        json.dump(list(events), file)
        file.flush()
        done = subprocess.run([sys.executable, "-c", INVOKE, app(function), file.name], env=env,
                              capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{function} probe failed:\n{done.stderr[-3000:]}")
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    return answer["ms"], answer["results"]


# --- the world the invocations run in --------------------------------------------------------

TABLE, BUCKET = "coa-sync-tenants-bench", "coa-sync-snapshots-bench"
# One tenant's chart: in Pleo one account is the same, one archived, one renamed, one gone from the AS.
SOURCE_CSV = """externalId,code,name,active
ext-1,1000,Office Supplies,true
ext-2,2000,Travel,true
ext-3,3000,Software,true
ext-4,4000,Marketing,true
"""
PLEO_ACCOUNTS = [
    {"externalId": "ext-1", "code": "1000", "name": "Office Supplies"},
    {"externalId": "ext-2", "code": "2000", "name": "Travel", "archived": True},
    {"externalId": "ext-4", "code": "4000", "name": "Advertising"},
    {"externalId": "ext-5", "code": "5000", "name": "Entertainment"},
]
WEBHOOK_SECRET = "bench-webhook-secret-0123456789"


class _Bridge(BaseHTTPRequestHandler):
    """AWS API requests from the probes, handed to moto as if sent to AWS's own endpoint for the
    service the request is signed for."""

    protocol_version = "HTTP/1.1"

    def _serve(self) -> None:
        from botocore.awsrequest import AWSPreparedRequest
        from botocore.compat import HTTPHeaders
        from moto.core.models import botocore_stubber

        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        scope = re.search(r"Credential=[^/]+/[^/]+/([^/]+)/([^/]+)/", self.headers.get("Authorization", ""))
        region, service = scope.groups() if scope else (REGION, "s3")
        headers = HTTPHeaders()
        for name, value in self.headers.items():
            headers[name] = value
        request = AWSPreparedRequest(self.command, f"https://{service}.{region}.amazonaws.com{self.path}",
                                     headers, body, stream_output=False)
        status, headers, answer = botocore_stubber.process_request(request) or (404, {}, b"")
        answer = answer.encode() if isinstance(answer, str) else answer
        self.send_response(status)
        for name, value in headers.items():
            if name.lower() not in ("content-length", "transfer-encoding", "connection", "server", "date"):
                self.send_header(name, str(value))
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(answer)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _serve

    def log_message(self, *_: object) -> None:
        pass


class World:
    """moto's S3, DynamoDB, SQS, Secrets Manager and EventBridge plus the Pleo emulator, with tenants."""

    def __init__(self, aws_url: str, pleo: Any) -> None:
        import boto3

        self.aws_url, self.pleo = aws_url, pleo
        self.s3 = boto3.client("s3", region_name=REGION)
        self.sqs = boto3.client("sqs", region_name=REGION)
        self.secrets = boto3.client("secretsmanager", region_name=REGION)
        self.dynamodb = boto3.resource("dynamodb", region_name=REGION)
        self.s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
        self.dynamodb.create_table(
            TableName=TABLE, BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                  {"AttributeName": "sk", "AttributeType": "S"}])
        self.actions_url = self.sqs.create_queue(QueueName="coa-sync-actions")["QueueUrl"]
        self.dlq_url = self.sqs.create_queue(QueueName="coa-sync-actions-dlq")["QueueUrl"]
        self.actions_arn = self.sqs.get_queue_attributes(QueueUrl=self.actions_url, AttributeNames=["QueueArn"]
                                                         )["Attributes"]["QueueArn"]

    def environment(self, function: str, **extra: str) -> dict[str, str]:
        # _X_AMZN_TRACE_ID: Lambda's, for a sampled request; the segments go by UDP to 127.0.0.1, unheard.
        return environment(function, AWS_ENDPOINT_URL=self.aws_url, TENANTS_TABLE=TABLE, SNAPSHOT_BUCKET=BUCKET,
                           ACTIONS_QUEUE_URL=self.actions_url, DEAD_LETTER_QUEUE_URL=self.dlq_url,
                           PLEO_BASE_URL=self.pleo.url,
                           _X_AMZN_TRACE_ID="Root=1-6742208d-2b1f6c0e5a9d4e3f7a8b9c0d;Parent=53995c3f42cd8ad8;Sampled=1",
                           **extra)

    def tenant(self, tenant_id: str) -> str:
        """A tenant as docs/deploy.md sets one up: its source file, secrets, CONFIG item and Pleo company."""
        from coa_sync.adapters.tenants import TenantStore
        from coa_sync.models import Tenant

        company, api_key = str(uuid.uuid4()), f"key-{tenant_id}"
        self.pleo.add_company(company, api_keys=[api_key], accounts=PLEO_ACCOUNTS)
        self.s3.put_object(Bucket=BUCKET, Key=f"sources/{tenant_id}.csv", Body=SOURCE_CSV.encode())
        for name, value in ((f"{tenant_id}/pleo", {"apiKey": api_key}), (f"{tenant_id}/webhook",
                                                                          {"secret": WEBHOOK_SECRET})):
            self.secrets.create_secret(Name=f"coa-sync/{name}", SecretString=json.dumps(value))
        TenantStore(TABLE, self.dynamodb).put(Tenant.model_validate({
            "tenantId": tenant_id, "companyId": company, "pleoSecretName": f"coa-sync/{tenant_id}/pleo",
            "webhookSecretName": f"coa-sync/{tenant_id}/webhook",
            "source": {"kind": "file", "uri": f"s3://{BUCKET}/sources/{tenant_id}.csv"}}))
        return tenant_id

    def queued(self) -> dict[str, dict[str, Any]]:
        """The actions queue drained: one SQS event (as Lambda hands it to the writer) per tenant."""
        events: dict[str, dict[str, Any]] = {}
        while messages := self.sqs.receive_message(QueueUrl=self.actions_url, MaxNumberOfMessages=10,
                                                   AttributeNames=["All"], MessageAttributeNames=["All"],
                                                   VisibilityTimeout=600).get("Messages"):
            for message in messages:
                attributes = {name: {"stringValue": value.get("StringValue"), "dataType": value["DataType"]}
                              for name, value in message.get("MessageAttributes", {}).items()}
                record = {"messageId": message["MessageId"], "receiptHandle": message["ReceiptHandle"],
                          "body": message["Body"], "attributes": message.get("Attributes", {}),
                          "messageAttributes": attributes, "md5OfBody": message["MD5OfBody"],
                          "eventSource": "aws:sqs", "eventSourceARN": self.actions_arn, "awsRegion": REGION}
                events.setdefault(attributes["tenantId"]["stringValue"], {"Records": []})["Records"].append(record)
                self.sqs.delete_message(QueueUrl=self.actions_url, ReceiptHandle=message["ReceiptHandle"])
        return events


@contextlib.contextmanager
def world() -> Iterator[World]:
    from coa_sync_local.emulators.pleo import PleoEmulator
    from moto import mock_aws

    server = ThreadingHTTPServer(("127.0.0.1", 0), _Bridge)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with mock_aws(), PleoEmulator() as pleo:
            yield World(f"http://127.0.0.1:{server.server_address[1]}", pleo)
    finally:
        server.shutdown()
        server.server_close()


def events_file(name: str) -> Any:
    return json.loads((ROOT / "events" / name).read_text())


def chain(world: World, tenants: Sequence[str], **extra: str) -> dict[str, list[float]]:
    """One run of each tenant, each step's handler in its own fresh interpreter: fetch, diff, writer, and
    the webhook asked for the run's status. {function: [import ms, first call ms, second call ms]}."""
    from coa_sync.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign

    times = {}
    times["fetch"], fetched = invoke("fetch", [{"tenantId": t, "trigger": "schedule"} for t in tenants],
                                     world.environment("fetch", **extra))
    manifests = [events_file("diff-s3-manifest.json") for _ in tenants]
    for event, answer in zip(manifests, fetched, strict=True):
        event["Records"][0]["s3"]["bucket"]["name"] = BUCKET
        event["Records"][0]["s3"]["object"]["key"] = f"runs/{answer['tenantId']}/{answer['runId']}/manifest.json"
    times["diff"], _ = invoke("diff", manifests, world.environment("diff", **extra))
    queued = world.queued()
    times["writer"], _ = invoke("writer", [queued[t] for t in tenants], world.environment("writer", **extra))
    requests = []
    for answer in fetched:
        request = events_file("webhook-start-run.json")
        path = f"/tenants/{answer['tenantId']}/runs/{answer['runId']}"
        stamp = str(int(time.time()))
        request["rawPath"] = request["requestContext"]["http"]["path"] = path
        request["requestContext"]["http"]["method"], request["body"] = "GET", ""
        request["headers"].update({TIMESTAMP_HEADER: stamp, SIGNATURE_HEADER: sign(WEBHOOK_SECRET, stamp, b"")})
        requests.append(request)
    times["webhook"], answers = invoke("webhook", requests, world.environment("webhook", **extra))
    if any(answer["statusCode"] != 200 for answer in answers):
        raise RuntimeError(f"webhook answered {answers}")
    return times


def main() -> None:
    print(f"{'handler':<10} {'median ms':>10} {'best ms':>10}")
    for function in FUNCTIONS:
        times = measure(function)
        print(f"{function:<10} {statistics.median(times):>10.0f} {min(times):>10.0f}")


if __name__ == "__main__":
    main()
