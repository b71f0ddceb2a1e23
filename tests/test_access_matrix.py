"""Every route x every role: who may call what. The expected matrix is written out here, by
hand; a route missing from it (a new one nobody thought about) fails the test."""

import httpx
import pytest

from tokenmill.api.auth import declared_permission
from tokenmill.app import create_app
from tokenmill.config import Settings
from tokenmill.testing import ServerProcess

PA, OP, AU, TA, ME, AG = "platform-admin", "operator", "auditor", "tenant-admin", "member", "agent"
EVERYONE = {PA, OP, AU, TA, ME, AG}
PUBLIC = {
    ("GET", "/health"),
    ("GET", "/openapi.json"),
    ("GET", "/docs"),
    ("GET", "/redoc"),
    ("GET", "/docs/oauth2-redirect"),
    # The console: its page, and signing in and out (the data behind it is the API below).
    ("GET", "/console"),
    ("GET", "/console/{page:path}"),
    ("POST", "/console/api/login"),
    ("GET", "/console/api/session"),
    ("POST", "/console/api/logout"),
}

EXPECTED: dict[tuple[str, str], set[str]] = {
    ("POST", "/v1/chat/completions"): {TA, ME, AG},
    ("POST", "/v1/completions"): {TA, ME, AG},
    ("POST", "/v1/embeddings"): {TA, ME, AG},
    ("POST", "/v1/responses"): {TA, ME, AG},
    ("GET", "/v1/responses/{response_id}"): {TA, ME, AG},
    ("DELETE", "/v1/responses/{response_id}"): {TA, ME, AG},
    ("GET", "/v1/models"): {TA, ME, AG},
    ("GET", "/v1/models/{model}"): {TA, ME, AG},
    ("GET", "/metrics"): {PA, OP, AU},
    ("POST", "/admin/tenants"): {PA},
    ("GET", "/admin/tenants"): {PA, OP},
    ("PATCH", "/admin/tenants/{name}"): {PA},
    ("POST", "/admin/keys"): {PA, TA},
    ("GET", "/admin/keys"): {PA, TA},
    ("DELETE", "/admin/keys/{key_id}"): {PA, TA},
    ("POST", "/admin/users"): {PA, TA},
    ("GET", "/admin/users"): {PA, AU, TA},
    ("DELETE", "/admin/users/{user_id}"): {PA, TA},
    ("POST", "/admin/users/{user_id}/password"): {PA, TA},
    ("POST", "/admin/keys/{key_id}/rotate"): {PA, TA},
    ("POST", "/admin/agents"): {PA, TA},
    ("GET", "/admin/agents"): {PA, TA},
    ("DELETE", "/admin/agents/{agent_id}"): {PA, TA},
    ("POST", "/admin/deployments"): {PA, OP},
    ("GET", "/admin/deployments"): {PA, OP},
    ("GET", "/admin/replicas"): {PA, OP},
    ("GET", "/admin/fleet"): {PA, OP},
    ("POST", "/admin/nodes/{node}/drain"): {PA, OP},
    ("DELETE", "/admin/nodes/{node}/drain"): {PA, OP},
    ("GET", "/admin/nodes/{node}"): {PA, OP},
    ("POST", "/admin/deployments/{name}/rollout"): {PA, OP},
    ("PATCH", "/admin/deployments/{name}"): {PA, OP},
    ("DELETE", "/admin/deployments/{name}"): {PA, OP},
    ("GET", "/admin/audit"): {PA, AU},
    ("GET", "/admin/audit/verify"): {PA, AU},
    ("GET", "/admin/usage"): {PA, OP, AU, TA},
    ("GET", "/admin/usage/series"): {PA, OP, AU, TA},
    ("GET", "/admin/usage/records"): {PA, OP, AU, TA},
    ("GET", "/admin/doctor"): {PA, OP, AU},
    ("GET", "/admin/prices"): {PA, OP, AU, TA},
    ("POST", "/admin/prices"): {PA},
    ("POST", "/admin/invoices/close"): {PA},
    ("GET", "/admin/invoices"): {PA, AU, TA},
    ("GET", "/admin/invoices/{invoice_id}"): {PA, AU, TA},
    ("GET", "/admin/kpis"): {PA, OP, AU},
    ("GET", "/admin/economics"): {PA, OP, AU},
    ("GET", "/admin/plan"): {PA, OP, AU},
    ("POST", "/admin/budgets"): {PA},
    ("GET", "/admin/budgets"): {PA, OP, AU},
    ("DELETE", "/admin/budgets/{budget_id}"): {PA},
    ("POST", "/admin/credits"): {PA},
    ("GET", "/admin/reconcile"): {PA, OP, AU},
    ("POST", "/admin/discounts"): {PA},
    ("GET", "/admin/discounts"): {PA, OP, AU, TA},
}


