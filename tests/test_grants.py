"""A key cannot grant more than its holder has: a tenant-admin with a budget, rate limits and
an expiry mints keys (and agents) within them, never without them (real server)."""

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tokenmill.testing import ServerProcess


def _as(server: ServerProcess, key: str, path: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(
        server.url + path, json=body, headers={"Authorization": f"Bearer {key}"}, timeout=30
    )


def _key_view(server: ServerProcess, key_id: str) -> dict[str, Any]:
    [view] = [k for k in server.admin("GET", "/admin/keys")["data"] if k["id"] == key_id]
    return view


def test_a_tenant_admin_grants_only_within_its_own_limits(server: ServerProcess):
    server.admin("POST", "/admin/tenants", json={"name": "grants-co"})
    ends = datetime.now(UTC) + timedelta(days=1)
    holder = server.new_key(
        "grants-co", role="tenant-admin", budget_tokens=100, rpm=2, concurrency=1,
        expires_at=ends.isoformat(),
    )  # fmt: skip
    made = _as(server, holder, "/admin/keys", {"tenant": "grants-co", "role": "tenant-admin"})
    assert made.status_code == 201, made.text
    view = _key_view(server, made.json()["id"])
    assert (view["budget_tokens"], view["rpm"], view["concurrency"]) == (100, 2, 1)
    shown = datetime.fromisoformat(view["expires_at"])
    shown = shown if shown.tzinfo else shown.replace(tzinfo=UTC)  # stored as UTC
    assert abs(shown - ends) < timedelta(seconds=1)  # the holder's own expiry
    assert view["tpm"] is None  # what the holder itself has no limit on stays open

    smaller = _as(server, holder, "/admin/keys",
                  {"tenant": "grants-co", "rpm": 1, "budget_tokens": 50})  # fmt: skip
    assert smaller.status_code == 201, smaller.text
    for beyond, param in (
        ({"rpm": 10}, "rpm"),
        ({"budget_tokens": 101}, "budget_tokens"),
        ({"budget_tokens": 50, "budget_period": "day"}, "budget_period"),
        ({"expires_at": (ends + timedelta(days=1)).isoformat()}, "expires_at"),
    ):
        refused = _as(server, holder, "/admin/keys", {"tenant": "grants-co", **beyond})
        assert refused.status_code == 403, (beyond, refused.text)
        assert refused.json()["error"]["param"] == param
        assert "beyond this key's own" in refused.json()["error"]["message"]


def test_an_agent_registered_by_a_limited_key_is_limited_too(server: ServerProcess):
    server.admin("POST", "/admin/tenants", json={"name": "grants-agents"})
    holder = server.new_key("grants-agents", role="tenant-admin", budget_tokens=300, rpm=5)
    body = {
        "tenant": "grants-agents",
        "name": "bot",
        "owner": "alice",
        "profile": "restricted",
        "rpm": 5,
        "budget_tokens": 200,
        "budget_period": "total",
    }
    made = _as(server, holder, "/admin/agents", body)
    assert made.status_code == 201, made.text
    view = _key_view(server, made.json()["key"]["id"])
    assert (view["rpm"], view["budget_tokens"]) == (5, 200)
    greedy = _as(server, holder, "/admin/agents", {**body, "name": "bot2", "rpm": 50})
    assert greedy.status_code == 403
    assert greedy.json()["error"]["param"] == "rpm"


def test_a_tenant_admin_grants_only_within_its_own_allow_lists_and_scopes(
    server: ServerProcess,
):
    server.admin("POST", "/admin/tenants", json={"name": "grants-lists"})
    holder = server.new_key("grants-lists", role="tenant-admin", models=["smollm2-135m"],
                            tools=["get_weather", "search"])  # fmt: skip
    made = _as(server, holder, "/admin/keys", {"tenant": "grants-lists"})
    assert made.status_code == 201, made.text
    view = _key_view(server, made.json()["id"])
    assert (view["models"], sorted(view["tools"])) == (["smollm2-135m"], ["get_weather", "search"])
    fewer = _as(server, holder, "/admin/keys", {"tenant": "grants-lists", "tools": ["search"]})
    assert fewer.status_code == 201, fewer.text
    for beyond, param in (
        ({"models": ["smollm2-135m", "gpt-4o"]}, "models"),
        ({"tools": ["search", "shell"]}, "tools"),
    ):
        refused = _as(server, holder, "/admin/keys", {"tenant": "grants-lists", **beyond})
        assert refused.status_code == 403, (beyond, refused.text)
        assert refused.json()["error"]["param"] == param, refused.text

    manager = server.new_key("grants-lists", role="tenant-admin", scopes=["management"])
    refused = _as(server, manager, "/admin/keys", {"tenant": "grants-lists"})  # inference
    assert refused.status_code == 403 and refused.json()["error"]["param"] == "scopes"
    own = {"tenant": "grants-lists", "role": "tenant-admin", "scopes": ["management"]}
    allowed = _as(server, manager, "/admin/keys", own)
    assert allowed.status_code == 201, allowed.text
