"""Several choices in one request (`n`, a legacy-completions prompt list): one engine request
per choice, each metered, the answers merged. At 9c1dbe9 a 64-prompt list was metered as one
request (107 tokens for about 6,400 generated) and passed budgets 2.8x to 25x; streamed, it
recorded nothing at all."""

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tokenmill.core.errors import InvalidRequest
from tokenmill.gateway import choices
from tokenmill.testing import ServerProcess

MODEL = "smollm2-135m"


def test_n_and_a_prompt_list_split_into_one_engine_request_per_choice_in_openais_order():
    body = {"model": "m", "prompt": ["a", "b"], "n": 3, "seed": 7, "max_tokens": 2}
    parts = choices.split("completions", body)
    assert [(p["prompt"], p["n"]) for p in parts] == [("a", 1)] * 3 + [("b", 1)] * 3
    assert [p["seed"] for p in parts] == list(range(7, 13))  # no two alike
    chat = choices.split("chat", {"model": "m", "messages": [], "n": 2})
    assert [p["n"] for p in chat] == [1, 1] and "seed" not in chat[0]
    one = {"model": "m", "prompt": [9906, 11], "n": 1}  # one prompt's token ids
    assert choices.split("completions", one) == [one]


def test_more_than_128_choices_are_refused():
    with pytest.raises(InvalidRequest) as caught:
        choices.split("completions", {"prompt": ["x"] * 43, "n": 3})
    assert (caught.value.code, caught.value.param) == ("too_many_choices", "n")
    with pytest.raises(InvalidRequest) as caught:
        choices.split("completions", {"prompt": ["x"] * 129})
    assert caught.value.param == "prompt"
    assert len(choices.split("completions", {"prompt": ["x"] * 64, "n": 2})) == 128


def test_answers_merge_with_indices_and_summed_usage():
    def answer(text: str, prompt: int, cached: int, completion: int) -> dict[str, Any]:
        usage = {"prompt_tokens": prompt, "completion_tokens": completion,
                 "total_tokens": prompt + completion,
                 "prompt_tokens_details": {"cached_tokens": cached}}  # fmt: skip
        return {"id": "x", "choices": [{"index": 0, "text": text}], "usage": usage,
                "timings": {"predicted_ms": 1.0}}  # fmt: skip

    merged = choices.merge([answer("a", 10, 0, 3), answer("b", 10, 8, 4)])
    assert [(c["index"], c["text"]) for c in merged["choices"]] == [(0, "a"), (1, "b")]
    assert merged["usage"] == {"prompt_tokens": 20, "completion_tokens": 7, "total_tokens": 27,
                               "prompt_tokens_details": {"cached_tokens": 8}}  # fmt: skip
    assert "timings" not in merged


