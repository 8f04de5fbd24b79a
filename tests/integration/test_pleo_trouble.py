"""Pleo (or an accounting system) that is slow, unreachable or not trusted: what the client says while it
waits, what it refuses to retry, and what the writer reports about the actions it could not apply."""

from __future__ import annotations

import contextlib
import datetime
import logging
import random
import socket
import ssl
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from coa_sync.adapters import http as retries
from coa_sync.adapters.pleo import PleoClient, PleoCredentials, PleoError, PleoTransientError
from coa_sync.connectors.base import ConnectorError, RetryingHttp
from coa_sync.observability import logger
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support import API_KEY, COMPANY, budget, write_csv


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch):
    monkeypatch.setattr(retries, "backoff", lambda attempt: random.uniform(0, 0.01))


class Listener:
    """A TCP server on 127.0.0.1 that accepts connections and hands each to `serve` in a thread."""

    def __init__(self, serve) -> None:
        self.accepted = 0
        self._serve = serve
        self._socket = socket.create_server(("127.0.0.1", 0))
        self.port = self._socket.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._socket.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    def close(self) -> None:
        self._socket.close()


@pytest.fixture
def silent() -> Iterator[Listener]:
    """A server that takes the request and never answers."""
    def serve(connection: socket.socket) -> None:
        with connection:
            connection.recv(65536)
            threading.Event().wait(5)

    listener = Listener(serve)
    yield listener
    listener.close()


@pytest.fixture
def self_signed(tmp_path) -> Iterator[Listener]:
    """An HTTPS server whose certificate no client trusts (self-signed)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
                   .sign(key, hashes.SHA256()))
    (tmp_path / "cert.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")

    def serve(connection: socket.socket) -> None:
        with connection, contextlib.suppress(ssl.SSLError, OSError):  # the client refuses the certificate
            context.wrap_socket(connection, server_side=True).recv(1)

    listener = Listener(serve)
    yield listener
    listener.close()


def client(url: str, key: str = "k", **options) -> PleoClient:
    return PleoClient(url, PleoCredentials(api_key=key), budget=budget(1000, 1), **options)


@pytest.fixture
def warnings() -> Iterator[list[str]]:
    """What the functions' logger warns, as it would go to CloudWatch (or a local command's stderr)."""
    seen: list[str] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: seen.append(record.getMessage())
    logging.getLogger(logger.name).addHandler(handler)
    yield seen
    logging.getLogger(logger.name).removeHandler(handler)


def test_a_certificate_no_one_trusts_is_named_as_such_and_not_retried(self_signed):
    with pytest.raises(PleoError) as raised:
        client(f"https://127.0.0.1:{self_signed.port}", max_attempts=5).snapshot(COMPANY)
    assert not isinstance(raised.value, PleoTransientError)
    assert str(raised.value) == ("search: TLS certificate not accepted (self-signed certificate); check the URL and "
                                 "the server's certificate")
    assert self_signed.accepted == 1


def test_an_accounting_system_with_a_certificate_no_one_trusts_is_not_retried_either(self_signed):
    http = RetryingHttp("thredfi", f"https://127.0.0.1:{self_signed.port}", budgets=lambda method, path: [],
                        describe=lambda response: "")
    with pytest.raises(ConnectorError, match=r"thredfi: GET /accounts: TLS certificate not accepted"):
        http.request("GET", "/accounts?page=1")
    assert self_signed.accepted == 1


def test_waiting_on_a_server_that_does_not_answer_is_announced_at_each_attempt(silent, warnings):
    with pytest.raises(PleoTransientError, match=r"search: ReadTimeout after 3 attempt\(s\)"):
        client(f"http://127.0.0.1:{silent.port}", timeout=0.2, max_attempts=3).snapshot(COMPANY)
    assert [w.split(" for ")[0] for w in warnings] == ["Pleo has not answered"] * 2
    assert warnings[0].endswith("(search: ReadTimeout); attempt 2 of 3")
    assert warnings[1].endswith("(search: ReadTimeout); attempt 3 of 3")


def test_quick_error_answers_are_retried_quietly(warnings):
    transport = httpx.MockTransport(lambda request: httpx.Response(503))
    with pytest.raises(PleoTransientError):
        client("http://127.0.0.1:9", max_attempts=3, transport=transport, sleep=lambda _: None).snapshot(COMPANY)
    assert warnings == []


def test_slow_writes_say_which_actions_went_unanswered_and_which_were_never_sent(emulator, make_runner, tmp_path,
                                                                                monkeypatch):
    # 3 creates go out in one batch that Pleo applies but answers too late; the 4 updates behind it never go.
    emulator.add_company(COMPANY, api_keys=[API_KEY], accounts=[
        {"externalId": f"old-{n}", "name": "Old", "archived": False} for n in range(4)])
    rows = [(f"new-{n}", str(n), "New", True) for n in range(3)] + [(f"old-{n}", "", "Renamed", True) for n in range(4)]
    with client(emulator.url, API_KEY) as warm:  # its first answer loads the emulator's OpenAPI checks: untimed
        warm.snapshot(COMPANY)
    monkeypatch.setenv("PLEO_TIMEOUT_SECONDS", "1")
    emulator.inject("slow", count=10, endpoint="batch_create", delay=2)
    runner = make_runner(write_csv(tmp_path / "chart.csv", rows), pleo_max_attempts=1, max_receive_count=2,
                         visibility_timeout=0)
    result = runner.run("acme")
    reasons = {item.external_id: item.reasons for item in result.failed}
    gave_up = "still failing after 2 deliveries (transient errors): "
    assert {reasons[f"new-{n}"][0] for n in range(3)} == {gave_up + "batch_create: ReadTimeout after 1 attempt(s)"}
    assert {reasons[f"old-{n}"][0] for n in range(4)} == {
        gave_up + "not sent, as an earlier request failed: batch_create: ReadTimeout after 1 attempt(s)"}
    assert emulator.calls["put"] == 0 and result.applied.create == 0 and result.pending == 0
    deadline = time.monotonic() + 5  # Pleo applies the batch once its slow answer is done
    while not {"new-0", "new-1", "new-2"} <= {a["externalId"] for a in emulator.accounts(COMPANY)}:
        assert time.monotonic() < deadline, "the creates Pleo answered too late for never landed"
        time.sleep(0.05)
