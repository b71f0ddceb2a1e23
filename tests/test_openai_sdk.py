"""The official OpenAI SDK, unchanged, against the gateway and the real llama.cpp engine;
the ledger must hold exactly the usage the client was told."""

import asyncio
import sqlite3
from collections.abc import Mapping

import openai
import pytest

from tokenmill.testing import ServerProcess

MODEL = "smollm2-135m"
HELLO = [{"role": "user", "content": "Say hello in three words."}]


def _client(server: ServerProcess, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0)


def _ledger_totals(server: ServerProcess, tenant: str, requests: int = 1) -> dict[str, int]:
    """This tenant's ledger totals once all its `requests` are committed (the writer batches)."""
    rows = server.tenant_usage(tenant, requests)
    assert len(rows) == 1, rows
    return rows[0]


def test_non_stream_round_trip_and_ledger(server: ServerProcess, tenant_key):
    tenant, key = tenant_key
    client = _client(server, key)
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL, messages=HELLO, max_tokens=12
    )
    assert raw.headers["x-request-id"].startswith("req_")
    resp = raw.parse()
    assert resp.model == MODEL
    assert resp.choices[0].message.content
    assert resp.usage is not None and resp.usage.completion_tokens > 0
    totals = _ledger_totals(server, tenant)
    assert totals["requests"] == 1
    assert totals["prompt_tokens"] == resp.usage.prompt_tokens
    assert totals["completion_tokens"] == resp.usage.completion_tokens


def test_stream_with_usage_round_trip(server: ServerProcess, tenant_key):
    tenant, key = tenant_key
    stream = _client(server, key).chat.completions.create(
        model=MODEL, messages=HELLO, max_tokens=16, stream=True,
        stream_options={"include_usage": True},
    )  # fmt: skip
    text, usage = "", None
    for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
            assert not hasattr(chunk, "timings") or chunk.timings is None  # type: ignore[attr-defined]
        if chunk.usage:
            usage = chunk.usage
    assert text
    assert usage is not None and usage.completion_tokens > 0
    totals = _ledger_totals(server, tenant)
    assert (totals["prompt_tokens"], totals["completion_tokens"]) == (
        usage.prompt_tokens,
        usage.completion_tokens,
    )


def test_stream_without_usage_is_still_metered_exactly(server: ServerProcess, tenant_key):
    tenant, key = tenant_key
    client = _client(server, key)
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL, messages=HELLO, max_tokens=10, stream=True
    )
    request_id = raw.headers["x-request-id"]
    chunks = list(raw.parse())
    assert all(c.usage is None for c in chunks)  # the client did not ask for usage
    # The same prompt non-streamed tells us the engine's prompt count for comparison.
    ref = client.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=1)
    totals = _ledger_totals(server, tenant, requests=2)
    assert totals["requests"] == 2
    assert totals["prompt_tokens"] == 2 * ref.usage.prompt_tokens
    with sqlite3.connect(server.data_dir / "tokenmill.db") as db:
        source, completion = db.execute(
            "SELECT usage_source, completion_tokens FROM usage_records WHERE request_id = ?",
            (request_id,),
        ).fetchone()
    assert source == "engine"  # TokenMill asked the engine for usage behind the client's back
    # Some tokens carry no visible text, so chunks can only bound the engine's count.
    content_chunks = sum(1 for c in chunks if c.choices and c.choices[0].delta.content)
    assert content_chunks <= completion <= 10
    assert totals["completion_tokens"] == completion + ref.usage.completion_tokens


def test_async_client_concurrent_and_legacy_completions(server: ServerProcess, tenant_key):
    tenant, key = tenant_key

    async def run() -> list[openai.types.CompletionUsage]:
        client = openai.AsyncOpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0)
        chats = [
            client.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=8)
            for _ in range(4)
        ]
        legacy = client.completions.create(model=MODEL, prompt="Once upon a time", max_tokens=8)
        results = await asyncio.gather(*chats, legacy)
        await client.close()
        return [r.usage for r in results if r.usage is not None]

    usages = asyncio.run(run())
    assert len(usages) == 5
    totals = _ledger_totals(server, tenant, requests=5)
    assert totals["requests"] == 5
    assert totals["prompt_tokens"] == sum(u.prompt_tokens for u in usages)
    assert totals["completion_tokens"] == sum(u.completion_tokens for u in usages)


def test_models_list(server: ServerProcess, tenant_key):
    _, key = tenant_key
    ids = [m.id for m in _client(server, key).models.list()]
    assert MODEL in ids


@pytest.mark.parametrize("stream", [False, True])
def test_async_stream_matches_sync(server: ServerProcess, tenant_key, stream: bool):
    _, key = tenant_key

    async def run() -> int:
        client = openai.AsyncOpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0)
        if stream:
            s = await client.chat.completions.create(
                model=MODEL, messages=HELLO, max_tokens=6, stream=True,
                stream_options={"include_usage": True},
            )  # fmt: skip
            usage = [c.usage async for c in s if c.usage]
            await client.close()
            return usage[0].completion_tokens
        r = await client.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=6)
        await client.close()
        assert r.usage is not None
        return r.usage.completion_tokens

    assert 0 < asyncio.run(run()) <= 6


IGNORED = "x-tokenmill-ignored-params"


