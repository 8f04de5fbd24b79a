"""template.yaml on moto, its functions run in process: our `sam local invoke` where Docker is absent.

Everything comes from the template, so the tests and the template cannot drift apart:

- the bucket, table and queues are created with the template's own names and properties
  (Parameters at their Defaults unless a test sets them) for stack STACK_NAME in ACCOUNT / REGION,
  on moto in process or, with `deployed(endpoint=...)`, on a moto_server process on 127.0.0.1;
- a function gets exactly the environment it declares (Globals + its own, references
  resolved to those resources) plus what the Lambda runtime sets; any other variable our
  settings could read is removed, so a variable the code needs but the template forgets
  fails the cold start here as it would on AWS;
- its Handler is loaded afresh from its CodeUri, with its own fresh import of the layer's
  coa_sync (a cold start: Powertools objects, cached clients and rate limiters start anew),
  and its context has the template's Timeout and MemorySize;
- every AWS call it makes must be allowed by its own IAM policy statements: `sam local
  invoke` runs with your credentials and would never tell you about an AccessDenied.

Not modelled: SAM's implicit role grants (the failure destination, X-Ray, logs) and the
writer's SQS polling (its mapping's calls, granted in its own policy; the code calls none of
them), bucket policies, encryption and lifecycle rules, the layer build (the venv's coa_sync
is layers/core's code), and what triggers a function (the tests hand it its event, as
`sam local invoke -e` does).
"""

from __future__ import annotations

import contextlib
import copy
import fnmatch
import importlib.util
import json
import os
import re
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any
from unittest import mock

import boto3
import httpx
import yaml
from aws_lambda_powertools.utilities import parameters
from botocore.client import BaseClient
from coa_sync import settings as coa_settings
from coa_sync.adapters import aws
from coa_sync_local.environ import environment as _environment
from coa_sync_local.runner import LambdaContext
from moto import mock_aws
from pydantic_settings import BaseSettings

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE_PATH = ROOT / "template.yaml"
EVENTS = ROOT / "events"
STACK_NAME = "coa-sync-dev"  # samconfig.toml's dev stack, the one events/env.json names
ACCOUNT = "123456789012"  # moto's default account
REGION = "eu-west-1"
PARTITION = "aws"
FUNCTION = "AWS::Serverless::Function"

LAYER_PACKAGE = "coa_sync"  # the CoreLayer's package: fresh in every cold start, as in a new Lambda process

# IAM actions named otherwise than the API operation, for the calls the code makes.
IAM_ACTIONS = {
    ("lambda", "Invoke"): "lambda:InvokeFunction",
    ("sqs", "SendMessageBatch"): "sqs:SendMessage",
    ("sqs", "DeleteMessageBatch"): "sqs:DeleteMessage",
    ("sqs", "ChangeMessageVisibilityBatch"): "sqs:ChangeMessageVisibility",
}


# --- settings ----------------------------------------------------------------------------


def settings_values(settings: BaseSettings) -> dict[str, Any]:
    """A settings object's values by the environment variable each is read from (nested settings too)."""
    values: dict[str, Any] = {}
    prefix = settings.model_config.get("env_prefix", "")
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if isinstance(value, BaseSettings):
            values.update(settings_values(value))
        else:
            values[f"{prefix}{name}".upper()] = value
    return values


def _settings_variables() -> frozenset[str]:
    names: set[str] = set()

    def walk(model: type[BaseSettings]) -> None:
        prefix = model.model_config.get("env_prefix", "")
        for name, field in model.model_fields.items():
            names.add(f"{prefix}{name}".upper())
            if isinstance(field.annotation, type) and issubclass(field.annotation, BaseSettings):
                walk(field.annotation)

    for model in vars(coa_settings).values():
        if isinstance(model, type) and issubclass(model, BaseSettings) and model is not BaseSettings:
            walk(model)
    return frozenset(names)


# Every variable the functions' settings could read: all are removed before a function runs,
# then only the declared ones are set. (pydantic-settings matches names case-insensitively.)
SETTINGS_VARIABLES = _settings_variables()
# Where boto3 sends AWS calls (AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_<SERVICE>): a function has them
# only if the template declares them, whatever the tests' own process uses.
ENDPOINT_VARIABLES_PREFIX = "AWS_ENDPOINT_URL"


def _not_from_the_shell() -> frozenset[str]:
    endpoints = {name.upper() for name in os.environ if name.upper().startswith(ENDPOINT_VARIABLES_PREFIX)}
    return SETTINGS_VARIABLES | endpoints


