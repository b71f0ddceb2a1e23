"""Content the model cannot take is the client's mistake (a 400), not the engine's failure:
an image sent to a text-only model would otherwise come back as a 5xx, which SDKs retry."""

from typing import Any

from tokenmill.core.errors import InvalidRequest
from tokenmill.engines.capabilities import Capabilities

_IMAGE_PARTS = frozenset({"image_url", "input_image", "image"})
_AUDIO_PARTS = frozenset({"input_audio", "audio"})
_FILE_PARTS = frozenset({"file", "input_file"})


def check_content(model: str, endpoint: str, body: dict[str, Any], caps: Capabilities) -> None:
    if endpoint != "chat":
        return
    for i, message in enumerate(body.get("messages") or ()):
        content = message.get("content") if isinstance(message, dict) else None
        for j, part in enumerate(content if isinstance(content, list) else ()):
            kind = part.get("type") if isinstance(part, dict) else None
            where = f"messages.{i}.content.{j}"
            if kind in _IMAGE_PARTS and not caps.vision:
                raise _refused(f"The model '{model}' takes text only, not images", where)
            if kind in _AUDIO_PARTS and not caps.audio:
                raise _refused(f"The model '{model}' takes no audio input", where)
            if kind in _FILE_PARTS:
                raise _refused(f"The model '{model}' cannot read files", where)


def _refused(message: str, param: str) -> InvalidRequest:
    return InvalidRequest(
        f"{message}: remove the part at '{param}' or use a model that takes it",
        param=param,
        code="unsupported_content",
    )
