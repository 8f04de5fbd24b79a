"""Writer containers for `coa-sync sync --writers K`: K writer functions at once, each in its own process.

Lambda's SQS poller with MaximumConcurrency K runs up to K writer containers at once, each with its own
memory: its own Pleo client (and HTTP connections), its own lease of the tenant's rate budget, its own
cached secrets. Here each container is a process (`python -m coa_sync_local.writer_containers`) that loads
the writer handler at its first event (a cold start) and keeps it warm; the runner, as the poller, hands it
one batch at a time (a JSON line on its stdin: the event and the invocation's timeout) and reads the
handler's answer back (a JSON line on its stdout).

The containers reach the runner's moto world through moto's server on 127.0.0.1 (AWS_ENDPOINT_URL), the
same backends the runner uses in process, so they share its tenants table (the runs, the fences, the rate
budget), queues and bucket. moto is not made for many callers at once: every request the server serves
and everything the runner does in process holds one lock (`lock`), so each AWS call happens whole, as on
AWS. A container's waits (the rate budget, Pleo) hold nothing.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

lock = threading.RLock()  # one AWS call at a time across the server's threads and the runner's


@dataclass
class Finished:
    """A batch a container has finished: the handler's answer, or why the invocation failed."""

    batch: Any
    response: dict[str, Any] | None
    error: str | None
    container: int


class WriterContainers:
    """`count` writer processes, started at the first batch, stopped by close()."""

    def __init__(self, count: int, *, timeout_seconds: float, show_function_output: bool) -> None:
        self.count = count
        self._timeout = timeout_seconds
        self._show_output = show_function_output
        self._server: Any = None
        self._processes: list[subprocess.Popen[str]] = []
        self._idle: list[int] = []
        self._finished: queue.Queue[Finished] = queue.Queue()
        self.batches = [0] * count  # batches each container applied, for tests and benchmarks

    def idle(self) -> int:
        if not self._processes:
            self._start()
        return len(self._idle)

    def busy(self) -> int:
        return len(self._processes) - len(self._idle)

    def submit(self, batch: Any, event: dict[str, Any]) -> None:
        """Hand `event` (a batch's SQS event) to an idle container; its answer comes back through finished()."""
        number = self._idle.pop()
        process = self._processes[number]
        request = json.dumps({"event": event, "timeout": self._timeout}) + "\n"

        def invoke() -> None:
            try:
                assert process.stdin is not None and process.stdout is not None
                process.stdin.write(request)
                process.stdin.flush()
                answer = json.loads(process.stdout.readline() or '{"error": "the container exited"}')
            except (OSError, ValueError) as exc:
                answer = {"error": f"the container failed: {exc}"}
            self._finished.put(Finished(batch, answer.get("response"), answer.get("error"), number))

        threading.Thread(target=invoke, daemon=True, name=f"writer-container-{number}").start()

    def finished(self, wait: float = 0.0) -> list[Finished]:
        """Batches finished since the last call; waits up to `wait` seconds for the first if none has."""
        done: list[Finished] = []
        try:
            done.append(self._finished.get(timeout=wait) if wait > 0 else self._finished.get_nowait())
            while True:
                done.append(self._finished.get_nowait())
        except queue.Empty:
            pass
        for item in done:
            self._idle.append(item.container)
            self.batches[item.container] += 1
        return done

    def _start(self) -> None:
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
        from werkzeug.serving import make_server

        app = DomainDispatcherApplication(create_backend_app)

        def one_at_a_time(environ: dict[str, Any], start_response: Any) -> list[bytes]:
            with lock:
                return list(app(environ, start_response))

        class Quiet(MotoRequestHandler):
            def log_request(self, *args: Any) -> None:
                """Werkzeug's access log: a line on stderr for every AWS call the containers make, none here."""

        self._server = make_server("127.0.0.1", 0, one_at_a_time, threaded=True, request_handler=Quiet)
        threading.Thread(target=self._server.serve_forever, daemon=True, name="moto-server").start()
        host, port = self._server.server_address[:2]
        environment = {**os.environ, "AWS_ENDPOINT_URL": f"http://{host}:{port}",
                       "COA_SYNC_FUNCTION_OUTPUT": "stderr" if self._show_output else "none"}
        self._processes = [subprocess.Popen([sys.executable, "-m", "coa_sync_local.writer_containers"],
                                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=environment)
                           for _ in range(self.count)]
        self._idle = list(range(self.count))

    def close(self) -> None:
        for process in self._processes:
            if process.stdin:
                process.stdin.close()  # the container's loop ends at end of input
        for process in self._processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            if process.stdout:
                process.stdout.close()
        self._processes = []
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


@contextmanager
def in_process_calls_locked() -> Iterator[None]:
    """The runner's own boto3 calls into moto in process hold the lock too: the containers' calls through the server,
    the writer's tenant threads, two writers at once (sqs-duplicates), the diff's sends. AWS serves each request
    whole; moto must be told."""
    from unittest import mock

    from botocore.client import BaseClient

    make_api_call = BaseClient._make_api_call

    def locked(client: BaseClient, operation: str, params: dict[str, Any]) -> Any:
        with lock:
            return make_api_call(client, operation, params)

    with mock.patch.object(BaseClient, "_make_api_call", locked):
        yield


def main() -> None:
    """One container: the writer handler, warm after its first event, invoked once per line on stdin."""
    from coa_sync.observability import logger

    from coa_sync_local.runner import LambdaContext, _invoke, _load_handler

    protocol = sys.stdout
    output = sys.stderr if os.environ.get("COA_SYNC_FUNCTION_OUTPUT") == "stderr" else open(os.devnull, "w")  # noqa: SIM115
    sys.stdout = output  # what the handler prints is its log stream, never the answers
    logger.registered_handler.setStream(sys.stderr)
    handler = None
    for line in sys.stdin:
        request = json.loads(line)
        try:
            handler = handler or _load_handler("writer")
            context = LambdaContext("coa-sync-writer", timeout_seconds=request["timeout"])
            answer: dict[str, Any] = {"response": _invoke(handler, request["event"], context, output)}
        except Exception as exc:  # the invocation failed: Lambda hands the whole batch back
            answer = {"error": f"{type(exc).__name__}: {exc}"}
        protocol.write(json.dumps(answer) + "\n")
        protocol.flush()


if __name__ == "__main__":
    main()
