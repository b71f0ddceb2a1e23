"""The PII guard on the wire: prompts before they reach an engine, answers before they reach
the client (streamed ones too). Per tenant, one of: off, log (count what is found), mask
(replace it with a placeholder such as [EMAIL]) or block (refuse a prompt that has any; an
answer, which cannot be refused once streaming, is masked instead). Only kinds and counts are
ever recorded, never the text."""

import asyncio
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from tokenmill.core.errors import InvalidRequest
from tokenmill.gateway.jobs import PROMPT_FIELD
from tokenmill.security.pii import PiiMode, detect, mask
from tokenmill.security.pii_stream import StreamMasker

OFFLOAD_BYTES = 4096  # longer texts are scanned in a worker thread, not on the event loop
# (tenant, direction "prompt" | "answer", kinds found) -> metrics
FindingSink = Callable[[str, str, Counter[str]], None]


def map_texts(value: Any, fn: Callable[[str], str]) -> Any:
    """`value` with `fn` applied to each text it holds: a string, a list of prompt strings,
    or OpenAI content parts ({"type": "text", "text": ...}); anything else as it is."""
    if isinstance(value, str):
        return fn(value)
    if isinstance(value, list):
        return [
            fn(p)
            if isinstance(p, str)
            else {**p, "text": fn(p["text"])}
            if isinstance(p, dict) and isinstance(p.get("text"), str)
            else p
            for p in value
        ]
    return value


class _Scan:
    """Detects (and under mask, replaces) PII in each text it is applied to, counting kinds."""

    def __init__(self, masking: bool) -> None:
        self.masking = masking
        self.kinds: Counter[str] = Counter()

    def __call__(self, text: str) -> str:
        if self.masking:
            text, found = mask(text)
        else:
            found = detect(text)
        self.kinds.update(f.kind for f in found)
        return text


class ContentGuard:
    def __init__(
        self, default: PiiMode, tenant_modes: Mapping[str, PiiMode], on_found: FindingSink
    ) -> None:
        self.default = default
        self.tenant_modes = dict(tenant_modes)
        self._on_found = on_found

    def mode(self, tenant: str) -> PiiMode:
        return self.tenant_modes.get(tenant, self.default)

    def set_mode(self, tenant: str, mode: PiiMode | None) -> None:
        if mode is None:
            self.tenant_modes.pop(tenant, None)
        else:
            self.tenant_modes[tenant] = mode

    async def check_prompt(
        self, tenant: str, endpoint: str, body: dict[str, Any], size: int
    ) -> PiiMode:
        """`inbound`, off the event loop for a long prompt (scanning costs ~0.14 ms per KB)."""
        if self.mode(tenant) is PiiMode.OFF:
            return PiiMode.OFF
        if size < OFFLOAD_BYTES:
            return self.inbound(tenant, endpoint, body)
        return await asyncio.to_thread(self.inbound, tenant, endpoint, body)

    def inbound(self, tenant: str, endpoint: str, body: dict[str, Any]) -> PiiMode:
        """Checks (and under mask, rewrites) the prompt in `body`; returns the tenant's mode."""
        mode = self.mode(tenant)
        if mode is PiiMode.OFF:
            return mode
        scan = _Scan(masking=mode is PiiMode.MASK)
        field = PROMPT_FIELD.get(endpoint, "prompt")
        if endpoint == "chat":
            for message in body.get("messages") or ():
                if isinstance(message, dict) and "content" in message:
                    message["content"] = map_texts(message["content"], scan)
        elif field in body:
            body[field] = map_texts(body[field], scan)
        if scan.kinds:
            self._on_found(tenant, "prompt", scan.kinds)
            if mode is PiiMode.BLOCK:
                raise InvalidRequest(
                    f"the prompt contains personal data ({', '.join(sorted(scan.kinds))}); "
                    "this tenant's policy refuses it",
                    param=field,
                    code="pii_detected",
                )
        return mode

    def answer(self, tenant: str, mode: PiiMode, data: dict[str, Any]) -> None:
        """A whole (non-streamed) answer: masked under mask and block, counted under log."""
        if mode is PiiMode.OFF:
            return
        scan = _Scan(masking=mode is not PiiMode.LOG)
        for choice in data.get("choices") or ():
            message = choice.get("message")
            if isinstance(message, dict) and "content" in message:
                message["content"] = map_texts(message["content"], scan)
            elif "text" in choice:
                choice["text"] = map_texts(choice["text"], scan)
        if scan.kinds:
            self._on_found(tenant, "answer", scan.kinds)

    def stream(self, tenant: str, mode: PiiMode) -> "StreamGuard | None":
        if mode is PiiMode.OFF:
            return None
        return StreamGuard(tenant, self._on_found, masking=mode is not PiiMode.LOG)


class StreamGuard:
    """Masks a streamed answer chunk by chunk, one masker per choice; text that could still be
    the start of PII waits for the next chunk (or the end of its choice). Not masking (log
    mode), it only counts, at the end, and passes every chunk as it came."""

    def __init__(self, tenant: str, on_found: FindingSink, masking: bool = True) -> None:
        self._masking = masking
        self._tenant = tenant
        self._on_found = on_found
        self._maskers: dict[int, StreamMasker] = {}
        self._raw: dict[int, list[str]] = {}

    @property
    def rewrites(self) -> bool:
        return self._masking

    def chunk(self, chunk: dict[str, Any]) -> None:
        for choice in chunk.get("choices") or ():
            index = int(choice.get("index") or 0)
            holder, key = (choice["delta"], "content") if "delta" in choice else (choice, "text")
            text = holder.get(key) if isinstance(holder, dict) else None
            if isinstance(text, str):
                self._raw.setdefault(index, []).append(text)
            if not self._masking:
                continue
            masker = self._maskers.setdefault(index, StreamMasker())
            out = masker.feed(text) if isinstance(text, str) else ""
            if choice.get("finish_reason"):
                out += masker.flush()
            if isinstance(text, str) or out:
                holder[key] = out

    def close(self) -> None:
        """Counts what was found, once the stream is over (kinds only, never the text)."""
        kinds = Counter(f.kind for parts in self._raw.values() for f in detect("".join(parts)))
        if kinds:
            self._on_found(self._tenant, "answer", kinds)
