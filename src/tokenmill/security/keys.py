"""API keys: random secrets shown once, stored as SHA-256 with a visible prefix.

A key has >= 128 bits of entropy, so a fast hash is safe (nothing to brute-force) and lets the
gateway authenticate from an in-memory map without a database round trip.
"""

import hashlib
import secrets
from dataclasses import dataclass
from enum import StrEnum

KEY_PREFIX = "tm-"
VISIBLE_CHARS = 11  # "tm-" + 8 characters: enough to tell keys apart, useless to an attacker


class Role(StrEnum):
    ADMIN = "admin"  # manages the platform; cannot infer
    INFERENCE = "inference"  # a tenant's key: calls the OpenAI surface


@dataclass(frozen=True, slots=True)
class Principal:
    key_id: str
    tenant: str
    role: Role


def generate_secret() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(24)  # 192 bits


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def visible_prefix(secret: str) -> str:
    return secret[:VISIBLE_CHARS]


def looks_like_key(secret: str) -> bool:
    return secret.startswith(KEY_PREFIX) and len(secret) >= 32


class KeyRing:
    """Active keys by hash. Revocation removes the entry, so it takes effect on the next request."""

    def __init__(self) -> None:
        self._by_hash: dict[str, Principal] = {}

    def add(self, secret_hash: str, principal: Principal) -> None:
        self._by_hash[secret_hash] = principal

    def remove(self, key_id: str) -> None:
        for h, p in list(self._by_hash.items()):
            if p.key_id == key_id:
                del self._by_hash[h]

    def lookup(self, secret: str) -> Principal | None:
        return self._by_hash.get(hash_secret(secret))

    def __len__(self) -> int:
        return len(self._by_hash)
