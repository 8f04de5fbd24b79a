"""Webhook signatures: HMAC-SHA256 over "<timestamp>.<raw body>" with the tenant's secret.

Headers: `X-Coa-Sync-Timestamp: <unix seconds>` and `X-Coa-Sync-Signature: v1=<hex>`.
The timestamp bounds replays to a few minutes; the replay store closes even that window.
"""

from __future__ import annotations

import hashlib
import hmac

TIMESTAMP_HEADER = "x-coa-sync-timestamp"
SIGNATURE_HEADER = "x-coa-sync-signature"
TOLERANCE_SECONDS = 300
VERSION = "v1="


class SignatureError(ValueError):
    """The request is not signed by the tenant, or not recently: answer 401, say no more."""


def sign(secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return VERSION + digest


def verify(secret: str, timestamp: str | None, signature: str | None, body: bytes, now: float) -> None:
    if not timestamp or not signature:
        raise SignatureError("missing signature headers")
    try:
        sent_at = int(timestamp)
    except ValueError:
        raise SignatureError("timestamp is not unix seconds") from None
    if abs(now - sent_at) > TOLERANCE_SECONDS:
        raise SignatureError("timestamp outside the allowed window")
    # compare_digest: the time taken must not tell how much of a guess was right.
    if not hmac.compare_digest(sign(secret, timestamp, body).encode(), signature.strip().encode()):
        raise SignatureError("signature does not match")
