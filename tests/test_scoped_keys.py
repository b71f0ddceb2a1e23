"""Scoped keys against the real server: model allow-list, expiry, revocation, rotation,
rate and concurrency limits; and a key never shows up in logs, errors or metrics."""

import asyncio
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tokenmill.core.usage import UsageRecord
from tokenmill.metering.ledger import insert_records, tokens_used
from tokenmill.security.accounts import Accounts, KeySpec
from tokenmill.security.keys import KeyLimits, KeyRing
from tokenmill.store.db import make_engine, migrate, sqlite_url
from tokenmill.testing import ADMIN_KEY, ServerProcess

MODEL = "smollm2-135m"


def _chat(
    server: ServerProcess, key: str, model: str = MODEL, max_tokens: int = 2
) -> httpx.Response:
    body = {
        "model": model,
        "messages": [{"role": "user", "content": "Hi"}],
        "max_tokens": max_tokens,
    }
    return httpx.post(
        server.url + "/v1/chat/completions",
        json=body,
        timeout=60,
        headers={"Authorization": f"Bearer {key}"},
    )


@pytest.fixture
def tenant(server: ServerProcess, request: pytest.FixtureRequest) -> str:
    name = f"scoped-{request.node.name[5:35].replace('_', '-')}"
    server.admin("POST", "/admin/tenants", json={"name": name})
    return name


def test_a_model_outside_the_allow_list_is_refused(server, tenant):
    key = server.new_key(tenant, models=["some-other-model"])
    resp = _chat(server, key)
    assert resp.status_code == 403 and resp.json()["error"]["code"] == "model_not_allowed"
    listed = httpx.get(server.url + "/v1/models", headers={"Authorization": f"Bearer {key}"})
    assert listed.json()["data"] == []  # it does not even see the model
    assert _chat(server, server.new_key(tenant, models=[MODEL])).status_code == 200


def test_an_expired_key_is_refused(server, tenant):
    soon = datetime.now(UTC) + timedelta(seconds=2)
    key = server.new_key(tenant, expires_at=soon.isoformat())
    assert _chat(server, key).status_code == 200
    time.sleep(max(0.0, (soon - datetime.now(UTC)).total_seconds()) + 0.1)
    assert _chat(server, key).status_code == 401


def test_revocation_takes_effect_on_the_next_request(server, tenant):
    key = server.new_key(tenant)
    assert _chat(server, key).status_code == 200
    (row,) = server.admin("GET", "/admin/keys", params={"tenant": tenant})["data"]
    server.admin("DELETE", f"/admin/keys/{row['id']}")
    assert _chat(server, key).status_code == 401


def test_rotation_keeps_the_rights_and_retires_the_old_secret(server, tenant):
    old = server.new_key(tenant, models=[MODEL], rpm=1000)
    (row,) = server.admin("GET", "/admin/keys", params={"tenant": tenant})["data"]
    graced = server.admin("POST", f"/admin/keys/{row['id']}/rotate", json={"grace_s": 60})
    assert graced["rotated_from"]["expires_at"] is not None
    assert _chat(server, old).status_code == 200  # within its grace
    assert _chat(server, graced["key"]).status_code == 200
    now = server.admin("POST", f"/admin/keys/{graced['id']}/rotate", json={})
    assert _chat(server, graced["key"]).status_code == 401  # no grace: gone at once
    assert _chat(server, now["key"]).status_code == 200
    rows = {
        k["id"]: k for k in server.admin("GET", "/admin/keys", params={"tenant": tenant})["data"]
    }
    assert rows[now["id"]]["models"] == [MODEL] and rows[now["id"]]["rpm"] == 1000
    assert rows[now["id"]]["rotated_from"] == graced["id"]


def test_requests_per_minute_are_limited(server, tenant):
    key = server.new_key(tenant, rpm=2)
    codes = [_chat(server, key).status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    refused = _chat(server, key)
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"
    assert int(refused.headers["retry-after"]) >= 1


def test_tokens_per_minute_are_limited(server, tenant):
    key = server.new_key(tenant, tpm=60)
    first = _chat(server, key, max_tokens=40)  # spends most of the minute's tokens
    assert first.status_code == 200
    spent = first.json()["usage"]["total_tokens"]
    statuses = [_chat(server, key, max_tokens=40).status_code for _ in range(3)]
    assert spent > 30 and 429 in statuses


async def test_concurrency_is_limited(server, tenant):
    key = server.new_key(tenant, concurrency=1)
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Tell a long story."}],
        "max_tokens": 64,
    }
    async with httpx.AsyncClient(
        base_url=server.url, timeout=60, headers={"Authorization": f"Bearer {key}"}
    ) as http:
        results = await asyncio.gather(
            *(http.post("/v1/chat/completions", json=body) for _ in range(3))
        )
    codes = sorted(r.status_code for r in results)
    assert codes[0] == 200 and 429 in codes
    assert all(
        r.json()["error"]["code"] == "concurrency_limit_exceeded"
        for r in results
        if r.status_code == 429
    )


def test_a_management_key_cannot_infer_and_an_inference_key_cannot_manage(server, tenant):
    ta_infer_only = server.new_key(tenant, "tenant-admin", scopes=["inference"])
    keys = httpx.get(
        server.url + "/admin/keys", headers={"Authorization": f"Bearer {ta_infer_only}"}
    )
    assert keys.status_code == 403 and keys.json()["error"]["code"] == "scope_denied"
    assert _chat(server, ta_infer_only).status_code == 200
    assert _chat(server, ADMIN_KEY).status_code == 403


def test_keys_never_appear_in_logs_errors_or_metrics(server, tenant):
    key = server.new_key(tenant, rpm=1)
    _chat(server, key)
    refused = _chat(server, key)  # a rate-limit error
    wrong = key[:-4] + "xxxx"
    bad = _chat(server, wrong)  # an authentication error
    metrics = httpx.get(server.url + "/metrics", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    for text in (
        refused.text,
        bad.text,
        metrics.text,
        server.output(),
        str(server.audit_records()),
    ):
        assert key not in text and wrong not in text and key[11:] not in text


def test_a_rotated_key_spends_the_same_budget(tmp_path):
    engine = make_engine(sqlite_url(tmp_path))
    migrate(engine)
    accounts = Accounts(engine, KeyRing())
    accounts.create_tenant("acme")
    first = accounts.create_key("acme", "ci", KeySpec(limits=KeyLimits(budget_tokens=1000)))
    second, _ = accounts.rotate_key(first.id)
    third, _ = accounts.rotate_key(second.id)
    principal = accounts.keyring.lookup(third.secret)
    assert principal is not None and principal.budget_holder == f"key:{first.id}"
    records = [_usage(f"r{i}", key.id, 100) for i, key in enumerate((first, second, third))]
    insert_records(engine, [*records, _usage("other", "key_else", 999)])
    assert tokens_used(engine, principal.budget_holder, None) == 300


def _usage(request_id: str, key_id: str, tokens: int) -> UsageRecord:
    return UsageRecord(request_id, time.time(), "acme", key_id, MODEL, MODEL, "r0", "chat", False,
                       tokens, 0, 0, None, 1.0, 200, "ok", "stop", "engine")  # fmt: skip
