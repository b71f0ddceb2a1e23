"""Tenants and their keys: the database side, kept in step with the in-memory KeyRing."""

import dataclasses
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from tokenmill.core.errors import Conflict, InvalidRequest, NotFound
from tokenmill.core.ids import new_id
from tokenmill.security.keys import (
    KeyLimits,
    KeyRing,
    Principal,
    ToolPolicy,
    generate_secret,
    hash_secret,
    visible_prefix,
)
from tokenmill.security.pii import PiiMode, check_available, parse_kinds
from tokenmill.security.roles import ALLOWED_SCOPES, PLATFORM_ROLES, Role, Scope, listed
from tokenmill.store.tables import ApiKey, Tenant

SYSTEM_TENANT = "system"
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
# A tenant's share of a contended model relative to the others: weight 3 gets 3x weight 1's
# tokens while both wait. Integers keep the admin's intent exact; the range keeps it sane.
MIN_WEIGHT, MAX_WEIGHT = 1, 1000
BUDGET_PERIODS = ("total", "day", "month")


class Unset:
    """A parameter not given at all (as opposed to given as None)."""


UNSET = Unset()


@dataclass(frozen=True)
class TenantPii:
    """A tenant's own PII guard settings; None: the server's."""

    mode: PiiMode | None = None
    kinds: frozenset[str] | None = None


# (tenant, weight, its PII settings), once a change is committed
TenantListener = Callable[[str, int, TenantPii], object]


@dataclass(frozen=True)
class KeySpec:
    """What a key may do. Scopes default to all its role allows; None lists allow anything."""

    role: Role = Role.MEMBER
    scopes: frozenset[Scope] | None = None
    models: frozenset[str] | None = None
    tools: frozenset[str] | None = None
    expires_at: datetime | None = None
    limits: KeyLimits = field(default_factory=KeyLimits)
    owner: str | None = None
    agent_id: str | None = None
    tool_policy: ToolPolicy = ToolPolicy.REFUSE  # a tool offered off `tools`: refuse or drop

    def checked(self, tenant: str) -> "KeySpec":
        allowed = ALLOWED_SCOPES[self.role]
        scopes = allowed if self.scopes is None else self.scopes
        if not scopes or not scopes <= allowed:
            raise InvalidRequest(
                f"a {self.role} key may hold scopes ({listed(allowed)}), not ({listed(scopes)})",
                param="scopes",
            )
        if (self.role in PLATFORM_ROLES) != (tenant == SYSTEM_TENANT):
            raise InvalidRequest(
                f"platform roles ({listed(PLATFORM_ROLES)}) belong to the '{SYSTEM_TENANT}' "
                "tenant, and only they do",
                param="role",
            )
        expires_at = _aware(self.expires_at) if self.expires_at else None
        if expires_at is not None and expires_at <= _now():
            raise InvalidRequest("expires_at is in the past", param="expires_at")
        if self.limits.budget_period not in BUDGET_PERIODS:
            raise InvalidRequest(
                f"budget_period must be one of {BUDGET_PERIODS}", param="budget_period"
            )
        return dataclasses.replace(self, scopes=scopes, expires_at=expires_at)


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
        "pii_mode": row.pii_mode,
        "pii_kinds": row.pii_kinds,
        "created_at": row.created_at,
    }


def _check_weight(weight: int) -> None:
    if not MIN_WEIGHT <= weight <= MAX_WEIGHT:
        raise InvalidRequest(
            f"weight must be an integer from {MIN_WEIGHT} to {MAX_WEIGHT}", param="weight"
        )


def _check_kinds(kinds: Iterable[str] | None) -> list[str] | None:
    """A tenant's kinds, known and usable here, sorted; None stays None (the server's)."""
    if kinds is None:
        return None
    try:
        return sorted(check_available(parse_kinds(kinds)))
    except ValueError as e:
        raise InvalidRequest(str(e), param="pii_kinds") from None


def _pii(row: Tenant) -> TenantPii:
    kinds = frozenset(row.pii_kinds) if row.pii_kinds is not None else None
    return TenantPii(PiiMode(row.pii_mode) if row.pii_mode else None, kinds)


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at else None


def _key_view(row: ApiKey) -> dict[str, object]:
    return {
        "id": row.id,
        "tenant": row.tenant,
        "name": row.name,
        "role": row.role,
        "scopes": sorted(_split(row.scopes)),
        "prefix": row.prefix,
        "models": row.models,
        "tools": row.tools,
        "tool_policy": row.tool_policy,
        "rpm": row.rpm,
        "tpm": row.tpm,
        "concurrency": row.concurrency,
        "budget_tokens": row.budget_tokens,
        "budget_period": row.budget_period,
        "agent": row.agent_id,
        "owner": row.owner,
        "rotated_from": row.rotated_from,
        "created_at": row.created_at.isoformat(),
        "expires_at": _iso(row.expires_at),
        "revoked_at": _iso(row.revoked_at),
    }


