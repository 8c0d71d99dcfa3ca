"""Idempotency of the POSTs that move money (remedies, approvals, payouts,
bulk remedy jobs): the ``Idempotency-Key`` they require and the hash of the
request it stands for. Each app stores its key in the same transaction as the
effect, under a unique constraint; a replay with another body is a 409."""

from __future__ import annotations

import hashlib
import json

from core.errors import IdempotencyKeyRequired, InvalidInput

MAX_KEY_LENGTH = 128


def require_idempotency_key(key: str | None) -> str:
    """The key as given (stripped), or 400 ``idempotency_key_required``."""
    key = (key or "").strip()
    if not key:
        raise IdempotencyKeyRequired()
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidInput(f"Idempotency-Key is at most {MAX_KEY_LENGTH} characters.", field="Idempotency-Key")
    return key


def request_hash(payload: dict) -> str:
    """What a key stands for: the same key with another body is a conflict."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str).encode()).hexdigest()
