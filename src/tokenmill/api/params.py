"""What happens to each request field on its way to the engine: one table, per endpoint.

api/schemas.py checks every field's type; this table decides each field's fate. A field is sent
to the engine (which honours it), read by TokenMill itself, or dropped, and a dropped field
that had a value is named in the response's `X-TokenMill-Ignored-Params` header. A value whose
loss would change the answer (best_of > 1, audio output, web search) is refused with a 400.
Fields OpenAI's reference does not list are dropped too: passing them on would let a client
reach engine knobs behind the gateway's back (llama.cpp's `n_predict` overrides `max_tokens`).
docs/openai.md lists this table; tests/test_params.py keeps the two in step.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import quote

from tokenmill.core.errors import InvalidRequest

IGNORED_HEADER = "X-TokenMill-Ignored-Params"
_HEADER_NAMES = 32  # beyond this the header says "+N more": clients cap header sizes (~16 KiB)


class Fate(StrEnum):
    ENGINE = "engine"  # sent on; the engine honours it
    GATEWAY = "gateway"  # TokenMill acts on it; the engine never sees the client's value
    DROP = "drop"  # removed before the engine; named in the header when it had a value


@dataclass(frozen=True)
class Rule:
    fate: Fate
    refuse: Callable[[Any], bool] | None = None  # values whose loss would change the answer
    why: str = ""  # why such a value is refused, or why the field is dropped
    fields: Mapping[str, "Rule"] | None = None  # an object's own fields, by the same rules


ENGINE, GATEWAY = Rule(Fate.ENGINE), Rule(Fate.GATEWAY)


def _drop(why: str) -> Rule:
    return Rule(Fate.DROP, why=why)


def _over_one(value: Any) -> bool:
    return isinstance(value, int) and value > 1


def _given(value: Any) -> bool:
    return value is not None


UNKNOWN = _drop("not in OpenAI's reference")
BEST_OF = "the engine cannot generate several answers and return the best; ask for n instead"
STREAM_OPTIONS: dict[str, Rule] = {
    "include_usage": ENGINE,
    "include_obfuscation": _drop("no obfuscation padding is added to stream chunks"),
    "continuous_usage_stats": ENGINE,  # vLLM's
}
_COMMON: dict[str, Rule] = {
    "model": GATEWAY,  # a deployment's name; the engine is sent its own model name
    "stream": ENGINE,
    "stream_options": Rule(Fate.ENGINE, fields=STREAM_OPTIONS),
    "max_tokens": ENGINE,
    "temperature": ENGINE,
    "top_p": ENGINE,
    "n": GATEWAY,  # one engine request per choice (gateway/choices.py)
    "stop": ENGINE,
    "presence_penalty": ENGINE,
    "frequency_penalty": ENGINE,
    "seed": ENGINE,
    "logit_bias": ENGINE,
    "logprobs": ENGINE,
    "service_tier": GATEWAY,  # "flex" queues in the batch band
    "user": _drop("TokenMill attributes usage by key and agent"),
    # Engine extensions (llama.cpp, vLLM) that clients send through the OpenAI SDK.
    "top_k": ENGINE,
    "min_p": ENGINE,
    "repeat_penalty": ENGINE,
}
CHAT: dict[str, Rule] = {
    **_COMMON,
    "messages": ENGINE,
    "max_completion_tokens": ENGINE,
    "top_logprobs": ENGINE,
    "response_format": ENGINE,
    "tools": ENGINE,
    "tool_choice": ENGINE,
    "parallel_tool_calls": ENGINE,
    "reasoning_effort": ENGINE,  # llama.cpp hands it to the chat template
    "verbosity": _drop("a style hint for OpenAI's models"),
    "metadata": _drop("TokenMill stores no completions to tag"),
    "store": _drop("TokenMill stores no completions"),
    "prompt_cache_key": _drop("TokenMill routes by prompt prefix on its own"),
    "prompt_cache_retention": _drop("the engine's prompt cache has no retention setting"),
    "prompt_cache_options": _drop("the engine's prompt cache has no options"),
    "safety_identifier": _drop("TokenMill attributes usage by key and agent"),
    "prediction": _drop("a latency hint; the answer is the same without it"),
    "modalities": Rule(
        Fate.DROP, refuse=lambda v: "audio" in v, why="audio output is not available"
    ),
    "audio": Rule(Fate.DROP, refuse=_given, why="audio output is not available"),
    "web_search_options": Rule(Fate.DROP, refuse=_given, why="web search is not available"),
    "moderation": Rule(Fate.DROP, refuse=_given, why="no moderation model is deployed"),
    "functions": Rule(
        Fate.DROP, refuse=bool, why="it is deprecated and not supported; send 'tools' instead"
    ),
    "function_call": Rule(
        Fate.DROP,
        refuse=lambda v: v not in ("none", "auto"),
        why="it is deprecated and not supported; send 'tool_choice' instead",
    ),
}
COMPLETIONS: dict[str, Rule] = {
    **_COMMON,
    "prompt": ENGINE,  # a list of prompts: one engine request each (gateway/choices.py)
    "echo": Rule(Fate.ENGINE, refuse=lambda v: v is True, why="the engine cannot echo the prompt"),
    # llama.cpp refuses these two when present at all, so even their no-op values go.
    "suffix": Rule(Fate.DROP, refuse=bool, why="the engine cannot fill in before a suffix"),
    "best_of": Rule(Fate.DROP, refuse=_over_one, why=BEST_OF),
}
EMBEDDINGS: dict[str, Rule] = {
    "model": GATEWAY,
    "input": ENGINE,
    "encoding_format": ENGINE,  # llama.cpp and vLLM encode base64 themselves
    "dimensions": Rule(
        Fate.DROP, refuse=_given, why="the engine returns the model's own size; none shortens it"
    ),
    "user": _drop("TokenMill attributes usage by key and agent"),
}
TABLES = {"chat": CHAT, "completions": COMPLETIONS, "embeddings": EMBEDDINGS}

# The Responses API is translated into a chat completion (gateway/responses_input.py): here
# "engine" means the field reaches the engine in its chat form.
RESPONSES: dict[str, Rule] = {
    "model": GATEWAY,
    "input": ENGINE,  # as chat messages
    "instructions": ENGINE,  # a system message before the input
    "stream": ENGINE,
    "stream_options": Rule(
        Fate.GATEWAY,
        fields={"include_obfuscation": _drop("no obfuscation padding is added to stream events")},
    ),
    "max_output_tokens": ENGINE,
    "temperature": ENGINE,
    "top_p": ENGINE,
    "tools": ENGINE,  # function tools only; the others are OpenAI's own, refused by name
    "tool_choice": ENGINE,
    "parallel_tool_calls": ENGINE,
    "text": Rule(
        Fate.ENGINE,
        fields={"format": ENGINE, "verbosity": _drop("a style hint for OpenAI's models")},
    ),
    "reasoning": Rule(
        Fate.ENGINE,
        fields={
            "effort": ENGINE,  # as reasoning_effort
            "summary": _drop("the engine returns its reasoning text, not a summary of it"),
            "generate_summary": _drop("the engine returns its reasoning text, not a summary of it"),
        },
    ),
    "previous_response_id": GATEWAY,
    "store": GATEWAY,
    "metadata": GATEWAY,  # echoed in the response, kept with it when stored
    "service_tier": GATEWAY,
    "truncation": _drop("TokenMill never truncates: an input longer than the context is a 400"),
    "user": _drop("TokenMill attributes usage by key and agent"),
    "safety_identifier": _drop("TokenMill attributes usage by key and agent"),
    "include": _drop("no extra output data (encrypted reasoning, logprobs) is available"),
    "top_logprobs": _drop("output logprobs are not available on this endpoint"),
    "max_tool_calls": _drop("it bounds the tools OpenAI runs itself; TokenMill runs none"),
    "prompt_cache_key": _drop("TokenMill routes by prompt prefix on its own"),
    "prompt_cache_retention": _drop("the engine's prompt cache has no retention setting"),
    "prompt_cache_options": _drop("the engine's prompt cache has no options"),
    "image": _drop("no image generation"),
    "access_programs": _drop("OpenAI's access programs do not apply"),
    "background_options": _drop("used by background responses only"),
    "background": Rule(
        Fate.DROP, refuse=lambda v: v is True, why="background responses are not available"
    ),
    "conversation": Rule(
        Fate.DROP,
        refuse=_given,
        why="conversation objects are not available; chain responses with previous_response_id",
    ),
    "prompt": Rule(Fate.DROP, refuse=_given, why="stored prompt templates are not available"),
    "context_management": Rule(
        Fate.DROP, refuse=bool, why="server-side context compaction is not available"
    ),
    "moderation": Rule(Fate.DROP, refuse=_given, why="no moderation model is deployed"),
}


def sift(
    table: Mapping[str, Rule], body: Mapping[str, Any], prefix: str = ""
) -> tuple[dict[str, Any], list[str]]:
    """The body the engine may see, and the names of the dropped fields that had a value.
    Raises InvalidRequest for a value that cannot be dropped without changing the answer."""
    kept: dict[str, Any] = {}
    ignored: list[str] = []
    for name, value in body.items():
        rule = table.get(name, UNKNOWN)
        path = prefix + name
        if value is not None and rule.refuse is not None and rule.refuse(value):
            raise InvalidRequest(
                f"Unsupported value for '{path}': {rule.why}",
                param=path,
                code="unsupported_value",
            )
        if rule.fields is not None and isinstance(value, dict):
            value, inner = sift(rule.fields, value, f"{path}.")
            ignored += inner
        if rule.fate is not Fate.DROP:
            kept[name] = value
        elif value is not None:
            ignored.append(path)
    return kept, ignored


def ignored_header(ignored: list[str]) -> dict[str, str]:
    """The response header naming `ignored`, if any; unknown names are the client's own text,
    so each is percent-encoded (no commas, no line breaks, ASCII only)."""
    if not ignored:
        return {}
    names = [quote(name, safe="._-[]") for name in ignored[:_HEADER_NAMES]]
    if len(ignored) > _HEADER_NAMES:
        names.append(f"+{len(ignored) - _HEADER_NAMES} more")
    return {IGNORED_HEADER: ", ".join(names)}
