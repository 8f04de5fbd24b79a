"""The local embedded default's memory between commands.

Each coa-sync command starts a fresh moto world; what a deployment would keep (run files in
S3, tenants and runs in DynamoDB, messages waiting in SQS) is saved under a state directory
when the command ends and loaded back into moto when the next one starts. That is what lets
`coa-sync runs`, `show`, `diff`, `approve` and `dlq` see earlier syncs.

Secrets are never saved: a command that reaches Pleo is given the credentials again.
A message's receive count starts again from zero after a restore (it is sent afresh).

Layout:  s3/<key>                 each object's bytes, as stored
         table.jsonl              every DynamoDB item, in DynamoDB's typed JSON
         queues/<queue>.jsonl     each queued message: body and message attributes
         .lock                    held while a command uses the directory
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

STATE_DIR_ENV = "COA_SYNC_STATE_DIR"
SQS_BATCH = 10
READ_ALL_SECONDS = 300  # a message read while saving stays hidden until the queue has been read through


class StateBusyError(RuntimeError):
    """Another coa-sync command is using the state directory."""


def default_directory() -> Path:
    """$COA_SYNC_STATE_DIR, else $XDG_STATE_HOME/coa-sync, else ~/.local/state/coa-sync."""
    if explicit := os.environ.get(STATE_DIR_ENV):
        return Path(explicit)
    base = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(base) / "coa-sync"


class LocalState:
    """Use as a context manager: it holds the directory's lock for the command's lifetime."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._etags: dict[str, str] = {}
        self._lock: IO[str] | None = None

    def __enter__(self) -> LocalState:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock = (self.directory / ".lock").open("w")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            raise StateBusyError(f"another coa-sync command is using {self.directory}; try again when it ends") \
                from None
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._lock is not None
        self._lock.close()  # closing the file releases the lock

    # -- loading into moto -----------------------------------------------------------------

    def restore(self, *, s3: Any, bucket: str, dynamodb: Any, table: str, sqs: Any, queues: dict[str, str]) -> None:
        objects = self.directory / "s3"
        for path in sorted(objects.rglob("*")) if objects.is_dir() else []:
            if path.is_file():
                key = path.relative_to(objects).as_posix()
                self._etags[key] = s3.put_object(Bucket=bucket, Key=key, Body=path.read_bytes())["ETag"]
        for item in _read_lines(self.directory / "table.jsonl"):
            dynamodb.put_item(TableName=table, Item=item)
        for name, url in queues.items():
            entries = [{"MessageBody": line["body"], "MessageAttributes": line["attributes"]}
                       for line in _read_lines(self.directory / "queues" / f"{name}.jsonl")]
            for start in range(0, len(entries), SQS_BATCH):
                chunk = entries[start:start + SQS_BATCH]
                sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": str(i), **e} for i, e in enumerate(chunk)])

    # -- saving from moto ------------------------------------------------------------------

    def save(self, *, s3: Any, bucket: str, dynamodb: Any, table: str, sqs: Any, queues: dict[str, str]) -> None:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for summary in page.get("Contents", []):
                key = summary["Key"]
                if self._etags.get(key) != summary["ETag"]:  # new or rewritten since the restore
                    _write(self.directory / "s3" / key, s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        items = [item for page in dynamodb.get_paginator("scan").paginate(TableName=table) for item in page["Items"]]
        _write_lines(self.directory / "table.jsonl", items)
        for name, url in queues.items():
            _write_lines(self.directory / "queues" / f"{name}.jsonl", list(_read_queue(sqs, url)))


def _read_queue(sqs: Any, url: str) -> Iterator[dict[str, Any]]:
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=SQS_BATCH,
                                          VisibilityTimeout=READ_ALL_SECONDS,
                                          MessageAttributeNames=["All"]).get("Messages", []):
        for message in messages:
            yield {"body": message["Body"], "attributes": message.get("MessageAttributes", {})}


def _read_lines(path: Path) -> Iterator[dict[str, Any]]:
    if not path.exists():
        return
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            try:
                yield json.loads(line)
            except ValueError as exc:
                raise ValueError(f"{path}:{number}: not a JSON line ({exc}); "
                                 f"move the state directory away to start afresh") from None


def _write_lines(path: Path, rows: list[dict[str, Any]]) -> None:
    _write(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode())


def _write(path: Path, data: bytes) -> None:
    """Write whole or not at all: a command killed mid-save leaves the previous file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", delete=False) as temporary:
        temporary.write(data)
    os.replace(temporary.name, path)
