"""The request-field table (api/params.py) against OpenAI's own SDK, the schemas and the docs;
and what it does to bodies. No engine needed."""

from pathlib import Path
from typing import Any

import pytest
from openai.types import completion_create_params
from openai.types.chat import ChatCompletionStreamOptionsParam
from openai.types.chat import completion_create_params as chat_create_params

from tokenmill.api.params import (
    CHAT,
    COMPLETIONS,
    IGNORED_HEADER,
    STREAM_OPTIONS,
    TABLES,
    Fate,
    Rule,
    ignored_header,
    sift,
)
from tokenmill.api.schemas import (
    ChatCompletionRequest,
    CompletionRequest,
    StreamOptions,
    validate_body,
)
from tokenmill.core.errors import InvalidRequest

DOCS = Path(__file__).parent.parent / "docs" / "openai.md"
CHAT_BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
LEGACY_BODY = {"model": "m", "prompt": "Once upon a time"}


def _sdk_fields(params: Any) -> set[str]:
    """Every request field the installed OpenAI SDK can send."""
    base = params.CompletionCreateParamsBase
    return set(base.__required_keys__ | base.__optional_keys__) | {"stream"}


@pytest.mark.parametrize(
    ("sdk", "table", "schema"),
    [
        (chat_create_params, CHAT, ChatCompletionRequest),
        (completion_create_params, COMPLETIONS, CompletionRequest),
    ],
    ids=["chat", "completions"],
)
def test_every_field_the_sdk_sends_has_a_type_and_a_fate(sdk, table, schema):
    """A new SDK field fails here until someone decides what TokenMill does with it."""
    fields = _sdk_fields(sdk)
    assert sorted(fields - set(table)) == []
    assert sorted(fields - set(schema.model_fields)) == []
    assert sorted(set(table) - set(schema.model_fields)) == []  # every fate has a type check


def test_every_stream_option_the_sdk_sends_has_a_fate():
    sdk = ChatCompletionStreamOptionsParam.__optional_keys__
    assert sorted(sdk - set(STREAM_OPTIONS)) == []
    assert set(STREAM_OPTIONS) == set(StreamOptions.model_fields)


def _doc_fates() -> dict[str, str]:
    """field name -> fate, from the table in docs/openai.md."""
    fates = {}
    for line in DOCS.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[2] in set(Fate):
            for name in cells[0].split(","):
                fates[name.strip().strip("`")] = cells[2]
    return fates


def test_the_docs_list_every_field_with_its_fate():
    documented = _doc_fates()
    rules: dict[str, Rule] = {**CHAT, **COMPLETIONS}
    rules |= {f"stream_options.{name}": rule for name, rule in STREAM_OPTIONS.items()}
    assert {name: str(rule.fate) for name, rule in rules.items()} == {
        name: fate for name, fate in documented.items() if name != "any other field"
    }


def test_dropped_fields_leave_the_body_and_are_named():
    body = {
        **CHAT_BODY,
        "reasoning_effort": "high",
        "prompt_cache_key": "k",
        "safety_identifier": "s",
        "store": None,  # a null is no setting: dropped, not named
        "stream": True,
        "stream_options": {"include_usage": True, "include_obfuscation": False},
        "n_predict": 99999,  # an engine knob: would override max_tokens
    }
    kept, ignored = sift(CHAT, body)
    assert kept == {
        **CHAT_BODY,
        "reasoning_effort": "high",
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    assert ignored == [
        "prompt_cache_key",
        "safety_identifier",
        "stream_options.include_obfuscation",
        "n_predict",
    ]


def test_message_fields_are_passed_as_sent():
    message = {"role": "user", "content": [{"type": "text", "text": "hi", "x": 1}], "y": 2}
    body = {"model": "m", "messages": [message]}
    validate_body(ChatCompletionRequest, body)
    assert sift(CHAT, body) == (body, [])


def test_the_header_names_what_was_dropped_safely():
    assert ignored_header([]) == {}
    assert ignored_header(["user", "stream_options.include_obfuscation"]) == {
        IGNORED_HEADER: "user, stream_options.include_obfuscation"
    }
    hostile = ignored_header(["a,b\r\nSet-Cookie: x", "ünï"])[IGNORED_HEADER]
    assert hostile == "a%2Cb%0D%0ASet-Cookie%3A%20x, %C3%BCn%C3%AF"
    many = ignored_header([f"f{i}" for i in range(40)])[IGNORED_HEADER]
    assert many.endswith(", f31, +8 more")


@pytest.mark.parametrize(
    ("endpoint", "extra", "param"),
    [
        ("chat", {"modalities": ["text", "audio"]}, "modalities"),
        ("chat", {"audio": {"voice": "alloy", "format": "mp3"}}, "audio"),
        ("chat", {"web_search_options": {}}, "web_search_options"),
        ("chat", {"moderation": {"model": "omni-moderation-latest"}}, "moderation"),
        ("chat", {"functions": [{"name": "f"}]}, "functions"),
        ("chat", {"function_call": {"name": "f"}}, "function_call"),
        ("completions", {"best_of": 2}, "best_of"),
        ("completions", {"echo": True}, "echo"),
        ("completions", {"suffix": "}"}, "suffix"),
    ],
)
def test_values_whose_loss_would_change_the_answer_are_refused(endpoint, extra, param):
    base = CHAT_BODY if endpoint == "chat" else LEGACY_BODY
    body = {**base, **extra}
    validate_body(ChatCompletionRequest if endpoint == "chat" else CompletionRequest, body)
    with pytest.raises(InvalidRequest) as caught:
        sift(TABLES[endpoint], body)
    assert (caught.value.code, caught.value.param) == ("unsupported_value", param)
    assert caught.value.message.startswith(f"Unsupported value for '{param}': ")


@pytest.mark.parametrize(
    ("extra", "kept", "ignored"),
    [
        ({"n": 1, "modalities": ["text"]}, {"n": 1}, ["modalities"]),
        ({"function_call": "none", "functions": []}, {}, ["function_call", "functions"]),
        ({"audio": None, "web_search_options": None}, {}, []),
    ],
)
def test_harmless_values_of_refusable_fields_pass(extra, kept, ignored):
    assert sift(CHAT, {**CHAT_BODY, **extra}) == ({**CHAT_BODY, **kept}, ignored)


def test_legacy_no_op_values_llama_cpp_would_reject_are_dropped():
    body = {**LEGACY_BODY, "best_of": 1, "suffix": None, "echo": False}
    assert sift(COMPLETIONS, body) == ({**LEGACY_BODY, "echo": False}, ["best_of"])


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"prompt_cache_key": 5}, "prompt_cache_key"),
        ({"reasoning_effort": ["high"]}, "reasoning_effort"),
        ({"safety_identifier": None, "store": "yes"}, "store"),
        (
            {"stream_options": {"include_obfuscation": "false"}},
            "stream_options.include_obfuscation",
        ),
        ({"n": "2"}, "n"),
        ({"metadata": {"k": 1}}, "metadata.k"),
    ],
)
def test_new_fields_are_still_type_checked(extra, param):
    with pytest.raises(InvalidRequest) as caught:
        validate_body(ChatCompletionRequest, {**CHAT_BODY, **extra})
    assert (caught.value.code, caught.value.param) == ("invalid_value", param)