# --- the template ------------------------------------------------------------------------


class TemplateLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short tags: !Ref X -> {"Ref": "X"}, !Sub s -> {"Fn::Sub": s}, ..."""


def _short_tag(loader: TemplateLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    if suffix in ("Ref", "Condition"):
        return {suffix: value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


TemplateLoader.add_multi_constructor("!", _short_tag)


def load_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    return yaml.load(path.read_text(), Loader=TemplateLoader)


def load_event(name: str) -> Any:
    return json.loads((EVENTS / name).read_text())


def functions(template: Mapping[str, Any]) -> list[str]:
    return [logical for logical, resource in template["Resources"].items() if resource["Type"] == FUNCTION]


class Unresolved(LookupError):
    """A reference to a resource not created (yet)."""


# What !Ref AWS::NoValue resolves to: the property (or list item) holding it is left out.
NO_VALUE = object()


@dataclass
class Call:
    """One AWS API call as boto3 made it."""

    service: str
    operation: str
    params: dict[str, Any]
    response: dict[str, Any] | None = None


# --- the stack ---------------------------------------------------------------------------


class Stack:
    """The template's resources on moto, and a resolver for its intrinsic functions."""

    def __init__(self, template: dict[str, Any], *, parameters: Mapping[str, str] | None = None,
                 overrides: Mapping[str, str] | None = None) -> None:
        self.template = template
        self.resources: dict[str, Any] = template["Resources"]
        defaults = {name: str(spec["Default"]) for name, spec in template.get("Parameters", {}).items()}
        unknown = set(parameters or {}) - set(defaults)
        assert not unknown, f"the template has no parameters {sorted(unknown)}"
        self.parameters = {**defaults, **(parameters or {})}
        self.pseudo = {"AWS::StackName": STACK_NAME, "AWS::AccountId": ACCOUNT, "AWS::Region": REGION,
                       "AWS::Partition": PARTITION, "AWS::URLSuffix": "amazonaws.com"}
        # Variables replaced wherever a function declares them, as `sam local invoke --env-vars` does.
        self.overrides = dict(overrides or {})
        self.physical: dict[str, dict[str, str]] = {}  # logical id -> {"Ref": ..., "Arn": ..., ...}
        self.calls: list[Call] = []  # every AWS call made while the stack is up

    # resolving

    def ref(self, name: str) -> Any:
        if name in self.pseudo:
            return self.pseudo[name]
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in self.parameters:
            return self.parameters[name]
        return self.attribute(name, "Ref")

    def attribute(self, logical: str, attribute: str) -> Any:
        resource = self.resources[logical]
        if logical not in self.physical and resource["Type"] == FUNCTION:
            name = self.resolve(resource["Properties"]["FunctionName"])
            self.physical[logical] = {"Ref": name, "Arn": f"arn:{PARTITION}:lambda:{REGION}:{ACCOUNT}:function:{name}"}
        try:
            return self.physical[logical][attribute]
        except KeyError:
            raise Unresolved(f"{logical}.{attribute}") from None

    def condition(self, name: str) -> bool:
        return bool(self.resolve(self.template["Conditions"][name]))

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [item for item in map(self.resolve, value) if item is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, argument),) = value.items()
            if key == "Ref":
                return self.ref(argument)
            if key == "Condition":
                return self.condition(argument)
            if key.startswith("Fn::"):
                return self._function(key[4:], argument)
        resolved = {key: self.resolve(item) for key, item in value.items()}
        return {key: item for key, item in resolved.items() if item is not NO_VALUE}

    def _function(self, name: str, argument: Any) -> Any:
        if name == "Sub":
            return self._sub(argument)
        if name == "GetAtt":
            return self.attribute(*argument)
        if name == "If":
            condition, if_true, if_false = argument
            return self.resolve(if_true if self.condition(condition) else if_false)
        args = self.resolve(argument)
        if name == "Equals":
            return str(args[0]) == str(args[1])
        if name == "Not":
            return not args[0]
        if name == "And":
            return all(args)
        if name == "Or":
            return any(args)
        if name == "Join":
            return str(args[0]).join(str(part) for part in args[1])
        if name == "Select":
            return args[1][int(args[0])]
        if name == "Split":
            return str(args[1]).split(args[0])
        raise NotImplementedError(f"Fn::{name} is not resolved by tests/template_stack.py yet")

    def _sub(self, argument: str | list[Any]) -> str:
        text, variables = (argument, {}) if isinstance(argument, str) else (argument[0], self.resolve(argument[1]))

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):  # ${!Literal} is the literal ${Literal}
                return "${" + name[1:] + "}"
            if name in variables:
                return str(variables[name])
            if "." in name:
                return str(self.attribute(*name.split(".", 1)))
            return str(self.ref(name))

        return re.sub(r"\$\{([^}]*)\}", replace, text)

    # creating

    def deploy(self) -> None:
        """Create the buckets, tables and queues, each once what it refers to exists."""
        create = {"AWS::S3::Bucket": _bucket, "AWS::DynamoDB::Table": _table, "AWS::SQS::Queue": _queue}
        pending = [logical for logical, resource in self.resources.items() if resource["Type"] in create]
        while pending:
            waiting = []
            for logical in pending:
                resource = self.resources[logical]
                try:
                    properties = self.resolve(resource.get("Properties", {}))
                except Unresolved:
                    waiting.append(logical)
                    continue
                self.physical[logical] = create[resource["Type"]](properties)
            if len(waiting) == len(pending):
                raise Unresolved(f"circular or missing references in {waiting}")
            pending = waiting

    # functions

    def properties(self, logical: str) -> dict[str, Any]:
        """A function's properties with Globals.Function applied (Environment variables merged)."""
        defaults = self.template.get("Globals", {}).get("Function", {})
        own = self.resources[logical]["Properties"]
        merged = {**defaults, **own}
        merged["Environment"] = {"Variables": {**defaults.get("Environment", {}).get("Variables", {}),
                                               **own.get("Environment", {}).get("Variables", {})}}
        return merged

    def environment(self, logical: str) -> dict[str, str]:
        """The variables the function declares, resolved, with this stack's overrides applied."""
        declared = self.resolve(self.properties(logical)["Environment"]["Variables"])
        return {name: self.overrides.get(name, _text(value)) for name, value in declared.items()}

    def function(self, logical: str, extra_env: Mapping[str, str] | None = None) -> LambdaFunction:
        """A cold start of the function; `extra_env` is for test-only knobs the template does not set."""
        return LambdaFunction(self, logical, dict(extra_env or {}))

    def allows(self, logical: str, action: str, resource: str) -> bool:
        """Whether the function's own policy statements allow this action on this resource."""
        allowed = False
        for statement in self._statements(logical):
            actions = _listed(statement["Action"])
            resources = _listed(statement["Resource"])
            if any(fnmatch.fnmatchcase(action.lower(), pattern.lower()) for pattern in actions) and any(
                fnmatch.fnmatchcase(resource, pattern) for pattern in resources
            ):
                if statement["Effect"] == "Deny":
                    return False
                allowed = True
        return allowed

    def _statements(self, logical: str) -> list[dict[str, Any]]:
        statements = []
        for policy in self.resources[logical]["Properties"].get("Policies", []):
            if not (isinstance(policy, dict) and "Statement" in policy):
                raise NotImplementedError(f"{logical}: policy {policy!r} is not modelled by tests/template_stack.py")
            statements.extend(self.resolve(policy["Statement"]))
        return statements


