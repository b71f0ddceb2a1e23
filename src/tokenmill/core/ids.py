"""Identifiers. Request ids are the idempotency keys of the ledger, so they must be unique."""

import secrets
import time


def new_request_id() -> str:
    # Millisecond time prefix keeps ids roughly sortable; 80 random bits keep them unique.
    return f"req_{int(time.time() * 1000):x}{secrets.token_hex(10)}"


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(8)}"
