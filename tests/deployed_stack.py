"""A deployed coa-sync stack on moto, for the commands that take --stack: a CloudFormation stack with
the resources, outputs and parameter of template.yaml that those commands use, and Pleo (the
emulator, with COMPANY and API_KEY) as its PleoBaseUrl."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

import boto3
from coa_sync_local import cli
from coa_sync_local.runner import _forget_cached_clients
from moto import mock_aws

from tests.support import API_KEY, COMPANY

REGION = "eu-west-1"
NAME = "coa-sync"
SECRETS_PREFIX = "coa-sync/"
STACK = {
    "Parameters": {"PleoBaseUrl": {"Type": "String"}},
    "Resources": {
        "Bucket": {"Type": "AWS::S3::Bucket"},
        "Table": {"Type": "AWS::DynamoDB::Table", "Properties": {
            "BillingMode": "PAY_PER_REQUEST",
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"},
                                     {"AttributeName": "sk", "AttributeType": "S"}]}},
        "Actions": {"Type": "AWS::SQS::Queue"},
        "ActionsDlq": {"Type": "AWS::SQS::Queue"},
    },
    "Outputs": {
        "SnapshotBucketName": {"Value": {"Ref": "Bucket"}},
        "TenantsTableName": {"Value": {"Ref": "Table"}},
        "ActionsQueueUrl": {"Value": {"Ref": "Actions"}},
        "ActionsDeadLetterQueueUrl": {"Value": {"Ref": "ActionsDlq"}},
        "WebhookUrl": {"Value": "https://abc.lambda-url.eu-west-1.on.aws/"},
        "SecretsPrefix": {"Value": SECRETS_PREFIX},
    },
}


@contextmanager
def deployed_stack(monkeypatch, emulator) -> Iterator[dict[str, str]]:
    """The stack's outputs, while moto plays its account."""
    for name, value in {"AWS_DEFAULT_REGION": REGION, "AWS_ACCESS_KEY_ID": "testing",
                        "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(name, value)
    emulator.add_company(COMPANY, api_keys=[API_KEY])
    with mock_aws():
        _forget_cached_clients()
        cloudformation = boto3.client("cloudformation", region_name=REGION)
        cloudformation.create_stack(StackName=NAME, TemplateBody=json.dumps(STACK), Parameters=[
            {"ParameterKey": "PleoBaseUrl", "ParameterValue": emulator.url}])
        yield {o["OutputKey"]: o["OutputValue"]
               for o in cloudformation.describe_stacks(StackName=NAME)["Stacks"][0]["Outputs"]}
        _forget_cached_clients()


def command(capsys, *args: str) -> tuple[int, dict]:
    """A command run against the stack with --json: its exit code and what it printed."""
    code = cli.main([*args, "--stack", NAME, "--region", REGION, "--json"])
    out = capsys.readouterr().out
    return code, json.loads(out) if out else {}


def refused(capsys, *args: str) -> str:
    """A command run against the stack that must fail as bad input (exit 2): what it said on stderr."""
    code = cli.main([*args, "--stack", NAME, "--region", REGION])
    captured = capsys.readouterr()
    assert code == 2, captured
    return captured.err
