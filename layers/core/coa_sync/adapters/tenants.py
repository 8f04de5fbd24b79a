"""The tenant registry in DynamoDB: one CONFIG item per tenant, keyed TENANT#<id>."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from pydantic import ValidationError

from coa_sync.adapters.aws import Attr, Key, if_condition_holds, table
from coa_sync.models import Tenant

CONFIG_SK = "CONFIG"


class TenantConfigError(ValueError):
    """A tenant's stored configuration is invalid."""


class TenantStore:
    def __init__(self, table_name: str, dynamodb: Any | None = None) -> None:
        self._table = table(table_name, dynamodb)

    def get(self, tenant_id: str) -> Tenant | None:
        item = self.item(tenant_id)
        return _tenant(item) if item else None

    def enabled(self) -> list[Tenant]:
        return self.all(only_enabled=True)

    def all(self, only_enabled: bool = False) -> list[Tenant]:
        """Every tenant, by id; a few hundred items, so a filtered scan is enough."""
        tenants: list[Tenant] = []
        condition = Attr("sk").eq(CONFIG_SK)
        kwargs: dict[str, Any] = {"FilterExpression": condition & Attr("enabled").eq(True) if only_enabled
                                  else condition}
        while True:
            page = self._table.scan(**kwargs)
            tenants.extend(_tenant(item) for item in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return sorted(tenants, key=lambda tenant: tenant.tenant_id)
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def put(self, tenant: Tenant, *, replace: bool = True) -> bool:
        """Write the tenant's item; with replace=False only if it has none yet (False if it had)."""
        # DynamoDB takes numbers as Decimal, never float.
        item = json.loads(tenant.model_dump_json(), parse_float=Decimal)
        condition = {} if replace else {"ConditionExpression": Attr("pk").not_exists()}
        return if_condition_holds(self._table.put_item, Item={"pk": _pk(tenant.tenant_id), "sk": CONFIG_SK, **item},
                                  **condition) is not None

    def item(self, tenant_id: str) -> dict[str, Any] | None:
        """The tenant's item as stored, with attributes the model does not read (a connection's state)."""
        return self._table.get_item(Key={"pk": _pk(tenant_id), "sk": CONFIG_SK}, ConsistentRead=True).get("Item")

    def set_enabled(self, tenant_id: str, enabled: bool) -> bool:
        """Pause or resume a tenant's scheduled runs; False if there is no such tenant."""
        return if_condition_holds(
            self._table.update_item, Key={"pk": _pk(tenant_id), "sk": CONFIG_SK},
            UpdateExpression="SET enabled = :enabled", ConditionExpression=Attr("pk").exists(),
            ExpressionAttributeValues={":enabled": enabled},
        ) is not None

    def delete(self, tenant_id: str) -> bool:
        """Remove the tenant's item (its runs stay, until they expire); False if there was none."""
        return if_condition_holds(self._table.delete_item, Key={"pk": _pk(tenant_id), "sk": CONFIG_SK},
                                  ConditionExpression=Attr("pk").exists()) is not None

    def items(self, tenant_id: str) -> list[dict[str, Any]]:
        return self._table.query(KeyConditionExpression=Key("pk").eq(_pk(tenant_id)))["Items"]


def _pk(tenant_id: str) -> str:
    return f"TENANT#{tenant_id}"


def _tenant(item: dict[str, Any]) -> Tenant:
    try:
        return Tenant.model_validate(item)
    except ValidationError as exc:
        raise TenantConfigError(f"tenant {item.get('pk')!r} has an invalid configuration: {exc}") from None
