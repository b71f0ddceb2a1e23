"""The console's page and files as served, and the API calls only it makes (the planner)."""

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tokenmill.app import create_asgi
from tokenmill.config import Settings
from tokenmill.console.routes import CONSOLE_CSP, STATIC
from tokenmill.security.accounts import Accounts, KeySpec
from tokenmill.security.keys import KeyRing
from tokenmill.security.roles import Role
from tokenmill.store.db import make_engine, migrate, sqlite_url

ADMIN_KEY = "tm-console-page-admin-0123456789abcdef"


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    engine = make_engine(sqlite_url(tmp_path))
    migrate(engine)
    accounts = Accounts(engine, KeyRing())
    accounts.create_tenant("system")
    accounts.create_key("system", "admin", KeySpec(Role.PLATFORM_ADMIN), secret=ADMIN_KEY)
    engine.dispose()
    served, _ = create_asgi(Settings(data_dir=tmp_path, deploy_default_model=False))
    with TestClient(served, base_url="https://testserver") as c:
        yield c


def test_every_console_path_serves_the_one_page_under_a_strict_policy(client: TestClient):
    for path in ("/console/", "/console/usage", "/console/billing/invoices"):
        page = client.get(path)
        assert page.status_code == 200 and "<title>" in page.text
        assert page.headers["content-security-policy"] == CONSOLE_CSP
        assert "'unsafe-inline'" not in CONSOLE_CSP
    assert client.get("/console", follow_redirects=False).status_code == 308


def test_the_page_has_no_inline_code_and_every_file_it_names_is_served(client: TestClient):
    page = (STATIC / "index.html").read_text()
    assert "<script>" not in page and "style=" not in page  # the CSP would refuse them
    for name in ("app.js", "console.css", "vendor/uPlot.iife.min.js", "logo.svg"):
        assert client.get(f"/console/static/{name}").status_code == 200, name
    for escape in ("/console/static/../routes.py", "/console/static/%2e%2e/routes.py"):
        answer = client.get(escape)  # the page (the client folds ".."), or 404: never the file
        assert "STATIC = Path" not in answer.text and answer.status_code in (200, 404)


def test_every_console_module_parses():
    """A syntax error in one module blanks the whole console; Node's parser finds it here,
    before a browser does (Node only checks: nothing of the console needs it to run)."""
    node = shutil.which("node")
    assert node, "Node.js checks the console's scripts; machines of this kind have it (npm)"
    modules = [p for p in STATIC.rglob("*.js") if "vendor" not in p.parts]
    assert len(modules) > 20
    for module in modules:
        checked = subprocess.run(
            [node, "--check", "--input-type=module"],
            input=module.read_bytes(),
            capture_output=True,
            timeout=30,
        )
        assert checked.returncode == 0, f"{module.name}: {checked.stderr.decode()[:500]}"


def test_before_signing_in_the_session_call_says_so(client: TestClient):
    assert client.get("/console/api/session").json() == {"signed_in": False}


def test_the_planner_ranks_the_catalog_for_a_workload(client: TestClient):
    auth = {"Authorization": f"Bearer {ADMIN_KEY}"}
    plan = client.get("/admin/plan", params={"model": "llama-3.1-8b", "rate": 2}, headers=auth)
    assert plan.status_code == 200, plan.text
    assert plan.json()["options"], "some accelerator serves 2 requests/s of an 8B model"
    unknown = client.get("/admin/plan", params={"model": "nope", "rate": 2}, headers=auth)
    assert unknown.status_code == 400
    both = client.get(
        "/admin/plan",
        params={"model": "llama-3.1-8b", "rate": 2, "tokens_per_day": 1e6},
        headers=auth,
    )
    assert both.status_code == 400
