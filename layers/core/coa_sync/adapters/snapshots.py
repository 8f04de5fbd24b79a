"""Run files in S3: gzip-compressed JSON snapshots and plan, plain JSON manifest."""

from __future__ import annotations

import gzip
import zlib
from typing import Any, TypeVar

from pydantic import BaseModel

from coa_sync.adapters.aws import client

M = TypeVar("M", bound=BaseModel)


class SnapshotStore:
    def __init__(self, bucket: str, s3: Any | None = None) -> None:
        self.bucket = bucket
        self._s3 = s3 or client("s3")

    def put(self, key: str, document: BaseModel) -> None:
        body = document.model_dump_json().encode()
        if key.endswith(".gz"):
            body = gzip.compress(body, compresslevel=6)
            self._s3.put_object(Bucket=self.bucket, Key=key, Body=body,
                                ContentType="application/json", ContentEncoding="gzip")
        else:
            self._s3.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType="application/json")

    def get(self, key: str, model: type[M]) -> M:
        body = self.read_bytes(key)
        if key.endswith(".gz"):
            # One gzip member, as put writes it: zlib checks its CRC while inflating, in one pass
            # (gzip.decompress makes a second pass over the bytes for it).
            body = zlib.decompress(body, wbits=zlib.MAX_WBITS | 16)
        return model.model_validate_json(body)

    def read_bytes(self, key: str, bucket: str | None = None) -> bytes:
        response = self._s3.get_object(Bucket=bucket or self.bucket, Key=key)
        return response["Body"].read()
