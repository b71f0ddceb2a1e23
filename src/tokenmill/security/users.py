"""The people who sign in to the console: a tenant's users, each with one role.

Only roles that manage something may sign in (an inference-only member would see an empty
console); platform roles belong to the system tenant, as for keys. A name that fails to sign
in `LOCK_AFTER` times in a row is locked for `LOCK_S`: the count lives in the database, so
every gateway sees it and a restart does not reset it.
"""

import time
from dataclasses import dataclass

from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from tokenmill.core.errors import Conflict, InvalidRequest, NotFound, RateLimited, Unauthenticated
from tokenmill.core.ids import new_id
from tokenmill.security.accounts import NAME_PATTERN, SYSTEM_TENANT
from tokenmill.security.passwords import decoy_hash, hash_password, verify_password, weakness
from tokenmill.security.roles import PLATFORM_ROLES, Role, listed
from tokenmill.store.tables import ConsoleSession, Tenant, User

USER_ROLES = frozenset({*PLATFORM_ROLES, Role.TENANT_ADMIN})
LOCK_AFTER, LOCK_S = 5, 900.0
WRONG = "Incorrect username or password"


@dataclass(frozen=True, slots=True)
class SignedIn:
    id: str
    tenant: str
    name: str
    role: Role


def _view(row: User) -> dict[str, object]:
    return {
        "id": row.id,
        "tenant": row.tenant,
        "name": row.name,
        "role": row.role,
        "created_at": row.created_at,
        "disabled_at": row.disabled_at,
        "locked_until": row.locked_until,
    }


def check_role(tenant: str, role: Role) -> None:
    if role not in USER_ROLES:
        raise InvalidRequest(
            f"a console user's role is one of ({listed(USER_ROLES)}); inference-only "
            "principals use keys",
            param="role",
        )
    if (role in PLATFORM_ROLES) != (tenant == SYSTEM_TENANT):
        raise InvalidRequest(
            f"platform roles ({listed(PLATFORM_ROLES)}) belong to the '{SYSTEM_TENANT}' "
            "tenant, and only they do",
            param="role",
        )


def _checked_password(password: str) -> str:
    why = weakness(password)
    if why is not None:
        raise InvalidRequest(why, param="password")
    return hash_password(password)


class Users:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def create(self, tenant: str, name: str, role: Role, password: str) -> dict[str, object]:
        if not NAME_PATTERN.match(name):
            raise InvalidRequest(
                "a user name is 1-64 of a-z, 0-9, '_' and '-', starting with a letter or digit",
                param="name",
            )
        check_role(tenant, role)
        hashed = _checked_password(password)
        with Session(self._engine, expire_on_commit=False) as s, s.begin():
            if s.get(Tenant, tenant) is None:
                raise NotFound(f"tenant '{tenant}' does not exist", param="tenant")
            if s.scalar(select(User.id).where(User.name == name)) is not None:
                raise Conflict(f"user '{name}' exists", param="name")
            row = User(
                id=new_id("usr"),
                tenant=tenant,
                name=name,
                role=str(role),
                password_hash=hashed,
                created_at=time.time(),
                failed_logins=0,
            )
            s.add(row)
        return _view(row)

    def list(self, tenant: str | None = None) -> list[dict[str, object]]:
        with Session(self._engine) as s:
            q = select(User).order_by(User.tenant, User.name)
            if tenant:
                q = q.where(User.tenant == tenant)
            return [_view(r) for r in s.scalars(q)]

    def disable(self, user_id: str, reach: str | None) -> dict[str, object]:
        """Disables the user and ends its sessions, at once and on every gateway."""
        now = time.time()
        with Session(self._engine, expire_on_commit=False) as s, s.begin():
            row = _reachable(s, user_id, reach)
            if row.disabled_at is None:
                row.disabled_at = now
            _end_sessions(s, user_id, now)
        return _view(row)

    def set_password(self, user_id: str, password: str, reach: str | None) -> dict[str, object]:
        """A new password ends the user's sessions and lifts a lockout."""
        hashed = _checked_password(password)
        now = time.time()
        with Session(self._engine, expire_on_commit=False) as s, s.begin():
            row = _reachable(s, user_id, reach)
            row.password_hash, row.failed_logins, row.locked_until = hashed, 0, None
            _end_sessions(s, user_id, now)
        return _view(row)

    def sign_in(self, name: str, password: str, now: float | None = None) -> SignedIn:
        """The user, if the password is right; the same answer for a wrong name and a wrong
        password. Locked names are refused before their password is checked."""
        now = time.time() if now is None else now
        with Session(self._engine) as s:
            row = s.scalar(select(User).where(User.name == name))
        if row is None or row.disabled_at is not None:
            verify_password(password, decoy_hash())
            raise Unauthenticated(WRONG, code="invalid_credentials")
        if row.locked_until is not None and row.locked_until > now:
            raise RateLimited(
                "too many failed sign-ins for this user: try again later",
                retry_after_s=row.locked_until - now,
                code="user_locked",
            )
        if not verify_password(password, row.password_hash):
            self._failed(row.id, now)
            raise Unauthenticated(WRONG, code="invalid_credentials")
        if row.failed_logins:
            with Session(self._engine) as s, s.begin():
                s.execute(
                    update(User).where(User.id == row.id).values(failed_logins=0, locked_until=None)
                )
        return SignedIn(row.id, row.tenant, row.name, Role(row.role))

    def _failed(self, user_id: str, now: float) -> None:
        """Counts the failure in one statement (two gateways counting at once both count)."""
        with Session(self._engine) as s, s.begin():
            s.execute(
                update(User).where(User.id == user_id).values(failed_logins=User.failed_logins + 1)
            )
            s.execute(
                update(User)
                .where(User.id == user_id, User.failed_logins >= LOCK_AFTER)
                .values(locked_until=now + LOCK_S, failed_logins=0)
            )

    def active(self, user_id: str) -> SignedIn | None:
        """The user behind a session, if it may still act."""
        with Session(self._engine) as s:
            row = s.get(User, user_id)
        if row is None or row.disabled_at is not None:
            return None
        return SignedIn(row.id, row.tenant, row.name, Role(row.role))


def _reachable(s: Session, user_id: str, reach: str | None) -> User:
    row = s.get(User, user_id)
    if row is None or (reach is not None and row.tenant != reach):
        raise NotFound(f"user '{user_id}' does not exist", param="user_id")
    return row


def _end_sessions(s: Session, user_id: str, now: float) -> None:
    s.execute(
        update(ConsoleSession)
        .where(ConsoleSession.user_id == user_id, ConsoleSession.ended_at.is_(None))
        .values(ended_at=now)
    )
