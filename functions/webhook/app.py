"""webhook λ (Function URL): start a tenant's run on a signed request, and report on a run.

POST /tenants/{tenant}/runs            -> 202 {"runId"}; 409 if a run is in progress
GET  /tenants/{tenant}/runs/{run_id}   -> 200 the run's status and counts
Signed with HMAC-SHA256 (see coa_sync.signing); anything unsigned gets the same 401.
"""

from __future__ import annotations

import base64
import time
from typing import Any

from aws_lambda_powertools.event_handler import LambdaFunctionUrlResolver, Response, content_types
from aws_lambda_powertools.utilities.typing import LambdaContext
from coa_sync.adapters.ledger import Ledger
from coa_sync.adapters.runs import LambdaRunStarter
from coa_sync.adapters.secrets import webhook_secret
from coa_sync.adapters.tenants import TenantStore
from coa_sync.observability import logger, metrics, tracer
from coa_sync.pipeline.webhook import Answer, Webhook
from coa_sync.settings import WebhookSettings

settings = WebhookSettings()  # type: ignore[call-arg]  # read from the environment
ledger = Ledger(settings.tenants_table)
webhook = Webhook(tenant=TenantStore(settings.tenants_table).get, secret=webhook_secret, ledger=ledger,
                  first_use=ledger.first_use, start=LambdaRunStarter(settings.fetch_function_name))
app = LambdaFunctionUrlResolver()


@app.post("/tenants/<tenant_id>/runs")
def start_run(tenant_id: str) -> Response:
    event = app.current_event
    body = base64.b64decode(event.body or "") if event.is_base64_encoded else (event.body or "").encode()
    answer = webhook.start_run(tenant_id, body, event.headers, time.time())
    if answer.status == 202:
        logger.set_correlation_id(answer.body["runId"])
        metrics.add_metric("WebhookRunsStarted", "Count", 1)
    return _response(answer)


@app.get("/tenants/<tenant_id>/runs/<run_id>")
def run_status(tenant_id: str, run_id: str) -> Response:
    return _response(webhook.run_status(tenant_id, run_id, app.current_event.headers, time.time()))


def _response(answer: Answer) -> Response:
    if answer.status == 401:
        metrics.add_metric("WebhookRejected", "Count", 1)
    return Response(status_code=answer.status, content_type=content_types.APPLICATION_JSON, body=answer.body)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
