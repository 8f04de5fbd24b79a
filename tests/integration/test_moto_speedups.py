"""The local runner's speed fixes for moto's SQS (coa_sync_local.moto_speedups) leave SQS as it was.

Two kinds of check: the serializer fast paths give byte-for-byte the body moto's own
serializer gives, and SQS as a client sees it (through boto3, on moto with the fixes) still
keeps its rules: counts, visibility, delays, receive counts, redrive to the DLQ, deletes by
any receipt handle, attribute filtering and digests, long polling.
"""

from __future__ import annotations

import copy
import hashlib
import json
import struct
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from coa_sync_local import moto_speedups
from coa_sync_local import runner as runner_module
from moto import mock_aws
from moto.core import serialize
from moto.core.utils import get_service_model
from moto.sqs.models import Message

REGION = "eu-west-1"
ATTRIBUTES = {
    "tenantId": {"DataType": "String", "StringValue": "acme"},
    "runId": {"DataType": "String", "StringValue": "run-1"},
    "action": {"DataType": "String", "StringValue": "create"},
}


@pytest.fixture(autouse=True)
def speedups() -> None:
    moto_speedups.apply()


@pytest.fixture
def sqs(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    with mock_aws():
        yield boto3.client("sqs", region_name=REGION)


def _queue(sqs: Any, name: str = "q", **attributes: str) -> str:
    return sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]


def _counts(sqs: Any, url: str) -> tuple[int, int, int]:
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
             "ApproximateNumberOfMessagesDelayed"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
    return tuple(int(attributes[name]) for name in names)  # type: ignore[return-value]


def _receive(sqs: Any, url: str, count: int = 10, **options: Any) -> list[dict[str, Any]]:
    return sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=count, AttributeNames=["All"],
                               MessageAttributeNames=["All"], **options).get("Messages", [])


# -- the serializer: the same bytes as moto's own ---------------------------------------------------


def _body(operation: str, result: Any) -> str:
    model = get_service_model("sqs").operation_model(operation)
    return serialize.JSONSerializer(operation_model=model, value_picker=serialize.XFormedAttributePicker()) \
        .serialize(result)["body"]


SERIALIZED = [
    ("ReceiveMessage", {"Messages": [
        {"MessageId": "m-1", "ReceiptHandle": "r" * 185, "MD5OfBody": "a" * 32, "Body": '{"x": "é\\n"}',
         "Attributes": {"SenderId": "AIDA", "SentTimestamp": "1700000000000", "ApproximateReceiveCount": "2"},
         "MD5OfMessageAttributes": "b" * 32,
         "MessageAttributes": {
             **ATTRIBUTES,
             "blob": {"DataType": "Binary", "BinaryValue": b"\x00\xff"},
             "number": {"DataType": "Number", "StringValue": "12.5"},
             "list": {"DataType": "String", "StringListValues": ["a", "b"]},
         }},
        {"MessageId": "m-2", "ReceiptHandle": "h", "MD5OfBody": "c", "Body": ""},  # empty and absent fields
        {"MessageId": "m-3", "ReceiptHandle": "h", "MD5OfBody": "c", "Body": "x",
         "Attributes": {"ApproximateReceiveCount": 3, "SenderId": "A"}},  # a map with a non-str value
    ]}),
    ("ReceiveMessage", {}),
    ("ReceiveMessage", {"messages": [{"message_id": "m", "receipt_handle": "h", "body": "snake_case keys"}]}),
    ("SendMessageBatch", {
        "Successful": [{"Id": "0", "MessageId": "m", "MD5OfMessageBody": "d", "MD5OfMessageAttributes": "e"}],
        "Failed": [{"Id": "1", "SenderFault": True, "Code": "InvalidParameterValue", "Message": "DelaySeconds"}]}),
    ("DeleteMessageBatch", {"Successful": [{"Id": "0"}], "Failed": []}),
    ("GetQueueAttributes", {"Attributes": {"ApproximateNumberOfMessages": "3", "QueueArn": "arn:aws:sqs:x"}}),
    ("ListQueues", {"QueueUrls": ["https://sqs.eu-west-1.amazonaws.com/123456789012/q"]}),
]


