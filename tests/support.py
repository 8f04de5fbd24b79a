"""Constants and small helpers shared by the tests."""

from __future__ import annotations

from pathlib import Path

COMPANY = "12abc3d4-e567-890e-1234-abc56e78fabc"
API_KEY = "pls_test_key_0123456789"


def api_key_for(company_id: str) -> str:
    """The emulator ties each credential to one company."""
    return API_KEY if company_id == COMPANY else f"{API_KEY}-{company_id}"


def write_csv(path: Path, rows: list[tuple]) -> str:
    """rows: (externalId, code, name, active[, taxCodeExternalId])"""
    lines = ["externalId,code,name,active,taxCodeExternalId"]
    for external_id, code, name, active, *tax in rows:
        lines.append(f"{external_id},{code},{name},{str(active).lower()},{tax[0] if tax else ''}")
    path.write_text("\n".join(lines) + "\n")
    return str(path)
