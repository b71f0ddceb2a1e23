"""Reference models for the capacity planner: published architecture figures, each with its
source, and the numeric formats a model can be served in.

The data lives in ``tokenmill/economics/data/models.toml``; :func:`load` refuses an entry
whose numbers lack a source. :meth:`ReferenceModel.spec` turns an entry into the
:class:`~tokenmill.economics.perf_model.ModelSpec` the roofline model reads.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from types import MappingProxyType

from tokenmill.core import sourced
from tokenmill.core.sourced import Source
from tokenmill.economics.efficiency_data import engine_family
from tokenmill.economics.perf_model import ModelSpec

__all__ = [
    "FORMATS",
    "Format",
    "ModelError",
    "ReferenceModel",
    "Source",
    "custom_model",
    "find_model",
    "load",
    "matmul_precisions",
    "reference_models",
]


class ModelError(ValueError):
    """The model data is malformed, a lookup found nothing, or a spec is impossible."""


@dataclass(frozen=True, slots=True)
class Format:
    """How weights are stored and at which catalog precision the matmuls run.

    Weight-only formats (GGUF Q4_1...) dequantise to a 16-bit type on accelerators and to fp32
    on CPUs, so they list several compute precisions; the first one a device has is used.
    """

    weight_bits: float
    compute: tuple[str, ...]
    note: str


# GGUF block layouts from ggml (ggml-common.h): Q4_1 = 32 x 4-bit + fp16 scale + fp16 min
# = 20 bytes per 32 weights; Q8_0 = 32 x 8-bit + fp16 scale = 34 bytes per 32 weights.
_WEIGHT_ONLY = ("fp16", "bf16", "fp32")
FORMATS: Mapping[str, Format] = MappingProxyType(
    {
        "fp32": Format(32, ("fp32",), "32-bit float"),
        # A 16-bit model runs at the other 16-bit type's rate where the catalog lists only that
        # one (Ascend, Cambricon): both use the same matrix units at the same peak.
        "bf16": Format(16, ("bf16", "fp16"), "bfloat16"),
        "fp16": Format(16, ("fp16", "bf16"), "float16"),
        "fp8": Format(8, ("fp8",), "8-bit float weights and matmuls"),
        "int8": Format(8, ("int8",), "8-bit integer weights and matmuls"),
        "fp4": Format(4, ("fp4",), "4-bit float weights and matmuls (Blackwell, MI355X)"),
        # gpt-oss's experts: FP4 matmuls where a part has them, else dequantised (Hopper,
        # MI300X); on NVIDIA the engine decides (`matmul_precisions`)
        "mxfp4": Format(4.25, ("fp4", "bf16", "fp16"), "MXFP4 weights (an 8-bit scale per 32)"),
        "q8_0": Format(8.5, _WEIGHT_ONLY, "GGUF Q8_0, weight-only"),
        "q4_1": Format(5.0, _WEIGHT_ONLY, "GGUF Q4_1, weight-only"),
    }
)


@dataclass(frozen=True)
class ReferenceModel:
    id: str
    name: str
    params: float
    active_params: float
    layers: int
    attention_heads: int
    kv_heads: int
    head_dim: int
    max_context: int
    default_precision: str
    aliases: tuple[str, ...] = ()
    served_bits: float | None = None  # bits per weight of the default artifact, if not nominal
    kv_latent_dim: int | None = None  # elements cached per layer and token (latent attention)
    notes: str | None = None
    sources: Mapping[str, Source] = field(default_factory=dict, repr=False, compare=False)

    @property
    def kv_elements_per_layer(self) -> int:
        """Cached elements per layer and token: K and V per KV head, or the shared latent."""
        if self.kv_latent_dim is not None:
            return self.kv_latent_dim
        return 2 * self.kv_heads * self.head_dim

    def weight_bits(self, precision: str) -> float:
        if precision == self.default_precision and self.served_bits is not None:
            return self.served_bits
        return _format(precision).weight_bits

    def spec(
        self, precision: str | None = None, *, weight_bits: float | None = None, kv_bits: float = 16
    ) -> ModelSpec:
        """The roofline's view of this model served at `precision` (default: how it usually
        is). The compute precision is the format's first choice; the planner picks per device.
        """
        fmt_name = precision or self.default_precision
        fmt = _format(fmt_name)
        kv_heads, head_dim = self.kv_heads, self.head_dim
        if self.kv_latent_dim is not None:
            # ModelSpec caches 2 x kv_heads x head_dim per layer; one "head" of half the latent
            # holds exactly the latent's elements.
            kv_heads, head_dim = 1, self.kv_latent_dim // 2
        return ModelSpec(
            name=self.name,
            params=self.params,
            active_params=self.active_params,
            layers=self.layers,
            attention_heads=self.attention_heads,
            kv_heads=kv_heads,
            head_dim=head_dim,
            weight_bits=weight_bits if weight_bits is not None else self.weight_bits(fmt_name),
            kv_bits=kv_bits,
            compute_precision=fmt.compute[0],
            max_context=self.max_context,
        )


def matmul_precisions(
    precision: str, vendor: str, fp4: bool, engine: str | None
) -> tuple[str, ...]:
    """The precisions, first choice first, that weights stored at `precision` are multiplied
    at on a `vendor`'s part (`fp4`: it has FP4 matmuls) under `engine` (a name as written, or a
    family). MXFP4 on
    NVIDIA Blackwell is never multiplied in FP4: TensorRT-LLM quantizes the activations to
    MXFP8 (W4A8_MXFP4_MXFP8, its default from SM100: tensorrt_llm/_torch/model_config.py,
    get_mxfp4_quant_algo; NVIDIA's MLPerf v6.0 gpt-oss configs run it), vLLM keeps them in
    BF16 (FlashInfer's MXFP4 x BF16 MoE, its default on SM100; MXFP8 only by an environment
    variable), and other engines are taken as vLLM. No source was found for AMD's MI355X:
    FP4 as the format says."""
    if precision == "mxfp4" and vendor == "NVIDIA" and fp4:
        family = engine_family(engine, vendor) or engine
        return ("fp8",) if family == "tensorrt-llm" else ("bf16", "fp16")
    return _format(precision).compute


def _format(name: str) -> Format:
    try:
        return FORMATS[name]
    except KeyError:
        raise ModelError(f"unknown precision {name!r}; choose from {', '.join(FORMATS)}") from None


# --------------------------------------------------------------------------------- loading

_INT_FIELDS = ("layers", "attention_heads", "kv_heads", "head_dim", "max_context")
_OPTIONAL = ("active_params", "served_bits", "kv_latent_dim")
_KEYS = frozenset(
    {"id", "name", "aliases", "default_precision", "notes", "params", *_INT_FIELDS, *_OPTIONAL}
)
_ID_RE = re.compile(r"^[a-z0-9][a-z0-9.-]*$")


class _Entry(sourced.Entry):
    error = ModelError
    file = "models"


def _model(raw: object, index: int, sources: Mapping[str, Source]) -> ReferenceModel:
    e = _Entry.of(raw, index, "model", _KEYS, sources)
    raw = e.raw
    ident = e.text("id") or ""
    if not _ID_RE.match(ident):
        raise e.fail("id", "must be lowercase letters, digits, '.' and '-'")
    aliases = raw.get("aliases", [])
    if not isinstance(aliases, list) or not all(isinstance(a, str) and a for a in aliases):
        raise e.fail("aliases", "must be a list of non-empty strings")
    precision = e.text("default_precision") or ""
    if precision not in FORMATS:
        raise e.fail("default_precision", f"must be one of {', '.join(FORMATS)}")
    ints = {n: int(e.number(n, integer=True) or 0) for n in _INT_FIELDS}
    params = e.number("params") or 0.0
    active = e.number("active_params", required=False) or params
    latent = e.number("kv_latent_dim", required=False, integer=True)
    if active > params:
        raise e.fail("active_params", f"{active:g} exceeds params {params:g}")
    if ints["kv_heads"] > ints["attention_heads"]:
        raise e.fail("kv_heads", "exceeds attention_heads")
    if latent is not None and latent % 2:
        raise e.fail("kv_latent_dim", "must be even")
    return ReferenceModel(
        id=ident,
        name=e.text("name") or "",
        params=params,
        active_params=active,
        default_precision=precision,
        aliases=tuple(aliases),
        served_bits=e.number("served_bits", required=False),
        kv_latent_dim=None if latent is None else int(latent),
        notes=e.text("notes", required=False),
        sources=MappingProxyType(e.sources),
        **ints,
    )


def load(text: str) -> dict[str, ReferenceModel]:
    """Parse and strictly validate models TOML; raises ModelError naming entry and field."""
    return sourced.load(text, _Entry, "model", _model)


@functools.cache
def _packaged() -> Mapping[str, ReferenceModel]:
    text = resources.files("tokenmill.economics").joinpath("data/models.toml").read_text("utf-8")
    return MappingProxyType(load(text))


def reference_models() -> dict[str, ReferenceModel]:
    """The packaged models, id -> model (parsed once; a fresh dict each call)."""
    return dict(_packaged())


# --------------------------------------------------------------------------------- lookup

# Qualifiers that name a variant of the same weights' shape, dropped before matching: the
# tuning, and the precision a quantized checkpoint is stored in ("Llama-3.1-8B-Instruct-FP8";
# the precision itself is asked for on its own).
_QUALIFIERS = frozenset({"instruct", "chat", "it", "hf", "base", "gguf", "fp8", "fp4", "nvfp4",
                         "mxfp4", "int8", "int4", "awq", "gptq", "bf16", "fp16"})  # fmt: skip


def _key(text: str) -> str:
    """'meta-llama/Llama-3.1-8B-Instruct' -> 'llama318b': org prefix, qualifiers and
    punctuation dropped, lowercase."""
    words = re.findall(r"[a-z0-9.]+", text.lower().rsplit("/", 1)[-1])
    while len(words) > 1 and words[-1] in _QUALIFIERS:
        words.pop()
    return re.sub(r"[^a-z0-9]", "", "".join(words))


def find_model(query: str, models: Mapping[str, ReferenceModel] | None = None) -> ReferenceModel:
    """A model by id, name or alias, forgiving case, punctuation, an organisation prefix and
    an -Instruct/-Chat suffix. It does not guess further: a wrong model plans wrong silently.
    """
    known = reference_models() if models is None else models
    wanted = _key(query)
    for model in known.values():
        if wanted and wanted in {_key(k) for k in (model.id, model.name, *model.aliases)}:
            return model
    raise ModelError(
        f"no reference model matches {query!r}; known: {', '.join(sorted(known))} "
        "(or describe it with --params, --layers, --heads, --kv-heads, --head-dim)"
    )


def custom_model(
    *,
    params: float,
    layers: int,
    attention_heads: int,
    kv_heads: int,
    head_dim: int,
    active_params: float | None = None,
    max_context: int = 131072,
    precision: str = "bf16",
    name: str = "custom model",
) -> ReferenceModel:
    """A model described by hand (the CLI's spec flags), checked like a data entry."""
    _format(precision)
    for label, value in (("params", params), ("layers", layers), ("heads", attention_heads),
                         ("kv heads", kv_heads), ("head dim", head_dim),
                         ("max context", max_context)):  # fmt: skip
        if not (math.isfinite(value) and value > 0):
            raise ModelError(f"{label} must be > 0, got {value!r}")
    active = params if active_params is None else active_params
    if not 0 < active <= params:
        raise ModelError(f"active params must be in (0, params], got {active!r}")
    if kv_heads > attention_heads:
        raise ModelError(f"kv heads ({kv_heads}) cannot exceed attention heads ({attention_heads})")
    given = Source("given on the command line", "now")
    return ReferenceModel(
        id="custom",
        name=name,
        params=params,
        active_params=active,
        layers=layers,
        attention_heads=attention_heads,
        kv_heads=kv_heads,
        head_dim=head_dim,
        max_context=max_context,
        default_precision=precision,
        sources=MappingProxyType({"params": given}),
    )