def test_streams_merge_into_one_usage_chunk_and_one_done():
    merger = choices.StreamMerger(2)

    def event(data: Any) -> bytes:
        return b"data: " + (data if isinstance(data, bytes) else json.dumps(data).encode())

    delta = {"choices": [{"index": 0, "delta": {"content": "hi"}}]}
    usage = {"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 2}}
    out = merger.chunk(1, event(delta))
    assert out is not None and json.loads(out[6:])["choices"][0]["index"] == 1
    assert merger.chunk(0, event(usage)) is None and merger.chunk(1, event(usage)) is None
    assert merger.chunk(0, event(b"[DONE]")) is None
    assert merger.tail() == []  # choice 1 has not ended: no [DONE] yet
    merger.chunk(1, event(b"[DONE]"))
    tail = merger.tail()
    assert json.loads(tail[0][6:])["usage"] == {"prompt_tokens": 10, "completion_tokens": 4}
    assert tail[1] == b"data: [DONE]\n\n"


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server of its own: the replica's counters hold this module's traffic only."""
    srv = ServerProcess(tmp_path_factory.mktemp("choices")).start()
    yield srv
    srv.stop()


def _post(srv: ServerProcess, key: str, path: str, body: dict[str, Any]) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"}
    return httpx.post(srv.url + path, json=body, headers=headers, timeout=120)


def _stream(srv: ServerProcess, key: str, path: str, body: dict[str, Any]) -> list[Any]:
    headers = {"Authorization": f"Bearer {key}"}
    events: list[Any] = []
    with httpx.stream("POST", srv.url + path, json={**body, "stream": True},
                      headers=headers, timeout=120) as resp:  # fmt: skip
        assert resp.status_code == 200, resp.read()
        for line in resp.iter_lines():
            if line.startswith("data: "):
                data = line[6:]
                events.append(data if data == "[DONE]" else json.loads(data))
    return events


def _ledger(srv: ServerProcess, tenant: str, records: int) -> dict[str, int]:
    [row] = srv.tenant_usage(tenant, records)
    return {k: row[k] for k in ("requests", "prompt_tokens", "completion_tokens")}


@pytest.mark.parametrize("prompt", [["Hello", "Bonjour", "Hola", "Ciao"], [[9906], [22557, 11]]])
def test_a_prompt_list_is_served_and_each_choice_metered(fresh: ServerProcess, prompt: list):
    tenant = "plist-text" if isinstance(prompt[0], str) else "plist-ids"
    key = fresh.new_tenant_key(tenant)
    body = {"model": MODEL, "prompt": prompt, "n": 2, "max_tokens": 6}
    resp = _post(fresh, key, "/v1/completions", body)
    assert resp.status_code == 200, resp.text
    data = resp.json()
    assert [c["index"] for c in data["choices"]] == list(range(2 * len(prompt)))
    usage = data["usage"]
    assert _ledger(fresh, tenant, 2 * len(prompt)) == {
        "requests": 2 * len(prompt),
        "prompt_tokens": usage["prompt_tokens"],
        "completion_tokens": usage["completion_tokens"],
    }
    assert usage["completion_tokens"] > 2 * len(prompt)  # every choice generated


@pytest.mark.parametrize("endpoint", ["chat", "completions"])
def test_streamed_choices_interleave_and_are_each_metered(fresh: ServerProcess, endpoint: str):
    tenant = f"stream-{endpoint}"
    key = fresh.new_tenant_key(tenant)
    body: dict[str, Any] = {"model": MODEL, "n": 3, "max_tokens": 8,
                            "stream_options": {"include_usage": True}}  # fmt: skip
    if endpoint == "chat":
        body["messages"] = [{"role": "user", "content": "Name a colour."}]
        path = "/v1/chat/completions"
    else:
        body["prompt"] = ["Once upon a time", "The sky is"]
        body["n"] = 2
        path = "/v1/completions"
    events = _stream(fresh, key, path, body)
    assert events[-1] == "[DONE]" and events.count("[DONE]") == 1
    *chunks, usage_chunk = events[:-1]
    indices = {c["index"] for chunk in chunks for c in chunk["choices"]}
    assert indices == {0, 1, 2} if endpoint == "chat" else {0, 1, 2, 3}
    assert usage_chunk["choices"] == []
    usage = usage_chunk["usage"]
    assert _ledger(fresh, tenant, len(indices)) == {
        "requests": len(indices),
        "prompt_tokens": usage["prompt_tokens"],
        "completion_tokens": usage["completion_tokens"],
    }


def test_a_budget_reserves_for_every_choice_before_the_first_runs(fresh: ServerProcess):
    fresh.admin("POST", "/admin/tenants", json={"name": "budgeted"})
    key = fresh.new_key("budgeted", budget_tokens=400)
    body = {"model": MODEL, "prompt": ["Tell me a story."] * 8, "max_tokens": 30}

    async def burst() -> list[int]:
        headers = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(base_url=fresh.url, timeout=120, headers=headers) as http:
            answers = await asyncio.gather(
                *(http.post("/v1/completions", json=body) for _ in range(6))
            )
        return [a.status_code for a in answers]

    statuses = asyncio.run(burst())
    assert 429 in statuses  # 8 choices x (prompt + 30): a few requests fill 400 tokens
    served = statuses.count(200)
    rows = fresh.tenant_usage("budgeted", 8 * served)
    spent = sum(r["prompt_tokens"] + r["completion_tokens"] for r in rows)
    assert spent <= 400  # never past it: each request reserved for all 8 choices


def test_after_choices_the_ledger_and_the_engine_agree(fresh: ServerProcess):
    key = fresh.new_tenant_key("reconcile")
    _post(fresh, key, "/v1/chat/completions",
          {"model": MODEL, "n": 4, "max_tokens": 5,
           "messages": [{"role": "user", "content": "Hi"}]})  # fmt: skip
    _stream(fresh, key, "/v1/completions",
            {"model": MODEL, "prompt": ["a", "b", "c"], "max_tokens": 5})  # fmt: skip
    fresh.tenant_usage("reconcile", 7)
    done = subprocess.run(
        [sys.executable, "-m", "tokenmill", "reconcile", "--json"],
        env=fresh.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (replica,) = json.loads(done.stdout)["replicas"]
    assert replica["status"] == "ok" and set(replica["drift"].values()) == {0}


def test_more_streamed_choices_than_slots_all_finish(fresh: ServerProcess):
    """The replica has 4 slots: 12 streamed choices must be relayed as each begins, not once
    all have (which would wait forever for the slots the first four hold)."""
    key = fresh.new_tenant_key("many")
    body = {"model": MODEL, "prompt": ["Red", "Green", "Blue"] * 2, "n": 2, "max_tokens": 4}
    events = _stream(fresh, key, "/v1/completions", body)
    assert events[-1] == "[DONE]"
    indices = {c["index"] for chunk in events[:-1] for c in chunk["choices"]}
    assert indices == set(range(12))
    assert _ledger(fresh, "many", 12)["requests"] == 12


def test_a_client_leaving_a_choices_stream_frees_every_slot_and_meters_what_ran(
    fresh: ServerProcess,
):
    key = fresh.new_tenant_key("leaver")
    body = {"model": MODEL, "n": 6, "max_tokens": 200, "stream": True,
            "messages": [{"role": "user", "content": "Tell me a long story."}]}  # fmt: skip
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.stream("POST", fresh.url + "/v1/chat/completions", json=body,
                      headers=headers, timeout=120) as resp:  # fmt: skip
        assert resp.status_code == 200
        for n, _ in enumerate(resp.iter_lines()):
            if n == 6:
                break  # the client goes
    # The four the replica's slots began are metered; the two still queued never reached an
    # engine and are dropped, as any request whose client leaves while it is queued.
    assert _ledger(fresh, "leaver", 4)["requests"] == 4
    time.sleep(1.0)
    assert _ledger(fresh, "leaver", 4)["requests"] == 4
    after = _post(fresh, key, "/v1/chat/completions",
                  {"model": MODEL, "max_tokens": 2,
                   "messages": [{"role": "user", "content": "Hi"}]})  # fmt: skip
    assert after.status_code == 200, after.text  # no slot was left held
