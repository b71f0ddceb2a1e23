"""Several choices in one request (`n`, a legacy-completions prompt list), served as one engine
request per choice and merged back into one answer.

The engine would answer a prompt list prompt by prompt (and llama.cpp refuses `n` > 1) while
the gateway saw one request. As separate engine requests, each choice is placed, queued fairly,
metered and reconciled like any request: its usage record's id is the request's id with
`.<choice index>` after it. Budgets reserve for all of them before the first runs.

Choice order follows OpenAI's: for a prompt list with `n`, prompt `p`'s choices are indices
`p*n .. p*n + n-1`. The merged `usage` is the sum of what the engine did for every choice, as
billed: a prompt sent `n` times is counted `n` times (cached tokens say how much of it the
engine found in its cache), where OpenAI counts it once.
"""

from typing import Any

import orjson

from tokenmill.core.errors import InvalidRequest

MAX_CHOICES = 128  # OpenAI's own bound on `n`; also bounds a prompt list times `n`


def split(endpoint: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    """One request body per choice, each asking the engine for one; `[body]` when one."""
    n = body.get("n") or 1
    prompts = _prompts(body) if endpoint == "completions" else None
    count = n * (len(prompts) if prompts is not None else 1)
    if count > MAX_CHOICES:
        param = "prompt" if prompts is not None and n == 1 else "n"
        raise InvalidRequest(
            f"a request may ask for at most {MAX_CHOICES} choices (prompts times n); this one "
            f"asks for {count}: send several requests",
            param=param,
            code="too_many_choices",
        )
    if count == 1:
        return [body]
    seed = body.get("seed")
    parts: list[dict[str, Any]] = []
    for prompt in prompts if prompts is not None else [None]:
        for _ in range(n):
            part = {**body, "n": 1}
            if prompt is not None:
                part["prompt"] = prompt
            if seed is not None:  # the same seed would give the same answer n times
                part["seed"] = seed + len(parts)
            parts.append(part)
    return parts


def _prompts(body: dict[str, Any]) -> list[Any] | None:
    """A list of prompts (strings or token-id lists), not one prompt's token ids."""
    prompt = body.get("prompt")
    if isinstance(prompt, list) and prompt and not isinstance(prompt[0], int):
        return prompt
    return None


def merge(answers: list[dict[str, Any]]) -> dict[str, Any]:
    """One answer from each choice's: choices in order, usage summed."""
    merged = {**answers[0]}
    merged.pop("timings", None)  # the engine's, per request: no single one is the whole
    choices = []
    for index, answer in enumerate(answers):
        for choice in answer.get("choices") or []:
            choices.append({**choice, "index": index})
    merged["choices"] = choices
    merged["usage"] = add_usage([a.get("usage") for a in answers])
    return merged


def add_usage(usages: list[Any]) -> dict[str, Any] | None:
    """The field-wise sum of usage objects (nested token details too); None if none."""
    total: dict[str, Any] | None = None
    for usage in usages:
        if isinstance(usage, dict):
            total = usage if total is None else _add(total, usage)
    return total


def _add(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = {**a}
    for key, value in b.items():
        mine = out.get(key)
        if isinstance(value, int) and isinstance(mine, int) and not isinstance(value, bool):
            out[key] = mine + value
        elif isinstance(value, dict) and isinstance(mine, dict):
            out[key] = _add(mine, value)
        elif key not in out:
            out[key] = value
    return out


class StreamMerger:
    """Streamed choices into one stream: each chunk's choice gets its index; each choice's
    usage (a chunk of its own in chat, on the last chunk in llama.cpp's completions) and
    `[DONE]` are held, and one summed usage chunk and one `[DONE]` end the stream once every
    choice has ended well."""

    def __init__(self, parts: int) -> None:
        self._ended = [False] * parts
        self._usage: list[Any] = []
        self._usage_template: dict[str, Any] | None = None  # a usage chunk's other fields
        self.failed = False

    def chunk(self, part: int, event: bytes) -> bytes | None:
        data = event.removeprefix(b"data: ").strip()
        if data == b"[DONE]":
            self._ended[part] = True
            return None
        chunk = orjson.loads(data)
        if "error" in chunk:
            self.failed = True
            return event
        choices = chunk.get("choices")
        if chunk.get("usage") is not None:  # one choice's: the sum goes out at the end
            self._usage.append(chunk.pop("usage"))
            self._usage_template = {**chunk, "choices": []}
            if not choices:
                return None
        for choice in choices or ():
            choice["index"] = part
        return b"data: " + orjson.dumps(chunk) + b"\n\n"

    def tail(self) -> list[bytes]:
        """What ends the merged stream: the summed usage (if asked for) and `[DONE]`, or
        nothing when a choice did not end well (the client has its error event)."""
        if self.failed or not all(self._ended):
            return []
        out = []
        if self._usage_template is not None:
            usage_chunk = {**self._usage_template, "usage": add_usage(self._usage)}
            out.append(b"data: " + orjson.dumps(usage_chunk) + b"\n\n")
        out.append(b"data: [DONE]\n\n")
        return out
