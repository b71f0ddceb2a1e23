"""Property-based tests of the served API against its own OpenAPI schema (Schemathesis).

The target is a real server (`tokenmill up` in a subprocess), not the FastAPI app in-process:
the inference routes are answered outside FastAPI (the hot path) and the services live in the
app's lifespan, so only the served app gives honest answers. It runs without a model: /v1
requests for a model that does not exist answer 404 after authentication and validation, which
is the part under test here. Every response must be no 5xx, with a documented status and
content type, and a body that matches the documented schema.
"""

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from tokenmill.app import create_app
from tokenmill.config import Settings
from tokenmill.testing import ADMIN_KEY, ServerProcess

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# The schema is needed at collection (one test per operation), before any server runs; it is
# the same app's, and the first test checks that the server serves exactly this.
# (schemathesis.pytest.from_fixture would fetch it from the server, but breaks on pytest 9.2.)
OPENAPI = create_app(Settings(deploy_default_model=False)).openapi()


schema = schemathesis.openapi.from_dict(OPENAPI)


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    srv = ServerProcess(tmp_path_factory.mktemp("schema-server"))
    srv.start(timeout=60, default_model=False)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def inference_key(api: ServerProcess) -> str:
    return api.new_tenant_key("schemathesis")


def test_the_server_serves_this_schema(api):
    assert httpx.get(api.url + "/openapi.json").json() == OPENAPI


@schema.parametrize()
@settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_served_api_keeps_to_its_schema(case, api, inference_key):
    # A tenant's key for the OpenAI surface, the admin key for the rest (admin, metrics).
    key = inference_key if case.path.startswith("/v1/") else ADMIN_KEY
    case.call_and_validate(
        base_url=api.url,
        headers={"Authorization": f"Bearer {key}"},
        checks=CHECKS,
    )


def test_every_reference_in_the_schema_resolves():
    defined = {f"#/components/schemas/{name}" for name in OPENAPI["components"]["schemas"]}
    assert sorted(set(_refs(OPENAPI)) - defined) == []


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def test_metrics_is_documented_as_text():
    content = OPENAPI["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert list(content) == ["text/plain"]


def test_an_audit_cursor_beyond_64_bits_is_refused_not_a_crash(api):
    resp = httpx.get(
        api.url + "/admin/audit",
        params={"after": 2**63},
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
    )
    assert resp.status_code == 400, resp.text
