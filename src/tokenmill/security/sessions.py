"""Console sessions: a signed-in browser, by a user's password or a management key.

The cookie holds a random secret; the database keeps only its SHA-256 (a copied table signs
nobody in) and a CSRF token the page sends back on every write. A session acts as a
console principal, which never infers (api/auth.py), so nothing a browser does escapes
metering; it may still grant what its role holds (a tenant-admin makes inference keys). Every
request re-reads the session and its user or key, so a logout, a disabled user or a revoked
key ends it at once, on every gateway.
"""

import dataclasses
import secrets
import time
from dataclasses import dataclass

from sqlalchemy import Engine, delete, update
from sqlalchemy.orm import Session

from tokenmill.security.keys import KeyRing, Principal, hash_secret
from tokenmill.security.roles import ALLOWED_SCOPES
from tokenmill.security.users import SignedIn, Users
from tokenmill.store.tables import ConsoleSession

SEEN_EVERY_S = 60.0  # how stale `seen_at` may get: a write per request would be wasteful
KEPT_AFTER_END_S = 7 * 86400.0  # ended sessions kept a while, for an investigation


@dataclass(frozen=True, slots=True)
class Signed:
    """Who a session acts as, and what its page must send back on writes."""

    principal: Principal
    csrf: str
    name: str  # the user's name, or the key's prefix


def _user_principal(user: SignedIn) -> Principal:
    return Principal(
        key_id=user.id,
        tenant=user.tenant,
        role=user.role,
        scopes=ALLOWED_SCOPES[user.role],
        user=user.name,
        console=True,
    )


class Sessions:
    def __init__(self, engine: Engine, users: Users, keyring: KeyRing, idle_s: float, max_s: float):
        self._engine = engine
        self._users = users
        self._keyring = keyring
        self.idle_s, self.max_s = idle_s, max_s

    def open_for_user(self, user: SignedIn) -> tuple[str, Signed]:
        return self._open(_user_principal(user), user.name, user_id=user.id)

    def open_for_key(self, principal: Principal, name: str) -> tuple[str, Signed]:
        return self._open(_console(principal), name, key_id=principal.key_id)

    def _open(
        self, principal: Principal, name: str, user_id: str | None = None, key_id: str | None = None
    ) -> tuple[str, Signed]:
        secret, csrf, now = secrets.token_urlsafe(32), secrets.token_urlsafe(32), time.time()
        with Session(self._engine) as s, s.begin():
            s.add(
                ConsoleSession(
                    id=hash_secret(secret),
                    tenant=principal.tenant,
                    role=str(principal.role),
                    user_id=user_id,
                    key_id=key_id,
                    csrf=csrf,
                    created_at=now,
                    seen_at=now,
                    expires_at=now + self.max_s,
                )
            )
        return secret, Signed(principal, csrf, name)

    def resolve(self, secret: str, now: float | None = None) -> Signed | None:
        """The session's principal while it lives: not ended, not idle too long, not past its
        lifetime, its user still enabled or its key still valid."""
        now = time.time() if now is None else now
        sid = hash_secret(secret)
        with Session(self._engine) as s:
            row = s.get(ConsoleSession, sid)
        if row is None or row.ended_at is not None:
            return None
        if now >= row.expires_at or now - row.seen_at >= self.idle_s:
            return None
        signed = self._who(row)
        if signed is None:
            self.end(secret, now)
            return None
        if now - row.seen_at >= SEEN_EVERY_S:
            self._touch(sid, now)
        return signed

    def _who(self, row: ConsoleSession) -> Signed | None:
        if row.user_id is not None:
            user = self._users.active(row.user_id)
            if user is None:
                return None
            return Signed(_user_principal(user), row.csrf, user.name)
        principal = self._keyring.by_id(row.key_id or "")
        if principal is None or principal.expired():
            return None
        return Signed(_console(principal), row.csrf, row.key_id or "")

    def _touch(self, sid: str, now: float) -> None:
        with Session(self._engine) as s, s.begin():
            s.execute(update(ConsoleSession).where(ConsoleSession.id == sid).values(seen_at=now))

    def end(self, secret: str, now: float | None = None) -> None:
        now = time.time() if now is None else now
        with Session(self._engine) as s, s.begin():
            s.execute(
                update(ConsoleSession)
                .where(ConsoleSession.id == hash_secret(secret), ConsoleSession.ended_at.is_(None))
                .values(ended_at=now)
            )

    def forget_old(self, now: float | None = None) -> int:
        """Deletes sessions that ended, expired or went idle over a week ago; returns how many."""
        cutoff = (time.time() if now is None else now) - KEPT_AFTER_END_S
        with Session(self._engine) as s, s.begin():
            done = s.execute(
                delete(ConsoleSession).where(
                    (ConsoleSession.expires_at < cutoff)
                    | (ConsoleSession.ended_at < cutoff)
                    | (ConsoleSession.seen_at < cutoff)
                )
            )
        return int(getattr(done, "rowcount", 0) or 0)


def _console(principal: Principal) -> Principal:
    return dataclasses.replace(principal, console=True)
