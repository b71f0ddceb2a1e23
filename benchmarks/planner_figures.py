"""The planner against published serving figures (issue 17): a held-out validation harness.

    python benchmarks/planner_figures.py --step NAME   # seconds, no engine; writes
                                                       # results/planner_figures-NAME.json

`benchmarks/data/published_figures.toml` holds published serving figures, each with its
source. This module turns each `[[figure]]` into what the planner predicts from (a reference
model's `ModelSpec`, a catalog `Device` of one tensor-parallel group, a `Workload`), or says
why it cannot; splits the figures, once and for all, into a FIT half and a HELD-OUT half; and
predicts every mapped figure through the same path as `planner_validation.py`'s PUBLISHED rows
(`predict_published`: `planner.device` + `perf_model.predict`) with the reference model's layout
(hidden size, experts) and the efficiency of the figure's engine family and vendor from
`economics/data/efficiencies.toml` (`--efficiencies default`: `Efficiency()` for every figure,
as the baseline run did; `--no-moe-shapes`: without the experts' shapes).

Workload conventions (each mapped figure lists the ones it used under `conventions`):
- `concurrency` stated: a closed loop at that concurrency, also with `request_rate = "inf"`
  (`vllm bench serve --max-concurrency`: the client sends a request as another ends and times
  it from then, so TTFT is judged).
- `batch` stated (a static-batch latency benchmark): that many requests start together, are
  prefilled in one iteration and decoded together, run on the simulator like a burst (below;
  until issue 17's round 2 showed TTFT mis-mapped, a closed loop at that concurrency);
  `latency_ms` is compared with the requests' mean latency.
- `offline`, `request_rate = "inf"` (every prompt sent at once), or a maximum-throughput point
  with no batch stated: the engine runs as full as it can, so the concurrency is the smallest
  of the prompts per replica (when stated), the engine's batch cap (`engine_batch_cap`) and
  the requests whose paged KV blocks (`perf_model.max_concurrency`: prompt and half the
  output, with the copies a TP group keeps of each KV head) fit beside the weights in 90% of
  the memory (the planner's own memory rule). TTFT there is mostly waiting for a slot: shown,
  not judged.
- A burst (`request_rate = "inf"` with `num_prompts` stated: `vllm bench serve` sending every
  prompt at once) is run on the fleet simulator with the planner's iterations
  (`planner_burst.py`): all prompts at t = 0, at most that concurrency running, prompts
  chunked into the engine's tokens per iteration (`engine_token_budget`); throughput is
  output tokens over the run's length, TPOT the requests' mean, as the benchmark reports.
- A finite `request_rate` (open loop): the smallest concurrency whose predicted request rate
  reaches the offered rate per replica (Little's law inside the model), capped as above.
- Mean prompt and output lengths (ShareGPT runs) are used as if every request had them
  (`BURST_SPREAD` 0: the FIT bursts fit worse with any spread of lengths tried).
- `dp` independent replicas of `tp` GPUs: one replica is predicted, throughput x `dp`; with
  `attention_dp` (stated) `dp` counts attention ranks inside one replica instead, and `ep`
  equal to the group spreads whole experts over it (`perf_model.Device` layouts). A group
  wider than the part's node (`Accelerator.per_node`) spans nodes, its collectives crossing
  the network (`collectives.py`). Prefill-decode disaggregation, EP inside a wider TP group
  and speculative decoding stay unmapped.
- Weight-only formats: `mxfp4` and `int4` are the model's published 4-bit artifact
  (`served_bits`; a model published otherwise stays unmapped; MLPerf's gpt-oss runs write
  `fp4` for the original MXFP4 checkpoint), and
  `int8` is 8-bit weights; where the catalog has no matmul peak at that precision the matmuls
  run at the 16-bit rate (what engines do on Hopper and MI300X: dequantise, then bf16 GEMMs).
  MXFP4 on NVIDIA Blackwell runs as its engine runs it (`models.matmul_precisions`, as the
  planner does): TensorRT-LLM with FP8 activations (W4A8), other engines in bf16.
  NVIDIA's `nvfp4` checkpoints count as `fp4` (4-bit weights and matmuls).
- KV cache at 8 bits only where the figure states an fp8 KV cache, else 16.
- `recv_interval`: the engine looks for new requests every N decode iterations (SGLang's
  --scheduler-recv-interval, as the figure's recipe sets it; `Efficiency.admission_interval`).
- `range_ratio` (the client's --random-range-ratio, as InferenceX's workflow sets it): the
  stated input and output tokens are the client's L, each request's drawn from [r L, L]
  (`planner_burst.uniform_lengths`). With `concurrency`, `num_prompts` and `request_rate =
  "inf"` the client's run is simulated as it ran (`planner_burst.simulate` with `in_flight`:
  the first `concurrency` prompts at t = 0, each next one sent as a request ends), not the
  steady closed loop: ten prompts per slot keep a run's arrivals bunched.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import re
import statistics
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, Protocol

import planner_burst
from tokenmill.economics import efficiency_data
from tokenmill.economics.model_layouts import with_layout
from tokenmill.economics.models import (
    FORMATS,
    ModelError,
    ReferenceModel,
    find_model,
    matmul_precisions,
)
from tokenmill.economics.perf_model import (
    Device,
    Efficiency,
    ModelSpec,
    Prediction,
    Workload,
    max_concurrency,
    predict,
)
from tokenmill.economics.planner import MAX_CONCURRENCY, device, pipeline
from tokenmill.fleet.catalog import Accelerator, CatalogError, find, mentions

FIGURES = Path(__file__).parent / "data" / "published_figures.toml"
ROUND2 = Path(__file__).parent / "data" / "published_figures_round2.toml"
ROUND3 = Path(__file__).parent / "data" / "published_figures_round3.toml"
ROUND4 = Path(__file__).parent / "data" / "published_figures_round4.toml"  # MoE only
ROUND5 = Path(__file__).parent / "data" / "published_figures_round5.toml"  # MoE only
ROUND6 = Path(__file__).parent / "data" / "published_figures_round6.toml"  # all held out
ROUND7 = Path(__file__).parent / "data" / "published_figures_round7.toml"  # all held out
ROUND8 = Path(__file__).parent / "data" / "published_figures_round8.toml"
# The files whose FIT halves a fit reads (planner_fit.py), each split by SPLIT_RULE. A round is
# all held out until it has been predicted once (`--all-held-out`: round 2 in
# results/planner_figures-round2-step6.json, rounds 3 and 4 in round3-step8-unseen and
# round4-step9-unseen, round 5 in round5-step10d-unseen); from then on its FIT half is fitted
# on too. Rounds 6 and 7 joined so after their unseen runs (round6-step11-unseen,
# round7-step11c-unseen), in issue 17's ninth slice; round 8 (round8-step11c-unseen,
# round8-step13-gptoss-unseen) in the tenth, once the simulator ran its FIT half's bursts of
# up to 1,600 sequences fast enough for a fit.
DEV = (FIGURES, ROUND2, ROUND3, ROUND4, ROUND5, ROUND6, ROUND7, ROUND8)
RESULTS = Path(__file__).parent / "results"
OUT = RESULTS / "planner_figures-baseline.json"  # the baseline run (issue 17, first slice)
METRICS = ("output_tokens_per_s", "ttft_ms", "tpot_ms", "latency_ms")
# (input + output) tokens/s: judged only where a source gives no output tokens/s (the Qwen
# speed benchmarks), as it is the same ratio where both are given
TOTAL = "total_tokens_per_s"
SPEEDS = ("output_tokens_per_s", TOTAL)  # the metrics that are rates, not times
BAND = 0.25  # "within +-25%": 0.75 <= predicted / published <= 1.25
MOE_LIMIT = 1.5  # issue 17: no MoE figure off by more than 1.5x
MAX_GROUP = 16  # the planner's largest tensor-parallel group (TP_DEGREES): two HGX nodes
# A client holding `concurrency` requests in flight, all sent at t = 0 with the same prompt and
# output lengths (a figure's `lengths = "fixed"`), runs in waves: the first `concurrency`
# prompts prefill together, decode together and end together, and the client sends the next
# `concurrency` as they end, into an engine as empty as at t = 0. Every wave is the first one
# over again, so one wave is simulated (`planner_burst`, the engine's token budget per
# iteration): TTFT is a whole wave's prefill, TPOT a decode without other requests' prefills
# (ATOM's 1000-token prompts at 256 in flight wait 2.5 s for a first token). Lengths that vary
# do not hold a wave together: those runs settle into the steady closed loop `predict` solves.
# When the releases that start an engine's eras (planner_fit.ERAS) came out: a figure whose engine
# names no version but was published before is of the era before. vLLM 0.11.0: 2025-10-02
# (github.com/vllm-project/vllm/releases/tag/v0.11.0; downstream upgrades from 2025-10-08,
# e.g. torch-spyre/sendnn-inference #513). vLLM 0.14.0: by 2026-01-21 (its release notes as
# dependabot quoted them bumping vLLM 0.13.0 to 0.14.0 on 2026-01-21, OpenBMB/UltraRAG #259; no
# unversioned figure is dated near it). SGLang 0.5 needs no date: every mapped SGLang figure
# names its version or was published in 2026.
RELEASED = {("vllm", (0, 11)): "2025-10-02", ("vllm", (0, 14)): "2026-01-21"}
# Bursts' lengths: log-spread 0 (every request the stated means), chosen on the FIT bursts
# before the held-out ones were predicted this way (docs/benchmarks.md, issue 17 third slice).
BURST_SPREAD = 0.0
Part = Literal["fit", "held_out"]
# Boards that carry two GPUs an engine sees as two devices, with separate memories (the
# catalog's arc-pro-b60 entry, source arc-pro-b60-dual): a figure's `count` of them is twice
# as many accelerators.
DUAL_GPU_BOARDS = ("arc pro b60 dual",)
# 4-bit weight formats a model is published in (gpt-oss's MXFP4 experts, Kimi-K2-Thinking's
# INT4 ones): the model's own artifact at its `served_bits`
PUBLISHED_4BIT = frozenset({"mxfp4", "int4"})


# --------------------------------------------------------------------------- the split

SPLIT_RULE = (
    "Strata: (source, architecture). Within a stratum, figures sorted by sha256(id); the 1st, "
    "3rd, 5th... are HELD OUT, the 2nd, 4th... FIT, so each stratum puts at most half in FIT "
    "(a stratum of one is held out). Computed over all figures, mapped or not, and frozen in "
    "tests/test_planner_figures.py before any fitting."
)


def split(figures: Iterable[Mapping[str, Any]]) -> dict[str, Part]:
    """Figure id -> "fit" or "held_out", by `SPLIT_RULE`."""
    strata: dict[tuple[str, str], list[str]] = {}
    for fig in figures:
        strata.setdefault((fig["source"], fig["architecture"]), []).append(fig["id"])
    parts: dict[str, Part] = {}
    for ids in strata.values():
        ordered = sorted(ids, key=lambda i: hashlib.sha256(i.encode()).hexdigest())
        for rank, ident in enumerate(ordered):
            parts[ident] = "held_out" if rank % 2 == 0 else "fit"
    return parts


# --------------------------------------------------------------------------- loading


def load(path: Path = FIGURES) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """(sources, figures) as the file has them."""
    doc = tomllib.loads(path.read_text("utf-8"))
    return doc["sources"], doc["figure"]


@dataclass(frozen=True)
class Mapped:
    """A figure as the planner sees it."""

    id: str
    reference: str  # models.toml id
    model: ModelSpec
    accelerator: Accelerator
    tensor_parallel: int
    replicas: int  # independent replicas the published throughput covers
    work: Workload  # one replica
    published: dict[str, float]
    judged: tuple[str, ...]  # the metrics the summaries count
    conventions: tuple[str, ...]
    engine: str | None = None  # the engine family, when the figure names one
    efficiency: Efficiency = field(default_factory=Efficiency)
    # every prompt sent at once: (prompts per replica, the engine's tokens per iteration)
    burst: tuple[int, int | None] | None = None
    # a client run at the concurrency (planner_burst.simulate's `in_flight`): (prompts per
    # replica, the engine's tokens per iteration, the client's range ratio)
    client_run: tuple[int, int | None, float] | None = None
    sharegpt: bool = False  # a burst of ShareGPT prompts (the id says so): BURST_SPREAD
    attention_dp: bool = False  # the layout the figure states (perf_model.Device)
    expert_parallel: bool = False
    stages: int = 1  # pipeline stages of `tensor_parallel` accelerators each


class EfficiencyFor(Protocol):
    def __call__(
        self, engine: str | None, vendor: str, version: tuple[int, ...] | None = None
    ) -> Efficiency: ...


def default_efficiency(
    engine: str | None, vendor: str, version: tuple[int, ...] | None = None
) -> Efficiency:
    """The baseline's choice: `Efficiency()` whatever the engine."""
    return Efficiency()


