"""The brute-force brake and the refusal tally, without a server: a missing key counts toward
the lockout; a lockout does not shut out a key its failures never aimed at (a local admin
beside a noisy process on 127.0.0.1) but does shut out one they aimed at; and a flood of
refusals writes a bounded number of audit records that still account for every refusal."""

import time
from pathlib import Path

import pytest
from sqlalchemy import Engine
from starlette.requests import Request

from tokenmill.api.auth import authenticate
from tokenmill.core.errors import RateLimited, Unauthenticated
from tokenmill.security.audit import AuditLog
from tokenmill.security.keys import KeyRing, Principal, generate_secret, hash_secret
from tokenmill.security.refusals import MAX_ORIGINS, OTHER, SUMMARY_ACTION, RefusalTally
from tokenmill.security.roles import Role
from tokenmill.security.throttle import MAX_NAMED, AuthThrottle
from tokenmill.store.db import make_engine, migrate, sqlite_url

HERE = "127.0.0.1"


def _request(authorization: str | None, host: str = HERE) -> Request:
    headers = [(b"authorization", authorization.encode())] if authorization is not None else []
    return Request({"type": "http", "method": "GET", "path": "/v1/models", "headers": headers,
                    "client": (host, 1)})  # fmt: skip


@pytest.fixture
def admin() -> tuple[KeyRing, str]:
    ring, secret = KeyRing(), generate_secret()
    ring.add(hash_secret(secret), Principal("key_admin", "system", Role.PLATFORM_ADMIN))
    return ring, secret


def _status(ring: KeyRing, throttle: AuthThrottle, authorization: str | None) -> int:
    try:
        authenticate(_request(authorization), ring, throttle)
    except (Unauthenticated, RateLimited) as exc:
        return exc.status
    return 200


def test_a_missing_key_counts_toward_the_lockout(admin):
    ring, _ = admin
    throttle = AuthThrottle(max_failures=10)
    assert [_status(ring, throttle, None) for _ in range(11)] == [401] * 10 + [429]
    assert _status(ring, throttle, "Basic dXNlcjpwYXNz") == 429  # nor another scheme


def test_others_failures_on_the_address_do_not_lock_out_a_key_they_never_named(admin):
    ring, secret = admin
    throttle = AuthThrottle(max_failures=10)
    noise = [None, "Bearer nope", *(f"Bearer {generate_secret()}" for _ in range(8))]
    assert [_status(ring, throttle, a) for a in noise] == [401] * 10
    assert throttle.locked(HERE)
    assert _status(ring, throttle, None) == 429  # the address is locked out...
    assert _status(ring, throttle, f"Bearer {generate_secret()}") == 401  # checked: not named
    assert _status(ring, throttle, f"Bearer {secret}") == 200  # ...but the admin gets in


def test_failures_aimed_at_a_key_lock_that_key_out_even_with_its_right_secret(admin):
    ring, secret = admin
    other = generate_secret()
    ring.add(hash_secret(other), Principal("key_other", "system", Role.OPERATOR))
    throttle = AuthThrottle(max_failures=10)
    guesses = [f"Bearer {secret[:11]}{generate_secret()[11:]}" for _ in range(10)]
    assert [_status(ring, throttle, g) for g in guesses] == [401] * 10
    assert _status(ring, throttle, f"Bearer {secret}") == 429  # guessing at it stopped
    assert _status(ring, throttle, f"Bearer {other}") == 200  # another key is unaffected
    throttle.check(HERE, secret[:11], now=time.monotonic() + throttle.lockout_s)  # it ends


def test_a_failure_during_a_lockout_names_its_prefix_from_then_on(admin):
    ring, _ = admin
    throttle = AuthThrottle(max_failures=2)
    assert [_status(ring, throttle, None) for _ in range(2)] == [401, 401]
    probe = generate_secret()
    assert _status(ring, throttle, f"Bearer {probe}") == 401  # looked up once
    assert _status(ring, throttle, f"Bearer {probe}") == 429  # then refused before lookup


def test_a_lockout_ends_and_remembers_a_bounded_number_of_prefixes():
    throttle = AuthThrottle(max_failures=1, lockout_s=60.0)
    assert throttle.failed(HERE, None, now=0.0)
    for i in range(10 * MAX_NAMED):
        throttle.failed(HERE, f"tm-{i:08d}", now=1.0)
    assert len(throttle._lockouts[HERE].named) == MAX_NAMED
    with pytest.raises(RateLimited):
        throttle.check(HERE, None, now=59.0)
    throttle.check(HERE, None, now=60.0)  # over
    assert not throttle.locked(HERE, now=60.0)


@pytest.fixture
def audit(tmp_path: Path) -> tuple[AuditLog, Engine]:
    db = make_engine(sqlite_url(tmp_path))
    migrate(db)
    return AuditLog(db, b"k" * 32), db


def test_a_flood_from_one_address_is_one_record_then_one_summary(audit):
    log, _ = audit
    tally = RefusalTally(log)
    one_by_one = [tally.note(HERE, "missing_api_key", "GET /v1/models", f"req_{i}")
                  for i in range(10_000)]  # fmt: skip
    assert one_by_one == [True] + [False] * 9_999
    assert tally.flush() == 1
    [summary] = list(log.records())
    assert (summary["actor"], summary["action"], summary["outcome"], summary["origin"]) == (
        "unauthenticated", SUMMARY_ACTION, "denied", HERE)  # fmt: skip
    detail = summary["detail"]
    assert detail["code"] == "missing_api_key" and detail["count"] == 9_999
    assert detail["request_ids"] == [f"req_{i}" for i in range(1, 6)]
    assert detail["routes"] == ["GET /v1/models"] and detail["first_at"] <= detail["last_at"]
    assert tally.note(HERE, "missing_api_key", "GET /v1/models")  # a new window: first again
    assert log.verify().ok


def test_the_refusal_that_locks_an_address_out_is_recorded_one_by_one(audit):
    log, _ = audit
    tally = RefusalTally(log)
    assert tally.note(HERE, "invalid_api_key", "GET /v1/models")
    assert not tally.note(HERE, "invalid_api_key", "GET /v1/models")
    assert tally.note(HERE, "invalid_api_key", "GET /v1/models", locked=True)
    assert tally.note(HERE, "too_many_auth_failures", "GET /v1/models")  # another code
    assert tally.flush() == 1  # only the one counted
    [summary] = list(log.records())
    assert summary["detail"]["count"] == 1


def test_a_scan_from_many_addresses_folds_past_the_cap(audit):
    log, _ = audit
    tally = RefusalTally(log)
    addresses = [f"10.0.{i // 250}.{i % 250}" for i in range(4 * MAX_ORIGINS)]
    individual = sum(tally.note(a, "invalid_api_key", "GET /v1/models") for a in addresses * 3)
    assert individual == MAX_ORIGINS  # the first of each tracked address
    written = tally.flush()
    assert written == MAX_ORIGINS + 1  # a summary per tracked address, and one for the rest
    other = next(r for r in log.records() if r["origin"] == OTHER)
    assert other["detail"]["count"] == 3 * 3 * MAX_ORIGINS
    assert len(other["detail"]["addresses"]) == 5  # samples only
    total = individual + sum(r["detail"]["count"] for r in log.records())
    assert total == len(addresses) * 3  # every refusal is accounted for