def _ignored(headers: Mapping[str, str]) -> list[str]:
    value = headers.get(IGNORED) or ""
    return [name for name in value.split(", ") if name]


def test_current_sdk_fields_are_accepted_and_the_dropped_ones_named(server, tenant_key):
    _, key = tenant_key
    raw = _client(server, key).chat.completions.with_raw_response.create(
        model=MODEL, messages=HELLO, max_tokens=4,
        reasoning_effort="low",  # llama.cpp honours it: passed on, not named
        prompt_cache_key="agent-7", safety_identifier="user-hash", store=False,
        extra_body={"n_predict": 2000},  # an engine knob the gateway keeps from the engine
    )  # fmt: skip
    assert raw.parse().choices[0].message.content is not None
    assert _ignored(raw.headers) == ["prompt_cache_key", "safety_identifier", "store", "n_predict"]
    assert raw.parse().usage.completion_tokens <= 4  # n_predict did not lift max_tokens


def test_a_stream_names_the_dropped_fields_too(server, tenant_key):
    _, key = tenant_key
    raw = _client(server, key).chat.completions.with_raw_response.create(
        model=MODEL, messages=HELLO, max_tokens=4, stream=True, prompt_cache_key="k",
        stream_options={"include_usage": True, "include_obfuscation": False},
    )  # fmt: skip
    assert _ignored(raw.headers) == ["prompt_cache_key", "stream_options.include_obfuscation"]
    chunks = list(raw.parse())
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_a_field_whose_loss_would_change_the_answer_is_a_clear_400(server, tenant_key):
    _, key = tenant_key
    with pytest.raises(openai.BadRequestError) as caught:
        _client(server, key).chat.completions.create(
            model=MODEL, messages=HELLO, modalities=["text", "audio"]
        )
    err = caught.value.body
    assert isinstance(err, dict)
    assert (err["code"], err["param"]) == ("unsupported_value", "modalities")


def test_a_new_field_with_a_wrong_type_is_still_a_400(server, tenant_key):
    _, key = tenant_key
    with pytest.raises(openai.BadRequestError) as caught:
        _client(server, key).chat.completions.create(
            model=MODEL,
            messages=HELLO,
            prompt_cache_key=5,  # type: ignore[arg-type]
        )
    err = caught.value.body
    assert isinstance(err, dict)
    assert (err["code"], err["param"]) == ("invalid_value", "prompt_cache_key")


def test_models_retrieve_and_its_404(server, tenant_key):
    tenant, key = tenant_key
    model = _client(server, key).models.retrieve(MODEL)
    assert (model.id, model.object, model.owned_by) == (MODEL, "model", "tokenmill")
    with pytest.raises(openai.NotFoundError) as caught:
        _client(server, key).models.retrieve("no-such-model")
    assert isinstance(caught.value.body, dict) and caught.value.body["code"] == "model_not_found"
    narrow = server.new_key(tenant, models=["some-other-model"])
    with pytest.raises(openai.NotFoundError):  # not this key's: as if it did not exist
        _client(server, narrow).models.retrieve(MODEL)


def _openai_logprobs(logprobs: openai.types.completion_choice.Logprobs | None, top: int) -> int:
    """Checks OpenAI's legacy shape; returns how many tokens it covers."""
    assert logprobs is not None and logprobs.tokens
    n = len(logprobs.tokens)
    assert logprobs.token_logprobs is not None and len(logprobs.token_logprobs) == n
    assert all(isinstance(lp, float) and lp <= 0 for lp in logprobs.token_logprobs)
    assert logprobs.top_logprobs is not None and len(logprobs.top_logprobs) == n
    assert all(0 < len(alts) <= top for alts in logprobs.top_logprobs)
    assert logprobs.text_offset is not None and len(logprobs.text_offset) == n
    return n


def _contiguous(tokens: list[str], offsets: list[int]) -> bool:
    """Each token starts where the one before it ended, the first at the completion's start."""
    ends = [sum(len(t) for t in tokens[:i]) for i in range(len(tokens))]
    return offsets == ends


def test_legacy_completions_logprobs_in_openai_shape(server, tenant_key):
    _, key = tenant_key
    client = _client(server, key)
    resp = client.completions.create(
        model=MODEL, prompt="Once upon a time", max_tokens=5, logprobs=2
    )
    logprobs = resp.choices[0].logprobs
    assert resp.usage is not None
    assert _openai_logprobs(logprobs, top=2) == resp.usage.completion_tokens
    assert logprobs is not None and logprobs.tokens and logprobs.text_offset
    assert _contiguous(logprobs.tokens, logprobs.text_offset)

    stream = client.completions.create(
        model=MODEL, prompt="Once upon a time", max_tokens=5, logprobs=2, stream=True,
        stream_options={"include_usage": True},
    )  # fmt: skip
    tokens: list[str] = []
    offsets: list[int] = []
    usage = None
    for chunk in stream:
        usage = chunk.usage or usage
        if chunk.choices and chunk.choices[0].logprobs is not None:
            _openai_logprobs(chunk.choices[0].logprobs, top=2)
            tokens += chunk.choices[0].logprobs.tokens or []
            offsets += chunk.choices[0].logprobs.text_offset or []
    assert usage is not None and len(tokens) == usage.completion_tokens
    assert _contiguous(tokens, offsets)  # offsets run on across chunks