@dataclass(frozen=True)
class Unmapped:
    id: str
    reason: str


def map_figure(
    fig: Mapping[str, Any], *, experts: bool = True,
    efficiency: EfficiencyFor = default_efficiency,
) -> Mapped | Unmapped:  # fmt: skip
    """The planner's inputs for one figure, or why there are none: the reference model with its
    layout (`experts`: with its routed experts' shape), the efficiency for its engine."""
    ident = fig["id"]
    name = re.sub(r"\s*\(.*\)\s*", " ", fig["model"]).strip()
    try:
        ref = find_model(name)
    except ModelError:
        return Unmapped(ident, f"no reference model for {fig['model']!r} in models.toml")
    try:
        acc = find(fig["accelerator"])
    except CatalogError:
        return Unmapped(ident, f"no catalog accelerator for {fig['accelerator']!r}")
    count, tp, dp, ep = fig["count"], fig.get("tp"), fig.get("dp"), fig.get("ep")
    dies = 2 if any(mentions(fig["accelerator"], b) for b in DUAL_GPU_BOARDS) else 1
    count *= dies  # `count` is boards; an engine sees each board's two GPUs
    if ep == 1:  # EP1: every expert sliced over the TP group, the plain TP layout
        ep = None
    attention_dp = bool(fig.get("attention_dp"))
    replicas = 1 if attention_dp else dp or 1  # with DP attention, dp counts attention ranks
    if re.search(r"\bPD\b|disaggregat", fig.get("engine", "")):
        return Unmapped(ident, "prefill and decode on separate instances (PD disaggregation): "
                               "a planner replica does both")  # fmt: skip
    stages = int(fig.get("pp") or 1)
    if count > MAX_GROUP * replicas * stages:
        why = f"a planner replica is a tensor-parallel group of at most {MAX_GROUP}"
        return Unmapped(ident, f"one replica on {count // replicas} accelerators: {why}")
    if ep and ep != (tp or count // replicas):
        return Unmapped(ident, f"EP{ep} inside TP{tp}: experts both sliced and spread over a "
                               "group is not a layout the planner has")  # fmt: skip
    if fig.get("speculative"):
        return Unmapped(ident, f"speculative decoding ({fig['speculative']}) is not modelled")
    missing = [k for k in ("input_tokens", "output_tokens") if k not in fig]
    if missing:
        return Unmapped(ident, f"{' and '.join(missing)} not stated by the source "
                               "(the figure's notes say so)")  # fmt: skip
    published = {m: float(fig[m]) for m in METRICS if m in fig}
    if TOTAL in fig and "output_tokens_per_s" not in fig:
        published[TOTAL] = float(fig[TOTAL])
    if not published:
        return Unmapped(ident, "no metric the planner predicts (output tokens/s, TTFT, TPOT, "
                               "latency) for one replica")  # fmt: skip
    conventions: list[str] = [f"{count // dies} dual cards: {count} GPUs"] if dies > 1 else []
    if tp is None:
        tp = count // replicas // stages
        conventions.append(f"TP not stated: one group of {tp} GPUs")
    try:
        spec, notes = _spec(ref, fig, acc)
    except ModelError as exc:
        return Unmapped(ident, str(exc))
    spec = with_layout(ref.id, spec, experts=experts)
    conventions += notes
    engine = efficiency_data.engine_family(fig.get("engine"), acc.vendor)
    eff = efficiency(fig.get("engine") if engine else None, acc.vendor,
                     figure_version(fig, engine))  # fmt: skip
    if "recv_interval" in fig:  # the engine looks for new requests every N decode iterations
        eff = replace(eff, admission_interval=int(fig["recv_interval"]))
        conventions.append(f"new requests taken every {fig['recv_interval']} decode iterations "
                           "(stated)")  # fmt: skip
    n, m = round(fig["input_tokens"]), round(fig["output_tokens"])
    if n + m > spec.max_context:
        return Unmapped(ident, f"{n} + {m} tokens exceed {ref.name}'s context {spec.max_context}")
    group = (pipeline(acc, tp, stages, spec.compute_precision) if stages > 1
             else device(acc, tp, spec.compute_precision))  # fmt: skip
    dev = replace(group, attention_dp=attention_dp, expert_parallel=bool(ep))
    if (attention_dp or ep) and spec.moe is None:
        return Unmapped(ident, f"{dev.layout} needs the experts' shape of {ref.id}")
    if attention_dp or ep:
        conventions.append(f"layout {dev.layout} (stated)")
    c, kind = _concurrency(fig, spec, dev, acc, (n, m), replicas, eff)
    conventions.append(kind)
    judged = tuple(k for k in published if not (k == "ttft_ms" and _saturated(fig)))
    burst = client_run = None
    if _client_run(fig):
        budget, why = engine_token_budget(fig.get("engine", ""), acc)
        ratio = float(fig["range_ratio"])
        client_run = (-(-int(fig["num_prompts"]) // replicas), budget, ratio)
        conventions.append(f"the client's run simulated: {client_run[0]} prompts, {c} in flight "
                           f"from t = 0, lengths from [{ratio} L, L] ({why})")  # fmt: skip
    elif fig.get("request_rate") == "inf" and "num_prompts" in fig and "concurrency" not in fig:
        budget, why = engine_token_budget(fig.get("engine", ""), acc)
        burst = (-(-int(fig["num_prompts"]) // replicas), budget)
        conventions.append(f"a burst of {burst[0]} prompts simulated, at most {c} running, "
                           f"{why}")  # fmt: skip
    elif "batch" in fig and not _saturated(fig):
        burst = (c, None)  # a static batch: prefilled together, decoded together
        conventions.append(f"simulated as {c} prompts prefilled in one iteration")
    elif "concurrency" in fig and c > 1 and fig.get("lengths") == "fixed":
        budget, why = engine_token_budget(fig.get("engine", ""), acc)
        burst = (c, budget)  # one wave of a closed loop (the note above BURST_SPREAD)
        conventions.append(f"fixed lengths (stated): waves of {c} prompts, one simulated "
                           f"({why})")  # fmt: skip
    return Mapped(ident, ref.id, spec, acc, tp, replicas, Workload(n, m, c), published, judged,
                  tuple(conventions), engine, eff, burst, client_run,
                  "sharegpt" in ident.lower(), attention_dp, bool(ep), stages)  # fmt: skip


def _client_run(fig: Mapping[str, Any]) -> bool:
    """Whether a figure states its client's run whole: `concurrency` in flight of
    `num_prompts`, all ready (`request_rate = "inf"`), lengths drawn with a `range_ratio`."""
    return (fig.get("request_rate") == "inf" and "concurrency" in fig
            and "num_prompts" in fig and "range_ratio" in fig)  # fmt: skip


def _modelopt_checkpoint(fig: Mapping[str, Any]) -> bool:
    """NVIDIA's quantized checkpoints (nvidia/...-FP8, -FP4) are made with TensorRT Model
    Optimizer (their model cards say so), whose export quantizes the KV cache to FP8 unless told
    otherwise (examples/llm_ptq/hf_ptq.py: --kv_cache_qformat, "default to fp8 if not
    provided", NVIDIA/TensorRT-Model-Optimizer @ 05ab9484), and engines left at their "auto"
    KV dtype take the checkpoint's. Added after round 8's unseen run, where 12 TensorRT-LLM
    figures on such checkpoints ran 1.3-2.6x faster than predicted with a 16-bit cache."""
    quantized = fig.get("precision") in ("fp8", "fp4", "nvfp4")
    return quantized and str(fig["model"]).lower().startswith("nvidia/")


def _spec(
    ref: ReferenceModel, fig: Mapping[str, Any], acc: Accelerator
) -> tuple[ModelSpec, list[str]]:
    precision = fig["precision"]
    notes = []
    if precision == "nvfp4":  # NVIDIA's FP4 checkpoints: FP4 matmuls on Blackwell
        precision = "fp4"
        notes.append("nvfp4 as fp4: every weight at 4 bits (the block scales and the layers "
                     "the checkpoint keeps at FP8 are not counted)")  # fmt: skip
    kv_bits = 8.0 if fig.get("kv_precision") == "fp8" else 16.0
    notes += [] if kv_bits == 16 else ["fp8 KV cache (stated)"]
    if "kv_precision" not in fig and _modelopt_checkpoint(fig):
        kv_bits = 8.0
        notes.append("fp8 KV cache: NVIDIA's ModelOpt checkpoint carries FP8 KV scales")
    # MLPerf's gpt-oss submissions state fp4 for the original MXFP4 checkpoint
    mxfp4 = precision == "fp4" and ref.default_precision == "mxfp4"
    artifact = (precision in PUBLISHED_4BIT or mxfp4) and ref.served_bits is not None
    fmt = ref.default_precision if artifact else precision
    spec = ref.spec(fmt, kv_bits=kv_bits)
    if artifact:
        notes.append(f"{precision}: the published artifact, {spec.weight_bits:g} bits per weight")
    fp4 = acc.tflops("fp4") is not None
    choices = matmul_precisions(fmt, acc.vendor, fp4, fig.get("engine"))
    compute = next((p for p in choices if acc.tflops(p)), None)
    if compute is None or precision == "int8":  # int8: weight-only (Baseten's TRT-LLM setup)
        compute = next(p for p in ("bf16", "fp16") if acc.tflops(p))
    if compute != FORMATS[fmt].compute[0] or precision == "int8":
        how = "W4A8: fp8 activations" if compute == "fp8" else "weight-only"
        notes.append(f"{precision} weights, matmuls at {compute} ({how})")
    return replace(spec, compute_precision=compute), notes


def figure_version(fig: Mapping[str, Any], family: str | None) -> tuple[int, ...] | None:
    """The engine release a figure ran: the one its engine names; else, when it was published
    before a release that starts an era (`RELEASED`), the release before it (it cannot have run
    a later one); else None, which counts as the newest."""
    version = efficiency_data.engine_version(fig.get("engine"))
    published = str(fig.get("date", ""))
    if version is not None or not published[:1].isdigit():
        return version
    for (name, release), day in sorted(RELEASED.items()):  # the first era it predates
        if name == family and published < day:
            return (*release[:-1], release[-1] - 1)
    return None


def _saturated(fig: Mapping[str, Any]) -> bool:
    stated = ("concurrency", "batch", "request_rate")
    if "concurrency" in fig:  # the client holds the rest back: its timers start on sending
        return False
    if fig.get("offline") or fig.get("request_rate") == "inf":
        return True
    return not any(k in fig for k in stated)


def engine_batch_cap(engine: str, acc: Accelerator) -> tuple[int, str]:
    """Requests an engine runs at once by default, and why.

    vLLM >= 0.9 (EngineArgs.get_batch_defaults, vllm-project/vllm PR #17885, May 2025):
    max_num_seqs 1024 on a device of >= 70 GiB that is not an A100, else 256. Older vLLM (V0,
    and the undated ROCm builds of 2024 to January 2025): max_num_seqs 256. SGLang sizes its
    running batch from the KV pool, TensorRT-LLM's benchmark from memory: no cap but the
    planner's bound."""
    if _vllm_v1(engine):
        big = _big(acc)
        return (1024, "vLLM >= 0.9 default max_num_seqs 1024") if big else (
            256, "vLLM >= 0.9 default max_num_seqs 256 (device < 70 GiB)")  # fmt: skip
    if "vllm" in engine.lower():
        return 256, "vLLM V0 default max_num_seqs 256"
    return MAX_CONCURRENCY, f"no engine batch cap stated: bounded at {MAX_CONCURRENCY}"


def engine_token_budget(engine: str, acc: Accelerator) -> tuple[int | None, str]:
    """Tokens an engine puts in one iteration by default (chunked prefill), and why.

    vLLM >= 0.9 serving (the same PR #17885): max_num_batched_tokens 8192 on a device of >= 70
    GiB that is not an A100, else 2048. SGLang: chunked_prefill_size 8192 (server_args.py, for
    80 GB-class GPUs). TensorRT-LLM: max_num_tokens 8192 (its build default). vLLM V0 without
    chunked prefill: whole prompts (None)."""
    if _vllm_v1(engine):
        return (8192, "vLLM >= 0.9 max_num_batched_tokens 8192") if _big(acc) else (
            2048, "vLLM >= 0.9 max_num_batched_tokens 2048 (device < 70 GiB)")  # fmt: skip
    lowered = engine.lower()
    if "sglang" in lowered or "tensorrt" in lowered:
        return 8192, "8192 tokens per iteration (SGLang, TensorRT-LLM defaults)"
    return None, "whole prompts per iteration (vLLM V0 without chunked prefill)"


def _vllm_v1(engine: str) -> bool:
    version = re.search(r"v?(\d+)\.(\d+)", engine)
    return ("vllm" in engine.lower() and version is not None
            and (int(version[1]), int(version[2])) >= (0, 9))  # fmt: skip


def _big(acc: Accelerator) -> bool:
    return acc.memory_gb * 1e9 >= 70 * 2**30 and acc.id != "a100"


def _kv_cap(spec: ModelSpec, dev: Device, n: int, m: int) -> int:
    return max(1, max_concurrency(spec, dev, Workload(n, m, 1)))


def _concurrency(
    fig: Mapping[str, Any], spec: ModelSpec, dev: Device, acc: Accelerator,
    lengths: tuple[int, int], replicas: int, eff: Efficiency,
) -> tuple[int, str]:  # fmt: skip
    n, m = lengths
    if "concurrency" in fig:
        return int(fig["concurrency"]), f"closed loop at concurrency {fig['concurrency']}"
    if "batch" in fig and not _saturated(fig):
        return int(fig["batch"]), f"static batch of {fig['batch']} as concurrency"
    cap, why = engine_batch_cap(fig.get("engine", ""), acc)
    kv = _kv_cap(spec, dev, n, m)
    prompts = -(-int(fig["num_prompts"]) // replicas) if "num_prompts" in fig else None
    limits = [x for x in (prompts, cap, kv) if x is not None]
    top = min(limits)
    where = f"{why}; paged KV fits {kv}" + (f"; {prompts} prompts" if prompts else "")
    rate = fig.get("request_rate")
    if isinstance(rate, int | float):
        wanted, lo, hi = rate / replicas, 1, top  # request rate grows with concurrency
        while lo < hi:
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if _rate(spec, dev, eff, n, m, mid) >= wanted else (mid + 1, hi)
        return lo, f"open loop at {rate}/s: concurrency {lo} reaches it ({where})"
    return top, f"saturated: concurrency {top} = min of ({where})"


def _rate(spec: ModelSpec, dev: Device, eff: Efficiency, n: int, m: int, c: int) -> float:
    return predict(spec, dev, eff, Workload(n, m, c)).requests_per_s


# --------------------------------------------------------------------------- predicting


def predict_published(
    model: ModelSpec, gpu: str, count: int, work: Workload, eff: Efficiency | None = None,
    *, attention_dp: bool = False, expert_parallel: bool = False, stages: int = 1,
) -> tuple[Device, Prediction, float]:  # fmt: skip
    """The planner's prediction for a published figure, as `planner_validation.py` makes it:
    `count` catalog GPUs as one group (tensor parallel unless a layout is given), at `eff`
    (default `Efficiency()`). Returns the group, the prediction and the mean request latency
    (TTFT + (output - 1) x TPOT)."""
    acc, precision = find(gpu), model.compute_precision
    group = pipeline(acc, count, stages, precision) if stages > 1 else device(acc, count, precision)
    dev = replace(group, attention_dp=attention_dp, expert_parallel=expert_parallel)
    p = predict(model, dev, eff or Efficiency(), work)
    return dev, p, p.ttft_s + (work.output_tokens - 1) * p.tpot_s


def evaluate(fig: Mapped) -> dict[str, Any]:
    dev, p, latency = predict_published(fig.model, fig.accelerator.id, fig.tensor_parallel,
                                        fig.work, fig.efficiency, attention_dp=fig.attention_dp,
                                        expert_parallel=fig.expert_parallel,
                                        stages=fig.stages)  # fmt: skip
    predicted = {"output_tokens_per_s": p.output_tokens_per_s * fig.replicas,
                 "ttft_ms": p.ttft_s * 1000, "tpot_ms": p.tpot_s * 1000,
                 "latency_ms": latency * 1000}  # fmt: skip
    w = fig.work
    total_per_output = (w.input_tokens + w.output_tokens) / w.output_tokens
    requests, in_flight, budget = None, None, None
    if fig.client_run is not None:
        prompts, budget, ratio = fig.client_run
        requests = planner_burst.uniform_lengths(w.input_tokens, w.output_tokens, prompts, ratio)
        in_flight = w.concurrency
        # the lengths drawn, not L
        total_per_output = sum(n + m for n, m in requests) / sum(m for _, m in requests)
    elif fig.burst is not None:
        prompts, budget = fig.burst
        spread = BURST_SPREAD if fig.sharegpt else 0.0  # random datasets: fixed lengths
        requests = planner_burst.lengths(w.input_tokens, w.output_tokens, prompts, spread)
    if requests is not None:
        b = planner_burst.simulate(fig.model, dev, fig.efficiency, requests, w.concurrency,
                                   budget, in_flight)  # fmt: skip
        predicted |= {"output_tokens_per_s": b.output_tokens_per_s * fig.replicas,
                      "ttft_ms": b.ttft_s * 1000, "tpot_ms": b.tpot_s * 1000,
                      "latency_ms": b.latency_s * 1000}  # fmt: skip
    predicted[TOTAL] = predicted["output_tokens_per_s"] * total_per_output
    metrics = {
        k: {"predicted": predicted[k], "published": v, "ratio": predicted[k] / v,
            "judged": k in fig.judged}
        for k, v in fig.published.items()
    }  # fmt: skip
    judged = [x["ratio"] for x in metrics.values() if x["judged"]]
    worst = max(judged, key=_miss) if judged else None
    return {
        "reference_model": fig.reference, "weight_bits": fig.model.weight_bits,
        "kv_bits": fig.model.kv_bits, "compute_precision": fig.model.compute_precision,
        "device": dev.name, "layout": dev.layout_kind, "accelerator": fig.accelerator.id,
        "vendor": fig.accelerator.vendor, "tensor_parallel": fig.tensor_parallel,
        "replicas": fig.replicas, "workload": asdict(fig.work),
        "engine_family": fig.engine, "efficiency": asdict(fig.efficiency),
        "fits_memory": p.fits_memory, "conventions": list(fig.conventions),
        "metrics": metrics, "worst_ratio": worst,
        "within": worst is not None and _within(worst),
    }  # fmt: skip


def _miss(ratio: float) -> float:
    return abs(math.log(ratio))


def _within(ratio: float) -> bool:
    return 1 - BAND <= ratio <= 1 + BAND


# --------------------------------------------------------------------------- summaries


def tp_bucket(tp: int) -> str:
    return "TP1" if tp == 1 else "TP2-4" if tp <= 4 else "TP8+"


def summarise(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Share within +-25% (figures: every judged metric within; comparisons: each metric),
    median ratio, median speed ratio (predicted / published speed: the throughput ratio, the
    inverse of a time ratio; > 1 means too fast, so misses in opposite metrics do not cancel),
    the worst comparisons; by architecture, TP degree and vendor."""

    def block(part: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        pairs = [(r["id"], k, x["ratio"]) for r in part for k, x in r["metrics"].items()
                 if x["judged"]]  # fmt: skip
        ratios = [ratio for _, _, ratio in pairs]
        speeds = [x if k in SPEEDS else 1 / x for _, k, x in pairs]
        worst = sorted(pairs, key=lambda t: -_miss(t[2]))[:3]
        return {
            "figures": len(part),
            "figures_within": sum(r["within"] for r in part),
            "comparisons": len(pairs),
            "comparisons_within": sum(_within(x) for x in ratios),
            "median_ratio": statistics.median(ratios) if ratios else None,
            # > 1: the planner is too fast (throughput as is, times inverted)
            "median_speed_ratio": statistics.median(speeds) if speeds else None,
            "ratio_range": [min(ratios), max(ratios)] if ratios else None,
            "worst": [{"id": i, "metric": k, "ratio": x} for i, k, x in worst],
        }

    out: dict[str, Any] = {"all": block(rows)}
    for label, key in (("architecture", lambda r: r["architecture"]),
                       ("tp", lambda r: tp_bucket(r["tensor_parallel"])),
                       ("vendor", lambda r: r["vendor"])):  # fmt: skip
        groups: dict[str, list[Mapping[str, Any]]] = {}
        for r in rows:
            groups.setdefault(key(r), []).append(r)
        out[label] = {g: block(groups[g]) for g in sorted(groups)}
    moe = [r for r in rows if r["architecture"] == "moe" and r["worst_ratio"] is not None]
    out["moe_beyond_1.5x"] = sum(not 1 / MOE_LIMIT <= r["worst_ratio"] <= MOE_LIMIT for r in moe)
    return out


def run(
    path: Path = FIGURES, *, experts: bool = True, efficiency: EfficiencyFor = default_efficiency,
    all_held_out: bool = False,
) -> dict[str, Any]:  # fmt: skip
    """Every figure of `path` predicted; `all_held_out`: a file no fit has seen (round 2)."""
    sources, figures = load(path)
    parts: dict[str, Part] = (
        {f["id"]: "held_out" for f in figures} if all_held_out else split(figures)
    )
    rows: list[dict[str, Any]] = []
    for fig in figures:
        base = {"id": fig["id"], "source": fig["source"], "url": fig["url"],
                "architecture": fig["architecture"], "part": parts[fig["id"]],
                "model": fig["model"], "accelerator_published": fig["accelerator"],
                "engine": fig.get("engine")}  # fmt: skip
        mapped = map_figure(fig, experts=experts, efficiency=efficiency)
        if isinstance(mapped, Unmapped):
            rows.append(base | {"mapped": False, "reason": mapped.reason})
        else:
            rows.append(base | {"mapped": True} | evaluate(mapped))
    done = [r for r in rows if r["mapped"]]
    return {
        "figures_file": str(path.resolve().relative_to(Path(__file__).resolve().parents[1])),
        "figures_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "model": {"moe_shapes": experts, "collectives": True},
        "split": {"rule": "every figure held out" if all_held_out else SPLIT_RULE,
                  "held_out": sorted(i for i, p in parts.items() if p == "held_out"),
                  "fit": sorted(i for i, p in parts.items() if p == "fit")},
        "unmapped": [{"id": r["id"], "part": r["part"], "reason": r["reason"]}
                     for r in rows if not r["mapped"]],
        "summary": {"held_out": summarise([r for r in done if r["part"] == "held_out"]),
                    "fit": summarise([r for r in done if r["part"] == "fit"]),
                    "all": summarise(done)},
        "rows": rows,
        "sources": {k: {"title": v["title"], "url": v["url"], "date": v["date"]}
                    for k, v in sources.items()},
    }  # fmt: skip


# --------------------------------------------------------------------------- report

_NAMES = {"output_tokens_per_s": "out tok/s", "ttft_ms": "TTFT ms", "tpot_ms": "TPOT ms",
          "latency_ms": "latency ms", TOTAL: "total tok/s"}  # fmt: skip


def _print(results: Mapping[str, Any]) -> None:
    print("| part | figure | model | device | workload (in/out/c) | metric | planner | "
          "published | ratio |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results["rows"]:
        if not r["mapped"]:
            continue
        w = r["workload"]
        for k, x in r["metrics"].items():
            mark = "" if x["judged"] else " (not judged)"
            print(f"| {r['part']} | {r['id']} | {r['reference_model']} | "
                  f"{r['replicas']} x {r['device']} | {w['input_tokens']}/{w['output_tokens']}/"
                  f"{w['concurrency']} | {_NAMES[k]}{mark} | {x['predicted']:,.1f} | "
                  f"{x['published']:,.1f} | {x['ratio']:.2f} |")  # fmt: skip
    print("\n| set | group | figures within ±25% | comparisons within | median ratio | "
          "median speed ratio | range |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for part in ("held_out", "fit", "all"):
        s = results["summary"][part]
        groups = [("all", s["all"])] + [(g, b) for cat in ("architecture", "tp", "vendor")
                                        for g, b in s[cat].items()]  # fmt: skip
        for group, b in groups:
            lo, hi = b["ratio_range"] or (math.nan, math.nan)
            median, speed = (math.nan if x is None else x
                             for x in (b["median_ratio"], b["median_speed_ratio"]))  # fmt: skip
            print(f"| {part} | {group} | {b['figures_within']} of {b['figures']} | "
                  f"{b['comparisons_within']} of {b['comparisons']} | {median:.2f} | "
                  f"{speed:.2f} | {lo:.2f}-{hi:.2f} |")  # fmt: skip
    print("\nunmapped:")
    for u in results["unmapped"]:
        print(f"- {u['id']} ({u['part']}): {u['reason']}")


def efficiencies_from(
    choice: str, min_figures: int = 0
) -> tuple[EfficiencyFor, dict[str, Any]]:  # fmt: skip
    """`default`: `Efficiency()` for every figure (the baseline); `data`: the packaged
    `economics/data/efficiencies.toml` by engine family and vendor; else a file of that form.
    Entries fitted on fewer than `min_figures` figures are left out (the default entry never)."""
    if choice == "default":
        return default_efficiency, {"efficiencies": "perf_model.Efficiency() for every figure"}
    path = Path(choice) if choice != "data" else None
    entries = (efficiency_data.load(path.read_text("utf-8")) if path is not None
               else efficiency_data.packaged())  # fmt: skip
    entries = [e for e in entries if e.engine == efficiency_data.ANY
               or len(e.fitted_on) >= min_figures]  # fmt: skip

    def pick(engine: str | None, vendor: str, version: tuple[int, ...] | None = None) -> Efficiency:
        return efficiency_data.efficiency_for(engine, vendor, entries, version)

    where = str(path) if path is not None else "src/tokenmill/economics/data/efficiencies.toml"
    described = [{"id": e.id, "engine": e.engine, "vendor": e.vendor, "label": e.label,
                  "source": e.source, "values": dict(e.values)} for e in entries]  # fmt: skip
    return pick, {"efficiencies": where, "min_figures": min_figures,
                  "efficiency_entries": described}  # fmt: skip


BANDS = (
    Path(__file__).parents[1]
    / "src"
    / "tokenmill"
    / "economics"
    / "data"
    / ("validation_bands.toml")
)


def speed_ratio(row: Mapping[str, Any]) -> float:
    """Predicted / published speed on a row's worst judged metric (times inverted)."""
    judged = [(k, x["ratio"]) for k, x in row["metrics"].items() if x["judged"]]
    metric, ratio = max(judged, key=lambda kx: _miss(kx[1]))
    return ratio if metric in SPEEDS else 1 / ratio


def write_bands(runs: Sequence[Mapping[str, Any]], out: Path = BANDS) -> None:
    """The held-out rows of `runs` (one per figures file) as `economics/planner_band.py` reads
    them."""
    names = ", ".join(f"{r['figures_file']} run {r['step']} ({r['run_info'].get('when', '')})"
                      for r in runs)  # fmt: skip
    lines = [
        "# Held-out validation of the performance model, by kind of configuration: what",
        "# economics/planner_band.py turns into the band a planner option carries. Written by",
        "# benchmarks/planner_figures.py --write-bands; do not edit by hand.",
        "# speed_ratio: predicted / published speed on the figure's worst judged metric",
        "# (throughput as is, times inverted; > 1: the planner was too fast).",
        "schema_version = 1",
        f'source = "held-out figures of {names}"',
        "",
    ]
    for r in (row for run in runs for row in run["rows"]):
        if r["part"] != "held_out" or not r["mapped"]:
            continue
        lines += ["[[figure]]", f'id = "{r["id"]}"', f'architecture = "{r["architecture"]}"',
                  f'tp = {r["tensor_parallel"]}', f'vendor = "{r["vendor"]}"',
                  f'engine = "{r["engine_family"] or "unknown"}"',
                  f'concurrency = {r["workload"]["concurrency"]}',
                  f"speed_ratio = {speed_ratio(r):.4f}", f'layout = "{r["layout"]}"',
                  f'accelerator = "{r["accelerator"]}"',
                  ""]  # fmt: skip
    out.write_text("\n".join(lines))


def band_table(runs: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """The band a planner option of each kind would carry, from the runs' held-out rows."""
    from tokenmill.economics import planner_band

    rows = (r for run in runs for r in run["rows"])
    figures = [planner_band.Validated(r["id"], r["architecture"], r["tensor_parallel"],
                                      r["vendor"], r["workload"]["concurrency"], speed_ratio(r),
                                      r["layout"])
               for r in rows if r["mapped"] and r["part"] == "held_out"]  # fmt: skip
    table = {}
    for arch in ("dense", "moe"):
        for tp in (1, 2, 8):
            for vendor in ("NVIDIA", "AMD", "Huawei", "Intel"):
                b = planner_band.band(arch, tp, vendor, 64, figures=figures)
                table[f"{arch}, {planner_band.tp_bucket(tp)}, {vendor}"] = b.text()
    return table


def main() -> None:
    global BURST_SPREAD  # a sensitivity run sets it: evaluate() reads it
    from tokenmill.bench.report import run_info  # the results files' common head

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--figures", type=Path, default=FIGURES)
    ap.add_argument("--all-held-out", action="store_true",
                    help="every figure of --figures is held out (no fit saw it)")  # fmt: skip
    ap.add_argument("--step", default="current",
                    help="names the run: writes results/planner_figures-STEP.json")  # fmt: skip
    ap.add_argument("--out", type=Path, help="write here instead")
    ap.add_argument("--efficiencies", default="data",
                    help="default | data | PATH to an efficiencies TOML")  # fmt: skip
    ap.add_argument("--min-figures", type=int, default=0,
                    help="leave out the entries fitted on fewer figures than this")  # fmt: skip
    ap.add_argument("--burst-spread", type=float, default=BURST_SPREAD,
                    help="log-spread of a burst's lengths (0: all at the means; "
                         "planner_burst.lengths)")  # fmt: skip
    ap.add_argument("--no-moe-shapes", action="store_true",
                    help="ignore the routed experts' shapes (the model before issue 17's MoE "
                         "step)")  # fmt: skip
    ap.add_argument(
        "--write-bands",
        action="store_true",
        help="also write the held-out rows to economics/data/validation_bands.toml",
    )
    ap.add_argument(
        "--bands-with",
        type=Path,
        nargs="*",
        default=[],
        help="with --write-bands: the held-out rows of these earlier results files too",
    )
    args = ap.parse_args()
    if args.step == "baseline" and args.out is None:
        ap.error("the baseline run is kept as it is; name another --step")
    BURST_SPREAD = args.burst_spread
    pick, described = efficiencies_from(args.efficiencies, args.min_figures)
    results = (
        {"run_info": run_info(), "step": args.step, "burst_spread": BURST_SPREAD}
        | described
        | run(
            args.figures.resolve(),
            experts=not args.no_moe_shapes,
            efficiency=pick,
            all_held_out=args.all_held_out,
        )
    )
    _print(results)
    out = args.out or RESULTS / f"planner_figures-{args.step}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.write_bands:
        runs = [results, *(json.loads(p.read_text()) for p in args.bands_with)]
        write_bands(runs)
        results["bands"] = band_table(runs)
    out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
