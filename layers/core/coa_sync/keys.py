"""Where a run's files live in the snapshot bucket: runs/{tenant}/{run_id}/..."""

from __future__ import annotations

MANIFEST = "manifest.json"


def run_prefix(tenant_id: str, run_id: str) -> str:
    return f"runs/{tenant_id}/{run_id}/"


def source_key(tenant_id: str, run_id: str) -> str:
    return f"{run_prefix(tenant_id, run_id)}source.json.gz"


def target_key(tenant_id: str, run_id: str) -> str:
    return f"{run_prefix(tenant_id, run_id)}target.json.gz"


def plan_key(tenant_id: str, run_id: str) -> str:
    return f"{run_prefix(tenant_id, run_id)}plan.json.gz"


def manifest_key(tenant_id: str, run_id: str) -> str:
    return f"{run_prefix(tenant_id, run_id)}{MANIFEST}"


def report_key(tenant_id: str, run_id: str) -> str:
    return f"{run_prefix(tenant_id, run_id)}report.json"
