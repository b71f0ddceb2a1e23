"""The console's sign-in: users with scrypt passwords, sessions in secure cookies, CSRF on every
write, logout, lockout, and the same tenant reach as keys (one policy for both faces)."""

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from tokenmill.app import create_asgi
from tokenmill.config import Settings
from tokenmill.security.accounts import Accounts, KeySpec
from tokenmill.security.keys import KeyRing
from tokenmill.security.roles import Role
from tokenmill.security.sessions import Sessions
from tokenmill.security.users import LOCK_AFTER, Users
from tokenmill.store.db import make_engine, migrate, sqlite_url
from tokenmill.store.tables import AuditRecord, User

ADMIN_KEY = "tm-console-admin-key-0123456789abcdefgh"
PASSWORD = "correct horse battery staple"


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    engine = make_engine(sqlite_url(tmp_path))
    migrate(engine)
    accounts = Accounts(engine, KeyRing())
    accounts.create_tenant("system")
    accounts.create_tenant("acme")
    accounts.create_tenant("globex")
    accounts.create_key("system", "admin", KeySpec(Role.PLATFORM_ADMIN), secret=ADMIN_KEY)
    users = Users(engine)
    users.create("acme", "alice", Role.TENANT_ADMIN, PASSWORD)
    users.create("globex", "gina", Role.TENANT_ADMIN, PASSWORD)
    users.create("system", "olga", Role.OPERATOR, PASSWORD)
    engine.dispose()
    return tmp_path


@pytest.fixture
def client(app_dir: Path) -> Iterator[TestClient]:
    settings = Settings(data_dir=app_dir, deploy_default_model=False)
    # https: the session cookie is Secure, and the client, like a browser, keeps that rule.
    served, _ = create_asgi(settings)  # with the middleware, as `tokenmill up` serves it
    with TestClient(served, base_url="https://testserver") as c:
        yield c


def _sign_in(client: TestClient, name: str = "alice", password: str = PASSWORD) -> str:
    answer = client.post("/console/api/login", json={"username": name, "password": password})
    assert answer.status_code == 200, answer.text
    return str(answer.json()["csrf"])


def test_the_session_cookie_is_secure_httponly_and_strict(client: TestClient):
    answer = client.post("/console/api/login", json={"username": "alice", "password": PASSWORD})
    cookie = answer.headers["set-cookie"].lower()
    assert "httponly" in cookie and "secure" in cookie and "samesite=strict" in cookie
    me = client.get("/console/api/session").json()
    assert (me["name"], me["tenant"], me["role"]) == ("alice", "acme", "tenant-admin")
    assert "keys:write" in me["permissions"] and "infer" not in me["permissions"]


def test_wrong_name_and_wrong_password_get_the_same_answer(client: TestClient):
    bad_name = client.post("/console/api/login", json={"username": "nobody", "password": "x" * 12})
    bad_pass = client.post("/console/api/login", json={"username": "alice", "password": "x" * 12})
    assert bad_name.status_code == bad_pass.status_code == 401
    assert bad_name.json() == bad_pass.json()


def test_a_write_without_the_csrf_token_is_refused(client: TestClient):
    csrf = _sign_in(client)
    body = {"tenant": "acme", "name": "ci"}
    missing = client.post("/admin/keys", json=body)
    wrong = client.post("/admin/keys", json=body, headers={"X-CSRF-Token": "not-it"})
    assert missing.status_code == wrong.status_code == 403
    assert missing.json()["error"]["code"] == "csrf_failed"
    made = client.post("/admin/keys", json=body, headers={"X-CSRF-Token": csrf})
    assert made.status_code == 201, made.text
    assert client.get("/admin/keys").status_code == 200  # reads need no token


def test_logout_ends_the_session_even_for_a_copied_cookie(client: TestClient):
    csrf = _sign_in(client)
    cookie = client.cookies.get("tm_session")
    assert client.post("/console/api/logout").status_code == 403  # CSRF applies to logout
    assert client.post("/console/api/logout", headers={"X-CSRF-Token": csrf}).status_code == 204
    assert client.get("/console/api/session").json() == {"signed_in": False}
    client.cookies.set("tm_session", cookie or "")
    replayed = client.get("/admin/keys")
    assert replayed.status_code == 401
    assert replayed.json()["error"]["code"] == "session_ended"


def test_a_name_locks_after_repeated_failures_and_a_new_password_unlocks_it(client: TestClient):
    for _ in range(LOCK_AFTER):
        wrong = client.post("/console/api/login", json={"username": "alice", "password": "w" * 12})
        assert wrong.status_code == 401
    locked = client.post("/console/api/login", json={"username": "alice", "password": PASSWORD})
    assert locked.status_code == 429 and locked.json()["error"]["code"] == "user_locked"
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    alice = next(
        u for u in client.get("/admin/users", headers=admin).json()["data"] if u["name"] == "alice"
    )
    assert alice["locked_until"] is not None
    fresh = "another long passphrase"
    reset = client.post(
        f"/admin/users/{alice['id']}/password", json={"password": fresh}, headers=admin
    )
    assert reset.status_code == 200
    _sign_in(client, "alice", fresh)


