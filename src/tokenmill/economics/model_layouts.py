"""The shapes the performance model needs beyond `models.toml`: hidden size (what a
tensor-parallel all-reduce carries), a mixture of experts' routed experts and sliding-window
attention's window, from
`data/model_layouts.toml`, each number with its source. :func:`with_layout` puts them on a
reference model's `ModelSpec`."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from importlib import resources
from types import MappingProxyType

from tokenmill.core import sourced
from tokenmill.core.sourced import Source
from tokenmill.economics.moe import MoeShape
from tokenmill.economics.perf_model import ModelSpec


class LayoutError(ValueError):
    """The layout data is malformed; the message names the entry and field."""


@dataclass(frozen=True)
class Layout:
    id: str  # the models.toml id
    hidden_size: int
    moe: MoeShape | None = None
    sliding_window: int | None = None  # tokens a windowed layer attends to
    window_layers: int = 0  # how many layers are windowed
    sources: Mapping[str, Source] = field(default_factory=dict, repr=False, compare=False)


_MOE = ("experts", "top_k", "moe_layers", "expert_params")
_WINDOW = ("sliding_window", "window_layers")
_KEYS = frozenset({"id", "hidden_size", *_MOE, *_WINDOW})


class _Entry(sourced.Entry):
    error = LayoutError
    file = "model layouts"


def _layout(raw: object, index: int, sources: Mapping[str, Source]) -> Layout:
    e = _Entry.of(raw, index, "layout", _KEYS, sources)
    raw = e.raw
    ident = e.text("id") or ""
    hidden = int(e.number("hidden_size", integer=True) or 0)
    given = [k for k in _MOE if k in raw]
    moe = None
    if given:
        if len(given) != len(_MOE):
            missing = sorted(set(_MOE) - set(given))[0]
            raise e.fail(missing, "a mixture of experts needs experts, top_k, moe_layers "
                                  "and expert_params")  # fmt: skip
        ints = {k: int(e.number(k, integer=True) or 0) for k in _MOE[:3]}
        moe = MoeShape(**ints, expert_params=e.number("expert_params") or 0.0)
        if moe.top_k > moe.experts:
            raise e.fail("top_k", f"{moe.top_k} exceeds experts {moe.experts}")
    window, windowed = None, 0
    if any(k in raw for k in _WINDOW):
        if not all(k in raw for k in _WINDOW):
            raise e.fail("window_layers", "sliding-window attention needs sliding_window and "
                                          "window_layers")  # fmt: skip
        window = int(e.number("sliding_window", integer=True) or 0)
        windowed = int(e.number("window_layers", integer=True) or 0)
    return Layout(ident, hidden, moe, window, windowed, MappingProxyType(e.sources))


def load(text: str) -> dict[str, Layout]:
    """Parse and strictly validate layouts TOML; raises LayoutError naming entry and field."""
    return sourced.load(text, _Entry, "layout", _layout)


@functools.cache
def _packaged() -> Mapping[str, Layout]:
    data = resources.files("tokenmill.economics").joinpath("data/model_layouts.toml")
    return MappingProxyType(load(data.read_text("utf-8")))


def layouts() -> dict[str, Layout]:
    """The packaged layouts, models.toml id -> layout (a fresh dict each call)."""
    return dict(_packaged())


def with_layout(model_id: str, spec: ModelSpec, *, experts: bool = True) -> ModelSpec:
    """`spec` with the hidden size and (unless `experts` is False) the routed experts of the
    reference model `model_id`; unchanged for a model without a layout (a custom one)."""
    layout = _packaged().get(model_id)
    if layout is None:
        return spec
    moe = layout.moe if experts else None
    if moe is not None:
        moe.check(spec.params, spec.active_params)
    if layout.window_layers > spec.layers:
        raise LayoutError(f"{model_id}: {layout.window_layers} windowed layers of {spec.layers}")
    shaped = replace(spec, hidden_size=layout.hidden_size, moe=moe)
    return replace(shaped, sliding_window=layout.sliding_window, window_layers=layout.window_layers)
