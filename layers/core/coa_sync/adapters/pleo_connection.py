"""A tenant's Pleo OAuth connection in the tenants table and its secret: the token store the refresher uses.

Items (the tenants table, keys pk/sk, TTL attribute expiresAt):
  TENANT#<id> / PLEO_CONNECTION     status (connected | needs_reauth), reason, changedAt
  TENANT#<id> / PLEO_REFRESH_LOCK   owner, expiresAt: one token refresh in flight per tenant, everywhere
  OAUTH_STATE#<state> / STATE       tenantId, codeVerifier, link, linkExpires, expiresAt: a connect flow
  CONNECT_LINK#<link> / USED        expiresAt (the link's): a connect link that connected its tenant

The tokens themselves live in the tenant's Secrets Manager secret (its pleoSecretName), read fresh
(never from the parameters cache) by the refresher, and replaced whole, both tokens at once.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from coa_sync.adapters.aws import Attr, client, if_condition_holds, table
from coa_sync.oauth_flow import Flow
from coa_sync.tokens import OAuthCredentials

CONNECTION_SK = "PLEO_CONNECTION"
REFRESH_LOCK_SK = "PLEO_REFRESH_LOCK"
STATE_SK = "STATE"
USED_SK = "USED"
# Longer than a refresh takes with its retries; a holder that died frees the lock after this.
REFRESH_LEASE_SECONDS = 60
STATE_TTL_SECONDS = 600  # a connect flow: the user has ten minutes on Pleo's consent page


class PleoConnections:
    """Connection status, refresh locks and connect-flow states, in the tenants table."""

    def __init__(self, table_name: str, dynamodb: Any | None = None, clock=time.time) -> None:
        self._table = table(table_name, dynamodb)
        self._clock = clock

    def status(self, tenant_id: str) -> dict[str, str] | None:
        """{"status", "reason", "changedAt"}, or None for a tenant never connected by OAuth."""
        item = self._table.get_item(Key=_key(tenant_id, CONNECTION_SK), ConsistentRead=True).get("Item")
        return None if item is None else {k: str(item[k]) for k in ("status", "reason", "changedAt") if k in item}

    def mark_needs_reauth(self, tenant_id: str, reason: str) -> None:
        self._set(tenant_id, "needs_reauth", reason)

    def mark_connected(self, tenant_id: str) -> None:
        self._set(tenant_id, "connected", "")

    def _set(self, tenant_id: str, status: str, reason: str) -> None:
        self._table.put_item(Item={**_key(tenant_id, CONNECTION_SK), "status": status, "reason": reason,
                                   "changedAt": datetime.now(UTC).isoformat()})

    @contextmanager
    def refresh_lock(self, tenant_id: str) -> Iterator[bool]:
        """Try the tenant's refresh lock: True while held (released on exit); False if another holds it."""
        owner, now = secrets.token_hex(8), int(self._clock())
        taken = if_condition_holds(
            self._table.put_item,
            Item={**_key(tenant_id, REFRESH_LOCK_SK), "owner": owner, "expiresAt": now + REFRESH_LEASE_SECONDS},
            ConditionExpression=Attr("pk").not_exists() | Attr("expiresAt").lt(now))
        try:
            yield taken is not None
        finally:
            if taken is not None:
                if_condition_holds(self._table.delete_item, Key=_key(tenant_id, REFRESH_LOCK_SK),
                                   ConditionExpression=Attr("owner").eq(owner))

    def start_flow(self, flow: Flow) -> str:
        """A new connect flow's `state` (random, single use), remembering the flow."""
        state = secrets.token_urlsafe(32)
        self._table.put_item(Item={"pk": f"OAUTH_STATE#{state}", "sk": STATE_SK, "tenantId": flow.tenant_id,
                                   "codeVerifier": flow.code_verifier, "link": flow.link,
                                   "linkExpires": flow.link_expires,
                                   "expiresAt": int(self._clock()) + STATE_TTL_SECONDS})
        return state

    def finish_flow(self, state: str) -> Flow | None:
        """The flow this state started, taken away so it serves once; None if it is unknown, used already or
        expired."""
        answer = if_condition_holds(self._table.delete_item, Key={"pk": f"OAUTH_STATE#{state}", "sk": STATE_SK},
                                    ConditionExpression=Attr("pk").exists(), ReturnValues="ALL_OLD")
        item = (answer or {}).get("Attributes")
        # A flow started before flows named their link cannot mark it used: it is opened again.
        if not item or int(item["expiresAt"]) < int(self._clock()) or "link" not in item:
            return None
        return Flow(str(item["tenantId"]), str(item["codeVerifier"]), str(item["link"]), int(item["linkExpires"]))

    def link_used(self, link: str) -> bool:
        return "Item" in self._table.get_item(Key={"pk": f"CONNECT_LINK#{link}", "sk": USED_SK}, ConsistentRead=True)

    def use_link(self, link: str, expires: int) -> bool:
        """Mark the link as having connected its tenant: False if it had already (another flow got there)."""
        return if_condition_holds(self._table.put_item, Item={"pk": f"CONNECT_LINK#{link}", "sk": USED_SK,
                                                              "expiresAt": expires},
                                  ConditionExpression=Attr("pk").not_exists()) is not None


class SecretTokenStore:
    """The tenant's tokens in its Secrets Manager secret; its lock and status in the tenants table."""

    def __init__(self, secret_name: str, tenant_id: str, connections: PleoConnections,
                 secretsmanager: Any | None = None) -> None:
        self._secret_name = secret_name
        self._tenant_id = tenant_id
        self._connections = connections
        self._secrets = secretsmanager or client("secretsmanager")

    def read(self) -> OAuthCredentials:
        value = self._secrets.get_secret_value(SecretId=self._secret_name)["SecretString"]
        try:
            return OAuthCredentials.model_validate_json(value)
        except ValidationError:
            raise ValueError(f"secret {self._secret_name!r} does not hold OAuth credentials (tokenUrl, clientId, "
                             "clientSecret, refreshToken)") from None

    def write(self, credentials: OAuthCredentials) -> None:
        value = json.dumps(credentials.document())
        try:
            self._secrets.put_secret_value(SecretId=self._secret_name, SecretString=value)
        except self._secrets.exceptions.ResourceNotFoundException:
            self._secrets.create_secret(Name=self._secret_name, SecretString=value,
                                        Description=f"Pleo OAuth connection of coa-sync tenant {self._tenant_id}")

    def refresh_lock(self):  # -> AbstractContextManager[bool]
        return self._connections.refresh_lock(self._tenant_id)

    def mark_needs_reauth(self, credentials: OAuthCredentials) -> None:
        self.write(credentials)
        self._connections.mark_needs_reauth(self._tenant_id, credentials.needs_reauth or "")


def _key(tenant_id: str, sk: str) -> dict[str, str]:
    return {"pk": f"TENANT#{tenant_id}", "sk": sk}
