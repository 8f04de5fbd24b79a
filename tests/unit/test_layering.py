"""handler -> logic -> adapters: only adapters (adapters/, connectors/) may import httpx, boto3 or botocore."""

from __future__ import annotations

import ast
from pathlib import Path

CORE = Path(__file__).resolve().parents[2] / "layers" / "core" / "coa_sync"
IO_LIBRARIES = {"httpx", "boto3", "botocore"}
ADAPTER_PACKAGES = {"adapters", "connectors"}


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_only_adapters_and_connectors_touch_http_and_aws():
    offenders = {
        str(path.relative_to(CORE)): sorted(imported_roots(path) & IO_LIBRARIES)
        for path in CORE.rglob("*.py")
        if path.relative_to(CORE).parts[0] not in ADAPTER_PACKAGES and imported_roots(path) & IO_LIBRARIES
    }
    assert offenders == {}