class Accounts:
    def __init__(self, engine: Engine, keyring: KeyRing) -> None:
        self._engine = engine
        self.keyring = keyring
        self._listeners: list[TenantListener] = []

    def on_tenant_change(self, listener: TenantListener) -> None:
        """Call `listener` with every tenant setting changed from now on (the live scheduler,
        the PII guard)."""
        self._listeners.append(listener)

    def _changed(self, row: Tenant) -> None:
        for listener in self._listeners:
            listener(row.name, row.weight, _pii(row))

    def load_keyring(self) -> None:
        with Session(self._engine) as s:
            for row in s.scalars(select(ApiKey).where(ApiKey.revoked_at.is_(None))):
                self.keyring.add(row.secret_hash, _principal(row))

    def create_tenant(
        self,
        name: str,
        display_name: str | None = None,
        weight: int = 1,
        pii_mode: PiiMode | None = None,
        pii_kinds: Iterable[str] | None = None,
    ) -> dict[str, object]:
        if not NAME_PATTERN.match(name):
            raise InvalidRequest(
                "tenant name must be 1-64 chars of a-z, 0-9, '-' or '_', starting alphanumeric",
                param="name",
            )
        _check_weight(weight)
        kinds = _check_kinds(pii_kinds)
        with Session(self._engine, expire_on_commit=False) as s, s.begin():
            if s.get(Tenant, name) is not None:
                raise Conflict(f"tenant '{name}' already exists", param="name")
            row = Tenant(name=name, display_name=display_name or name, weight=weight,
                         pii_mode=pii_mode, pii_kinds=kinds, created_at=_now())  # fmt: skip
            s.add(row)
        self._changed(row)
        return _tenant_view(row)

    def update_tenant(
        self,
        name: str,
        weight: int | None = None,
        pii_mode: PiiMode | Unset | None = UNSET,
        pii_kinds: Iterable[str] | Unset | None = UNSET,
    ) -> dict[str, object]:
        """Change a tenant's weight, PII mode and/or PII kinds (None: back to the server's)."""
        if weight is not None:
            _check_weight(weight)
        kinds = pii_kinds if isinstance(pii_kinds, Unset) else _check_kinds(pii_kinds)
        with Session(self._engine, expire_on_commit=False) as s, s.begin():
            row = s.get(Tenant, name)
            if row is None:
                raise NotFound(f"tenant '{name}' does not exist", param="name")
            if weight is not None:
                row.weight = weight
            if not isinstance(pii_mode, Unset):
                row.pii_mode = pii_mode.value if pii_mode else None
            if not isinstance(kinds, Unset):
                row.pii_kinds = kinds
        self._changed(row)
        return _tenant_view(row)

    def weights(self) -> dict[str, int]:
        """Every tenant's weight, for the scheduler at startup."""
        with Session(self._engine) as s:
            return {name: weight for name, weight in s.execute(select(Tenant.name, Tenant.weight))}

    def pii_modes(self) -> dict[str, PiiMode]:
        """The tenants with a PII mode of their own, for the guard at startup."""
        with Session(self._engine) as s:
            q = select(Tenant.name, Tenant.pii_mode).where(Tenant.pii_mode.is_not(None))
            return {name: PiiMode(mode) for name, mode in s.execute(q) if mode}

    def pii_kinds(self) -> dict[str, frozenset[str]]:
        """The tenants with PII kinds of their own, for the guard at startup."""
        with Session(self._engine) as s:
            q = select(Tenant.name, Tenant.pii_kinds).where(Tenant.pii_kinds.is_not(None))
            return {name: frozenset(kinds) for name, kinds in s.execute(q) if kinds is not None}

    def ensure_tenant(self, name: str) -> None:
        with Session(self._engine, expire_on_commit=False) as s, s.begin():
            if s.get(Tenant, name) is None:
                s.add(Tenant(name=name, display_name=name, created_at=_now()))

    def list_tenants(self) -> list[dict[str, object]]:
        with Session(self._engine) as s:
            return [_tenant_view(r) for r in s.scalars(select(Tenant).order_by(Tenant.name))]

    def create_key(
        self, tenant: str, name: str, spec: KeySpec, secret: str | None = None
    ) -> IssuedKey:
        spec = spec.checked(tenant)
        secret = secret or generate_secret()
        with Session(self._engine, expire_on_commit=False) as s, s.begin():
            if s.get(Tenant, tenant) is None:
                raise NotFound(f"tenant '{tenant}' does not exist", param="tenant")
            row = _key_row(tenant, name, spec, secret)
            s.add(row)
        self.keyring.add(row.secret_hash, _principal(row))
        return IssuedKey(row.id, tenant, name, spec.role, row.prefix, secret)

    def rotate_key(
        self, key_id: str, grace_s: int = 0, reach: str | None = None
    ) -> tuple[IssuedKey, dict[str, object]]:
        """A new secret with the same rights; the old one stops working after `grace_s`."""
        secret = generate_secret()
        with Session(self._engine, expire_on_commit=False) as s, s.begin():
            old = _live_key(s, key_id, reach)
            new = _key_row(old.tenant, old.name, _spec_of(old), secret)
            new.rotated_from = old.id
            new.budget_key = old.budget_key or old.id  # one budget across rotations
            s.add(new)
            cutoff = _now() + timedelta(seconds=grace_s)
            if grace_s <= 0:
                old.revoked_at = _now()
            elif old.expires_at is None or cutoff < _aware(old.expires_at):
                old.expires_at = cutoff
        self.keyring.remove(old.id)
        if old.revoked_at is None:
            self.keyring.add(old.secret_hash, _principal(old))
        self.keyring.add(new.secret_hash, _principal(new))
        issued = IssuedKey(new.id, new.tenant, new.name, Role(new.role), new.prefix, secret)
        return issued, _key_view(old)

    def has_admin_key(self) -> bool:
        with Session(self._engine) as s:
            q = select(ApiKey.id).where(
                ApiKey.role == Role.PLATFORM_ADMIN, ApiKey.revoked_at.is_(None)
            )
            return s.scalars(q).first() is not None

    def known_secret(self, secret: str) -> bool:
        """Whether any key, live or not, ever had this secret."""
        with Session(self._engine) as s:
            q = select(ApiKey.id).where(ApiKey.secret_hash == hash_secret(secret))
            return s.scalars(q).first() is not None

    def list_keys(self, tenant: str | None = None) -> list[dict[str, object]]:
        with Session(self._engine) as s:
            q = select(ApiKey).order_by(ApiKey.created_at)
            if tenant:
                q = q.where(ApiKey.tenant == tenant)
            return [_key_view(r) for r in s.scalars(q)]

    def revoke_key(self, key_id: str, reach: str | None = None) -> dict[str, object]:
        with Session(self._engine, expire_on_commit=False) as s, s.begin():
            row = _reachable_key(s, key_id, reach)
            if row.revoked_at is None:
                row.revoked_at = _now()
            view = _key_view(row)
        self.keyring.remove(key_id)
        return view


