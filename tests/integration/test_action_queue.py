"""The actions queue on moto's SQS: many SendMessageBatch calls at once, each action queued once with its
tenant as its MessageGroupId (a fair queue), failures retried per entry or raised, as when sent one by one.

Faults are SQS's own answers (a SendMessageBatch with Failed entries), given through botocore's event
hooks of the real client: the entry is held back from moto and answered failed; the rest goes to moto."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import boto3
import pytest
from coa_sync.adapters.queues import ActionQueue, DeadLetterQueue, QueueSendError
from coa_sync.models import AccountFields, Action, ActionKind, ActionMessage, DeadLetter
from moto import mock_aws


@pytest.fixture
def sqs() -> Iterator[object]:
    with mock_aws():
        yield boto3.client("sqs", region_name="eu-west-1", aws_access_key_id="testing",
                           aws_secret_access_key="testing")


def messages(count: int, tenants: tuple[str, ...] = ("acme", "beta", "gamma")) -> list[ActionMessage]:
    return [ActionMessage(tenant_id=tenants[n % len(tenants)], run_id="20261123T120000Z-0a1b2c3d",
                          action=Action(kind=ActionKind.CREATE, external_id=f"ext-{n}",
                                        desired=AccountFields(name=f"Account {n}")))
            for n in range(count)]


def drain(sqs, url: str) -> list[dict]:
    received = []
    while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, MessageSystemAttributeNames=["All"],
                                       VisibilityTimeout=300).get("Messages", []):
        received += batch
    return received


def fail(sqs, calls_failing: dict[int, bool]) -> list[int]:
    """From now on, the n-th SendMessageBatch call (from 1) has its first entry failed (SenderFault as given)
    instead of sent: SQS's partial failure. Returns the list the calls are counted in."""
    calls: list[int] = []
    lock = threading.Lock()

    def before(params, context, **_):
        with lock:
            calls.append(len(calls) + 1)
            number = len(calls)
        if number in calls_failing:
            first, *rest = params["Entries"]
            params["Entries"] = rest  # the caller's list is left as it was
            context["failed"] = {"Id": first["Id"], "SenderFault": calls_failing[number], "Code": "InternalError",
                                 "Message": "injected"}

    def after(parsed, context, **_):
        if "failed" in context:
            parsed.setdefault("Failed", []).append(context["failed"])

    sqs.meta.events.register("before-parameter-build.sqs.SendMessageBatch", before)
    sqs.meta.events.register("after-call.sqs.SendMessageBatch", after)
    return calls


def test_many_batches_at_once_queue_each_action_once_with_its_tenant_as_message_group(sqs):
    url = sqs.create_queue(QueueName="actions")["QueueUrl"]
    sent = messages(203)
    assert ActionQueue(url, sqs, threads=8).send(iter(sent)) == 203
    received = drain(sqs, url)
    bodies = sorted(message["Body"] for message in received)
    assert bodies == sorted(message.model_dump_json() for message in sent)  # each once, none lost
    by_body = {message.model_dump_json(): message for message in sent}
    for message in received:
        tenant = by_body[message["Body"]].tenant_id
        assert message["Attributes"]["MessageGroupId"] == tenant  # SQS fair queues tell tenants apart by it


def test_an_entry_sqs_failed_on_its_side_is_sent_again_and_queued_once(sqs):
    url = sqs.create_queue(QueueName="actions")["QueueUrl"]
    calls = fail(sqs, {3: False})  # the third call: one entry failed, not the sender's fault
    assert ActionQueue(url, sqs, threads=4).send(messages(100)) == 100
    assert len(drain(sqs, url)) == 100 and len(calls) == 11  # ten batches, and that entry again on its own


def test_an_entry_refused_for_good_raises_and_no_later_batch_is_started(sqs):
    url = sqs.create_queue(QueueName="actions")["QueueUrl"]
    calls = fail(sqs, {3: True})
    with pytest.raises(QueueSendError, match="SQS refused 1 message"):
        ActionQueue(url, sqs, threads=4).send(messages(500))
    # Only the batches already under way when the refusal came back were sent: not the fifty.
    assert len(calls) <= 3 + 2 * 4 + 4 and len(drain(sqs, url)) == 10 * len(calls) - 1


def test_dead_letters_keep_their_tenants_group_and_go_back_with_it(sqs):
    actions_url = sqs.create_queue(QueueName="actions")["QueueUrl"]
    dlq_url = sqs.create_queue(QueueName="actions-dlq")["QueueUrl"]
    dlq = DeadLetterQueue(dlq_url, sqs)
    for message in messages(3):
        dlq.send(DeadLetter(reasons=["NAME_EMPTY"], message=message))
    assert dlq.redrive(actions_url).messages == 3  # moto has no StartMessageMoveTask: received and sent again
    assert sorted(m["Attributes"]["MessageGroupId"] for m in drain(sqs, actions_url)) == ["acme", "beta", "gamma"]
