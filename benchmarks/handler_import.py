"""Cold-start proxy: how long importing each handler module takes in a fresh interpreter.

Each handler is imported in its own new process (as a Lambda cold start would), with its
environment set, several times; prints the median and the best, in milliseconds.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENVIRONMENT = {
    "AWS_DEFAULT_REGION": "eu-west-1",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "TENANTS_TABLE": "coa-sync-tenants",
    "SNAPSHOT_BUCKET": "coa-sync-snapshots",
    "ACTIONS_QUEUE_URL": "https://sqs.eu-west-1.amazonaws.com/123456789012/coa-sync-actions",
    "DEAD_LETTER_QUEUE_URL": "https://sqs.eu-west-1.amazonaws.com/123456789012/coa-sync-actions-dlq",
    "PLEO_BASE_URL": "https://external.staging.pleo.io",
    "FETCH_FUNCTION_NAME": "coa-sync-fetch",
    "POWERTOOLS_SERVICE_NAME": "coa-sync",
    "POWERTOOLS_TRACE_DISABLED": "true",
}
PROBE = """
import importlib.util, sys, time
started = time.perf_counter()
spec = importlib.util.spec_from_file_location("app", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
print((time.perf_counter() - started) * 1000)
"""


def measure(function: str, repeats: int = 7) -> list[float]:
    app = ROOT / "functions" / function / "app.py"
    env = {**os.environ, **ENVIRONMENT, "PYTHONPATH": str(ROOT / "layers" / "core")}
    return [float(subprocess.run([sys.executable, "-c", PROBE, str(app)], env=env, capture_output=True, text=True,
                                 check=True).stdout) for _ in range(repeats)]


def main() -> None:
    print(f"{'handler':<10} {'median ms':>10} {'best ms':>10}")
    for function in ("fetch", "diff", "writer", "webhook"):
        times = measure(function)
        print(f"{function:<10} {statistics.median(times):>10.0f} {min(times):>10.0f}")


if __name__ == "__main__":
    main()
