"""What a deployment's engine can do, so requests are checked against it before they go."""

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Capabilities:
    # The engine turns tool offers into OpenAI `tool_calls` itself; when not, the gateway
    # emulates them (gateway/tool_emulation.py) with a JSON grammar.
    tool_calls: bool = True
    vision: bool = True  # it takes image parts
    audio: bool = True  # it takes input_audio parts
    embeddings: bool = True  # it answers /v1/embeddings
    context_tokens: int | None = None  # per request (slot), when known

    def view(self) -> dict[str, Any]:
        return {**asdict(self), "tool_calls": "native" if self.tool_calls else "emulated"}


def with_overrides(found: Capabilities, options: dict[str, Any]) -> Capabilities:
    """A deployment's options (`tool_calls`: native|emulated, `vision`, `audio`) win over what was
    found: the operator knows an attached endpoint better than its defaults say."""
    tool_calls = options.get("tool_calls")
    vision, audio = options.get("vision"), options.get("audio")
    return Capabilities(
        tool_calls=found.tool_calls if tool_calls is None else tool_calls == "native",
        vision=found.vision if vision is None else bool(vision),
        audio=found.audio if audio is None else bool(audio),
        embeddings=found.embeddings,
        context_tokens=found.context_tokens,
    )


def from_llama_props(props: dict[str, Any]) -> Capabilities:
    """llama-server's GET /props: its chat template's abilities, modalities, slot context."""
    caps = props.get("chat_template_caps") or {}
    modalities = props.get("modalities") or {}
    settings = props.get("default_generation_settings") or {}
    n_ctx = settings.get("n_ctx")
    return Capabilities(
        tool_calls=bool(caps.get("supports_tool_calls")),
        vision=bool(modalities.get("vision")),
        audio=bool(modalities.get("audio")),
        context_tokens=n_ctx if isinstance(n_ctx, int) and n_ctx > 0 else None,
    )