def test_a_tenant_user_sees_only_its_tenant(client: TestClient):
    csrf = _sign_in(client)
    assert client.get("/admin/keys", params={"tenant": "globex"}).status_code == 403
    assert {u["tenant"] for u in client.get("/admin/users").json()["data"]} == {"acme"}
    assert client.get("/admin/usage", params={"group_by": "tenant"}).status_code == 200
    assert client.get("/admin/audit").status_code == 403  # a tenant-admin's role, as for a key
    escalate = client.post(
        "/admin/users",
        json={
            "tenant": "system",
            "name": "mallory",
            "role": "platform-admin",
            "password": PASSWORD,
        },
        headers={"X-CSRF-Token": csrf},
    )
    assert escalate.status_code == 403
    same_tenant = client.post(
        "/admin/users",
        json={"tenant": "acme", "name": "bob", "role": "tenant-admin", "password": PASSWORD},
        headers={"X-CSRF-Token": csrf},
    )
    assert same_tenant.status_code == 201


def test_a_session_never_infers(client: TestClient):
    csrf = _sign_in(client)
    answer = client.post(
        "/v1/chat/completions",
        json={"model": "m", "messages": [{"role": "user", "content": "hi"}]},
        headers={"X-CSRF-Token": csrf},
    )
    assert answer.status_code == 401  # the inference surface takes keys, never the cookie
    assert answer.json()["error"]["code"] == "missing_api_key"


def test_disabling_a_user_ends_its_session_at_once(client: TestClient):
    _sign_in(client)
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    alice = next(
        u for u in client.get("/admin/users", headers=admin).json()["data"] if u["name"] == "alice"
    )
    assert client.delete(f"/admin/users/{alice['id']}", headers=admin).status_code == 200
    assert client.get("/admin/keys").status_code == 401
    again = client.post("/console/api/login", json={"username": "alice", "password": PASSWORD})
    assert again.status_code == 401


def test_signing_in_with_a_key_and_revoking_it(client: TestClient):
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    member = client.post("/admin/keys", json={"tenant": "acme", "role": "member"}, headers=admin)
    refused = client.post("/console/api/login", json={"key": member.json()["key"]})
    assert refused.status_code == 403  # an inference-only key manages nothing
    ta = client.post("/admin/keys", json={"tenant": "acme", "role": "tenant-admin"}, headers=admin)
    signed = client.post("/console/api/login", json={"key": ta.json()["key"]})
    assert signed.status_code == 200 and signed.json()["tenant"] == "acme"
    assert client.get("/admin/keys").status_code == 200
    client.delete(f"/admin/keys/{ta.json()['id']}", headers=admin)
    assert client.get("/admin/keys").status_code == 401


def test_passwords_are_stored_as_scrypt_and_never_audited(client: TestClient, app_dir: Path):
    _sign_in(client)
    client.post("/console/api/login", json={"username": "alice", "password": "wrong password!"})
    engine = make_engine(sqlite_url(app_dir))
    with Session(engine) as s:
        stored = s.scalar(select(User.password_hash).where(User.name == "alice"))
        audit = [(r.action, r.outcome, str(r.detail)) for r in s.scalars(select(AuditRecord))]
    engine.dispose()
    assert stored is not None and stored.startswith("scrypt$") and PASSWORD not in stored
    logins = [(action, outcome) for action, outcome, _ in audit if action == "console.login"]
    assert ("console.login", "ok") in logins and ("console.login", "denied") in logins
    assert not any(PASSWORD in detail or "wrong password!" in detail for *_, detail in audit)


def test_sessions_end_when_idle_or_old(app_dir: Path):
    engine = make_engine(sqlite_url(app_dir))
    users = Users(engine)
    sessions = Sessions(engine, users, KeyRing(), idle_s=300, max_s=1000)
    user = users.sign_in("alice", PASSWORD)
    secret, _ = sessions.open_for_user(user)
    now = time.time()
    assert sessions.resolve(secret, now + 100) is not None  # and marks it seen
    assert sessions.resolve(secret, now + 350) is not None  # 250 s after that
    assert sessions.resolve(secret, now + 700) is None  # idle past 300 s
    fresh, _ = sessions.open_for_user(user)
    for t in (*range(100, 1000, 100), 1100):  # busy all along, but it lives 1000 s at most
        alive = sessions.resolve(fresh, now + t)
        assert (alive is not None) == (t < 1000), t
    engine.dispose()
