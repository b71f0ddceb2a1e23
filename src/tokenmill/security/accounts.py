"""Tenants and their keys: the database side, kept in step with the in-memory KeyRing."""

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from tokenmill.core.errors import Conflict, InvalidRequest, NotFound
from tokenmill.core.ids import new_id
from tokenmill.security.keys import (
    KeyRing,
    Principal,
    Role,
    generate_secret,
    hash_secret,
    visible_prefix,
)
from tokenmill.store.tables import ApiKey, Tenant

SYSTEM_TENANT = "system"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
# A tenant's share of a contended model relative to the others: weight 3 gets 3x weight 1's
# tokens while both wait. Integers keep the admin's intent exact; the range keeps it sane.
MIN_WEIGHT, MAX_WEIGHT = 1, 1000

WeightListener = Callable[[str, int], object]  # (tenant, weight), once the change is committed


@dataclass(frozen=True)
class IssuedKey:
    """A freshly created key: the only moment the secret exists outside the caller."""

    id: str
    tenant: str
    name: str
    role: Role
    prefix: str
    secret: str


def _tenant_view(row: Tenant) -> dict[str, object]:
    return {
        "name": row.name,
        "display_name": row.display_name,
        "weight": row.weight,
        "created_at": row.created_at,
    }


def _check_weight(weight: int) -> None:
    if not MIN_WEIGHT <= weight <= MAX_WEIGHT:
        raise InvalidRequest(
            f"weight must be an integer from {MIN_WEIGHT} to {MAX_WEIGHT}", param="weight"
        )


def _key_view(row: ApiKey) -> dict[str, object]:
    return {
        "id": row.id,
        "tenant": row.tenant,
        "name": row.name,
        "role": row.role,
        "prefix": row.prefix,
        "created_at": row.created_at.isoformat(),
        "revoked_at": row.revoked_at.isoformat() if row.revoked_at else None,
    }


class Accounts:
    def __init__(self, engine: Engine, keyring: KeyRing) -> None:
        self._engine = engine
        self.keyring = keyring
        self._weight_listeners: list[WeightListener] = []

    def on_weight_change(self, listener: WeightListener) -> None:
        """Call `listener` with every tenant weight set from now on (the live scheduler)."""
        self._weight_listeners.append(listener)

    def _weight_changed(self, tenant: str, weight: int) -> None:
        for listener in self._weight_listeners:
            listener(tenant, weight)

    def load_keyring(self) -> None:
        with Session(self._engine) as s:
            for row in s.scalars(select(ApiKey).where(ApiKey.revoked_at.is_(None))):
                self.keyring.add(row.secret_hash, _principal(row))

    def create_tenant(
        self, name: str, display_name: str | None = None, weight: int = 1
    ) -> dict[str, object]:
        if not _NAME.match(name):
            raise InvalidRequest(
                "tenant name must be 1-64 chars of a-z, 0-9, '-' or '_', starting alphanumeric",
                param="name",
            )
        _check_weight(weight)
        with Session(self._engine, expire_on_commit=False) as s, s.begin():
            if s.get(Tenant, name) is not None:
                raise Conflict(f"tenant '{name}' already exists", param="name")
            row = Tenant(
                name=name, display_name=display_name or name, weight=weight, created_at=_now()
            )
            s.add(row)
        self._weight_changed(name, weight)
        return _tenant_view(row)

    def set_weight(self, name: str, weight: int) -> dict[str, object]:
        _check_weight(weight)
        with Session(self._engine, expire_on_commit=False) as s, s.begin():
            row = s.get(Tenant, name)
            if row is None:
                raise NotFound(f"tenant '{name}' does not exist", param="name")
            row.weight = weight
        self._weight_changed(name, weight)
        return _tenant_view(row)

    def weights(self) -> dict[str, int]:
        """Every tenant's weight, for the scheduler at startup."""
        with Session(self._engine) as s:
            return {name: weight for name, weight in s.execute(select(Tenant.name, Tenant.weight))}

    def ensure_tenant(self, name: str) -> None:
        with Session(self._engine, expire_on_commit=False) as s, s.begin():
            if s.get(Tenant, name) is None:
                s.add(Tenant(name=name, display_name=name, created_at=_now()))

    def list_tenants(self) -> list[dict[str, object]]:
        with Session(self._engine) as s:
            return [_tenant_view(r) for r in s.scalars(select(Tenant).order_by(Tenant.name))]

    def create_key(
        self, tenant: str, name: str, role: Role, secret: str | None = None
    ) -> IssuedKey:
        secret = secret or generate_secret()
        with Session(self._engine, expire_on_commit=False) as s, s.begin():
            if s.get(Tenant, tenant) is None:
                raise NotFound(f"tenant '{tenant}' does not exist", param="tenant")
            row = ApiKey(
                id=new_id("key"),
                tenant=tenant,
                name=name,
                role=role.value,
                prefix=visible_prefix(secret),
                secret_hash=hash_secret(secret),
                created_at=_now(),
            )
            s.add(row)
        self.keyring.add(row.secret_hash, _principal(row))
        return IssuedKey(row.id, tenant, name, role, row.prefix, secret)

    def has_admin_key(self) -> bool:
        with Session(self._engine) as s:
            q = select(ApiKey.id).where(ApiKey.role == Role.ADMIN, ApiKey.revoked_at.is_(None))
            return s.scalars(q).first() is not None

    def list_keys(self, tenant: str | None = None) -> list[dict[str, object]]:
        with Session(self._engine) as s:
            q = select(ApiKey).order_by(ApiKey.created_at)
            if tenant:
                q = q.where(ApiKey.tenant == tenant)
            return [_key_view(r) for r in s.scalars(q)]

    def revoke_key(self, key_id: str) -> dict[str, object]:
        with Session(self._engine, expire_on_commit=False) as s, s.begin():
            row = s.get(ApiKey, key_id)
            if row is None:
                raise NotFound(f"key '{key_id}' does not exist", param="key_id")
            if row.revoked_at is None:
                row.revoked_at = _now()
            view = _key_view(row)
        self.keyring.remove(key_id)
        return view


def _principal(row: ApiKey) -> Principal:
    return Principal(key_id=row.id, tenant=row.tenant, role=Role(row.role))


def _now() -> datetime:
    return datetime.now(UTC)
