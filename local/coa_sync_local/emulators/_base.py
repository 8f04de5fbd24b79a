"""What the four emulators (Pleo and the accounting systems) share.

A real HTTP server on 127.0.0.1 (stdlib ThreadingHTTPServer, keep-alive), a per-credential
sliding-window rate limit answering 429 with Retry-After, counters for tests, and the same
fault injection as the Pleo emulator: `inject(kind, count, endpoint=...)` queues faults,
`chaos(probability, ...)` draws them from a seeded generator. Fault kinds:

    error       answer `status` (5xx) without doing the work
    rate_limit  429 with Retry-After: retry_after, without doing the work
    timeout     408 with Retry-After: retry_after, without doing the work (StackOne's slow-provider answer)
    slow        sleep `delay` seconds, then serve normally
    drop        close the connection without answering, before doing the work
    drop_after  do the work, then close the connection without answering

A subclass names its endpoints, routes requests to them, authenticates, and renders its
system's error body; it may admit requests its own way (`_admit_request`, e.g. token buckets).
Class attributes cover the small ways the systems' HTTP differs.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import math
import random
import signal
import socket
import socketserver
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, unquote

HOST = "127.0.0.1"
MAX_BODY_BYTES = 5 * 1024 * 1024
FAULT_KINDS = ("error", "rate_limit", "slow", "drop", "drop_after", "timeout")
CHAOS_ERROR_STATUSES = (500, 502, 503, 504)


class ApiError(Exception):
    """An error answer: status, a message, and (for validation errors) messages per field."""

    def __init__(self, status: int, message: str, *, code: str | None = None,
                 fields: dict[str, list[str]] | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.fields = fields or {}
        self.headers = headers or {}


@dataclass(frozen=True)
class Raw:
    """A seeded item served exactly as given (to play malformed records)."""

    item: Any


@dataclass
class Reply:
    status: int
    payload: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False


@dataclass
class Request:
    method: str
    path: str
    params: dict[str, str]  # path parameters from the route
    query: dict[str, list[str]]
    headers: Any
    body: bytes
    credential: Any = None  # what _authenticate returned

    def arg(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None

    def json(self) -> Any:
        try:
            return json.loads(self.body or b"null")
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ApiError(400, f"body is not valid JSON: {error}", code="parse_error") from None


@dataclass
class _Fault:
    kind: str
    endpoint: str | None
    remaining: int = 1
    status: int = 503
    retry_after: int = 1
    delay: float = 0.5
    skip: int = 0  # matching requests let through before the fault starts


class EmulatorBase:
    """Subclasses set NAME and ENDPOINTS and implement _route, _authenticate and _error_body."""

    NAME = "emulator"
    ENDPOINTS: tuple[str, ...] = ()
    SHAPES: dict[str, tuple[str, ...]] = {}  # option -> the vendor's documented alternatives, default first
    # The default `kinds` of chaos(); the order picks the draws.
    CHAOS_KINDS: tuple[str, ...] = ("error", "rate_limit", "slow", "drop", "drop_after")
    SERVER_VERSION = BaseHTTPRequestHandler.server_version  # the Server header's first word
    CONTENT_TYPE = "application/json"
    REFUSE_CHUNKED = False  # answer 411 to a body sent without Content-Length

    def __init__(self, *, rate_limit: int = 600, rate_window_seconds: float = 60.0, port: int = 0) -> None:
        if rate_limit < 1 or rate_window_seconds <= 0:
            raise ValueError("rate_limit must be >= 1 and rate_window_seconds > 0")
        self.rate_limit = rate_limit
        self.rate_window_seconds = rate_window_seconds
        self.port = port
        self.calls: collections.Counter[str] = collections.Counter()
        self.responses: collections.Counter[int] = collections.Counter()
        self.faults_fired: collections.Counter[str] = collections.Counter()
        self._lock = threading.RLock()
        self._windows: dict[Any, collections.deque[float]] = {}
        self._faults: list[_Fault] = []
        self._chaos: tuple[float, tuple[str, ...], frozenset[str] | None, random.Random, float, int] | None = None
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def _check_shapes(self, **chosen: str) -> None:
        for option, value in chosen.items():
            if value not in self.SHAPES[option]:
                raise ValueError(f"{option} must be one of {self.SHAPES[option]}, got {value!r}")

    # -- what a subclass provides ---------------------------------------------------------

    def _route(self, method: str, path: str) -> tuple[str, dict[str, str], Callable[[Request], Reply]]:
        raise NotImplementedError

    def _authenticate(self, endpoint: str, request: Request) -> Any:
        """The credential the request carries (the rate limit's key); ApiError 401/403 if none."""
        raise NotImplementedError

    def _error_body(self, error: ApiError) -> Any:
        raise NotImplementedError

    def _admit_request(self, endpoint: str, request: Request) -> int | None:
        """Admit an authenticated request or raise a 429; what _rate_headers is given. The default: a
        sliding window of `rate_limit` requests per `rate_window_seconds` per credential."""
        return self._admit(request.credential)

    def _rate_headers(self, remaining: int | None) -> dict[str, str]:
        """Headers every answer carries, given the requests left in the window (None: not yet admitted)."""
        return {}

    def _throttle_headers(self, wait: float) -> dict[str, str]:
        """Headers of a 429 from the rate limit, `wait` seconds before the window frees a slot."""
        return {"Retry-After": str(max(1, math.ceil(wait)))}

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> Self:
        if self._server is not None:
            raise RuntimeError("emulator already started")
        self._server = _Server((HOST, self.port), self)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.01},
                                        name=f"{self.NAME}-emulator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.close_open_connections()
        self._server.server_close()
        assert self._thread is not None
        self._thread.join()
        self._server = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("emulator not started")
        return f"http://{HOST}:{self._server.server_address[1]}"

    def reset_counters(self) -> None:
        with self._lock:
            self.calls.clear()
            self.responses.clear()
            self.faults_fired.clear()

    # -- faults ---------------------------------------------------------------------------

    def inject(self, kind: str, count: int = 1, *, endpoint: str | None = None, status: int = 503,
               retry_after: int = 1, delay: float = 0.5, skip: int = 0) -> None:
        """Queue `count` faults for the next requests to `endpoint` (None: any endpoint),
        after letting `skip` of them through (skip=1 on a list: page 2 fails, not page 1)."""
        self._check(kind, endpoint)
        if count < 1 or not 400 <= status <= 599 or retry_after < 0 or delay < 0 or skip < 0:
            raise ValueError("need count >= 1, 400 <= status <= 599, retry_after >= 0, delay >= 0, skip >= 0")
        with self._lock:
            self._faults.append(_Fault(kind, endpoint, count, status, retry_after, delay, skip))

    def chaos(self, probability: float, *, kinds: Iterable[str] | None = None, endpoints: Iterable[str] | None = None,
              seed: int = 0, delay: float = 0.05, retry_after: int = 1) -> None:
        """Fault each matching request with `probability` (seeded); queued inject faults go first.

        Sequential requests see the same faults for the same seed. `chaos(0)` turns chaos off.
        """
        kinds = tuple(self.CHAOS_KINDS if kinds is None else kinds)
        wanted = None if endpoints is None else frozenset(endpoints)
        for kind in kinds:
            self._check(kind, None)
        for endpoint in wanted or ():
            self._check(None, endpoint)
        if not 0 <= probability <= 1 or (probability and not kinds):
            raise ValueError("probability must be in [0, 1], with at least one kind")
        rng = random.Random(seed)  # noqa: S311 - reproducible faults, not secrets
        with self._lock:
            self._chaos = (probability, kinds, wanted, rng, delay, retry_after) if probability else None

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()
            self._chaos = None

    def _check(self, kind: str | None, endpoint: str | None) -> None:
        if kind is not None and kind not in FAULT_KINDS:
            raise ValueError(f"fault kind must be one of {FAULT_KINDS}, got {kind!r}")
        if endpoint is not None and endpoint not in self.ENDPOINTS:
            raise ValueError(f"endpoint must be one of {self.ENDPOINTS}, got {endpoint!r}")

    def _take_fault(self, endpoint: str) -> _Fault | None:
        with self._lock:
            fault = next((f for f in self._faults if f.endpoint in (None, endpoint)), None)
            if fault is not None and fault.skip:
                fault.skip -= 1
                return None
            if fault is not None:
                fault.remaining -= 1
                if not fault.remaining:
                    self._faults.remove(fault)
            elif self._chaos is not None:
                probability, kinds, endpoints, rng, delay, retry_after = self._chaos
                if (endpoints is None or endpoint in endpoints) and rng.random() < probability:
                    kind = rng.choice(kinds)
                    status = rng.choice(CHAOS_ERROR_STATUSES) if kind == "error" else 503
                    fault = _Fault(kind, endpoint, status=status, retry_after=retry_after, delay=delay)
            if fault is not None:
                self.faults_fired[fault.kind] += 1
            return fault

    # -- request handling (server threads) ------------------------------------------------

    def _handle(self, method: str, target: str, headers: Any, body: bytes | None) -> Reply:
        always = self._rate_headers(None)  # _process updates it once the request is admitted
        try:
            reply = self._process(method, target, headers, body, always)
        except ApiError as error:
            reply = self._error_reply(error)
        except Exception as error:  # a bug here must show as a 500, not as a drop that looks like a fault
            traceback.print_exc()
            reply = self._error_reply(ApiError(500, f"emulator error: {error!r}", code="server_error"))
        reply.headers = {**always, **reply.headers}
        return reply

    def _error_reply(self, error: ApiError) -> Reply:
        return Reply(error.status, self._error_body(error), dict(error.headers))

    def _process(self, method: str, target: str, headers: Any, body: bytes | None, always: dict[str, str]) -> Reply:
        if body is None:
            raise ApiError(413, f"request body is larger than {MAX_BODY_BYTES} bytes", code="payload_too_large")
        path, _, query = target.partition("?")
        endpoint, params, handler = self._route(method, unquote(path))
        request = Request(method, path, params, parse_qs(query, keep_blank_values=True), headers, body)
        request.credential = self._authenticate(endpoint, request)
        always.update(self._rate_headers(self._admit_request(endpoint, request)))
        return self._serve_endpoint(endpoint, lambda: handler(request))

    def _serve_endpoint(self, endpoint: str, call: Callable[[], Reply]) -> Reply:
        """An admitted request: its fault if one fires, else `call` under the lock, counted."""
        fault = self._take_fault(endpoint)
        if fault is not None and fault.kind != "drop_after":
            early = self._fire(fault)
            if early is not None:
                return early
        try:
            with self._lock:
                self.calls[endpoint] += 1
                reply = call()
        except ApiError as error:
            reply = self._error_reply(error)
        reply.drop = fault is not None and fault.kind == "drop_after"
        return reply

    def _admit(self, credential: Any) -> int:
        """Admit a request into the credential's sliding window; the requests left, or 429."""
        now = time.monotonic()
        with self._lock:
            window = self._windows.setdefault(credential, collections.deque())
            while window and window[0] <= now - self.rate_window_seconds:
                window.popleft()
            if len(window) >= self.rate_limit:
                wait = window[0] + self.rate_window_seconds - now
                raise ApiError(429, f"more than {self.rate_limit} requests in {self.rate_window_seconds:g} s",
                               code="throttled", headers=self._throttle_headers(wait))
            window.append(now)
            return self.rate_limit - len(window)

    def _fire(self, fault: _Fault) -> Reply | None:
        """The answer a fault gives instead of the real one; None to go on serving."""
        if fault.kind == "slow":
            time.sleep(fault.delay)
            return None
        if fault.kind == "drop":
            return Reply(0, drop=True)
        if fault.kind == "rate_limit":
            return self._error_reply(ApiError(429, "rate limit exceeded (injected)", code="throttled",
                                              headers={"Retry-After": str(fault.retry_after)}))
        if fault.kind == "timeout":
            return self._error_reply(ApiError(408, "Request timed out (injected)", code="request_timeout",
                                              headers={"Retry-After": str(fault.retry_after)}))
        return self._error_reply(ApiError(fault.status, f"injected {fault.status}", code="server_error"))