def _api_routes() -> list:
    """Every route object, included routers' routes too."""
    app = create_app(Settings(deploy_default_model=False))
    routes = []
    for r in app.routes:
        inner = getattr(r, "original_router", None)  # FastAPI keeps included routers whole
        routes += inner.routes if inner is not None else [r]
    return routes


def test_every_route_is_in_the_matrix_and_every_admin_route_declares_a_policy():
    routes = _api_routes()
    undeclared = [
        r.path
        for r in routes
        if r.path.startswith("/admin") and declared_permission(r.endpoint) is None
    ]
    assert undeclared == []
    mounts = {r.path for r in routes if not hasattr(r, "methods")}
    assert mounts == {"/console/static"}  # the console's files, nothing else unrouted
    served = {
        (m, r.path) for r in routes if hasattr(r, "methods") for m in r.methods if m != "HEAD"
    }
    assert served - PUBLIC == set(EXPECTED)


@pytest.fixture(scope="module")
def keys(server: ServerProcess) -> dict[str, str]:
    tenant = "matrix"
    server.admin("POST", "/admin/tenants", json={"name": tenant})
    made = {role: server.new_key("system", role) for role in (PA, OP, AU)}
    made |= {role: server.new_key(tenant, role) for role in (TA, ME)}
    agent = server.admin(
        "POST", "/admin/agents", json={"tenant": tenant, "name": "bot", "owner": "alice"}
    )
    made[AG] = agent["key"]["key"]
    return made


def _call(server: ServerProcess, method: str, path: str, key: str | None) -> httpx.Response:
    url = server.url + path.replace("{", "").replace("}", "-missing")
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    body = {} if method in ("POST", "PATCH") else None
    return httpx.request(method, url, headers=headers, json=body, timeout=30)


@pytest.mark.parametrize("route", sorted(EXPECTED), ids=lambda r: f"{r[0]} {r[1]}")
def test_route_allows_exactly_its_roles(server: ServerProcess, keys: dict[str, str], route):
    method, path = route
    seen = {}
    for role, key in keys.items():
        seen[role] = _call(server, method, path, key).status_code
    denied = {role for role, status in seen.items() if status == 403}
    assert denied == EVERYONE - EXPECTED[route], seen
    assert all(status != 401 for status in seen.values()), seen
    assert _call(server, method, path, None).status_code == 401


def test_a_tenant_admin_reaches_only_its_own_tenant(server: ServerProcess, keys: dict[str, str]):
    other = server.new_tenant_key("matrix-other")  # noqa: F841 - gives the tenant a key
    ta = {"Authorization": f"Bearer {keys[TA]}"}
    other_key = next(
        k for k in server.admin("GET", "/admin/keys", params={"tenant": "matrix-other"})["data"]
    )
    create = httpx.post(
        server.url + "/admin/keys", headers=ta, json={"tenant": "matrix-other"}, timeout=30
    )
    assert create.status_code == 403 and create.json()["error"]["code"] == "tenant_denied"
    escalate = httpx.post(
        server.url + "/admin/keys",
        headers=ta,
        json={"tenant": "system", "role": "platform-admin"},
        timeout=30,
    )
    assert escalate.status_code == 403
    revoke = httpx.delete(f"{server.url}/admin/keys/{other_key['id']}", headers=ta, timeout=30)
    assert revoke.status_code == 404  # another tenant's key does not exist, for this caller
    listed = httpx.get(server.url + "/admin/keys", headers=ta, timeout=30).json()["data"]
    assert {k["tenant"] for k in listed} == {"matrix"}
    usage = httpx.get(
        server.url + "/admin/usage", headers=ta, params={"group_by": "tenant"}, timeout=30
    ).json()["data"]
    assert {row["tenant"] for row in usage} <= {"matrix"}


def test_a_tenant_admin_grants_no_more_than_its_own_allow_lists(server: ServerProcess):
    server.admin("POST", "/admin/tenants", json={"name": "matrix-narrow"})
    narrow = {"Authorization": f"Bearer {server.new_key('matrix-narrow', TA, models=['m1'])}"}
    beyond = httpx.post(
        server.url + "/admin/keys",
        headers=narrow,
        timeout=30,
        json={"tenant": "matrix-narrow", "models": ["m1", "m2"]},
    )
    assert beyond.status_code == 403 and "m2" in beyond.json()["error"]["message"]
    inherited = httpx.post(
        server.url + "/admin/keys", headers=narrow, timeout=30, json={"tenant": "matrix-narrow"}
    )
    assert inherited.status_code == 201
    rows = server.admin("GET", "/admin/keys", params={"tenant": "matrix-narrow"})["data"]
    assert next(k for k in rows if k["id"] == inherited.json()["id"])["models"] == ["m1"]
    agent = httpx.post(
        server.url + "/admin/agents",
        headers=narrow,
        timeout=30,
        json={"tenant": "matrix-narrow", "name": "b", "owner": "o", "models": ["m9"]},
    )
    assert agent.status_code == 403
