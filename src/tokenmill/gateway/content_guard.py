"""The PII guard on the wire: prompts before they reach an engine, answers before they reach
the client (streamed ones too). Per tenant, one of: off, log (count what is found), mask
(replace it with a placeholder such as [EMAIL]) or block (refuse a prompt that has any; an
answer, which cannot be refused once streaming, is masked instead); and the kinds to look for.
Only kinds and counts are ever recorded, never the text.

Names and places (person, location, address) come from Presidio's language model, the optional
`pii` extra: always in a worker thread, for prompts and whole answers. A streamed answer is
masked as it goes, by the pattern kinds only: a model needs the whole text, and holding a
stream back to its end would undo streaming."""

import asyncio
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tokenmill.core.errors import InvalidRequest
from tokenmill.gateway.jobs import PROMPT_FIELD
from tokenmill.security.pii import NerKind, PiiMode, detect, presidio_findings, redact, resolve
from tokenmill.security.pii.presidio import DEFAULT_MODEL
from tokenmill.security.pii_stream import StreamMasker

OFFLOAD_BYTES = 4096  # longer texts are scanned in a worker thread, not on the event loop
# (tenant, direction "prompt" | "answer", kinds found) -> metrics
FindingSink = Callable[[str, str, Counter[str]], None]
_NER = frozenset(NerKind)


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


@dataclass
class PiiKinds:
    """Which kinds the guard looks for: a tenant's own list, else the server's (None: every
    pattern kind), and the spaCy model Presidio uses for the others."""

    default: frozenset[str] | None = None
    tenants: dict[str, frozenset[str]] = field(default_factory=dict)
    ner_model: str = DEFAULT_MODEL

    def of(self, tenant: str) -> frozenset[str] | None:
        return self.tenants.get(tenant, self.default)

    def set(self, tenant: str, kinds: frozenset[str] | None) -> None:
        if kinds is None:
            self.tenants.pop(tenant, None)
        else:
            self.tenants[tenant] = kinds

    def ner(self, tenant: str) -> frozenset[str]:
        """The kinds of `tenant`'s that Presidio finds."""
        return (self.of(tenant) or frozenset()) & _NER


class _Scan:
    """Detects (and under mask, replaces) PII in each text it is applied to, counting kinds."""

    def __init__(self, masking: bool, kinds: frozenset[str] | None, ner_model: str) -> None:
        self.masking = masking
        self._kinds = kinds
        self._ner = (kinds or frozenset()) & _NER
        self._ner_model = ner_model
        self.kinds: Counter[str] = Counter()

    def __call__(self, text: str) -> str:
        found = detect(text, self._kinds)
        if self._ner:
            found = resolve(found + presidio_findings(text, self._ner, self._ner_model))
        self.kinds.update(f.kind for f in found)
        return redact(text, found) if self.masking else text


class ContentGuard:
    def __init__(
        self,
        default: PiiMode,
        tenant_modes: Mapping[str, PiiMode],
        on_found: FindingSink,
        kinds: PiiKinds | None = None,
    ) -> None:
        self.default = default
        self.tenant_modes = dict(tenant_modes)
        self.kinds = kinds or PiiKinds()
        self._on_found = on_found

    def mode(self, tenant: str) -> PiiMode:
        return self.tenant_modes.get(tenant, self.default)

    def set_mode(self, tenant: str, mode: PiiMode | None) -> None:
        if mode is None:
            self.tenant_modes.pop(tenant, None)
        else:
            self.tenant_modes[tenant] = mode

    def _scan(self, tenant: str, masking: bool) -> _Scan:
        return _Scan(masking, self.kinds.of(tenant), self.kinds.ner_model)

    async def check_prompt(
        self, tenant: str, endpoint: str, body: dict[str, Any], size: int
    ) -> PiiMode:
        """`inbound`, off the event loop for a long prompt (patterns cost ~0.1 ms per KB) and
        for a tenant whose kinds need Presidio (tens of ms per KB)."""
        if self.mode(tenant) is PiiMode.OFF:
            return PiiMode.OFF
        if size < OFFLOAD_BYTES and not self.kinds.ner(tenant):
            return self.inbound(tenant, endpoint, body)
        return await asyncio.to_thread(self.inbound, tenant, endpoint, body)

    def inbound(self, tenant: str, endpoint: str, body: dict[str, Any]) -> PiiMode:
        """Checks (and under mask, rewrites) the prompt in `body`; returns the tenant's mode."""
        mode = self.mode(tenant)
        if mode is PiiMode.OFF:
            return mode
        scan = self._scan(tenant, masking=mode is PiiMode.MASK)
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

    async def check_answer(self, tenant: str, mode: PiiMode, data: dict[str, Any]) -> None:
        """`answer`, in a worker thread where the tenant's kinds need Presidio."""
        if mode is not PiiMode.OFF and self.kinds.ner(tenant):
            await asyncio.to_thread(self.answer, tenant, mode, data)
        else:
            self.answer(tenant, mode, data)

    def answer(self, tenant: str, mode: PiiMode, data: dict[str, Any]) -> None:
        """A whole (non-streamed) answer: masked under mask and block, counted under log."""
        if mode is PiiMode.OFF:
            return
        scan = self._scan(tenant, masking=mode is not PiiMode.LOG)
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
        masking = mode is not PiiMode.LOG
        return StreamGuard(tenant, self._on_found, masking, self.kinds.of(tenant))


class StreamGuard:
    """Masks a streamed answer chunk by chunk, one masker per choice; text that could still be
    the start of PII waits for the next chunk (or the end of its choice). Not masking (log
    mode), it only counts, at the end, and passes every chunk as it came. Pattern kinds only
    (see the module's note)."""

    def __init__(
        self,
        tenant: str,
        on_found: FindingSink,
        masking: bool = True,
        kinds: frozenset[str] | None = None,
    ) -> None:
        self._masking = masking
        self._tenant = tenant
        self._on_found = on_found
        self._kinds = kinds
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
            if index not in self._maskers:
                self._maskers[index] = StreamMasker(self._kinds)
            masker = self._maskers[index]
            out = masker.feed(text) if isinstance(text, str) else ""
            if choice.get("finish_reason"):
                out += masker.flush()
            if isinstance(text, str) or out:
                holder[key] = out

    def close(self) -> None:
        """Counts what was found, once the stream is over (kinds only, never the text)."""
        texts = ("".join(parts) for parts in self._raw.values())
        kinds = Counter(f.kind for text in texts for f in detect(text, self._kinds))
        if kinds:
            self._on_found(self._tenant, "answer", kinds)
