"""webhook λ (Function URL): start a tenant's run on a signed request, and report on a run.

POST /tenants/{tenant}/runs            -> 202 {"runId"}; 409 if a run is in progress
GET  /tenants/{tenant}/runs/{run_id}   -> 200 the run's status and counts
POST /tenants/{tenant}/runs/{run_id}/approve -> 200 the run, its held archives queued; 409 if not approvable;
                                                502 if Pleo did not answer with the tenant's credentials
Signed with HMAC-SHA256 (see coa_sync.signing); anything unsigned gets the same 401.
"""

from __future__ import annotations

import base64
import functools
import html
import time
from typing import Any

from aws_lambda_powertools.event_handler import LambdaFunctionUrlResolver, Response, content_types
from aws_lambda_powertools.utilities.typing import LambdaContext
from coa_sync import wiring
from coa_sync.adapters.ledger import Ledger
from coa_sync.adapters.pleo_connection import PleoConnections
from coa_sync.adapters.queues import ActionQueue
from coa_sync.adapters.runs import LambdaRunStarter
from coa_sync.adapters.secrets import webhook_secret
from coa_sync.adapters.snapshots import SnapshotStore
from coa_sync.adapters.tenants import TenantStore
from coa_sync.observability import logger, metrics, observe_pleo, tracer
from coa_sync.pipeline.approve import approve_run
from coa_sync.pipeline.connect import Page
from coa_sync.pipeline.webhook import Answer, Webhook
from coa_sync.settings import WebhookSettings

settings = WebhookSettings()  # type: ignore[call-arg]  # read from the environment
ledger = Ledger(settings.tenants_table)
files = SnapshotStore(settings.snapshot_bucket)
tenants = TenantStore(settings.tenants_table)
approve = functools.partial(approve_run, approved_by="webhook", ledger=ledger, files=files,
                            actions=ActionQueue(settings.actions_queue_url),
                            finished=wiring.run_finisher(settings, files), ttl_seconds=settings.lock_ttl_seconds,
                            check_pleo=wiring.pleo_check(settings, tenants.get, observe_pleo))
webhook = Webhook(tenant=tenants.get, secret=webhook_secret, ledger=ledger, first_use=ledger.first_use,
                  start=LambdaRunStarter(settings.fetch_function_name), approve=approve,
                  lock_ttl_seconds=settings.lock_ttl_seconds, connection=PleoConnections(settings.tenants_table).status)


def start_first_run(tenant_id: str) -> str | None:
    """Pleo asks for a sync on connect: the run's id, or None when one is in progress already."""
    answer = webhook.launch(tenant_id, "connect")
    return answer.body["runId"] if answer.status == 202 else None


connector = wiring.pleo_connector(settings, tenants.get, start_first_run)
app = LambdaFunctionUrlResolver()


@app.post("/tenants/<tenant_id>/runs")
def start_run(tenant_id: str) -> Response:
    answer = webhook.start_run(tenant_id, _raw_body(), app.current_event.headers, time.time())
    if answer.status == 202:
        logger.set_correlation_id(answer.body["runId"])
        metrics.add_metric("WebhookRunsStarted", "Count", 1)
    return _response(answer)


@app.get("/tenants/<tenant_id>/runs/<run_id>")
def run_status(tenant_id: str, run_id: str) -> Response:
    return _response(webhook.run_status(tenant_id, run_id, app.current_event.headers, time.time()))


@app.post("/tenants/<tenant_id>/runs/<run_id>/approve")
def approve_held_archives(tenant_id: str, run_id: str) -> Response:
    answer = webhook.approve_run(tenant_id, run_id, _raw_body(), app.current_event.headers, time.time())
    if answer.status == 200:
        logger.set_correlation_id(run_id)
        archives = answer.body["planned"]["archive"]
        logger.info("held archives approved", extra={"tenant": tenant_id, "archives": archives})
        metrics.add_metric("WebhookApprovals", "Count", 1)
    return _response(answer)


@app.get("/connect/pleo")
def connect_pleo() -> Response:
    return _page(connector.begin(app.current_event.query_string_parameters or {}, time.time()))


@app.get("/oauth/callback")
def oauth_callback() -> Response:
    page = connector.finish(app.current_event.query_string_parameters or {}, time.time())
    if page.status == 200:
        metrics.add_metric("PleoConnected", "Count", 1)
    logger.info("OAuth callback", extra={"status": page.status, "title": page.title})  # never the code or tokens
    return _page(page)


def _page(page: Page) -> Response:
    body = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(page.title)}</title></head>"
            f"<body><h1>{html.escape(page.title)}</h1><p>{html.escape(page.message)}</p></body></html>")
    headers = {"Cache-Control": "no-store", **({"Location": page.location} if page.location else {})}
    return Response(status_code=page.status, content_type="text/html; charset=utf-8", body=body, headers=headers)


def _raw_body() -> bytes:
    """The body exactly as signed."""
    event = app.current_event
    return base64.b64decode(event.body or "") if event.is_base64_encoded else (event.body or "").encode()


def _response(answer: Answer) -> Response:
    if answer.status == 401:
        metrics.add_metric("WebhookRejected", "Count", 1)
    return Response(status_code=answer.status, content_type=content_types.APPLICATION_JSON, body=answer.body)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
