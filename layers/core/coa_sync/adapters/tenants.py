"""The tenant registry in DynamoDB: one CONFIG item per tenant, keyed TENANT#<id>."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from pydantic import ValidationError

from coa_sync.adapters.aws import Attr, Key, table
from coa_sync.models import Tenant

CONFIG_SK = "CONFIG"


class TenantConfigError(ValueError):
    """A tenant's stored configuration is invalid."""


class TenantStore:
    def __init__(self, table_name: str, dynamodb: Any | None = None) -> None:
        self._table = table(table_name, dynamodb)

    def get(self, tenant_id: str) -> Tenant | None:
        item = self._table.get_item(Key={"pk": _pk(tenant_id), "sk": CONFIG_SK}, ConsistentRead=True).get("Item")
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

    def put(self, tenant: Tenant) -> None:
        # DynamoDB takes numbers as Decimal, never float.
        item = json.loads(tenant.model_dump_json(), parse_float=Decimal)
        self._table.put_item(Item={"pk": _pk(tenant.tenant_id), "sk": CONFIG_SK, **item})

    def items(self, tenant_id: str) -> list[dict[str, Any]]:
        return self._table.query(KeyConditionExpression=Key("pk").eq(_pk(tenant_id)))["Items"]


def _pk(tenant_id: str) -> str:
    return f"TENANT#{tenant_id}"


def _tenant(item: dict[str, Any]) -> Tenant:
    try:
        return Tenant.model_validate(item)
    except ValidationError as exc:
        raise TenantConfigError(f"tenant {item.get('pk')!r} has an invalid configuration: {exc}") from None
