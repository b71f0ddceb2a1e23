"""The PII guard on the wire, against the real engine: mask rewrites the prompt before the
engine sees it, block refuses it, log only counts; nothing of the text is stored."""

import httpx
import pytest

from tokenmill.gateway.content_guard import ContentGuard
from tokenmill.security.pii import PiiMode, detect, mask
from tokenmill.testing import ServerProcess

MODEL = "smollm2-135m"
# A valid resident ID (checksum 'X'), a mobile number, an e-mail address.
PERSONAL = "I am 11010519491231002X, call 13800138000 or write to li.wei@example.com."


def _prompt_tokens(server: ServerProcess, key: str, text: str) -> httpx.Response:
    body = {"model": MODEL, "messages": [{"role": "user", "content": text}], "max_tokens": 1}
    return httpx.post(server.url + "/v1/chat/completions", json=body, timeout=60,
                      headers={"Authorization": f"Bearer {key}"})  # fmt: skip


def _tenant(server: ServerProcess, name: str, mode: str) -> str:
    server.admin("POST", "/admin/tenants", json={"name": name, "pii_mode": mode})
    return server.new_key(name)


def test_mask_forwards_no_detected_pii_and_stores_none(server: ServerProcess):
    masked_key, off_key = _tenant(server, "pii-mask", "mask"), _tenant(server, "pii-off", "off")
    masked_text, found = mask(PERSONAL)
    assert {f.kind for f in found} == {"cn_id", "cn_mobile", "email"} and not detect(masked_text)
    through_guard = _prompt_tokens(server, masked_key, PERSONAL).json()["usage"]["prompt_tokens"]
    premasked = _prompt_tokens(server, off_key, masked_text).json()["usage"]["prompt_tokens"]
    raw = _prompt_tokens(server, off_key, PERSONAL).json()["usage"]["prompt_tokens"]
    # The engine counted exactly the masked prompt's tokens: it never saw the original.
    assert through_guard == premasked != raw
    server.tenant_usage("pii-mask", 1)
    stored = b"".join(p.read_bytes() for p in server.data_dir.rglob("*") if p.is_file()
                      and p.suffix in (".db", ".db-wal", ".jsonl", ".log", ".out"))  # fmt: skip
    assert b"11010519491231002X" not in stored and b"li.wei@example.com" not in stored
    assert 'tokenmill_pii_findings_total{direction="prompt",kind="cn_id",tenant="pii-mask"} 1.0' \
        in server.metrics()  # fmt: skip


def test_block_refuses_a_prompt_with_pii_and_passes_one_without(server: ServerProcess):
    key = _tenant(server, "pii-block", "block")
    refused = _prompt_tokens(server, key, PERSONAL)
    assert refused.status_code == 400
    error = refused.json()["error"]
    assert error["code"] == "pii_detected" and "cn_id" in error["message"]
    assert "13800138000" not in refused.text  # the refusal does not echo the data
    assert _prompt_tokens(server, key, "What is the capital of France?").status_code == 200


def test_a_tenant_mode_can_be_changed_live(server: ServerProcess):
    key = _tenant(server, "pii-live", "log")
    assert _prompt_tokens(server, key, PERSONAL).status_code == 200  # log: counted, passed
    server.admin("PATCH", "/admin/tenants/pii-live", json={"pii_mode": "block"})
    assert _prompt_tokens(server, key, PERSONAL).status_code == 400


def test_a_tenants_kinds_are_set_through_the_api_and_apply_live(server: ServerProcess):
    body = {"name": "pii-kinds", "pii_mode": "block", "pii_kinds": ["email"]}
    server.admin("POST", "/admin/tenants", json=body)
    key = server.new_key("pii-kinds")
    assert _prompt_tokens(server, key, "call 13800138000").status_code == 200  # not its kind
    assert _prompt_tokens(server, key, "write to li.wei@example.com").status_code == 400
    with pytest.raises(httpx.HTTPStatusError) as bad:
        server.admin("PATCH", "/admin/tenants/pii-kinds", json={"pii_kinds": ["phone"]})
    assert bad.value.response.status_code == 400
    assert "unknown PII kinds ['phone']" in bad.value.response.json()["error"]["message"]
    server.admin("PATCH", "/admin/tenants/pii-kinds", json={"pii_kinds": None})  # the server's
    assert _prompt_tokens(server, key, "call 13800138000").status_code == 400


def _chunks(texts: list[str]) -> list[dict]:
    out = [{"choices": [{"index": 0, "delta": {"content": t}, "finish_reason": None}]}
           for t in texts]  # fmt: skip
    out[-1]["choices"][0]["finish_reason"] = "stop"
    return out


@pytest.mark.parametrize("size", [1, 3, 7, 1000])
def test_a_streamed_answer_is_masked_across_chunk_boundaries(size: int):
    found: list = []
    guard = ContentGuard(PiiMode.MASK, {}, lambda *args: found.append(args))
    stream = guard.stream("t", PiiMode.MASK)
    assert stream is not None
    pieces = [PERSONAL[i : i + size] for i in range(0, len(PERSONAL), size)]
    chunks = _chunks(pieces)
    for chunk in chunks:
        stream.chunk(chunk)
    stream.close()
    delivered = "".join(c["choices"][0]["delta"]["content"] for c in chunks)
    assert delivered == mask(PERSONAL)[0]
    assert dict(found[0][2]) == {"cn_id": 1, "cn_mobile": 1, "email": 1}


def test_log_mode_leaves_a_whole_answer_alone_and_mask_rewrites_it():
    guard = ContentGuard(PiiMode.LOG, {"strict": PiiMode.MASK}, lambda *args: None)
    answer = {"choices": [{"message": {"role": "assistant", "content": PERSONAL}}]}
    guard.answer("t", guard.mode("t"), answer)
    assert answer["choices"][0]["message"]["content"] == PERSONAL
    guard.answer("strict", guard.mode("strict"), answer)
    assert not detect(answer["choices"][0]["message"]["content"])


def test_log_mode_counts_a_stream_and_passes_it_untouched():
    found: list = []
    guard = ContentGuard(PiiMode.LOG, {}, lambda *args: found.append(args))
    stream = guard.stream("t", PiiMode.LOG)
    assert stream is not None and not stream.rewrites
    chunks = _chunks([PERSONAL[:20], PERSONAL[20:]])
    for chunk in chunks:
        stream.chunk(chunk)
    stream.close()
    assert "".join(c["choices"][0]["delta"]["content"] for c in chunks) == PERSONAL
    assert dict(found[0][2]) == {"cn_id": 1, "cn_mobile": 1, "email": 1}


async def test_a_long_prompt_is_scanned_off_the_event_loop_with_the_same_result():
    guard = ContentGuard(PiiMode.MASK, {}, lambda *args: None)
    long_text = "filler " * 1000 + PERSONAL
    body = {"messages": [{"role": "user", "content": [{"type": "text", "text": long_text}]}]}
    mode = await guard.check_prompt("t", "chat", body, size=len(long_text))
    assert mode is PiiMode.MASK
    assert body["messages"][0]["content"][0]["text"] == mask(long_text)[0]
