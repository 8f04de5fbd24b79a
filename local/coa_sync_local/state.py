"""The local embedded default's memory between commands, written as each command goes.

Each coa-sync command starts a fresh moto world; what a deployment would keep (run files in
S3, tenants and runs in DynamoDB, messages waiting in SQS) is loaded from a SQLite database in
the state directory when the command starts, and saved back by the runner at well-defined
points: after fetch, after the diff, after each writer invocation, and when the command ends.
Each save is one transaction holding what changed since the last one, so a command stopped
at any moment (SIGKILL included) leaves the state as of its last save: its run is in `runs`
with what it had applied, its queued messages and its dead letters. (The next command closes
such a run as interrupted: see LocalRunner.)

Secrets are never saved: a command that reaches Pleo is given the credentials again.
A message's receive count starts again from zero after a restore (it is sent afresh).

The world is read and written in process, through moto's own backends (as the runner's SQS
poller reads the queue): through boto3, every save would scan the whole table and bucket.

Layout:  state.db    SQLite (WAL): objects (key, etag, body), items (pk, sk, DynamoDB typed
                     JSON), messages (queue, id, body, message attributes), in send order
         .lock       held while a command uses the directory

A state directory written before the database (s3/<key>, table.jsonl, queues/<queue>.jsonl,
saved whole when a command ended) is imported into it by the first command that opens it,
and those files are then removed.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import itertools
import json
import os
import shutil
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from coa_sync_local import signals

STATE_DIR_ENV = "COA_SYNC_STATE_DIR"
DATABASE = "state.db"
SCHEMA_VERSION = 1
KEY_ATTRIBUTES = ("pk", "sk")  # the runner's table's key
LEGACY = ("s3", "table.jsonl", "queues")  # the layout before the database
_SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (key TEXT PRIMARY KEY, etag TEXT NOT NULL, body BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS items (pk TEXT NOT NULL, sk TEXT NOT NULL, item TEXT NOT NULL, PRIMARY KEY (pk, sk));
CREATE TABLE IF NOT EXISTS messages (seq INTEGER PRIMARY KEY, queue TEXT NOT NULL, body TEXT NOT NULL,
                                     attributes TEXT NOT NULL);
"""


class StateError(RuntimeError):
    """The state directory cannot be used; the message says why and what to do."""


class StateBusyError(StateError):
    """Another coa-sync command is using the state directory."""


def default_directory() -> Path:
    """$COA_SYNC_STATE_DIR, else $XDG_STATE_HOME/coa-sync, else ~/.local/state/coa-sync."""
    if explicit := os.environ.get(STATE_DIR_ENV):
        return Path(explicit)
    base = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(base) / "coa-sync"


@dataclass
class World:
    """The parts of a moto world the state keeps: moto's S3, DynamoDB and SQS backends, and which
    bucket, table and queues in them."""

    s3: Any
    bucket: str
    dynamodb: Any
    table: str
    sqs: Any
    queues: tuple[str, ...]


