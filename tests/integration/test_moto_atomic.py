"""moto's DynamoDB made atomic per write (coa_sync_local.moto_atomic), as DynamoDB is: conditional writes from
many threads at once each take effect whole or not at all (without it, two pass one check and one is lost)."""

from __future__ import annotations

import sys
import threading

import boto3
from botocore.exceptions import ClientError
from coa_sync_local import moto_atomic
from moto import mock_aws

KEY = {"pk": {"S": "COUNTER"}, "sk": {"S": "COUNTER"}}


def test_optimistic_increments_from_many_threads_are_never_lost():
    moto_atomic.apply()
    switch = sys.getswitchinterval()
    sys.setswitchinterval(0.0001)  # threads swap often: a check and its write get split if they can be
    try:
        with mock_aws():
            dynamodb = boto3.client("dynamodb", region_name="eu-west-1", aws_access_key_id="testing",
                                    aws_secret_access_key="testing")
            dynamodb.create_table(
                TableName="t", BillingMode="PAY_PER_REQUEST",
                KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
                AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                      {"AttributeName": "sk", "AttributeType": "S"}])
            dynamodb.put_item(TableName="t", Item={**KEY, "v": {"N": "0"}})
            wins: list[int] = []

            def increment() -> None:
                for _ in range(40):
                    seen = dynamodb.get_item(TableName="t", Key=KEY, ConsistentRead=True)["Item"]["v"]["N"]
                    try:
                        dynamodb.update_item(TableName="t", Key=KEY, UpdateExpression="SET v = :next",
                                             ConditionExpression="v = :seen",
                                             ExpressionAttributeValues={":next": {"N": str(int(seen) + 1)},
                                                                        ":seen": {"N": seen}})
                    except ClientError as exc:
                        assert exc.response["Error"]["Code"] == "ConditionalCheckFailedException"
                    else:
                        wins.append(1)

            threads = [threading.Thread(target=increment) for _ in range(4)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            final = int(dynamodb.get_item(TableName="t", Key=KEY)["Item"]["v"]["N"])
    finally:
        sys.setswitchinterval(switch)
    assert final == len(wins) > 0
