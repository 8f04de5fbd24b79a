"""Pleo's Chart of Accounts API contract: pleo-chart-of-accounts.yaml, checked with openapi-core.

The Pleo emulator refuses every request this document refuses (400, or 415 for a body that is not
JSON), and checks its own answers against it when asked to. `COA_SYNC_PLEO_CONTRACT_LOG` names a
file: while it is set, every emulator (in this process or another: the CLI's demo too) checks each
response it serves and appends one JSON line there per violation, and per request from coa-sync's own
client that the contract refuses. The tests set it for every test and fail one whose traffic broke
the contract (tests/conftest.py).

openapi-core (and its YAML and JSON Schema stack) is imported on first use: only the emulator needs it.
"""

from __future__ import annotations

import importlib.resources
import json
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

if TYPE_CHECKING:
    from openapi_core import OpenAPI

DOCUMENT = "pleo-chart-of-accounts.yaml"
LOG_ENV = "COA_SYNC_PLEO_CONTRACT_LOG"
# The document's servers: requests are checked as if they had been sent to Pleo itself.
SERVER = "https://external.pleo.io"
# The one request media type the document names. A JSON body sent as plain application/json (or with
# other parameters) is read as that one: what a JSON server accepts; the client sends the exact type.
BODY_MEDIA_TYPE = "application/json;charset=UTF-8"
_lock = threading.Lock()  # openapi-core's validators are not documented as thread-safe


@dataclass(frozen=True)
class Problem:
    status: int  # what the emulator answers a request with this problem
    message: str


@dataclass
class _Request:
    """A request as openapi-core reads it (its Request protocol)."""

    method: str
    path: str
    query: str
    headers: Mapping[str, str]
    body: bytes
    host_url: str = SERVER
    parameters: Any = field(init=False)

    def __post_init__(self) -> None:
        from openapi_core.datatypes import RequestParameters
        from werkzeug.datastructures import Headers, ImmutableMultiDict

        self.method = self.method.lower()
        self.parameters = RequestParameters(query=ImmutableMultiDict(parse_qsl(self.query, keep_blank_values=True)),
                                            header=Headers(list(self.headers.items())))

    @property
    def content_type(self) -> str:
        given = self.headers.get("Content-Type") or ""
        return BODY_MEDIA_TYPE if given.split(";")[0].strip().lower() == "application/json" else given


@dataclass
class _Response:
    """A response as openapi-core reads it (its Response protocol)."""

    status_code: int
    data: bytes
    content_type: str
    headers: Mapping[str, str] = field(default_factory=dict)


@cache
def _openapi() -> OpenAPI:
    from openapi_core import OpenAPI

    path = importlib.resources.files(__package__) / DOCUMENT
    with importlib.resources.as_file(path) as file:
        return OpenAPI.from_file_path(str(file))


def request_problem(method: str, path: str, query: str, headers: Mapping[str, str], body: bytes) -> Problem | None:
    """Why the contract refuses this request, or None when it accepts it."""
    request = _Request(method, path, query, headers, body)
    with _lock:
        errors = list(_openapi().iter_request_errors(request))
    if not errors:
        return None
    status = 415 if any(type(error.__cause__).__name__ == "MediaTypeNotFound" for error in errors) else 400
    return Problem(status, "; ".join(_describe(error) for error in errors))


def response_problem(method: str, path: str, query: str, headers: Mapping[str, str], body: bytes, status: int,
                     content_type: str, payload: bytes) -> str | None:
    """Why the contract refuses this answer to this request, or None when it accepts it."""
    request = _Request(method, path, query, headers, body)
    with _lock:
        errors = list(_openapi().iter_response_errors(request, _Response(status, payload, content_type)))
    return "; ".join(_describe(error) for error in errors) or None


def log_violation(kind: str, endpoint: str, status: int, problem: str) -> None:
    """Append one violation to the contract log, when one is named (see the module's docstring)."""
    path = os.environ.get(LOG_ENV)
    if path:
        line = json.dumps({"kind": kind, "endpoint": endpoint, "status": status, "problem": problem})
        with _lock, open(path, "a", encoding="utf-8") as log:
            log.write(line + "\n")


def checking_responses() -> bool:
    return bool(os.environ.get(LOG_ENV))


def _describe(error: Exception) -> str:
    """One line naming where the problem is (`body items[1].name`, `query limit`) and what it is."""
    where = getattr(error, "location", None)
    where = f"{where} {error.name}" if where else "body"  # type: ignore[attr-defined]
    cause = error.__cause__
    schema_errors = getattr(cause, "schema_errors", None)
    if schema_errors:
        return "; ".join(f"{where}{_path(problem.absolute_path)}: {problem.message}" for problem in schema_errors)
    if type(cause).__name__ == "CastError":
        return f"{where}: {cause.value!r} is not of type {cause.type}"  # type: ignore[union-attr]
    if type(cause).__name__ == "MediaTypeDeserializeError":
        return f"{where}: not valid JSON"
    if type(cause).__name__ == "MediaTypeNotFound":
        return f"{where}: send it as {BODY_MEDIA_TYPE}, not {cause.mimetype or 'no media type'}"  # type: ignore[union-attr]
    return str(cause or error)


def _path(parts: Any) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text if not text.startswith(".") else " " + text[1:]