@pytest.mark.parametrize(("operation", "result"), SERIALIZED)
def test_responses_serialize_to_the_same_body_as_moto(operation: str, result: Any,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    fast = _body(operation, copy.deepcopy(result))
    monkeypatch.setattr(serialize.BaseJSONSerializer, "_serialize_type_structure",
                        moto_speedups._json_serialize_type_structure)
    monkeypatch.setattr(serialize.BaseJSONSerializer, "_serialize_type_map", moto_speedups._json_serialize_type_map)
    assert fast == _body(operation, copy.deepcopy(result))


# -- SQS's rules, through boto3 --------------------------------------------------------------------


def test_counts_follow_sends_receives_and_deletes(sqs: Any) -> None:
    url = _queue(sqs)
    for start in range(0, 25, 10):
        sqs.send_message_batch(QueueUrl=url, Entries=[
            {"Id": str(i), "MessageBody": f"m{start + i}", "MessageAttributes": ATTRIBUTES}
            for i in range(min(10, 25 - start))])
    sqs.send_message(QueueUrl=url, MessageBody="later", DelaySeconds=60)
    assert _counts(sqs, url) == (25, 0, 1)

    first = _receive(sqs, url)
    second = _receive(sqs, url)
    assert [m["Body"] for m in first + second] == [f"m{i}" for i in range(20)]  # in-flight ones passed over
    assert _counts(sqs, url) == (5, 20, 1)

    sqs.delete_message_batch(QueueUrl=url, Entries=[
        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(second)])
    assert _counts(sqs, url) == (5, 10, 1)
    assert [m["Body"] for m in _receive(sqs, url)] == [f"m{i}" for i in range(20, 25)]  # not the delayed one
    assert _receive(sqs, url) == []


def test_a_message_comes_back_after_its_visibility_timeout(sqs: Any) -> None:
    url = _queue(sqs, VisibilityTimeout="1")
    sqs.send_message(QueueUrl=url, MessageBody="x")
    (first,) = _receive(sqs, url)
    assert _receive(sqs, url) == []
    time.sleep(1.1)
    (again,) = _receive(sqs, url)
    assert (first["Attributes"]["ApproximateReceiveCount"], again["Attributes"]["ApproximateReceiveCount"]) == \
        ("1", "2")
    assert again["ReceiptHandle"] != first["ReceiptHandle"]
    assert len(again["ReceiptHandle"]) == 185 and again["ReceiptHandle"].isascii() and again["ReceiptHandle"].islower()


def test_a_delayed_message_is_counted_apart_until_due(sqs: Any) -> None:
    url = _queue(sqs)
    sqs.send_message(QueueUrl=url, MessageBody="x", DelaySeconds=1)
    assert _counts(sqs, url) == (0, 0, 1)
    assert _receive(sqs, url) == []
    time.sleep(1.1)
    assert _counts(sqs, url) == (1, 0, 0)
    assert [m["Body"] for m in _receive(sqs, url)] == ["x"]


def test_long_polling_waits_for_a_message(sqs: Any) -> None:
    url = _queue(sqs)
    started = time.monotonic()
    assert _receive(sqs, url, WaitTimeSeconds=1) == []
    assert time.monotonic() - started >= 0.9
    sqs.send_message(QueueUrl=url, MessageBody="x", DelaySeconds=1)
    assert [m["Body"] for m in _receive(sqs, url, WaitTimeSeconds=3)] == ["x"]


def test_redrive_to_the_dlq_after_max_receive_count(sqs: Any) -> None:
    dlq = _queue(sqs, "dlq")
    arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    url = _queue(sqs, VisibilityTimeout="0",
                 RedrivePolicy=json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": 2}))
    sqs.send_message(QueueUrl=url, MessageBody="poison", MessageAttributes=ATTRIBUTES)
    sqs.send_message(QueueUrl=url, MessageBody="fine")
    for receive in (1, 2):
        assert {m["Body"]: m["Attributes"]["ApproximateReceiveCount"] for m in _receive(sqs, url)} == \
            {"poison": str(receive), "fine": str(receive)}
        time.sleep(0.01)
    assert _receive(sqs, url) == []  # both moved on this receive
    moved = _receive(sqs, dlq)
    assert sorted(m["Body"] for m in moved) == ["fine", "poison"]
    poison = next(m for m in moved if m["Body"] == "poison")
    assert poison["MessageAttributes"] == {name: {"DataType": value["DataType"], "StringValue": value["StringValue"]}
                                           for name, value in ATTRIBUTES.items()}
    assert _counts(sqs, url) == (0, 0, 0)


def test_deletes_by_any_receipt_handle_once_and_refuses_unknown_ones(sqs: Any) -> None:
    url = _queue(sqs, VisibilityTimeout="0")
    sqs.send_message(QueueUrl=url, MessageBody="x")
    sqs.send_message(QueueUrl=url, MessageBody="y")
    old = {m["Body"]: m["ReceiptHandle"] for m in _receive(sqs, url)}
    time.sleep(0.01)
    new = {m["Body"]: m["ReceiptHandle"] for m in _receive(sqs, url)}
    sqs.delete_message(QueueUrl=url, ReceiptHandle=old["x"])  # moto accepts an earlier handle
    sqs.delete_message(QueueUrl=url, ReceiptHandle=new["x"])  # deleting again is fine
    response = sqs.delete_message_batch(QueueUrl=url, Entries=[
        {"Id": "ok", "ReceiptHandle": new["y"]}, {"Id": "bad", "ReceiptHandle": "no-such-handle"}])
    assert [s["Id"] for s in response["Successful"]] == ["ok"]
    assert [(f["Id"], f["Code"]) for f in response["Failed"]] == [("bad", "ReceiptHandleIsInvalid")]
    with pytest.raises(ClientError, match="ReceiptHandleIsInvalid"):
        sqs.delete_message(QueueUrl=url, ReceiptHandle="no-such-handle")
    assert _counts(sqs, url) == (0, 0, 0)


def test_a_batch_delete_takes_out_exactly_its_messages_and_keeps_the_order(sqs: Any) -> None:
    url = _queue(sqs, VisibilityTimeout="0")
    sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": f"m{i}"} for i in range(10)])
    first = {m["Body"]: m["ReceiptHandle"] for m in _receive(sqs, url)}
    time.sleep(0.01)
    second = {m["Body"]: m["ReceiptHandle"] for m in _receive(sqs, url)}
    response = sqs.delete_message_batch(QueueUrl=url, Entries=[
        {"Id": "a", "ReceiptHandle": second["m7"]}, {"Id": "b", "ReceiptHandle": first["m2"]},
        {"Id": "c", "ReceiptHandle": second["m3"]}, {"Id": "d", "ReceiptHandle": "no-such-handle"},
        {"Id": "e", "ReceiptHandle": first["m7"]},  # the same message as "a": already deleted, fine
        {"Id": "f", "ReceiptHandle": second["m9"]}, {"Id": "g", "ReceiptHandle": second["m0"]}])
    assert [s["Id"] for s in response["Successful"]] == ["a", "b", "c", "e", "f", "g"]
    assert [(f["Id"], f["Code"]) for f in response["Failed"]] == [("d", "ReceiptHandleIsInvalid")]
    time.sleep(0.01)
    assert [m["Body"] for m in _receive(sqs, url)] == ["m1", "m4", "m5", "m6", "m8"]
    assert _counts(sqs, url) == (5, 0, 0)


def test_a_received_copy_is_filtered_and_the_stored_message_keeps_everything(sqs: Any) -> None:
    url = _queue(sqs, VisibilityTimeout="0")
    sent = sqs.send_message(QueueUrl=url, MessageBody="x", MessageAttributes=ATTRIBUTES)
    (only,) = sqs.receive_message(QueueUrl=url, MessageAttributeNames=["tenantId"])["Messages"]
    assert set(only["MessageAttributes"]) == {"tenantId"}
    assert only["MD5OfMessageAttributes"] != sent["MD5OfMessageAttributes"]
    time.sleep(0.01)
    (every,) = _receive(sqs, url)
    assert set(every["MessageAttributes"]) == set(ATTRIBUTES)
    assert every["MD5OfMessageAttributes"] == sent["MD5OfMessageAttributes"] == _md5_of_attributes(ATTRIBUTES)
    assert every["MD5OfBody"] == hashlib.md5(b"x").hexdigest()


def test_messages_with_the_same_attributes_share_them_and_each_is_received_as_sent(sqs: Any) -> None:
    url = _queue(sqs, VisibilityTimeout="0")
    other = {**ATTRIBUTES, "action": {"DataType": "String", "StringValue": "archive"}}
    for attributes in (ATTRIBUTES, ATTRIBUTES, other):
        sqs.send_message(QueueUrl=url, MessageBody="x", MessageAttributes=attributes)
    first, second, third = moto_speedups.sqs_models.sqs_backends["123456789012"][REGION].queues["q"]._messages
    assert first.message_attributes is second.message_attributes is not third.message_attributes
    assert sqs.receive_message(QueueUrl=url, MessageAttributeNames=["tenantId"])["Messages"][0][
        "MessageAttributes"].keys() == {"tenantId"}  # a filtered copy: the shared one keeps everything
    received = [m["MessageAttributes"] for m in _receive(sqs, url, count=3)]
    assert sorted(m["action"]["StringValue"] for m in received) == ["archive", "create", "create"]
    assert all(set(m) == set(ATTRIBUTES) for m in received)


def test_message_copies_are_deep() -> None:
    message = Message("id", "body")
    message.message_attributes = copy.deepcopy(ATTRIBUTES)
    message._old_receipt_handles = ["a", "b"]
    duplicate = copy.deepcopy(message)
    assert duplicate is not message and vars(duplicate) == vars(message)
    assert not any(tracked is duplicate for tracked in Message.instances_tracked)  # a copy is no model instance
    duplicate.message_attributes["tenantId"]["StringValue"] = "other"
    duplicate._old_receipt_handles.append("c")
    assert message.message_attributes == ATTRIBUTES and message._old_receipt_handles == ["a", "b"]


@pytest.mark.parametrize("attributes", [
    ATTRIBUTES,
    {**ATTRIBUTES, "action": {"DataType": "String", "StringValue": "archive"}},
    {"blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01"}, "n": {"DataType": "Number", "StringValue": "1"}},
    {"custom": {"DataType": "String.custom", "StringValue": "ø"}},
    {},
])
def test_attribute_digests_are_moto_s_own(attributes: dict[str, Any]) -> None:
    for _ in range(2):  # computed, then remembered
        message = Message("id", "body")
        message.message_attributes = copy.deepcopy(attributes)
        assert message.attribute_md5 == moto_speedups._attribute_md5(message) == _md5_of_attributes(attributes)


def test_applying_twice_changes_nothing(sqs: Any) -> None:
    moto_speedups.apply()
    url = _queue(sqs)
    sqs.send_message(QueueUrl=url, MessageBody="x")
    assert _counts(sqs, url) == (1, 0, 0)


def test_the_runner_hands_the_writer_what_receive_message_answers(sqs: Any) -> None:
    """The runner's event source mapping reads moto's SQS in process; its records are the ones a
    ReceiveMessage (AttributeNames and MessageAttributeNames All) would have given."""
    url = _queue(sqs, VisibilityTimeout="0")
    sqs.send_message(QueueUrl=url, MessageBody='{"action": "create"}', MessageAttributes=ATTRIBUTES)
    (answered,) = _receive(sqs, url)
    time.sleep(0.01)
    backend, name = runner_module._sqs_backend(url)
    (handed,) = backend.receive_message(name, count=10, wait_seconds_timeout=0, visibility_timeout=0,
                                        message_attribute_names=["All"])
    expected, actual = runner_module._sqs_record(answered, "arn"), runner_module._event_record(handed, "arn")
    assert (expected["attributes"]["ApproximateReceiveCount"], actual["attributes"]["ApproximateReceiveCount"]) == \
        ("1", "2")
    for record in (expected, actual):
        del record["receiptHandle"], record["attributes"]["ApproximateReceiveCount"]
    assert actual == expected


def _md5_of_attributes(attributes: dict[str, Any]) -> str:
    """MD5OfMessageAttributes as SQS documents it (what boto3's own checks compute)."""
    digest = hashlib.md5()
    for name in sorted(attributes):
        value = attributes[name]
        for part in (name.encode(), value["DataType"].encode()):
            digest.update(struct.pack("!I", len(part)) + part)
        if "StringValue" in value:
            data = value["StringValue"].encode()
            digest.update(b"\x01" + struct.pack("!I", len(data)) + data)
        elif "BinaryValue" in value:
            digest.update(b"\x02" + struct.pack("!I", len(value["BinaryValue"])) + value["BinaryValue"])
    return digest.hexdigest()