def _text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _listed(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value


def _bucket(properties: dict[str, Any]) -> dict[str, str]:
    s3 = boto3.client("s3", region_name=REGION)
    name = properties["BucketName"]
    s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})
    if "VersioningConfiguration" in properties:
        s3.put_bucket_versioning(Bucket=name, VersioningConfiguration=properties["VersioningConfiguration"])
    return {"Ref": name, "Arn": f"arn:{PARTITION}:s3:::{name}"}


def _table(properties: dict[str, Any]) -> dict[str, str]:
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    wanted = ("TableName", "KeySchema", "AttributeDefinitions", "BillingMode", "DeletionProtectionEnabled")
    table = dynamodb.create_table(**{key: properties[key] for key in wanted if key in properties})
    return {"Ref": properties["TableName"], "Arn": table["TableDescription"]["TableArn"]}


def _queue(properties: dict[str, Any]) -> dict[str, str]:
    sqs = boto3.client("sqs", region_name=REGION)
    name = properties["QueueName"]
    # CloudFormation's queue properties are SQS's attribute names; policies are JSON strings.
    attributes = {key: json.dumps(value) if isinstance(value, dict) else _text(value)
                  for key, value in properties.items() if key not in ("QueueName", "Tags")}
    url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return {"Ref": url, "Arn": arn, "QueueName": name, "QueueUrl": url}


