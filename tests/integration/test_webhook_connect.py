"""The deployed OAuth connect flow, the webhook function on moto as template.yaml declares it: each
way a connection can go wrong gets its page and stores nothing (the browser test walks the happy path)."""

from __future__ import annotations

import copy
import json
import time
from urllib.parse import parse_qs, urlencode, urlsplit

import boto3
import pytest
from coa_sync.adapters.pleo_connection import PleoConnections
from coa_sync.pipeline.connect import connect_link
from coa_sync_local.emulators.pleo import PleoEmulator

from tests.oauth_support import CLIENT_ID, CLIENT_SECRET, consent
from tests.support import COMPANY
from tests.template_stack import deployed, load_event

LINK_KEY = "connect-link-key-0123456789abcdef"
WEBHOOK = "https://abc.lambda-url.eu-west-1.on.aws"
REDIRECT = f"{WEBHOOK}/oauth/callback"


@pytest.fixture
def world():
    with PleoEmulator() as pleo, deployed() as stack:
        pleo.add_company(COMPANY)
        pleo.add_oauth_client(CLIENT_ID, CLIENT_SECRET, [REDIRECT])
        prefix = stack.ref("SecretsPrefix")
        boto3.resource("dynamodb").Table(stack.ref("TenantsTable")).put_item(Item={
            "pk": "TENANT#acme", "sk": "CONFIG", "tenantId": "acme", "companyId": COMPANY, "enabled": True,
            "pleoSecretName": f"{prefix}acme/pleo", "source": {"kind": "file", "uri": "s3://b/sources/a.csv"}})
        boto3.client("secretsmanager").create_secret(Name=f"{prefix}pleo-oauth", SecretString=json.dumps({
            "authorizeUrl": f"{pleo.url}/oauth/authorize", "tokenUrl": f"{pleo.url}/oauth/token",
            "clientId": CLIENT_ID, "clientSecret": CLIENT_SECRET, "redirectUri": REDIRECT, "scope": "test:test",
            "linkKey": LINK_KEY}))
        yield pleo, stack, stack.function("WebhookFunction")


def get(webhook, url: str) -> dict:
    """GET `url` on the webhook's Function URL: its answer (statusCode, headers, body)."""
    target = urlsplit(url)
    event = copy.deepcopy(load_event("webhook-start-run.json"))
    event.update({"rawPath": target.path, "rawQueryString": target.query, "body": None,
                  "queryStringParameters": {k: v[0] for k, v in parse_qs(target.query).items()} or None})
    event["requestContext"]["http"].update({"method": "GET", "path": target.path})
    return webhook(event)


def stored(stack) -> str | None:
    try:
        return boto3.client("secretsmanager").get_secret_value(
            SecretId=f"{stack.ref('SecretsPrefix')}acme/pleo")["SecretString"]
    except boto3.client("secretsmanager").exceptions.ResourceNotFoundException:
        return None


def test_a_link_that_is_forged_for_another_tenant_or_expired_gets_a_page_and_no_flow(world):
    _, stack, webhook = world
    later = int(time.time()) + 3600
    good = connect_link(WEBHOOK, LINK_KEY, "acme", later)
    for url, title in [(good.replace("acme", "beta", 1), "not valid"),  # the signature covers the tenant
                       (connect_link(WEBHOOK, "another-key-0123456789", "acme", later), "not valid"),
                       (connect_link(WEBHOOK, LINK_KEY, "ghost", later), "not valid"),
                       (connect_link(WEBHOOK, LINK_KEY, "acme", int(time.time()) - 1), "expired")]:
        answer = get(webhook, url)
        assert answer["statusCode"] == 403 and title in answer["body"]
    started = get(webhook, good)
    assert started["statusCode"] == 302
    location = started["headers"]["Location"]
    query = parse_qs(urlsplit(location).query)
    assert (query["response_type"], query["code_challenge_method"], query["redirect_uri"]) == (
        ["code"], ["S256"], [REDIRECT])
    assert stored(stack) is None


def test_a_refusal_a_forged_state_and_a_replayed_callback_store_nothing(world):
    pleo, stack, webhook = world
    authorize = get(webhook, connect_link(WEBHOOK, LINK_KEY, "acme", int(time.time()) + 60))["headers"]["Location"]
    denied = consent(authorize, COMPANY, decision="deny")
    answer = get(webhook, f"{REDIRECT}?{urlencode(denied)}")
    assert answer["statusCode"] == 400 and "access_denied" in answer["body"] and stored(stack) is None

    authorize = get(webhook, connect_link(WEBHOOK, LINK_KEY, "acme", int(time.time()) + 60))["headers"]["Location"]
    redirect = consent(authorize, COMPANY)
    forged = get(webhook, f"{REDIRECT}?{urlencode({**redirect, 'state': 'made-up'})}")
    assert forged["statusCode"] == 400 and "cannot be used" in forged["body"] and stored(stack) is None

    connected = get(webhook, f"{REDIRECT}?{urlencode(redirect)}")
    assert connected["statusCode"] == 200 and "Connected to Pleo" in connected["body"]
    first = stored(stack)
    assert json.loads(first)["refreshToken"]
    replayed = get(webhook, f"{REDIRECT}?{urlencode(redirect)}")
    assert replayed["statusCode"] == 400 and "cannot be used" in replayed["body"]
    assert stored(stack) == first and pleo.oauth.events["exchanges"] == 1


def test_reconnecting_a_needs_reauth_tenant_clears_it(world):
    _, stack, webhook = world
    connections = PleoConnections(stack.ref("TenantsTable"))
    connections.mark_needs_reauth("acme", "invalid_grant: revoked")
    authorize = get(webhook, connect_link(WEBHOOK, LINK_KEY, "acme", int(time.time()) + 60))["headers"]["Location"]
    assert get(webhook, f"{REDIRECT}?{urlencode(consent(authorize, COMPANY))}")["statusCode"] == 200
    assert connections.status("acme")["status"] == "connected"


def test_a_link_connects_once_and_a_second_flow_from_it_stores_nothing(world):
    _, stack, webhook = world
    link = connect_link(WEBHOOK, LINK_KEY, "acme", int(time.time()) + 3600)
    # Two flows from one link (two tabs, or the link forwarded on): each gets to Pleo's consent page.
    first, second = (consent(get(webhook, link)["headers"]["Location"], COMPANY) for _ in range(2))
    assert get(webhook, f"{REDIRECT}?{urlencode(first)}")["statusCode"] == 200
    connected = stored(stack)
    late = get(webhook, f"{REDIRECT}?{urlencode(second)}")
    assert late["statusCode"] == 403 and "used already" in late["body"] and stored(stack) == connected
    again = get(webhook, link)
    assert again["statusCode"] == 403 and "used already" in again["body"]
    assert "Location" not in again["headers"]
