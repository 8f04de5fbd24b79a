"""`coa-sync sync --pleo-oauth FILE.json`: a tenant's Pleo OAuth connection kept in a local file.

FILE holds {"tokenUrl", "clientId", "clientSecret", "refreshToken"} and optionally "accessToken" and
"expiresAt" (ISO 8601): what `coa-sync connect` writes. It is the token store of coa_sync.tokens for
the local runner: every rotated pair of tokens is written back whole (a temporary file in the same
folder, mode 0600, flushed to disk, then renamed over FILE) before either token is used, and a lock
file beside it (FILE.lock, flock) keeps refreshes single-flight across every process using FILE.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from coa_sync.tokens import OAuthCredentials
from pydantic import ValidationError

SHAPE = '{"tokenUrl", "clientId", "clientSecret", "refreshToken"[, "accessToken", "expiresAt"]}'


class OAuthFileError(ValueError):
    """FILE cannot be read as OAuth credentials (the message names it, never its secrets)."""


class FileTokenStore:
    def __init__(self, path: Path, on_needs_reauth: Callable[[str], None] | None = None) -> None:
        self.path = path
        # Told the reason when the authorisation is refused for good (the CLI flags the tenant in its state).
        self.on_needs_reauth = on_needs_reauth or (lambda _reason: None)

    def read(self) -> OAuthCredentials:
        try:
            text = self.path.read_text(encoding="utf-8")
        except OSError as exc:
            raise OAuthFileError(f"cannot read {self.path}: {exc.strerror}") from None
        try:
            return OAuthCredentials.model_validate_json(text)
        except ValidationError as exc:
            problem = exc.errors()[0]
            where = ".".join(str(part) for part in problem["loc"]) or "the file"
            raise OAuthFileError(f"{self.path}: {where}: {problem['msg']}; expected {SHAPE}") from None

    def write(self, credentials: OAuthCredentials) -> None:
        write_private(self.path, json.dumps(credentials.document(), indent=2) + "\n")

    @contextlib.contextmanager
    def refresh_lock(self) -> Iterator[bool]:
        descriptor = os.open(f"{self.path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(descriptor)  # closing it releases the lock

    def mark_needs_reauth(self, credentials: OAuthCredentials) -> None:
        self.write(credentials)
        self.on_needs_reauth(credentials.needs_reauth or "")


def write_private(path: Path, text: str) -> None:
    """Write whole or not at all, readable by the owner only: a temporary file renamed over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mkstemp: mode 0600
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