def iam_requests(call: Call) -> list[tuple[str, str]]:
    """The IAM actions and resource ARNs a call is authorized against (for the services the code uses)."""
    action = IAM_ACTIONS.get((call.service, call.operation), f"{call.service}:{call.operation}")
    params = call.params
    if call.service == "s3":
        resources = [f"arn:{PARTITION}:s3:::{params['Bucket']}" + (f"/{params['Key']}" if "Key" in params else "")]
    elif call.service == "dynamodb" and call.operation == "TransactWriteItems":
        # Authorized as each of its writes (ConditionCheck as ConditionCheckItem), on its own table.
        return [(f"dynamodb:{kind}Item" if kind != "ConditionCheck" else "dynamodb:ConditionCheckItem",
                 f"arn:{PARTITION}:dynamodb:{REGION}:{ACCOUNT}:table/{write['TableName']}")
                for item in params["TransactItems"] for kind, write in item.items()]
    elif call.service == "dynamodb":
        resources = [f"arn:{PARTITION}:dynamodb:{REGION}:{ACCOUNT}:table/{params['TableName']}"]
    elif call.service == "sqs":
        account, name = params["QueueUrl"].rstrip("/").rsplit("/", 2)[-2:]
        resources = [f"arn:{PARTITION}:sqs:{REGION}:{account}:{name}"]
    elif call.service == "secretsmanager":
        # A secret's ARN is its name plus "-" and six random characters.
        secret = params.get("SecretId") or params["Name"]
        resources = [secret if secret.startswith("arn:") else
                     f"arn:{PARTITION}:secretsmanager:{REGION}:{ACCOUNT}:secret:{secret}-AbCdEf"]
    elif call.service == "lambda":
        name = params["FunctionName"]
        resources = [name if name.startswith("arn:") else f"arn:{PARTITION}:lambda:{REGION}:{ACCOUNT}:function:{name}"]
    elif call.service == "events" and call.operation == "PutEvents":
        buses = {entry.get("EventBusName") or "default" for entry in params["Entries"]}
        resources = [bus if bus.startswith("arn:") else f"arn:{PARTITION}:events:{REGION}:{ACCOUNT}:event-bus/{bus}"
                     for bus in sorted(buses)]
    else:
        raise NotImplementedError(f"no IAM resource known for {call.service}:{call.operation}")
    return [(action, resource) for resource in resources]


# --- functions ---------------------------------------------------------------------------


class LambdaFunction:
    """One function after a cold start; calling it is one invocation (the container stays warm)."""

    def __init__(self, stack: Stack, logical: str, extra_env: dict[str, str]) -> None:
        self.stack = stack
        self.logical = logical
        properties = stack.properties(logical)
        self.name: str = stack.ref(logical)
        self.timeout = float(properties["Timeout"])
        self.memory = int(properties["MemorySize"])
        # What the Lambda runtime sets, then what the function declares, then the test's knobs.
        self.env = {
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_LAMBDA_FUNCTION_NAME": self.name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(self.memory),
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "POWERTOOLS_TRACE_DISABLED": "true",  # no X-Ray daemon here
            **stack.environment(logical),
            **extra_env,
        }
        module_name, attribute = properties["Handler"].rsplit(".", 1)
        path = ROOT / properties["CodeUri"] / f"{module_name}.py"
        self.calls: list[Call] = []  # the AWS calls of the last cold start or invocation
        self.layer: dict[str, ModuleType] = {}  # the function's own copy of the layer's modules
        with self._running():
            self.module = _load_module(path, f"coa_sync_template_{logical}_{uuid.uuid4().hex}")
        self.handler = getattr(self.module, attribute)

    def __call__(self, event: Any, context: Any = None) -> Any:
        context = context or LambdaContext(self.name, timeout_seconds=self.timeout, memory_limit_in_mb=self.memory)
        with self._running():
            return self.handler(copy.deepcopy(event), context)

    @contextlib.contextmanager
    def _running(self) -> Iterator[None]:
        start = len(self.stack.calls)
        with _environment(self.env, unset=_not_from_the_shell()), _own_layer(self.layer):
            try:
                yield
            finally:
                self.calls = self.stack.calls[start:]
        requests = [request for call in self.calls for request in iam_requests(call)]
        denied = sorted({request for request in requests if not self.stack.allows(self.logical, *request)})
        assert not denied, f"{self.logical}'s policy does not allow {denied}"


