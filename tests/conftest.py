"""Shared fixtures: the Pleo emulator on 127.0.0.1 and a local runner on moto."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from coa_sync.models import FileSource, SourceConfig, Tenant
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


@pytest.fixture
def emulator() -> Iterator[PleoEmulator]:
    """A Pleo emulator with no companies yet."""
    with PleoEmulator() as server:
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
