"""Constants and small helpers shared by the tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from coa_sync.tokenbucket import Rate, TokenBucket

# The emulator noting when each request reaches its rate limit, and the most arrivals in any window: the
# benchmarks' own, so that a test and a benchmark count a peak the same way.
from benchmarks.rate_budget import RecordingEmulator  # noqa: F401
from benchmarks.rate_budget import peak_in_window as peak  # noqa: F401

COMPANY = "12abc3d4-e567-890e-1234-abc56e78fabc"
API_KEY = "pls_test_key_0123456789"

# Pleo's "How to Sync Accounts" scenario: the AS chart (externalId, code, name, active) and Pleo's.
SEED_SOURCE = [("ext-1000", "1000", "Office Supplies", True), ("ext-2000", "2000", "Travel", True),
               ("ext-3000", "3000", "Software", True), ("ext-4000", "4000", "Marketing", True)]
SEED_PLEO = [
    {"externalId": "5000", "code": "5000", "name": "Entertainment", "archived": False},
    {"externalId": "ext-4000", "code": "4000", "name": "Advertising", "archived": False},
    {"externalId": "ext-2000", "code": "2000", "name": "Travel", "archived": True},
    {"externalId": "ext-1000", "code": "1000", "name": "Office Supplies", "archived": False},
]


def budget(limit: int = 100_000, window: float = 60.0) -> TokenBucket:
    """A Pleo client's rate budget in this process: at most `limit` requests in any `window` seconds."""
    return TokenBucket(Rate.within(limit, window, hold=0.0))


class FakeClock:
    """A monotonic clock for limiters: `sleep` moves it on instead of waiting."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


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


def coa_sync(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """The command line as a user runs it, in its own process."""
    return subprocess.run([sys.executable, "-m", "coa_sync_local.cli", *args], capture_output=True, text=True,
                          timeout=timeout, check=False)


def sync(emulator, source, *extra: str, key: str = API_KEY, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return coa_sync("sync", "--source", str(source), "--pleo-url", emulator.url, "--company-id", COMPANY,
                    "--pleo-api-key", key, *extra, timeout=timeout)