def _reachable_key(s: Session, key_id: str, reach: str | None) -> ApiKey:
    """The key, if it exists and `reach` covers its tenant; else 404 (another tenant's key
    is none of the caller's business, not even its existence)."""
    row = s.get(ApiKey, key_id)
    if row is None or (reach is not None and row.tenant != reach):
        raise NotFound(f"key '{key_id}' does not exist", param="key_id")
    return row


def _live_key(s: Session, key_id: str, reach: str | None) -> ApiKey:
    row = _reachable_key(s, key_id, reach)
    if row.revoked_at is not None:
        raise Conflict(f"key '{key_id}' is revoked", param="key_id")
    if row.expires_at is not None and _aware(row.expires_at) <= _now():
        raise Conflict(f"key '{key_id}' has expired", param="key_id")
    return row


def _key_row(tenant: str, name: str, spec: KeySpec, secret: str) -> ApiKey:
    limits = spec.limits
    return ApiKey(
        id=new_id("key"),
        tenant=tenant,
        name=name,
        role=spec.role.value,
        scopes=",".join(sorted(spec.scopes or ())),
        prefix=visible_prefix(secret),
        secret_hash=hash_secret(secret),
        created_at=_now(),
        models=sorted(spec.models) if spec.models is not None else None,
        tools=sorted(spec.tools) if spec.tools is not None else None,
        tool_policy=spec.tool_policy.value,
        expires_at=spec.expires_at,
        rpm=limits.rpm,
        tpm=limits.tpm,
        concurrency=limits.concurrency,
        budget_tokens=limits.budget_tokens,
        budget_period=limits.budget_period,
        agent_id=spec.agent_id,
        owner=spec.owner,
    )


def _limits(row: ApiKey) -> KeyLimits:
    return KeyLimits(row.rpm, row.tpm, row.concurrency, row.budget_tokens, row.budget_period)


def _spec_of(row: ApiKey) -> KeySpec:
    return KeySpec(
        role=Role(row.role),
        scopes=frozenset(Scope(x) for x in _split(row.scopes)),
        models=frozenset(row.models) if row.models is not None else None,
        tools=frozenset(row.tools) if row.tools is not None else None,
        expires_at=_aware(row.expires_at) if row.expires_at else None,
        limits=_limits(row),
        owner=row.owner,
        agent_id=row.agent_id,
        tool_policy=ToolPolicy(row.tool_policy or ToolPolicy.REFUSE),
    )


def _principal(row: ApiKey) -> Principal:
    spec = _spec_of(row)
    return Principal(
        key_id=row.id,
        tenant=row.tenant,
        role=spec.role,
        scopes=spec.scopes or frozenset(),
        models=spec.models,
        tools=spec.tools,
        tool_policy=spec.tool_policy,
        expires_at=_aware(row.expires_at).timestamp() if row.expires_at else None,
        limits=spec.limits,
        agent=row.agent_id,
        owner=row.owner,
        budget_key=row.budget_key or row.id,
    )


def _split(csv: str) -> list[str]:
    return [x for x in csv.split(",") if x]


def _aware(at: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything stored here is UTC."""
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _now() -> datetime:
    return datetime.now(UTC)
