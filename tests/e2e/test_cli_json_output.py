"""`--json` prints exactly one JSON document on stdout, however many Pleo requests the run makes."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.support import API_KEY, COMPANY, write_csv


def test_json_stdout_stays_one_document_when_a_run_makes_over_100_pleo_requests(emulator, tmp_path):
    # Powertools prints a metrics blob on stdout every 100 values of a metric (PleoLatency: one per
    # request), even with metrics disabled; the runner sends handler output to stderr, as Lambda's log.
    emulator.add_company(COMPANY, api_keys=[API_KEY],
                         accounts=[{"externalId": f"e{n}", "name": "Old", "archived": False} for n in range(120)])
    source = write_csv(tmp_path / "chart.csv", [(f"e{n}", str(n), "New", True) for n in range(120)])
    result = subprocess.run([sys.executable, "-m", "coa_sync_local.cli", "sync", "--source", source, "--pleo-url",
                             emulator.url, "--company-id", COMPANY, "--pleo-api-key", API_KEY, "--json"],
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["applied"]["update"] == 120 and report["api_calls"]["put"] == 120
