"""Section 7: the diff's SQS send of a 100,000-action plan, 10 ms added to every SQS call, serial against at once.

The diff's own send: ActionQueue.send of one ActionMessage per action, built as the plan is read,
ten per SendMessageBatch; `threads=1` is the loop as it was (one call after another), the default
keeps SEND_THREADS calls in flight. Every call waits 10 ms before it goes (botocore's before-sign
hook), as a call to SQS takes about that long on AWS.

Two SQS stand-ins answer it:
- SQS's answer without its work: botocore's before-send hook answers every SendMessageBatch with each
  entry sent (its MessageId and MD5), so what runs on this machine is what runs in the diff λ on AWS
  (building the messages, botocore's request and response), while SQS's own work is not on its CPU;
- moto's SQS in process, with the local runner's speedups: SQS's work runs here too, on the same
  interpreter lock as the sending threads, as in a local run.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import boto3
from botocore.awsrequest import AWSResponse
from coa_sync.adapters.queues import SEND_THREADS, ActionQueue
from coa_sync.models import AccountFields, Action, ActionKind, ActionMessage
from coa_sync_local import moto_speedups
from moto import mock_aws

from benchmarks.common import Table

LATENCY = 0.010  # seconds added to every SQS call
RUN_ID = "20261123T120000Z-0a1b2c3d"
GOAL = 8.0


def actions(count: int) -> list[Action]:
    return [Action(kind=ActionKind.CREATE, external_id=f"ACC-{n:07d}",
                   desired=AccountFields(name=f"Account {n}", code=str(100000 + n))) for n in range(count)]


def _late(**_: object) -> None:
    time.sleep(LATENCY)


def _sqs_answer(request, **_: object) -> AWSResponse:
    """SendMessageBatch answered as SQS answers it: every entry sent, with its id and body's MD5."""
    entries = json.loads(request.body)["Entries"]
    body = {"Successful": [{"Id": e["Id"], "MessageId": str(uuid.uuid4()),
                            "MD5OfMessageBody": hashlib.md5(e["MessageBody"].encode()).hexdigest()}
                           for e in entries], "Failed": []}

    class Raw:
        def stream(self, **_: object) -> Iterator[bytes]:
            yield json.dumps(body).encode()

    return AWSResponse(request.url, 200, {"Content-Type": "application/x-amz-json-1.0"}, Raw())


@contextmanager
def answered_by(stand_in: str) -> Iterator[tuple[object, str]]:
    """An SQS client, every call of it 10 ms late, and a queue URL, on the stand-in named."""
    credentials = {"region_name": "eu-west-1", "aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    if stand_in == "moto":
        moto_speedups.apply()
        with mock_aws():
            sqs = boto3.client("sqs", **credentials)
            url = sqs.create_queue(QueueName="coa-sync-actions")["QueueUrl"]
            sqs.meta.events.register("before-sign.sqs", _late)
            yield sqs, url
        return
    sqs = boto3.client("sqs", **credentials)
    sqs.meta.events.register("before-sign.sqs", _late)
    sqs.meta.events.register("before-send.sqs.SendMessageBatch", _sqs_answer)
    yield sqs, "https://sqs.eu-west-1.amazonaws.com/123456789012/coa-sync-actions"


def send_seconds(stand_in: str, planned: list[Action], threads: int) -> float:
    with answered_by(stand_in) as (sqs, url):
        queue = ActionQueue(url, sqs, threads=threads)
        started = time.perf_counter()
        sent = queue.send(ActionMessage(tenant_id="bench", run_id=RUN_ID, action=action) for action in planned)
        seconds = time.perf_counter() - started
    assert sent == len(planned)
    return seconds


def run(quick: bool) -> list[Table]:
    count = 10_000 if quick else 100_000
    planned = actions(count)
    table = Table(f"8. The diff's SQS send of {count:,} actions, {LATENCY * 1000:g} ms added to every SQS call",
                  ["SQS answered by", "serial s", f"{SEND_THREADS} at once s", "faster", "calls/s at once"])
    speedups = {}
    for stand_in, label in (("answer", "SQS's answer, its work elsewhere (as on AWS)"),
                            ("moto", "moto's SQS in this process (as a local run)")):
        serial = send_seconds(stand_in, planned, threads=1)
        concurrent = send_seconds(stand_in, planned, threads=SEND_THREADS)
        speedups[stand_in] = serial / concurrent
        table.rows.append([label, serial, concurrent, f"{serial / concurrent:.1f}x", count / 10 / concurrent])
    calls = count // 10
    table.notes += [
        f"{calls:,} SendMessageBatch calls of ten. Serial: at least {calls * LATENCY:.0f} s of waiting alone. "
        f"At once: {SEND_THREADS} calls in flight on a thread pool, the messages built on the calling thread.",
        "With moto in process, SQS's own work (parsing each call, storing each message) shares one interpreter "
        "lock with the sending threads: that work, not the 10 ms, is the floor there. On AWS it is SQS's; in a "
        "local run the messages go to moto in process.",
    ]
    table.goals.append((f"diff's SQS send of {count:,} actions at 10 ms a call >= {GOAL:g}x faster at once",
                        f"{speedups['answer']:.1f}x (moto in process: {speedups['moto']:.1f}x)",
                        speedups["answer"] >= GOAL))
    return [table]
