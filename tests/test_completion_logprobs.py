"""llama.cpp's legacy-completions logprobs to OpenAI's shape (gateway/logprobs.py).

The engine answers below are built by hand from llama.cpp's server source (tools/server/
server-task.cpp: `to_json_oaicompat` and `probs_vector_to_json`, llama-cpp-python 0.3.36's
vendored copy), not captured from a running engine; tests/test_openai_sdk.py checks the same
conversion end to end against the real one.
"""

import orjson

from tokenmill.gateway.logprobs import CompletionLogprobs
from tokenmill.gateway.stream_relay import StreamRelay
from tokenmill.gateway.tracker import UsageTracker


def _prob(tok: int, text: str, logprob: float, top: list[tuple[int, str, float]] | None = None):
    entry = {"id": tok, "token": text, "bytes": list(text.encode()), "logprob": logprob}
    if top is not None:
        entry["top_logprobs"] = [_prob(*alt) for alt in top]
    return entry


THERE = _prob(612, " there", -0.25, [(612, " there", -0.25), (28, ",", -1.75)])
CAFE = _prob(9001, " café", -1.5, [(9001, " café", -1.5), (9002, " cafe", -2.0)])
# Two ids whose text is the same (llama.cpp cuts a token's invalid UTF-8 tail): the likelier wins.
SPLIT = _prob(7, "", -3.0, [(7, "", -3.0), (8, "", -4.0), (9, "!", -5.0)])


def _answer(*entries, text=" there café"):
    """A non-streamed /v1/completions answer, as llama.cpp's to_json_oaicompat builds it."""
    return {
        "choices": [
            {
                "text": text,
                "index": 0,
                "logprobs": {"content": list(entries)},
                "finish_reason": "length",
            }
        ],
        "created": 1767225600,
        "model": "smollm2-135m",
        "system_fingerprint": "b1-abcdef0",
        "object": "text_completion",
        "usage": {"completion_tokens": 2, "prompt_tokens": 4, "total_tokens": 6},
        "id": "cmpl-abc",
    }


def _chunk(text: str, entry=None, finish=None):
    """One streamed chunk (llama.cpp sends one token's probabilities per chunk)."""
    return {
        "choices": [
            {
                "text": text,
                "index": 0,
                "logprobs": {"content": [entry]} if entry else None,
                "finish_reason": finish,
            }
        ],
        "created": 1767225600,
        "model": "smollm2-135m",
        "object": "text_completion",
        "id": "cmpl-abc",
    }


def test_a_whole_answer_becomes_four_parallel_lists_built_from_llama_cpp_server_source():
    data = _answer(THERE, CAFE, SPLIT)
    assert CompletionLogprobs().convert(data)
    assert data["choices"][0]["logprobs"] == {
        "tokens": [" there", " café", ""],
        "token_logprobs": [-0.25, -1.5, -3.0],
        "top_logprobs": [
            {" there": -0.25, ",": -1.75},
            {" café": -1.5, " cafe": -2.0},
            {"": -3.0, "!": -5.0},
        ],
        "text_offset": [0, 6, 11],  # characters, not bytes: "é" is one
    }
    assert data["choices"][0]["text"] == " there café"


def test_an_answer_without_logprobs_or_already_in_openai_shape_is_left_alone():
    plain = _answer()
    plain["choices"][0]["logprobs"] = None
    assert not CompletionLogprobs().convert(plain)
    assert plain["choices"][0]["logprobs"] is None
    openai_shape = {"tokens": ["a"], "token_logprobs": [-1.0], "top_logprobs": [{}]}
    already = _answer()
    already["choices"][0]["logprobs"] = dict(openai_shape, text_offset=[0])
    assert not CompletionLogprobs().convert(already)
    assert already["choices"][0]["logprobs"] == dict(openai_shape, text_offset=[0])


def test_stream_offsets_run_on_across_chunks_built_from_llama_cpp_server_source():
    convert = CompletionLogprobs()
    chunks = [_chunk(" there", THERE), _chunk(" café", CAFE), _chunk("", finish="length")]
    for chunk in chunks:
        convert.convert(chunk)
    first, second, last = (c["choices"][0]["logprobs"] for c in chunks)
    assert (first["tokens"], first["text_offset"]) == ([" there"], [0])
    assert (second["tokens"], second["text_offset"]) == ([" café"], [6])
    assert second["top_logprobs"] == [{" café": -1.5, " cafe": -2.0}]
    assert last is None


def test_the_stream_relay_rewrites_each_chunk():
    relay = StreamRelay(
        want_usage=False,
        strip_timings=False,
        public_model=None,
        tools=None,
        pii=None,
        logprobs=CompletionLogprobs(),
    )
    tracker = UsageTracker("req_1", "t", "key_1", "smollm2-135m", "d", "r", "completions", True)
    out = relay.rewrite(orjson.dumps(_chunk(" there", THERE)), tracker)
    assert out is not None and out.startswith(b"data: ")
    sent = orjson.loads(out.removeprefix(b"data: "))
    assert sent["choices"][0]["logprobs"]["tokens"] == [" there"]
    assert sent["choices"][0]["logprobs"]["text_offset"] == [0]
