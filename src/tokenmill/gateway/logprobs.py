"""Legacy /v1/completions logprobs in OpenAI's shape, from llama.cpp's.

llama-server answers a completion's logprobs in the chat shape (tools/server/server-task.cpp,
`probs_vector_to_json`): `{"content": [{"id", "token", "bytes", "logprob", "top_logprobs":
[{"id", "token", "bytes", "logprob"}, ...]}, ...]}`. OpenAI's legacy shape is four parallel
lists: `{"tokens", "token_logprobs", "top_logprobs": [{token: logprob}], "text_offset"}`.
Offsets count characters from the start of the completion and run on across a stream's chunks
(as vLLM does); an engine that already answers in OpenAI's shape is left alone.
"""

from typing import Any


class CompletionLogprobs:
    """Rewrites the logprobs of one answer, or of one stream chunk after another."""

    def __init__(self) -> None:
        self._offsets: dict[int, int] = {}  # per choice: where its next token starts

    def convert(self, data: dict[str, Any]) -> bool:
        """Rewrites `data`'s choices in place; says whether anything changed."""
        changed = False
        for choice in data.get("choices") or ():
            logprobs = choice.get("logprobs")
            if isinstance(logprobs, dict) and isinstance(logprobs.get("content"), list):
                index = int(choice.get("index") or 0)
                choice["logprobs"] = self._openai(index, logprobs["content"])
                changed = True
        return changed

    def _openai(self, index: int, entries: list[dict[str, Any]]) -> dict[str, Any]:
        offset = self._offsets.get(index, 0)
        tokens: list[str] = []
        token_logprobs: list[float | None] = []
        top_logprobs: list[dict[str, float | None]] = []
        text_offset: list[int] = []
        for entry in entries:
            token = str(entry.get("token", ""))
            tokens.append(token)
            token_logprobs.append(entry.get("logprob"))
            top: dict[str, float | None] = {}
            for alt in entry.get("top_logprobs") or ():
                # Two ids may share a text: the first listed is the likelier.
                top.setdefault(str(alt.get("token", "")), alt.get("logprob"))
            top_logprobs.append(top)
            text_offset.append(offset)
            offset += len(token)
        self._offsets[index] = offset
        return {
            "tokens": tokens,
            "token_logprobs": token_logprobs,
            "top_logprobs": top_logprobs,
            "text_offset": text_offset,
        }