# --- HTTP plumbing ------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so clients reuse connections
    timeout = 30  # seconds an idle keep-alive connection is kept
    disable_nagle_algorithm = True  # headers and body go out in two writes
    server: _Server

    @property
    def server_version(self) -> str:  # type: ignore[override]
        return self.server.emulator.SERVER_VERSION

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests and the runner own the output
        pass

    def _serve(self) -> None:
        emulator = self.server.emulator
        if emulator.REFUSE_CHUNKED and "Transfer-Encoding" in self.headers:
            self.close_connection = True  # the unread chunked body would be taken for the next request
            error = ApiError(411, "send the body with a Content-Length", code="length_required",
                             headers={"Connection": "close"})
            self._write(emulator._error_reply(error))
            return
        reply = emulator._handle(self.command, self.path, self.headers, self._read_body())
        if reply.drop:
            # No byte of response; the server closes the socket once this handler returns.
            self.close_connection = True
        else:
            self._write(reply)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

    def _read_body(self) -> bytes | None:
        """The request body; None (after reading and discarding it) when it is too large."""
        try:
            length = max(0, int(self.headers.get("Content-Length") or 0))
        except ValueError:
            length = 0
        if length <= MAX_BODY_BYTES:
            return self.rfile.read(length)
        while length > 0:  # drain it, so the client reads our 413 instead of a reset
            chunk = self.rfile.read(min(length, 1 << 20))
            if not chunk:
                break
            length -= len(chunk)
        return None

    def _write(self, reply: Reply) -> None:
        # Bytes go out as they are (a page or a redirect, its Content-Type among the reply's headers).
        payload = reply.payload if isinstance(reply.payload, bytes) else (
            b"" if reply.payload is None else json.dumps(reply.payload, separators=(",", ":")).encode())
        with self.server.emulator._lock:  # counted before sending, so a client never sees it uncounted
            self.server.emulator.responses[reply.status] += 1
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        if reply.status != 204:  # a 204 carries neither body nor Content-Length
            if "Content-Type" not in reply.headers:
                self.send_header("Content-Type", self.server.emulator.CONTENT_TYPE)
            self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # stop() closes open connections itself
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], emulator: EmulatorBase) -> None:
        self.emulator = emulator
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind would resolve the host's FQDN, which can stall on DNS.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def close_open_connections(self) -> None:
        with self._open_lock:
            connections = list(self._open)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exception(), ConnectionError):  # clients hanging up is normal
            super().handle_error(request, client_address)


