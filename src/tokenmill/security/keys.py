"""API keys: random secrets shown once, stored as SHA-256 with a visible prefix.

A key has >= 128 bits of entropy, so a fast hash is safe (nothing to brute-force) and lets the
gateway authenticate from an in-memory map without a database round trip.
"""

import hashlib
import secrets
import time
from dataclasses import dataclass, field
from enum import StrEnum

from tokenmill.security.roles import PLATFORM_ROLES, Permission, Role, Scope, permits

KEY_PREFIX = "tm-"
VISIBLE_CHARS = 11  # "tm-" + 8 characters: enough to tell keys apart, useless to an attacker


@dataclass(frozen=True, slots=True)
class KeyLimits:
    """Per-key limits; None is unlimited. The budget counts tokens (prompt + completion) over
    `budget_period`, for the agent when the key is an agent's, else for the key."""

    rpm: int | None = None
    tpm: int | None = None
    concurrency: int | None = None
    budget_tokens: int | None = None
    budget_period: str = "total"  # total | day | month


class ToolPolicy(StrEnum):
    """What a request gets when it offers the model a tool off the key's allow-list."""

    REFUSE = "refuse"  # 403 tool_not_allowed, the request goes nowhere
    DROP = "drop"  # the tool is removed from the request, which goes on without it


@dataclass(frozen=True, slots=True)
class Principal:
    key_id: str
    tenant: str
    role: Role
    scopes: frozenset[Scope] = frozenset()
    models: frozenset[str] | None = None  # allow-list; None: every model
    tools: frozenset[str] | None = None  # allow-list; None: any tool
    tool_policy: ToolPolicy = ToolPolicy.REFUSE  # for tools offered off the allow-list
    expires_at: float | None = None  # unix seconds
    limits: KeyLimits = field(default_factory=KeyLimits)
    agent: str | None = None  # the agent this key belongs to
    owner: str | None = None  # the user it acts for (an agent's owner)
    budget_key: str | None = None  # the key whose budget it spends: itself, or its rotated-from
    user: str | None = None  # a console user's name (then key_id is the user's id)
    console: bool = False  # a console session: it manages, never infers (see api/auth.py)

    def may(self, permission: Permission) -> bool:
        return permits(self.role, permission)

    def expired(self, now: float | None = None) -> bool:
        return self.expires_at is not None and (now or time.time()) >= self.expires_at

    @property
    def budget_holder(self) -> str:
        """Whose spending a budget counts: an agent's across all its keys, else the key's."""
        return f"agent:{self.agent}" if self.agent else f"key:{self.budget_key or self.key_id}"

    @property
    def reach(self) -> str | None:
        """The one tenant this principal may act on, or None for all (a platform role)."""
        return None if self.role in PLATFORM_ROLES else self.tenant


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
        self._by_id: dict[str, Principal] = {}

    def add(self, secret_hash: str, principal: Principal) -> None:
        self._by_hash[secret_hash] = principal
        self._by_id[principal.key_id] = principal

    def remove(self, key_id: str) -> None:
        for h, p in list(self._by_hash.items()):
            if p.key_id == key_id:
                del self._by_hash[h]
        self._by_id.pop(key_id, None)

    def lookup(self, secret: str) -> Principal | None:
        return self._by_hash.get(hash_secret(secret))

    def by_id(self, key_id: str) -> Principal | None:
        """An active key's principal (a console session signed in with the key)."""
        return self._by_id.get(key_id)

    def __len__(self) -> int:
        return len(self._by_hash)
