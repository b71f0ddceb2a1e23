"""From an OpenAI request body to what the scheduler needs: tenant, size, prefix, priority."""

import time
from collections.abc import Mapping
from typing import Any

import orjson

from tokenmill.scheduling.job import Band, Job
from tokenmill.scheduling.prefix import prompt_blocks

CHARS_PER_TOKEN = 4  # a rough estimate before the engine counts; corrected when it does
DEFAULT_MAX_OUTPUT = 256  # for the load estimate when a request sets no limit
# OpenAI's `service_tier`: "flex" is its slower, cheaper tier; here it is the batch band.
_BANDS = {"flex": Band.BATCH}


# Where each endpoint's request keeps its prompt. Beside chat's messages: text, a list of
# texts, token ids, or a list of token-id lists.
PROMPT_FIELD = {"chat": "messages", "completions": "prompt", "embeddings": "input"}


def prompt_parts(endpoint: str, body: dict[str, Any]) -> list[str]:
    if endpoint == "chat":
        return [_message_text(m) for m in body.get("messages", [])]
    prompt = body.get(PROMPT_FIELD.get(endpoint, "prompt"))
    if isinstance(prompt, str):
        return [prompt]
    if isinstance(prompt, list) and all(isinstance(p, str) for p in prompt):
        return [str(p) for p in prompt]
    return [repr(prompt)]  # token ids: still a stable prefix


def _token_ids(endpoint: str, body: dict[str, Any]) -> int | None:
    """How many token ids a prompt sent as ids holds: an exact count, no estimate needed."""
    prompt = body.get(PROMPT_FIELD.get(endpoint, ""))
    if not isinstance(prompt, list) or not prompt or not isinstance(prompt[0], int | list):
        return None  # text, or chat messages
    return sum(len(p) if isinstance(p, list) else 1 for p in prompt)


def output_limit(endpoint: str, body: dict[str, Any]) -> int | None:
    """The most tokens a request may generate, when it says; an embedding generates none."""
    if endpoint == "embeddings":
        return 0
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    return int(limit) if limit else None


def prompt_bytes(endpoint: str, body: dict[str, Any]) -> int:
    """The prompt's UTF-8 length, tool definitions included (templates render them in)."""
    tools = body.get("tools") or body.get("functions")
    extra = len(orjson.dumps(tools)) if tools else 0
    return extra + sum(len(p.encode()) for p in prompt_parts(endpoint, body))


def _message_text(message: dict[str, Any]) -> str:
    text = f"{message.get('role')}:{_text(message.get('content'))}"
    calls = message.get("tool_calls")  # an assistant turn's calls are rendered back in
    return text + orjson.dumps(calls).decode() if calls else text


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: the text ones make the prefix
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def job_for(
    request_id: str,
    tenant: str,
    endpoint: str,
    body: dict[str, Any],
    wait_s: Mapping[Band, float],
) -> Job:
    """`wait_s`: how long each band may wait for a slot."""
    parts = prompt_parts(endpoint, body)
    band = _BANDS.get(str(body.get("service_tier")), Band.INTERACTIVE)
    now = time.monotonic()
    max_out = output_limit(endpoint, body)
    ids = _token_ids(endpoint, body)
    estimate = sum(len(p) for p in parts) // CHARS_PER_TOKEN if ids is None else ids
    return Job(
        id=request_id,
        tenant=tenant,
        model=body["model"],
        input_tokens=max(1, estimate),
        max_output_tokens=DEFAULT_MAX_OUTPUT if max_out is None else max_out,
        arrived=now,
        deadline=now + wait_s[band],
        band=band,
        prefix_blocks=prompt_blocks(parts),
    )