def serve_until_stopped(emulator: EmulatorBase, label: str, parser: argparse.ArgumentParser) -> int:
    """The CLIs' tail: serve until Ctrl-C or SIGTERM. A port it cannot listen on is a usage error (exit 2)."""
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        emulator.start()
    except OSError as exc:
        parser.error(f"cannot listen on {HOST}:{emulator.port}: {exc.strerror or exc}; choose another --port "
                     "(0 picks a free one)")
    try:
        print(f"{label} emulator serving on {emulator.url} (Ctrl-C stops it)", flush=True)
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        emulator.stop()
    return 0


def route(routes: list[tuple[str, str, str, Callable[[Request], Reply]]], method: str, path: str
          ) -> tuple[str, dict[str, str], Callable[[Request], Reply]]:
    """Match `path` against patterns like "/v1/things/{id}/" ; 404 for no path, 405 for a wrong method."""
    allowed = []
    for pattern, verb, endpoint, handler in routes:
        params = _match(pattern, path)
        if params is None:
            continue
        if verb == method:
            return endpoint, params, handler
        allowed.append(verb)
    if allowed:
        raise ApiError(405, f"{method} is not allowed on {path}", code="method_not_allowed",
                       headers={"Allow": ", ".join(allowed)})
    raise ApiError(404, f"no such path: {path}", code="not_found")


def _match(pattern: str, path: str) -> dict[str, str] | None:
    want, got = pattern.strip("/").split("/"), path.strip("/").split("/")
    if len(want) != len(got) or pattern.endswith("/") != path.endswith("/"):
        return None
    params = {}
    for piece, value in zip(want, got, strict=True):
        if piece.startswith("{") and piece.endswith("}"):
            if not value:
                return None
            params[piece[1:-1]] = value
        elif piece != value:
            return None
    return params
