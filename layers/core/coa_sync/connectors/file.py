"""The "file" connector: a CSV or JSON chart of accounts on S3 or on disk (coa_sync.sources parses it)."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol
from urllib.parse import urlparse

from coa_sync.models import FileSource, SourceSnapshot
from coa_sync.sources import read_source


class ObjectReader(Protocol):
    def read_bytes(self, key: str, bucket: str | None = None) -> bytes: ...


class FileConnector:
    def __init__(self, config: FileSource, files: ObjectReader | None) -> None:
        self.config = config
        self._files = files

    def read_accounts(self) -> SourceSnapshot:
        location = urlparse(self.config.uri)
        if location.scheme == "s3":
            if self._files is None:
                raise ValueError(f"{self.config.uri}: no S3 reader configured")
            key = location.path.lstrip("/")
            return read_source(self._files.read_bytes(key, bucket=location.netloc), Path(key).name)
        path = Path(self.config.uri)
        return read_source(path.read_bytes(), path.name)

    def close(self) -> None:
        pass
