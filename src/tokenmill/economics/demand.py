"""What one replica of a model needs in memory, sized from the models catalog, as the
placement's :class:`~tokenmill.fleet.placement.Demand`.

Weights at the deployment's precision and the KV cache per token come from the same
:class:`~tokenmill.economics.perf_model.ModelSpec` the capacity planner reads (one place per
fact); a GGUF file's weights are its size on disk. The KV cache is sized for every token a
replica holds at once: its context per request x the requests it serves concurrently.
Layout (replicas, strategy, accelerator kind...) is the caller's: `dataclasses.replace`.
"""

from __future__ import annotations

import re
from pathlib import Path

from tokenmill.economics.models import ModelError, ReferenceModel, find_model
from tokenmill.economics.perf_model import USABLE_MEMORY
from tokenmill.fleet.placement import Demand

__all__ = ["ACCELERATOR_RESERVE", "GB", "gguf_demand", "model_demand"]

GB = 1e9
# The share of an accelerator's memory an engine keeps for activations, its runtime and
# fragmentation: the planner's figure (vLLM's default gpu_memory_utilization is 0.9).
ACCELERATOR_RESERVE = round(1 - USABLE_MEMORY, 6)
# A GGUF file's quantisation suffix: "SmolLM2-135M-Instruct.Q4_1" -> "SmolLM2-135M-Instruct".
_QUANT_SUFFIX = re.compile(r"[.-](i?q\d\w*|f16|f32|bf16)$", re.IGNORECASE)


def model_demand(
    model: ReferenceModel,
    *,
    context_tokens: int,
    precision: str | None = None,
    kv_bits: float = 16,
    overhead_gb: float = 0.0,
    reserve_share: float = ACCELERATOR_RESERVE,
) -> Demand:
    """One replica of a catalog model at `precision` (default: as it is usually served),
    holding `context_tokens` tokens of KV cache in all (context x concurrency)."""
    if context_tokens < 0:
        raise ModelError(f"context tokens must be >= 0, got {context_tokens}")
    spec = model.spec(precision, kv_bits=kv_bits)
    fmt = precision or model.default_precision
    return Demand(
        model=model.id,
        weights_gb=spec.weight_bytes / GB,
        kv_gb=spec.kv_bytes_per_token * context_tokens / GB,
        overhead_gb=overhead_gb,
        reserve_share=reserve_share,
        notes=(
            f"{model.name}: {model.params / 1e9:.3g}B parameters at {fmt} "
            f"({spec.weight_bits:g} bits each)",
            _kv_note(spec.kv_bytes_per_token, context_tokens),
        ),
    )


def gguf_demand(
    path: Path,
    *,
    context_tokens: int,
    overhead_gb: float = 0.0,
    names: tuple[str, ...] = (),
) -> Demand:
    """One replica of a GGUF file (llama.cpp): the weights are the file, the KV cache (f16,
    llama.cpp's default) is sized from the catalog model the file's name, or one of `names`,
    matches. A model the catalog lacks gets no KV figure, and a note saying so."""
    weights = path.stat().st_size / GB
    model = _catalog_model((_QUANT_SUFFIX.sub("", path.stem), *names))
    notes = [f"weights: {path.name}, {weights:.3f} GB on disk"]
    kv = 0.0
    if model is None:
        notes.append(f"KV cache unknown: {path.name} matches no model in the models catalog")
    else:
        per_token = model.spec(kv_bits=16).kv_bytes_per_token
        kv = per_token * context_tokens / GB
        notes.append(f"KV cache as {model.name}: " + _kv_note(per_token, context_tokens))
    return Demand(
        model=model.id if model else path.stem,
        weights_gb=weights,
        kv_gb=kv,
        overhead_gb=overhead_gb,
        model_file=str(path),
        notes=tuple(notes),
    )


def _catalog_model(candidates: tuple[str, ...]) -> ReferenceModel | None:
    for name in candidates:
        try:
            return find_model(name)
        except ModelError:
            continue
    return None


def _kv_note(per_token: float, tokens: int) -> str:
    total = per_token * tokens / GB
    return f"KV {per_token / 1e3:g} kB per token x {tokens} tokens = {total:.3f} GB"
