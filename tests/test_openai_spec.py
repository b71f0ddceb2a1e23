"""Schemathesis against OpenAI's own published OpenAPI document (tests/data/openai/, with its
source and date), for the operations TokenMill serves, sent to a real server and engine.

Requests OpenAI's document calls valid must each be served (2xx) or refused as TokenMill
documents: a 4xx in OpenAI's error shape whose status and code docs/*.md name. The accepted
refusals are read from the docs themselves, not from what the server answers: where the docs
give codes for a status (`400 invalid_value`, `| 429 | `budget_exceeded` |`), the code must be
one of them; where they give a bare status (`413`), the status suffices. Requests the document
calls invalid must get no 5xx either, and any 4xx in OpenAI's error shape.

Generated bodies are OpenAI's, with two changes that keep them valid and the run short: `model`
is a deployment this server serves (any other name is a 404), and the tokens to generate are
capped. Everything else (n, best_of, tools, content parts, ...) is sent as generated: the
documented refusals are valid outcomes. The operations are those of OpenAI's document that the
app routes (its own OpenAPI paths): one that TokenMill starts serving is tested from then on.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig

from tokenmill.app import create_app
from tokenmill.bootstrap import DEFAULT_MODEL, default_model_path
from tokenmill.config import Settings

if TYPE_CHECKING:  # the module itself starts no server: its document tests are the fast tier
    from tokenmill.testing import ServerProcess

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data" / "openai"
SPEC: dict[str, Any] = json.loads((DATA / "openapi.json").read_text())
EMBEDDER = "spec-embed"  # a deployment started for embeddings (the default one is not)
CAP = {"max_tokens": 8, "max_completion_tokens": 8, "max_output_tokens": 16}  # OpenAI's min: 16
CAPPED_BY = {  # the field that bounds generation, set when the request sets none
    "/chat/completions": "max_completion_tokens",
    "/completions": "max_tokens",
    "/responses": "max_output_tokens",
}
VALID_EXAMPLES, INVALID_EXAMPLES = 30, 15  # per operation

# What this server serves: the app's own OpenAPI paths (its routes), at collection.
OURS: dict[str, Any] = create_app(Settings(deploy_default_model=False)).openapi()["paths"]


def _served(ctx: Any) -> bool:
    op = ctx.operation
    return op.method.lower() in OURS.get("/v1" + op.path, {})


def _schema(mode: str) -> Any:
    config = SchemathesisConfig.from_dict(
        {"generation": {"mode": mode}, "phases": {"coverage": {"enabled": False}}}
    )
    return schemathesis.openapi.from_dict(SPEC, config=config).include(_served)


VALID, INVALID = _schema("positive"), _schema("negative")
RUN = settings(
    deadline=None,
    suppress_health_check=list(HealthCheck),
    phases=[Phase.explicit, Phase.generate],  # no shrinking: a failure is shown as found
    database=None,
)


# The refusals the docs name ---------------------------------------------------------------

_CODE = r"([a-z][a-z0-9]*(?:_[a-z0-9]+)*)"
_PAIR_IN_TICKS = re.compile(rf"`([45]\d\d)\s+{_CODE}`")  # `400 invalid_value`, even wrapped
_PAIR_STATUS_THEN_CODE = re.compile(rf"\b([45]\d\d)\s+`{_CODE}`")  # 409 `period_open`
_TABLE_ROW = re.compile(r"^\|\s*([45]\d\d)\s*\|([^|]*)\|", re.M)  # | 429 | `a` / `b` |
_BARE = re.compile(r"`([45]\d\d)`")  # `413`


def documented_refusals(docs: Path = ROOT / "docs") -> tuple[set[tuple[int, str]], set[int]]:
    """(status, code) pairs, and bare statuses (given no code anywhere), named in docs/*.md."""
    pairs: set[tuple[int, str]] = set()
    bare: set[int] = set()
    for page in sorted(docs.glob("*.md")):
        text = page.read_text()
        for pattern in (_PAIR_IN_TICKS, _PAIR_STATUS_THEN_CODE):
            pairs |= {(int(s), c) for s, c in pattern.findall(text)}
        for status, cell in _TABLE_ROW.findall(text):
            pairs |= {(int(status), c) for c in re.findall(rf"`{_CODE}`", cell)}
        bare |= {int(s) for s in _BARE.findall(text)}
    return pairs, bare - {status for status, _ in pairs}


DOCUMENTED, BARE_STATUSES = documented_refusals()
OUTCOMES: dict[str, Counter[str]] = defaultdict(Counter)  # "POST /x (valid)" -> "200": n, ...


def _error(response: Any) -> dict[str, Any]:
    """The error object of a 4xx, which must be in OpenAI's shape."""
    try:
        error = json.loads(response.content)["error"]
        assert isinstance(error["message"], str) and isinstance(error["type"], str)
        assert "param" in error and "code" in error
    except (ValueError, KeyError, TypeError, AssertionError):
        raise AssertionError(
            f"{response.status_code} is not in OpenAI's error shape: {response.content[:300]!r}"
        ) from None
    return dict(error)


def _tally(case: Any, response: Any, kind: str) -> dict[str, Any] | None:
    status = response.status_code
    error = _error(response) if 400 <= status < 500 else None
    outcome = f"{status} {error['code']}" if error else str(status)
    OUTCOMES[f"{case.operation.label} ({kind})"][outcome] += 1
    return error


def documented_refusal(ctx: Any, response: Any, case: Any) -> bool | None:
    """A 2xx, or a 4xx in OpenAI's error shape with a status and code the docs name."""
    error = _tally(case, response, "valid")
    status = response.status_code
    if 200 <= status < 300:
        return None
    assert error is not None, f"{status}: {response.content[:300]!r}"
    if status == 400:
        assert error["type"] == "invalid_request_error", f"400 of type {error['type']!r}"
    code = error["code"]
    assert (status, code) in DOCUMENTED or status in BARE_STATUSES, (
        f"{status} {code} is not a documented refusal (docs/*.md): {error['message']}"
    )
    return None


def openai_shaped_refusal(ctx: Any, response: Any, case: Any) -> bool | None:
    """Any 4xx in OpenAI's error shape (an invalid request's code is not checked)."""
    _tally(case, response, "invalid")
    return None


# The server ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def embedder(server: ServerProcess) -> Iterator[str]:
    """A deployment started to serve embeddings (as tests/test_embeddings.py starts one)."""
    options = {"embeddings": True, "pooling": "mean", "parallel": 2}
    server.admin("POST", "/admin/deployments", json={
        "name": EMBEDDER, "engine": "llamacpp", "model_path": str(default_model_path()),
        "options": options,
    })  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while not _ready(server, EMBEDDER):  # this one only: others' may be failed on purpose
            assert time.monotonic() < deadline, f"{EMBEDDER} never became ready"
            time.sleep(0.2)
        yield EMBEDDER
    finally:
        server.admin("DELETE", f"/admin/deployments/{EMBEDDER}")


def _ready(server: ServerProcess, name: str) -> bool:
    deps = server.admin("GET", "/admin/deployments")["data"]
    return any(d["name"] == name and d["ready_replicas"] == d["replicas"] for d in deps)


@pytest.fixture(scope="module")
def spec_key(server: ServerProcess, request: pytest.FixtureRequest) -> Iterator[str]:
    """A tenant's inference key; afterwards, what each operation answered (the run's record)."""
    yield server.new_tenant_key("openai-spec")
    capture = request.config.pluginmanager.getplugin("capturemanager")
    reporter = request.config.pluginmanager.getplugin("terminalreporter")
    if capture is None or reporter is None or not OUTCOMES:
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line("\nOpenAI's document against TokenMill, answers per operation:")
        for label, seen in sorted(OUTCOMES.items()):
            reporter.write_line(f"  {label}: {dict(seen.most_common())}")


def _valid_for_us(case: Any, embedder: str) -> None:
    """A served model's name, and a few tokens to generate at most."""
    if not isinstance(case.body, dict):
        return
    path = case.operation.path
    case.body["model"] = embedder if path == "/embeddings" else DEFAULT_MODEL
    for name, cap in CAP.items():
        value = case.body.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > cap:
            case.body[name] = cap
    bound = CAPPED_BY.get(path)
    if bound is not None and not any(isinstance(case.body.get(n), int) for n in CAP):
        case.body[bound] = CAP[bound]


def _call(case: Any, server: ServerProcess, key: str) -> Any:
    return case.call(
        base_url=server.url + "/v1", headers={"Authorization": f"Bearer {key}"}, timeout=60
    )


# The tests -------------------------------------------------------------------------------


def test_the_document_is_openais_with_its_source() -> None:
    source = SPEC["info"]["x-source"]
    assert source["repository"] == "https://github.com/openai/openai-openapi"
    assert re.fullmatch(r"[0-9a-f]{40}", source["commit"])
    assert source["commit"] in (DATA / "SOURCE.md").read_text()


def test_the_docs_name_the_refusals_and_every_served_operation_is_tested() -> None:
    """The reading of the docs finds what they plainly say (it has not silently gone blind),
    and each operation of OpenAI's document that the app routes is tested."""
    assert {(400, "invalid_value"), (400, "unsupported_value"), (404, "model_not_found")} <= (
        DOCUMENTED
    )
    assert {(429, "budget_exceeded"), (403, "model_not_allowed")} <= DOCUMENTED
    tested = {(op.ok().method, op.ok().path) for op in VALID.get_all_operations()}
    served = {
        (method, path)
        for path, item in SPEC["paths"].items()
        for method in item
        if method in OURS.get("/v1" + path, {})
    }
    assert ("post", "/chat/completions") in served and ("get", "/models") in served
    assert tested == served


@VALID.parametrize()  # type: ignore[untyped-decorator]
@settings(RUN, max_examples=VALID_EXAMPLES)
def test_openais_valid_requests_are_served_or_refused_as_documented(
    case: Any, server: ServerProcess, spec_key: str, embedder: str
) -> None:
    _valid_for_us(case, embedder)
    response = _call(case, server, spec_key)
    case.validate_response(response, checks=[not_a_server_error, documented_refusal])


@INVALID.parametrize()  # type: ignore[untyped-decorator]
@settings(RUN, max_examples=INVALID_EXAMPLES)
def test_openais_invalid_requests_are_refused_without_a_server_error(
    case: Any, server: ServerProcess, spec_key: str, embedder: str
) -> None:
    _valid_for_us(case, embedder)
    response = _call(case, server, spec_key)
    case.validate_response(response, checks=[not_a_server_error, openai_shaped_refusal])
