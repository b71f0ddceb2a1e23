"""/v1/embeddings on the real llama.cpp engine, through the official OpenAI SDK: a deployment
started to serve embeddings answers them, metered and billed as input tokens; one that was
not says so with a 400."""

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tokenmill.bootstrap import default_model_path
from tokenmill.core.errors import InvalidRequest
from tokenmill.engines.base import ReplicaSpec
from tokenmill.engines.llamacpp import LlamaCppAdapter
from tokenmill.gateway.content_guard import ContentGuard
from tokenmill.security.pii import PiiMode
from tokenmill.testing import ServerProcess

NAME = "smol-embed"


@pytest.fixture(scope="module")
def embedder(server: ServerProcess) -> Iterator[str]:
    model = default_model_path()
    assert isinstance(model, Path)
    # SmolLM2 is a chat model: its own pooling is none, which /v1/embeddings cannot serve.
    options = {"embeddings": True, "pooling": "mean", "parallel": 2}
    server.admin("POST", "/admin/deployments", json={
        "name": NAME, "engine": "llamacpp", "model_path": str(model), "options": options,
    })  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while not _ready(server):
            assert time.monotonic() < deadline, "the embeddings deployment never became ready"
            time.sleep(0.2)
        yield NAME
    finally:
        server.admin("DELETE", f"/admin/deployments/{NAME}")


def _ready(server: ServerProcess) -> bool:
    deps = server.admin("GET", "/admin/deployments")["data"]
    return any(d["name"] == NAME and d["ready_replicas"] == d["replicas"] for d in deps)


def _client(server: ServerProcess, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0)


def test_embeddings_are_served_and_metered_as_input(server: ServerProcess, embedder, tenant_key):
    tenant, key = tenant_key
    client = _client(server, key)
    one = client.embeddings.create(model=embedder, input="The quick brown fox")  # base64
    assert one.model == embedder
    [item] = one.data
    assert len(item.embedding) == 576  # SmolLM2-135M's width
    assert one.usage.prompt_tokens > 0 and one.usage.total_tokens == one.usage.prompt_tokens
    many = client.embeddings.create(
        model=embedder, input=["first", "second text"], encoding_format="float", user="u"
    )
    assert [d.index for d in many.data] == [0, 1]
    assert many.data[0].embedding != many.data[1].embedding
    ids = client.embeddings.create(model=embedder, input=[[1, 2, 3], [4, 5]])
    assert ids.usage.prompt_tokens == 5  # token ids are counted as given
    [row] = server.tenant_usage(tenant, 3)
    prompt = one.usage.prompt_tokens + many.usage.prompt_tokens + ids.usage.prompt_tokens
    assert (row["requests"], row["prompt_tokens"], row["completion_tokens"]) == (3, prompt, 0)


def test_embeddings_are_billed_as_input_tokens(server: ServerProcess, embedder, tenant_key):
    tenant, key = tenant_key
    server.admin("POST", "/admin/prices", json={
        "model": embedder, "tenant": tenant, "input": "0.01", "source": "a test's contract",
    })  # fmt: skip
    resp = _client(server, key).embeddings.create(model=embedder, input="price me")
    server.tenant_usage(tenant, 1)
    deadline = time.monotonic() + 10
    while True:  # rated as the ledger takes the record
        with sqlite3.connect(server.data_dir / "tokenmill.db") as db:
            charges = db.execute(
                "SELECT token_class, tokens, pico FROM usage_charges WHERE tenant = ?", (tenant,)
            ).fetchall()
        if charges or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    tokens = resp.usage.prompt_tokens
    assert charges == [("input", tokens, tokens * 10_000)]  # 0.01 per 1M: 10,000 pico a token


def test_a_chat_deployment_does_not_serve_embeddings(server: ServerProcess, tenant_key):
    _, key = tenant_key
    with pytest.raises(openai.BadRequestError) as err:
        _client(server, key).embeddings.create(model="smollm2-135m", input="hello")
    assert err.value.code == "model_not_supported"
    assert "embeddings" in err.value.message


@pytest.mark.parametrize(
    ("extra", "param"),
    [({"dimensions": 64}, "dimensions"), ({"input": ""}, "input"), ({"input": []}, "input")],
)
def test_what_cannot_be_served_is_refused(
    server: ServerProcess, embedder, tenant_key, extra, param
):
    _, key = tenant_key
    body = {"model": embedder, "input": "hello", **extra}
    resp = httpx.post(
        server.url + "/v1/embeddings", json=body, headers={"Authorization": f"Bearer {key}"}
    )
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["param"] == param


def test_the_pii_guard_reads_embeddings_input():
    guard = ContentGuard(PiiMode.MASK, {"strict": PiiMode.BLOCK}, lambda *_: None)
    body = {"model": "m", "input": ["write to bob@example.com", "no pii here"]}
    guard.inbound("t", "embeddings", body)
    assert body["input"] == ["write to [EMAIL]", "no pii here"]
    with pytest.raises(InvalidRequest) as err:
        guard.inbound("strict", "embeddings", {"model": "m", "input": "bob@example.com"})
    assert err.value.param == "input"


def test_the_embeddings_option_starts_llama_server_for_them(tmp_path: Path):
    model = tmp_path / "m.gguf"
    model.write_bytes(b"")
    adapter = LlamaCppAdapter()
    options = {"embeddings": True, "pooling": "cls", "ctx_per_slot": 1024}
    spec = ReplicaSpec("e", 0, model_path=str(model), options=options)
    argv = adapter.launch(spec, 8080, "secret", binary="llama-server").argv
    assert argv[argv.index("--pooling") + 1] == "cls"
    assert argv[argv.index("--ubatch-size") + 1] == "1024"  # a whole input in one micro-batch
    assert adapter.capabilities(spec, None).embeddings
    plain = ReplicaSpec("c", 0, model_path=str(model))
    assert "--embeddings" not in adapter.launch(plain, 8080, "s", binary="llama-server").argv
    assert not adapter.capabilities(plain, None).embeddings
    with pytest.raises(ValueError, match="pooling"):
        adapter.validate(ReplicaSpec("x", 0, model_path=str(model), options={"pooling": "max"}))
