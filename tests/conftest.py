"""Shared fixtures: the Pleo emulator on 127.0.0.1 and a local runner on moto."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from coa_sync.models import FileSource, SourceConfig, Tenant
from coa_sync_local.emulators import pleo_contract
from coa_sync_local.emulators.pleo import PleoEmulator
from coa_sync_local.runner import LocalRunner, RunnerOptions
from coa_sync_local.state import STATE_DIR_ENV

from tests.support import API_KEY, COMPANY, api_key_for


@pytest.fixture(autouse=True)
def state_dir(tmp_path, monkeypatch) -> Path:
    """Each test's own local state (commands keep runs there), never the user's."""
    directory = tmp_path / "coa-sync-state"
    monkeypatch.setenv(STATE_DIR_ENV, str(directory))
    return directory


@pytest.fixture(autouse=True)
def pleo_contract_log(request, tmp_path, monkeypatch) -> Iterator[Path]:
    """The contract test, over every test's Pleo traffic: each Pleo emulator the test starts (in this
    process or in a CLI subprocess) checks every answer it serves, and every request coa-sync's client
    sends, against pleo-chart-of-accounts.yaml, and logs what breaks it; the test fails if anything did.

    A test that breaks the contract on purpose (a handler made to answer off-spec) says so with
    @pytest.mark.pleo_off_contract("why").
    """
    log = tmp_path / "pleo-contract.jsonl"
    monkeypatch.setenv(pleo_contract.LOG_ENV, str(log))
    yield log
    violations = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    if violations and request.node.get_closest_marker("pleo_off_contract") is None:
        pytest.fail("Pleo traffic broke the contract (pleo-chart-of-accounts.yaml):\n"
                    + "\n".join(json.dumps(violation) for violation in violations[:10]), pytrace=False)


@pytest.fixture
def emulator(request) -> Iterator[PleoEmulator]:
    """A Pleo emulator with no companies yet: the spec read strictly, or (parametrized indirectly with
    "lenient") as the how-to reads it."""
    with PleoEmulator(lenient=getattr(request, "param", "strict") == "lenient") as server:
        yield server


@pytest.fixture
def pleo(emulator: PleoEmulator) -> PleoEmulator:
    """A Pleo emulator with one empty company that API_KEY may act for."""
    emulator.add_company(COMPANY, api_keys=[API_KEY])
    return emulator


@pytest.fixture
def make_runner(emulator: PleoEmulator) -> Iterator[Callable[..., LocalRunner]]:
    """The test's runner on moto, with one more tenant whose source is the given file or source config.

    One moto world per test: the first call starts the runner with its options, later calls
    add tenants to it. The tenant's company is added to the emulator with its key
    (tests.support.api_key_for) unless the test added it first.
    """
    runners: list[LocalRunner] = []

    def make(source: str | SourceConfig, *, tenant_id: str = "acme", company_id: str = COMPANY,
             source_credentials: dict | None = None, **options) -> LocalRunner:
        with contextlib.suppress(ValueError):  # already added by the test, with its accounts
            emulator.add_company(company_id, api_keys=[api_key_for(company_id)])
        if not runners:
            runner = LocalRunner(RunnerOptions(pleo_url=emulator.url, **{"visibility_timeout": 1, **options}))
            runners.append(runner.__enter__())
        elif options:
            raise ValueError("runner options can only be set on the first call")
        runner = runners[0]
        runner.add_tenant(
            Tenant(tenant_id=tenant_id, company_id=company_id, pleo_secret_name=f"coa-sync/{tenant_id}/pleo",
                   source=FileSource(uri=source) if isinstance(source, str) else source),
            {"apiKey": api_key_for(company_id)},
            source_credentials,
        )
        return runner

    yield make
    for runner in runners:
        runner.__exit__(None, None, None)