class LocalState:
    """Use as a context manager: it holds the directory's lock for the command's lifetime."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._lock: IO[str] | None = None
        self._db: sqlite3.Connection | None = None
        # What the database holds, as of the last save: object etags, how far the table's changes were
        # read, and for each queue moto's id of each message -> its sequence number in the database.
        # Messages are numbered in send order, so the writer's deletes touch neighbouring rows.
        self._etags: dict[str, str] = {}
        self._changes_read = 0  # records of the table's stream already saved
        self._messages: dict[str, dict[str, int]] = {}
        self._next_seq = 1

    def __enter__(self) -> LocalState:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock = (self.directory / ".lock").open("w")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            raise StateBusyError(f"another coa-sync command is using {self.directory}; try again when it ends") \
                from None
        try:
            self._db = self._open()
            self._import_legacy()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
        assert self._lock is not None
        self._lock.close()  # closing the file releases the lock

    def _open(self) -> sqlite3.Connection:
        path = self.directory / DATABASE
        try:
            db = sqlite3.connect(path)
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                db.close()
                raise StateError(f"{path} was written by a newer coa-sync (state version {version}); "
                                 "upgrade coa-sync, or use another --state-dir")
            # WAL: a commit is one append, and a killed process never leaves a half-written database.
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(_SCHEMA)
            db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except sqlite3.DatabaseError as exc:
            raise StateError(f"{path}: not a coa-sync state database ({exc}); move the state directory away "
                             "to start afresh") from None
        return db

    # -- loading into moto -----------------------------------------------------------------

    def restore(self, world: World) -> None:
        db = self._database()
        for key, etag, body in db.execute("SELECT key, etag, body FROM objects"):
            world.s3.put_object(world.bucket, key, bytes(body))
            self._etags[key] = etag
        for (item,) in db.execute("SELECT item FROM items"):
            world.dynamodb.put_item(world.table, json.loads(item))
        self._changes_read = len(_stream(world).items)  # the restore's own writes are not changes
        for queue in world.queues:
            known = self._messages.setdefault(queue, {})
            rows = db.execute("SELECT seq, body, attributes FROM messages WHERE queue = ? ORDER BY seq", (queue,))
            for seq, body, attributes in rows:
                message = world.sqs.send_message(queue, body, message_attributes=json.loads(attributes) or None)
                known[message.id] = seq
        self._next_seq = db.execute("SELECT coalesce(max(seq), 0) + 1 FROM messages").fetchone()[0]

    # -- saving from moto ------------------------------------------------------------------

    def save(self, world: World) -> None:
        """Write what changed in the world since the last save, in one transaction."""
        bucket = world.s3.get_bucket(world.bucket).keys
        objects = [(key, fake.etag) for key, fake in bucket.items() if self._etags.get(key) != fake.etag]
        gone_objects = [key for key in self._etags if key not in bucket]
        # The table's items that changed: those its stream (DynamoDB Streams, keys only) names since the last save.
        changes = _stream(world).items
        touched = {json.dumps(record.record["dynamodb"]["Keys"], sort_keys=True): record.record["dynamodb"]["Keys"]
                   for record in changes[self._changes_read:]}
        items = [(tuple(key[name]["S"] for name in KEY_ATTRIBUTES), world.dynamodb.get_item(world.table, key))
                 for key in touched.values()]
        numbers = itertools.count(self._next_seq)
        new: dict[str, list[tuple[int, Any]]] = {}
        gone: dict[str, set[str]] = {}
        for queue in world.queues:
            messages, known = world.sqs.get_queue(queue)._messages, self._messages.get(queue, {})
            new[queue] = [(next(numbers), m) for m in messages if m.id not in known]
            gone[queue] = known.keys() - {m.id for m in messages}
        db = self._database()
        # A stop signal waits for the end of the save: what was committed must be what is recorded as saved
        # (a message recorded as unsaved would be written twice).
        with signals.deferred():
            with db:
                db.executemany("INSERT OR REPLACE INTO objects VALUES (?, ?, ?)",
                               ((key, etag, bucket[key].value) for key, etag in objects))
                db.executemany("DELETE FROM objects WHERE key = ?", ((key,) for key in gone_objects))
                db.executemany("INSERT OR REPLACE INTO items VALUES (?, ?, ?)",
                               ((*key, json.dumps(item.to_json()["Attributes"])) for key, item in items
                                if item is not None))
                db.executemany("DELETE FROM items WHERE pk = ? AND sk = ?",
                               (key for key, item in items if item is None))
                for queue in world.queues:
                    known = self._messages.get(queue, {})
                    db.executemany("DELETE FROM messages WHERE seq = ?",
                                   ((known[moto_id],) for moto_id in gone[queue]))
                    db.executemany("INSERT INTO messages VALUES (?, ?, ?, ?)", (
                        (seq, queue, m.body, _attributes_json(m.message_attributes)) for seq, m in new[queue]))
            self._etags.update(objects)
            for key in gone_objects:
                del self._etags[key]
            self._changes_read = len(changes)
            self._next_seq = next(numbers)
            for queue in world.queues:
                known = self._messages.setdefault(queue, {})
                for moto_id in gone[queue]:
                    del known[moto_id]
                known.update((m.id, seq) for seq, m in new[queue])

    def _database(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("use LocalState as a context manager")
        return self._db

    # -- the layout before the database ----------------------------------------------------

    def _import_legacy(self) -> None:
        """Move a state saved as files into the database. The import is one transaction and writes the
        same rows if it is done twice (a command stopped before it removed the files imports them again)."""
        present = [self.directory / name for name in LEGACY if (self.directory / name).exists()]
        if not present:
            return
        db = self._database()
        objects = self.directory / "s3"
        with db:
            for path in sorted(objects.rglob("*")) if objects.is_dir() else []:
                if path.is_file():
                    body = path.read_bytes()
                    etag = f'"{hashlib.md5(body, usedforsecurity=False).hexdigest()}"'  # as S3 (moto) gives it
                    db.execute("INSERT OR REPLACE INTO objects VALUES (?, ?, ?)",
                               (path.relative_to(objects).as_posix(), etag, body))
            for item in _read_lines(self.directory / "table.jsonl"):
                db.execute("INSERT OR REPLACE INTO items VALUES (?, ?, ?)",
                           (*(item[name]["S"] for name in KEY_ATTRIBUTES), json.dumps(item)))
            db.execute("DELETE FROM messages")  # what an earlier, unfinished import of these files wrote
            for path in sorted((self.directory / "queues").glob("*.jsonl")):
                lines = _read_lines(path)
                db.executemany("INSERT INTO messages (queue, body, attributes) VALUES (?, ?, ?)",
                               ((path.stem, line["body"], json.dumps(line["attributes"])) for line in lines))
        for path in present:
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()


@functools.lru_cache(maxsize=1024)
def _attributes_text(attributes: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...]) -> str:
    return json.dumps({name: dict(value) for name, value in attributes})


def _attributes_json(attributes: dict[str, dict[str, Any]]) -> str:
    """A message's attributes as JSON; the messages of a run share a handful of them, so each is encoded once."""
    try:
        return _attributes_text(tuple((name, tuple(value.items())) for name, value in attributes.items()))
    except TypeError:  # a value that cannot be hashed (a list): encoded as it is
        return json.dumps(attributes)


def _stream(world: World) -> Any:
    stream = world.dynamodb.get_table(world.table).stream_shard
    if stream is None:
        raise RuntimeError(f"table {world.table} needs a stream (StreamSpecification) for the local state")
    return stream


def _read_lines(path: Path) -> Iterator[dict[str, Any]]:
    if not path.exists():
        return
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            try:
                yield json.loads(line)
            except ValueError as exc:
                raise StateError(f"{path}:{number}: not a JSON line ({exc}); "
                                 f"move the state directory away to start afresh") from None
