"""The web console in real headless Chromium against a real server running the real engine:
sign in, every page with live data (a screenshot of each under test-artifacts/console/), a
deployment scaled from the UI, a key created and revoked, a CSV export equal to the API's,
totals equal to the ledger and /metrics, and a tenant user who sees only its own tenant."""

import csv
import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect
from prometheus_client.parser import text_string_to_metric_families

from tests.console_browser import PageErrors, shoot
from tokenmill.testing import ADMIN_KEY, ServerProcess

PASSWORD = "a long console passphrase"
PAGES = ("overview", "models", "fleet", "tenants", "usage", "billing", "economics", "audit")


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server of its own, so the ledger and /metrics cover the same window: its life."""
    srv = ServerProcess(tmp_path_factory.mktemp("console")).start()
    for tenant in ("acme", "globex"):
        srv.admin("POST", "/admin/tenants", json={"name": tenant})
    users = (("ada", "system", "platform-admin"), ("tess", "acme", "tenant-admin"))
    for name, tenant, role in users:
        body = {"name": name, "tenant": tenant, "role": role, "password": PASSWORD}
        srv.admin("POST", "/admin/users", json=body)
    model = srv.admin("GET", "/admin/deployments")["data"][0]["name"]
    for tenant, count in (("acme", 5), ("globex", 3)):
        key = srv.new_key(tenant)
        for i in range(count):
            body = {
                "model": model,
                "messages": [{"role": "user", "content": f"Say hello to {tenant} #{i}"}],
                "max_tokens": 12,
                "stream": i % 2 == 1,
            }
            answer = httpx.post(
                srv.url + "/v1/chat/completions",
                json=body,
                headers={"Authorization": f"Bearer {key}"},
                timeout=120,
            )
            assert answer.status_code == 200, answer.text
    yield srv
    srv.stop()


def _sign_in(page: Page, live: ServerProcess, name: str) -> None:
    page.goto(live.url + "/console/")
    page.get_by_test_id("login-username").fill(name)
    page.get_by_test_id("login-password").fill(PASSWORD)
    page.get_by_test_id("login-submit").click()
    expect(page.get_by_test_id("nav-overview")).to_be_visible()


def _settled(page: Page) -> None:
    """The page has drawn its data: nothing loading, no error box."""
    page.wait_for_load_state("networkidle")
    expect(page.get_by_test_id("loading")).to_have_count(0)
    expect(page.get_by_test_id("error")).to_have_count(0)


def _ledger_total(live: ServerProcess, **params: Any) -> dict[str, Any]:
    usage = live.admin("GET", "/admin/usage", params={"group_by": "tenant", **params})
    return dict(usage["total"])


def _metric_sum(live: ServerProcess, name: str, **labels: str) -> int:
    total = 0.0
    for family in text_string_to_metric_families(live.metrics()):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return int(total)


def test_every_page_renders_live_data_and_the_totals_match(
    live: ServerProcess, page: Page, page_errors: PageErrors
):
    page.goto(live.url + "/console/")
    expect(page.get_by_test_id("login-submit")).to_be_visible()
    shoot(page, "login")
    _sign_in(page, live, "ada")
    for name in PAGES:
        page.get_by_test_id(f"nav-{name}").click()
        _settled(page)
        shoot(page, name)
    page_errors.assert_none()

    total = _ledger_total(live)
    tokens = total["prompt_tokens"] + total["completion_tokens"]
    assert total["requests"] == 8
    assert _metric_sum(live, "tokenmill_requests_total") == total["requests"]
    metered = _metric_sum(live, "tokenmill_prompt_tokens_total") + _metric_sum(
        live, "tokenmill_completion_tokens_total"
    )
    assert metered == tokens
    page.get_by_test_id("nav-overview").click()
    _settled(page)
    expect(page.get_by_test_id("kpi-requests")).to_have_attribute(
        "data-value", str(total["requests"])
    )
    expect(page.get_by_test_id("kpi-tokens")).to_have_attribute("data-value", str(tokens))
    page.get_by_test_id("nav-usage").click()
    _settled(page)
    for column in ("requests", "prompt_tokens", "completion_tokens"):
        cell = page.get_by_test_id(f"usage-total-{column}").locator("[data-value]")
        expect(cell).to_have_attribute("data-value", str(total[column]))
    audit = page.get_by_test_id("nav-audit")
    audit.click()
    _settled(page)
    expect(page.get_by_test_id("audit-chain-status")).to_have_attribute("data-ok", "true")


def test_a_deployment_is_scaled_from_the_ui(live: ServerProcess, page: Page):
    _sign_in(page, live, "ada")
    name = live.admin("GET", "/admin/deployments")["data"][0]["name"]
    page.get_by_test_id("nav-models").click()
    _settled(page)
    page.get_by_test_id(f"replicas-{name}").fill("2")
    page.get_by_test_id(f"scale-{name}").click()
    _until(lambda: _ready_replicas(live, name) == 2, "the second replica ready")
    shoot(page, "models-scaled")
    page.get_by_test_id(f"replicas-{name}").fill("1")
    page.get_by_test_id(f"scale-{name}").click()
    _until(lambda: _ready_replicas(live, name) == 1, "back to one replica")


def _ready_replicas(live: ServerProcess, name: str) -> int:
    deployment = next(
        d for d in live.admin("GET", "/admin/deployments")["data"] if d["name"] == name
    )
    return (
        int(deployment["ready_replicas"])
        if deployment["replicas"] == deployment["ready_replicas"]
        else -1
    )


def _until(condition: Any, what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def test_a_key_is_created_and_revoked_from_the_ui(live: ServerProcess, page: Page):
    _sign_in(page, live, "ada")
    page.get_by_test_id("nav-tenants").click()
    page.get_by_test_id("tab-keys").click()
    _settled(page)
    page.get_by_test_id("key-create").click()
    page.get_by_test_id("field-tenant").select_option("acme")
    page.get_by_test_id("field-name").fill("from-the-console")
    page.get_by_test_id("key-create-submit").click()
    secret = page.get_by_test_id("new-key-secret").inner_text().strip()
    shoot(page, "key-created")
    models = httpx.get(live.url + "/v1/models", headers={"Authorization": f"Bearer {secret}"})
    assert models.status_code == 200
    key_id = next(
        k["id"]
        for k in live.admin("GET", "/admin/keys", params={"tenant": "acme"})["data"]
        if k["name"] == "from-the-console"
    )
    page.keyboard.press("Escape")
    page.get_by_test_id("nav-tenants").click()
    page.get_by_test_id("tab-keys").click()
    _settled(page)
    page.get_by_test_id(f"key-revoke-{key_id}").click()
    page.get_by_test_id("confirm-ok").click()
    _until(
        lambda: (
            httpx.get(
                live.url + "/v1/models", headers={"Authorization": f"Bearer {secret}"}
            ).status_code
            == 401
        ),
        "the revoked key refused",
        timeout=10,
    )


def test_the_csv_export_equals_the_api(live: ServerProcess, page: Page, tmp_path: Path):
    _sign_in(page, live, "ada")
    page.get_by_test_id("nav-usage").click()
    _settled(page)
    link = page.get_by_test_id("usage-csv")
    with page.expect_download() as download:
        link.click()
    saved = tmp_path / "usage.csv"
    download.value.save_as(saved)
    href = link.get_attribute("href")
    assert href is not None
    api = httpx.get(live.url + href, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=30)
    assert api.status_code == 200
    rows = list(csv.DictReader(io.StringIO(saved.read_text())))
    assert rows == list(csv.DictReader(io.StringIO(api.text)))
    assert len(rows) == _ledger_total(live)["requests"]


def test_a_tenant_user_sees_only_its_tenant(
    live: ServerProcess, page: Page, page_errors: PageErrors
):
    _sign_in(page, live, "tess")
    expect(page.get_by_test_id("nav-audit")).to_have_count(0)
    expect(page.get_by_test_id("nav-fleet")).to_have_count(0)
    page.get_by_test_id("nav-usage").click()
    _settled(page)
    shoot(page, "usage-tenant-admin")
    acme = _tenant_total(live, "acme")
    expect(page.get_by_test_id("usage-total-requests").locator("[data-value]")).to_have_attribute(
        "data-value", str(acme["requests"])
    )
    page_errors.assert_none()  # before the refusals below, which the browser logs
    # The API behind the page, called from the page with its cookie: the same reach.
    seen = page.evaluate(
        """async () => {
            const usage = await fetch('/admin/usage?group_by=tenant').then(r => r.json());
            const other = await fetch('/admin/keys?tenant=globex');
            return {tenants: usage.data.map(r => r.tenant), other: other.status};
        }"""
    )
    assert set(seen["tenants"]) == {"acme"} and seen["other"] == 403
    forged = page.evaluate(
        """async () => (await fetch('/admin/keys', {method: 'POST',
            headers: {'Content-Type': 'application/json'},
            body: JSON.stringify({tenant: 'acme', name: 'no-csrf'})})).status"""
    )
    assert forged == 403  # a write without the session's CSRF token


def _tenant_total(live: ServerProcess, tenant: str) -> dict[str, Any]:
    rows = live.admin("GET", "/admin/usage", params={"group_by": "tenant"})["data"]
    return next(r for r in rows if r["tenant"] == tenant)