def _load_module(path: Path, name: str) -> ModuleType:
    """The handler module (run it in the function's _own_layer)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def _own_layer(modules: dict[str, ModuleType]) -> Iterator[None]:
    """Runs with `modules` as the layer's modules (none at a cold start: a fresh copy is imported) and
    keeps in it whatever the function imports meanwhile, at its cold start or, lazily, in an invocation.
    So a function has its own copy of the layer, as in its own Lambda process: module-level state
    (Powertools objects, cached clients, rate limiters) starts anew and is not shared with the tests'
    copy, which is put back afterwards."""
    ours = {key: module for key, module in sys.modules.items() if _in_layer(key)}
    for key in ours:
        del sys.modules[key]
    sys.modules.update(modules)
    try:
        yield
    finally:
        modules.update({key: module for key, module in sys.modules.items() if _in_layer(key)})
        for key in [key for key in sys.modules if _in_layer(key)]:
            del sys.modules[key]
        sys.modules.update(ours)


def _in_layer(module_name: str) -> bool:
    return module_name == LAYER_PACKAGE or module_name.startswith(LAYER_PACKAGE + ".")


def reset_clients() -> None:
    """Forget boto3 clients and secrets cached for an earlier moto world (as the local runner does)."""
    aws.reset()
    parameters.clear_caches()
    parameters.base.DEFAULT_PROVIDERS.clear()


@contextlib.contextmanager
def deployed(template: dict[str, Any] | None = None, *, parameters: Mapping[str, str] | None = None,
             overrides: Mapping[str, str] | None = None, endpoint: str | None = None) -> Iterator[Stack]:
    """The template's storage on a fresh moto world, every AWS call recorded in `stack.calls`.

    The world is moto in process, or the moto_server at `endpoint` (see `moto_server`), which
    the tests' own boto3 calls reach through AWS_ENDPOINT_URL; a function reaches it only if
    the template passes it the variable (the AwsEndpointUrl parameter). Every call is checked
    to go there: nothing leaves 127.0.0.1.
    """
    stack = Stack(template or load_template(), parameters=parameters, overrides=overrides)
    make_api_call = BaseClient._make_api_call

    def recorded(client: BaseClient, operation: str, params: dict[str, Any]) -> Any:
        call = Call(client.meta.service_model.service_name, operation, dict(params))
        if endpoint is not None:
            assert client.meta.endpoint_url.rstrip("/") == endpoint, (
                f"{call.service}:{operation} went to {client.meta.endpoint_url}, not moto_server at {endpoint}")
        stack.calls.append(call)
        call.response = make_api_call(client, operation, params)
        return call.response

    test_env = {"AWS_DEFAULT_REGION": REGION, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    if endpoint is None:
        # Lambda without Docker: moto's simple backend accepts Invoke without running any code.
        world: contextlib.AbstractContextManager[Any] = mock_aws(config={"lambda": {"use_docker": False}})
    else:
        _moto_api(endpoint, "reset")
        _moto_api(endpoint, "config", {"lambda": {"use_docker": False}})
        test_env["AWS_ENDPOINT_URL"] = endpoint
        world = contextlib.nullcontext()
    with _environment(test_env), world, mock.patch.object(BaseClient, "_make_api_call", recorded):
        reset_clients()
        try:
            stack.deploy()
            yield stack
        finally:
            reset_clients()


# --- moto_server ---------------------------------------------------------------------------


@contextlib.contextmanager
def moto_server(start_timeout: float = 30.0) -> Iterator[str]:
    """A moto_server process on 127.0.0.1 (moto[server]), as a user runs it for `sam local invoke`; its URL."""
    with socket.socket() as probe:  # a free port: moto_server cannot report the one it took
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + start_timeout
        while True:
            try:
                httpx.get(f"{url}/moto-api/config", timeout=1).raise_for_status()
                break
            except httpx.TransportError:
                assert process.poll() is None, f"moto_server exited with {process.returncode}"
                assert time.monotonic() < deadline, f"moto_server did not answer on {url} in {start_timeout} s"
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _moto_api(url: str, path: str, body: Any = None) -> None:
    """POST to moto's own API (/moto-api/reset, /moto-api/config), which moto documents for server mode."""
    httpx.post(f"{url}/moto-api/{path}", json=body, timeout=5).raise_for_status()
