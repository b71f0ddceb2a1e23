"""How fast a model runs on a device: a roofline model of prefill and decode, calibrated by
measured runs.

Prefill is compute-bound: each prompt token costs 2 x active_params FLOPs in the matmuls, and
causal attention 4 x layers x heads x head_dim FLOPs per (query, earlier token) pair; a prefill
is never faster than reading the weights once. Decode is memory-bound: each step reads the
weights (for a mixture of experts, the experts the batch touches) and every sequence's KV cache
to make one token per sequence, plus each sequence's matmul and attention FLOPs and a fixed
step overhead. These terms add up: the kernels of a step run one after another. The engine's
CPU work per scheduled sequence (`sequence_overhead_s`) runs beside them, and a step takes the
longer of the two.

Concurrency, `c` requests in flight on an engine with continuous batching (a closed loop: a new
request arrives as another ends): a request's prefill runs in one iteration with the others'
decode tokens, and every decode iteration carries on average (c - 1) / (output + 1) other
prefills, which is what concurrency does to TPOT. Both are engine iterations with a token budget
(`iteration_cost`: prefill chunks and decode tokens in one batch, the weights read once), the
same iterations the fleet simulator runs one by one (`ReplicaIterations`), so a closed loop
simulated on them delivers the tokens/s `predict` says (tests/test_simulator.py, within 5%).
What a request waits for before its prefill depends on when it arrives. At a random moment (open
traffic, or an engine that spreads a prefill over several iterations) it finds a decode
iteration running and the prefills of requests that arrived just before it: a queue in front of
the engine's prefill work, solved by mean value analysis of the closed loop. Between iterations
(a closed loop on an engine that prefills a prompt in one iteration, such as llama.cpp below its
batch size: a request is sent as another ends) it waits only for the decode iteration just begun
and prefills together with those that arrived in the same iteration. `random_arrival_share`
mixes the two. An engine that looks for new requests only every N decode iterations (SGLang's
--scheduler-recv-interval, `admission_interval`) keeps a request that arrives while others
decode waiting (N - 1) / 2 iterations more on average; the simulator runs the looks. TTFT
and TPOT are means; a request's latency is R = TTFT + (output - 1) x TPOT,
and a replica delivers c x output / R tokens per second.

Peaks come from the hardware catalog; `Efficiency` says how much of each peak an engine really
reaches. The matmuls run at the weights' format (FP8 weights: the FP8 peak); attention runs at
the 16-bit peak whatever that format (`Device.attention_flops`): FlashAttention, FlashInfer and
FlashMLA compute in bf16 unless an engine is told to use an FP8 attention kernel.

With the prefill's binding roof and the queue length held fixed, every predicted time is
linear in the inverse efficiencies and the overheads, so `calibrate` fits them to measured runs
by least squares on relative errors (TTFT, TPOT and request latency), each efficiency in (0, 1]
and each overhead >= 0, and refits until roof and queue settle; the arrival share is searched
on a grid. Prefill has a fixed, a linear (matmuls) and a quadratic (attention) part:
calibrating it needs runs at three or more prompt lengths.

Tensor parallelism: a group of `Device.count` accelerators adds up its peaks, and every
iteration pays two all-reduces per layer of its activations over the node's interconnect
(`collectives.py`: ring cost 2 (n - 1) / n x size / link bandwidth, plus a latency per
collective). Every iteration also pays kernel overheads per layer (`layer_overhead_s`:
launches and synchronisation that a batch-1 step on a TP8 group exposes). A group holds a KV
head on every device even when the model has fewer (vLLM and TensorRT-LLM replicate KV heads
over a TP group wider than their number; a latent-attention cache is whole on every device),
so its KV cache is read and stored `kv_replication` times. A mixture of experts with a known
shape (`ModelSpec.moe`, `moe.py`) reads its dense weights and the experts its batch touches, at
`expert_bandwidth`, runs the expert matmuls at `expert_compute` (both None, the dense rates,
in every fitted entry: fitted on older engines they settled far below, and newer engines ran
several times faster), and pays `expert_overhead_s` per touched expert and MoE layer in every
iteration: the grouped GEMMs' cost per expert that does not shrink when a TP group splits each
expert into slivers. These terms are not fitted by `calibrate` (it holds them at
`Efficiency()`'s values); `efficiency_data.py` has them per engine, accelerator family and
release, fitted on published figures.

Layouts beyond tensor parallelism (`Device.attention_dp`, `expert_parallel`; `parallel.py`):
data-parallel attention keeps each sequence's KV cache once and the dense weights on every
device; whole experts spread over the group pay the grouped GEMMs' cost per expert once, at
the pace of the busiest device, with all-to-alls when attention is data parallel. KV memory
is paged (`kv_per_request`: prompt and half the output in 16-token blocks); a layer with a
sliding window reads and keeps only its window (`ModelSpec.attended`).

A group wider than a node (`Device.nodes`) all-reduces hierarchically and sends the share of
its all-to-alls bound for other nodes over the network (`collectives.py`).

Pipeline parallelism (`Device.stages`): a microbatch passes every stage in turn, so its
iteration covers all layers at one stage's speed, plus a hop per later stage; the replica keeps
one microbatch per stage in flight (`microbatches`), the memory of every stage together.

Not modelled: preemption when the paged cache runs out, speculative decoding, pipeline bubbles
(a microbatch waiting for a stage another holds). Embedding and LM-head weights count as ordinary
matmul weights, which overstates prefill FLOPs by their share (13% for Llama-3.1-8B);
calibration absorbs it for the model it was fitted on.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from tokenmill.core.contexts import Contexts, SameContexts, contexts_of
from tokenmill.economics.collectives import (
    ACTIVATION_BYTES,
    ALL_REDUCES_PER_LAYER,
    PCIE4_BYTES_PER_S,
    all_reduce_per_token_s,
)
from tokenmill.economics.moe import MoeShape, touched_experts
from tokenmill.economics.parallel import (
    all_to_all_per_token_s,
    attention_imbalance,
    expert_imbalance,
)
from tokenmill.economics.perf_terms import PARAMS as _PARAMS
from tokenmill.economics.perf_terms import RATES as _RATES
from tokenmill.economics.perf_terms import Cost as _Cost
from tokenmill.economics.perf_terms import at_rate as _at_rate
from tokenmill.economics.perf_terms import fixed as _fixed
from tokenmill.economics.perf_terms import term as _term

# Share of device memory for weights and KV cache; the rest holds activations, the runtime and
# fragmentation (vLLM's default gpu_memory_utilization is 0.9).
USABLE_MEMORY = 0.9
# Paged KV: engines allocate the cache in blocks as a sequence grows (vLLM's default block is
# 16 tokens; SGLang's pages are 1 token, TensorRT-LLM's 32 or 64: 16 is the middle of them).
KV_BLOCK_TOKENS = 16
_RIDGE = 1e-3  # pull toward the defaults, relative to each parameter's own weight in the data


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """What the roofline needs to know of a model."""

    name: str
    params: float  # total parameters (count, not billions): what must sit in memory
    active_params: float  # parameters used per token (< params for mixture-of-experts)
    layers: int
    attention_heads: int
    kv_heads: int
    head_dim: int
    weight_bits: float  # bits per weight as stored (16 bf16, 8 fp8, ~4.5-5 GGUF Q4)
    kv_bits: float = 16.0
    compute_precision: str = "bf16"  # the catalog's tflops_dense key the matmuls run at
    max_context: int = 8192
    hidden_size: int | None = None  # None: attention_heads x head_dim
    moe: MoeShape | None = None  # the routed experts, when the shape is known
    # Sliding-window attention (gpt-oss): `window_layers` of the layers attend to, and keep
    # in the cache, only the last `sliding_window` tokens.
    sliding_window: int | None = None
    window_layers: int = 0

    def attended(self, context: float) -> float:
        """Cached tokens a query at `context` reads, averaged over the layers: all of them on
        a full-attention layer, the last `sliding_window` on a windowed one."""
        if self.sliding_window is None or not self.window_layers:
            return context
        share = self.window_layers / self.layers
        return (1 - share) * context + share * min(context, self.sliding_window)

    def attended_by(self, contexts: Contexts) -> float:
        """`attended` summed over sequences at `contexts`."""
        if self.sliding_window is None or not self.window_layers:
            return contexts.total()
        share = self.window_layers / self.layers
        return (1 - share) * contexts.total() + share * contexts.capped(self.sliding_window)

    def pairs(self, new: float, earlier: float) -> float:
        """(query, cached token) pairs of prefilling `new` tokens after `earlier` ones of the
        same sequence, averaged over the layers as `attended` is."""
        full = new * (new + 1) / 2 + new * earlier
        window = self.sliding_window
        if window is None or not self.window_layers:
            return full

        def upto(p: float) -> float:  # pairs of the first p queries of a windowed layer
            if p <= window:
                return p * (p + 1) / 2
            return window * (window + 1) / 2 + (p - window) * window

        share = self.window_layers / self.layers
        return (1 - share) * full + share * (upto(earlier + new) - upto(earlier))

    @property
    def hidden(self) -> int:
        """Width of the activations (what a tensor-parallel all-reduce carries per token)."""
        return self.hidden_size or self.attention_heads * self.head_dim

    @property
    def weight_bytes(self) -> float:
        return self.params * self.weight_bits / 8

    @property
    def kv_bytes_per_token(self) -> float:
        """K and V, every layer: 2 x layers x kv_heads x head_dim x bytes."""
        return 2 * self.layers * self.kv_heads * self.head_dim * self.kv_bits / 8

    @property
    def attention_flops_per_pair(self) -> float:
        """Q.K and P.V for one query over one cached token, all layers and heads."""
        return 4 * self.layers * self.attention_heads * self.head_dim


@dataclass(frozen=True, slots=True)
class Device:
    """The hardware one replica runs on (one or more accelerators working as one)."""

    name: str
    flops: float  # peak FLOP/s at the model's compute precision, all `count` devices together
    bandwidth: float  # peak memory bytes/s, all `count` devices together
    memory_bytes: float  # all devices together (every pipeline stage's)
    count: int = 1  # tensor-parallel degree (of each pipeline stage)
    # The node's interconnect, per device: bytes/s one device sends (one direction) and the
    # fixed time of a small collective. 0: collectives not modelled (a single device).
    link_bandwidth: float = 0.0
    link_latency_s: float = 0.0
    # A group wider than one node: `nodes` nodes of count / nodes devices, whose collectives
    # also cross the network, bytes/s out of each device and a latency per collective.
    nodes: int = 1
    network_bandwidth: float = 0.0
    network_latency_s: float = 0.0
    # Mixture-of-experts layouts beyond tensor parallelism (`parallel.py`): each device runs
    # the attention of its own sequences; whole experts spread over the devices.
    attention_dp: bool = False
    expert_parallel: bool = False
    # Pipeline parallelism: `stages` groups of `count` devices hold the layers in turn, and
    # pass each microbatch's activations on (over the network when `network_bandwidth` is set:
    # the stages are in different nodes; `nodes` then counts one stage's).
    stages: int = 1
    # Peak FLOP/s of the attention's kernels, all devices together (None: `flops`). They
    # compute in 16 bits whatever format the matmuls' weights are in (`planner.device`).
    attention_flops: float | None = None

    @property
    def attention_peak(self) -> float:
        return self.flops if self.attention_flops is None else self.attention_flops

    @property
    def devices(self) -> int:
        """Accelerators the replica uses."""
        return self.count * self.stages

    @property
    def layout(self) -> str:
        """How the group shares the model, as engines name it."""
        n = self.count
        pipeline = f"PP{self.stages} x " if self.stages > 1 else ""
        attention = f"DP{n} attention" if self.attention_dp else f"TP{n}"
        if not (self.attention_dp or self.expert_parallel):
            return pipeline + attention
        return f"{pipeline}{attention} + {'EP' if self.expert_parallel else 'TP'}{n} experts"

    @property
    def layout_kind(self) -> str:
        """The layout without its degrees ("TP", "TP + EP experts", "PP x TP"): what the
        validation bands tell apart."""
        return re.sub(r"\d+", "", self.layout)


@dataclass(frozen=True, slots=True)
class Efficiency:
    """Share of each peak an engine reaches, and fixed costs; `calibrate` fits these."""

    compute: float = 0.5  # prefill: achieved / peak FLOP/s
    bandwidth: float = 0.7  # decode: achieved / peak bytes/s
    step_overhead_s: float = 0.0  # per decode step, independent of size (launch, sampling)
    request_overhead_s: float = 0.0  # per request, before the first token (HTTP, tokenizing)
    source: str = "default"  # "default" or what it was calibrated on
    # Decode's skinny matmuls (one row per sequence) and its attention over the KV cache run
    # other kernels than prefill; on CPUs far slower per FLOP. None: as `compute`.
    decode_compute: float | None = None
    decode_attention: float | None = None
    # Prefill's attention (many queries over the prompt) runs its own kernel too.
    prefill_attention: float | None = None
    # Share of requests that arrive at a random moment and queue behind others' prefill work;
    # the rest arrive as a closed loop does on an engine that prefills a prompt in one
    # iteration: as another request ends, between iterations, finding no prefill under way.
    random_arrival_share: float = 1.0
    # Decode iterations between the engine's looks for new requests (SGLang's
    # --scheduler-recv-interval; 1: every iteration). A request that arrives while others
    # decode waits for the next look; a prefill iteration is followed by one at once.
    admission_interval: float = 1.0
    # Tensor parallelism and MoE (not fitted by `calibrate`; see efficiency_data.py). The share
    # of the link's bandwidth an all-reduce reaches: NCCL's app-level target on 8 x H100 is 370
    # GB/s of NVLink 4's 450 each way (NVIDIA/nccl issue #1442, a maintainer, 2025-01).
    interconnect: float = 0.82
    layer_overhead_s: float = 0.0  # per layer and iteration: kernels a step cannot hide
    # per sequence and iteration: the engine's scheduling, sampling and detokenising on the
    # CPU, which grows with the batch where the kernels' cost per sequence is small
    sequence_overhead_s: float = 0.0
    expert_overhead_s: float = 0.0  # per touched expert and MoE layer, per iteration
    expert_bandwidth: float | None = None  # reading the experts' weights; None: as `bandwidth`
    expert_compute: float | None = None  # the expert matmuls; None: as compute/decode_compute


@dataclass(frozen=True, slots=True)
class Workload:
    input_tokens: int
    output_tokens: int
    concurrency: int = 1  # requests in flight on one replica


@dataclass(frozen=True, slots=True)
class Prediction:
    ttft_s: float  # mean, waiting for other requests' prefills included
    tpot_s: float  # mean time per output token, after the first
    output_tokens_per_s: float  # one replica, all concurrent sequences together
    requests_per_s: float
    kv_bytes: float  # KV cache the workload's blocks hold (`kv_per_request` x concurrency)
    fits_memory: bool


@dataclass(frozen=True, slots=True)
class MeasuredRun:
    """One measured run (a `tokenmill bench` report, summarised)."""

    workload: Workload
    ttft_s: float  # p50
    tpot_s: float  # p50
    output_tokens_per_s: float


# --------------------------------------------------------------------------- linear costs


def _values(eff: Efficiency) -> tuple[float, ...]:
    decode = eff.decode_compute if eff.decode_compute is not None else eff.compute
    attention = eff.decode_attention if eff.decode_attention is not None else eff.compute
    prefill_attention = eff.prefill_attention if eff.prefill_attention is not None else eff.compute
    rates = (eff.compute, eff.bandwidth, decode, attention, prefill_attention)
    return (*(1 / r for r in rates), eff.step_overhead_s, eff.request_overhead_s)


def _weights_read(model: ModelSpec, tokens: float) -> float:
    """Weight bytes a batch of `tokens` reads when the model's expert shape is not known: all of
    a dense model; of a mixture of experts, the share its tokens touch (each token its active
    share, picked independently)."""
    untouched: float = (1 - model.active_params / model.params) ** tokens
    return model.weight_bytes * (1 - untouched)


def kv_replication(model: ModelSpec, device: Device) -> float:
    """How many copies of each KV head a tensor-parallel group keeps: every device holds at
    least one head, so a group wider than the model's KV heads replicates them (a latent
    cache, one "head", is whole on every device)."""
    if device.attention_dp:  # each sequence's cache lives on its own device, once
        return 1.0
    return max(1.0, device.count / model.kv_heads)


def _dense_bytes(model: ModelSpec) -> float:
    """Weights outside the routed experts (all of a dense model)."""
    routed = model.moe.routed_params if model.moe is not None else 0.0
    return (model.params - routed) * model.weight_bits / 8


def _dense_copies(device: Device) -> int:
    """Copies of the dense weights a group keeps: one per device with data-parallel
    attention, else one split over the group."""
    return device.count if device.attention_dp else 1


def resident_weight_bytes(model: ModelSpec, device: Device) -> float:
    """The weights as the group holds them (dense weights whole on every device with
    data-parallel attention)."""
    return model.weight_bytes + (_dense_copies(device) - 1) * _dense_bytes(model)


def _expert_imbalance(model: ModelSpec, device: Device, tokens: float) -> float:
    """The busiest device's routed work over the mean: 1 unless the experts are spread whole
    over the group (`parallel.expert_imbalance`)."""
    if not device.expert_parallel or model.moe is None:
        return 1.0
    return expert_imbalance(tokens, model.moe.top_k, device.count)


def kv_per_request(model: ModelSpec, device: Device, work: Workload) -> float:
    """KV bytes a running request holds on average in a paged cache: its prompt and half its
    output (a request of a closed loop, seen at a random moment), in whole blocks, every copy
    a tensor-parallel group keeps. With requests at staggered points of their lives, their
    blocks add up to about `concurrency` times this, not to full-length reservations."""
    tokens = model.attended(work.input_tokens + work.output_tokens / 2)
    blocks = math.ceil(tokens / KV_BLOCK_TOKENS)
    return blocks * KV_BLOCK_TOKENS * model.kv_bytes_per_token * kv_replication(model, device)


def max_concurrency(model: ModelSpec, device: Device, work: Workload) -> int:
    """Requests whose KV blocks fit beside the weights (0: the weights alone do not fit)."""
    room = device.memory_bytes * USABLE_MEMORY - resident_weight_bytes(model, device)
    return max(0, int(room // kv_per_request(model, device, work)))


def _weights(
    model: ModelSpec, device: Device, tokens: float, bandwidth: float, eff: Efficiency
) -> _Cost:  # fmt: skip
    """Reading the weights a batch of `tokens` uses: the dense part once (on every device that
    holds a copy), and every routed expert the batch touches once (`moe.touched_experts`), at
    `expert_bandwidth`; spread whole over the devices, the busiest device's experts set the
    pace (at most all of them)."""
    shape = model.moe
    if shape is None:  # no layout but tensor parallelism without the experts' shape (_check)
        return _term("bandwidth", _weights_read(model, tokens) / bandwidth)
    dense = _dense_bytes(model) * _dense_copies(device)
    touched = _experts_touched(model, tokens) * _expert_imbalance(model, device, tokens)
    routed = min(touched, shape.experts * shape.moe_layers) * shape.expert_params
    return _term("bandwidth", dense / bandwidth) + _at_rate(
        "bandwidth", routed * model.weight_bits / 8 / bandwidth, eff.expert_bandwidth
    )


def _experts_touched(model: ModelSpec, tokens: float) -> float:
    """Routed experts a batch of `tokens` touches, all MoE layers together."""
    shape = model.moe
    if shape is None:
        return 0.0
    return touched_experts(tokens, shape.experts, shape.top_k) * shape.moe_layers


def _matmuls(
    model: ModelSpec, flops: float, param: str, eff: Efficiency, imbalance: float = 1.0
) -> _Cost:  # fmt: skip
    """One token's matmul FLOPs (2 x active parameters): the dense part at `param`'s
    efficiency, the routed experts' at `expert_compute` (None: `param`'s), `imbalance` times
    the mean (the busiest device's share, with experts spread whole over the group)."""
    routed = model.moe.active_routed_params if model.moe is not None else 0.0
    dense = _term(param, 2 * (model.active_params - routed) / flops)
    if not routed:
        return dense
    return dense + _at_rate(param, 2 * routed * imbalance / flops, eff.expert_compute)


def _expert_overheads(model: ModelSpec, device: Device, tokens: float, eff: Efficiency) -> _Cost:
    """The grouped GEMMs' cost per touched expert: every device pays it for every touched
    expert when each expert is sliced over the group, only for its own (the busiest device's
    share) when whole experts are spread over it."""
    touched = _experts_touched(model, tokens)
    if device.expert_parallel:
        touched *= _expert_imbalance(model, device, tokens) / device.count
    return _fixed(touched * eff.expert_overhead_s)


def _per_iteration(model: ModelSpec, device: Device, eff: Efficiency) -> tuple[float, float]:
    """Fixed seconds every iteration pays (kernel overheads per layer, the collectives'
    latencies) and seconds per token of the iteration (the collectives' bandwidth): two
    all-reduces per layer with tensor-parallel attention; with data-parallel attention, per
    MoE layer a gather and a scatter of the tokens (an all-reduce's traffic) to experts sliced
    over the group, or a dispatch and a combine (`parallel.all_to_all_per_token_s`) to whole
    experts spread over it."""
    kernels = model.layers * eff.layer_overhead_s
    hops, hop_per_token = _pipeline_hops(model, device, eff)
    kernels += hops
    n = device.count
    if n <= 1 or device.link_bandwidth <= 0:
        return kernels, hop_per_token
    link = device.link_bandwidth * eff.interconnect
    k, network = device.nodes, device.network_bandwidth * eff.interconnect
    latency = device.link_latency_s + (device.network_latency_s if k > 1 else 0.0)
    all_reduce = all_reduce_per_token_s(model.hidden, n, link, k, network)
    if not device.attention_dp or model.moe is None:
        collectives = model.layers * ALL_REDUCES_PER_LAYER
        return kernels + collectives * latency, collectives * all_reduce + hop_per_token
    moe = model.moe
    if device.expert_parallel:
        per_layer = all_to_all_per_token_s(model.hidden, moe.top_k, n, link, k, network)
    else:
        per_layer = all_reduce
    return kernels + 2 * moe.moe_layers * latency, moe.moe_layers * per_layer + hop_per_token


def _pipeline_hops(model: ModelSpec, device: Device, eff: Efficiency) -> tuple[float, float]:
    """What a microbatch's iteration pays for passing through `stages` stages: each later stage
    runs its own step (the fixed step overhead again) after receiving the activations, a
    latency and hidden x 2 bytes per token (over the network between nodes, else the links)."""
    hops = device.stages - 1
    if hops <= 0:
        return 0.0, 0.0
    between_nodes = device.network_bandwidth > 0
    latency = device.network_latency_s if between_nodes else device.link_latency_s
    bandwidth = (device.network_bandwidth if between_nodes else device.link_bandwidth) or (
        PCIE4_BYTES_PER_S
    )
    per_token = hops * model.hidden * ACTIVATION_BYTES / (bandwidth * eff.interconnect)
    return hops * (latency + eff.step_overhead_s), per_token


def _prefill_work(model: ModelSpec, device: Device, eff: Efficiency, new: float, pairs: float,
                  per_token: float, imbalance: float = 1.0) -> _Cost:  # fmt: skip
    """Prefilling `new` prompt tokens whose queries attend over `pairs` (query, earlier token)
    pairs: the matmuls, the attention and the collectives of their activations."""
    return (
        new * _matmuls(model, device.flops, "compute", eff, imbalance)
        + _term("prefill_attention", model.attention_flops_per_pair * pairs / device.attention_peak)
        + _fixed(per_token * new)
    )


def _kv_and_attention(
    model: ModelSpec, device: Device, context: float, batch: int | None = None
) -> _Cost:  # fmt: skip
    """Decode tokens over `context` cached tokens in all: reading their KV cache (every copy a
    tensor-parallel group keeps) and the attention over it. With data-parallel attention the
    device with the most of the `batch` sequences sets the pace (None: a marginal sequence)."""
    kv_read = context * model.kv_bytes_per_token * kv_replication(model, device)
    cost = _term("bandwidth", kv_read / device.bandwidth) + _term(
        "decode_attention", context * model.attention_flops_per_pair / device.attention_peak
    )
    if device.attention_dp and batch:
        return attention_imbalance(batch, device.count) * cost
    return cost


def iteration_cost(
    model: ModelSpec, device: Device, eff: Efficiency, prefills: Sequence[tuple[float, float]],
    decode_contexts: Sequence[float] | Contexts, values: Sequence[float] | None = None,
) -> _Cost:  # fmt: skip
    """One engine iteration with a token budget, as a cost linear in the fitted values: it
    prefills `prefills`, each (new tokens, earlier tokens of its sequence already in the KV
    cache: a cached prefix or the chunks before this one), and decodes one token for each
    sequence in `decode_contexts` (each its context length). A prefill is never faster than
    reading the weights once (the roof binding at `values`, default `eff`'s); a decode token
    riding in a prefill's batch is one more row of the prefill's matmuls. The engine's CPU work
    per scheduled sequence (`sequence_overhead_s`) runs beside the GPU's (`_gpu_work`): the
    iteration takes the longer of the two. `predict` builds its steady state from these
    iterations; the fleet simulator runs them one by one."""
    values = _values(eff) if values is None else values
    decode = contexts_of(decode_contexts)
    gpu = _gpu_work(model, device, eff, prefills, decode, values)
    cpu = _fixed((len(decode) + len(prefills)) * eff.sequence_overhead_s)
    return gpu if gpu.at(values) >= cpu.at(values) else cpu


def _gpu_work(
    model: ModelSpec, device: Device, eff: Efficiency, prefills: Sequence[tuple[float, float]],
    decode_contexts: Contexts, values: Sequence[float],
) -> _Cost:  # fmt: skip
    """`iteration_cost` but the engine's CPU work, which runs beside it: engines prepare the
    next batch while the current one runs (SGLang's overlap scheduler from 0.4, TensorRT-LLM's
    C++ executor and its PyTorch backend's overlap scheduler, vLLM's output processing off the
    engine loop from 0.6). Added to it instead, a per-sequence cost fitted on small batches
    made TensorRT-LLM's batches of 800-1,600 twice too slow (docs/benchmarks.md, issue 17,
    eighth slice)."""
    fixed, per_token = _per_iteration(model, device, eff)
    flops, bandwidth = device.flops, device.bandwidth
    overhead = _term("step_overhead_s", 1.0) + _fixed(fixed)
    batch = len(decode_contexts)
    attended = model.attended_by(decode_contexts)
    kv_and_attention = _kv_and_attention(model, device, attended, batch)
    new = float(sum(n for n, _ in prefills))
    tokens = new + batch
    imbalance = _expert_imbalance(model, device, tokens)
    experts = _expert_overheads(model, device, tokens, eff)
    per_sequence = _fixed(per_token)
    if not new:
        per_sequence += _matmuls(model, flops, "decode_compute", eff, imbalance)
        return (
            overhead + _weights(model, device, batch, bandwidth, eff) + experts
            + batch * per_sequence + kv_and_attention
        )  # fmt: skip
    pairs = sum(model.pairs(n, earlier) for n, earlier in prefills)
    prefill = _prefill_work(model, device, eff, new, pairs, per_token, imbalance)
    floor = _weights(model, device, new, bandwidth, eff) + _fixed(per_token * new)
    roof = floor if floor.at(values) > prefill.at(values) else prefill
    rider = _matmuls(model, flops, "compute", eff, imbalance) + per_sequence
    return overhead + roof + experts + batch * rider + kv_and_attention


def iteration_seconds(
    model: ModelSpec, device: Device, eff: Efficiency, prefills: Sequence[tuple[float, float]],
    decode_contexts: Sequence[float] | Contexts,
) -> float:  # fmt: skip
    """Seconds of one engine iteration (`iteration_cost` at `eff`)."""
    return iteration_cost(model, device, eff, prefills, decode_contexts).at(_values(eff))


# Where `_decode_line` draws its line's second point: any context would do (the cost is linear
# in the tokens attended), a far one keeps the rounding of the slope small.
_FAR = 1e6


@dataclass(frozen=True, slots=True)
class ReplicaIterations:
    """One replica's iteration times, as the fleet simulator asks for them
    (`scheduling.simulator.IterationTime`): the planner's model on `device` at `eff`. A burst
    runs thousands of decode-only iterations at each batch size, and the GPU's work in one is a
    line in the tokens its sequences attend to (only the KV reads and the attention grow with
    the contexts, `_kv_and_attention`): the line is drawn once per batch size."""

    model: ModelSpec
    device: Device
    eff: Efficiency
    _lines: dict[int, tuple[float, float]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )  # by batch size; not carried over by `dataclasses.replace`

    def __call__(
        self, prefills: Sequence[tuple[int, int]], decode_contexts: Sequence[float] | Contexts
    ) -> float:
        if prefills:
            return iteration_seconds(self.model, self.device, self.eff, prefills, decode_contexts)
        decode = contexts_of(decode_contexts)
        batch = len(decode)
        line = self._lines.get(batch)
        if line is None:
            line = self._lines[batch] = self._decode_line(batch)
        gpu = line[0] + line[1] * self.model.attended_by(decode)
        return max(gpu, batch * self.eff.sequence_overhead_s)  # as `iteration_cost` takes it

    def _decode_line(self, batch: int) -> tuple[float, float]:
        """The GPU's seconds for `batch` decode tokens attending to none, and per token they
        attend to."""
        values = _values(self.eff)

        def gpu(context: float) -> tuple[float, float]:
            contexts = SameContexts(context, batch)
            cost = _gpu_work(self.model, self.device, self.eff, [], contexts, values)
            return cost.at(values), self.model.attended_by(contexts)

        (none, _), (far, attended) = gpu(0.0), gpu(_FAR)
        return none, (far - none) / attended if attended else 0.0


def _costs(
    model: ModelSpec, device: Device, eff: Efficiency, work: Workload, values: Sequence[float],
    share: float,
) -> tuple[_Cost, _Cost]:  # fmt: skip
    """TTFT and TPOT as linear costs; `values` picks the prefill's binding roof and sizes the
    prefill queue; `share` of requests arrive at random moments, the rest on iteration ends;
    `eff` gives the terms `values` does not fit (collectives, per-layer overheads, MoE)."""
    n, m, c = work.input_tokens, work.output_tokens, work.concurrency
    fixed, per_token = _per_iteration(model, device, eff)
    # the GPU's work, as in `iteration_cost` (the CPU's per sequence runs beside it): a
    # prompt's prefill, and a decode token riding in a prefill's batch
    prefill = _prefill_work(model, device, eff, n, model.pairs(n, 0), per_token)
    ctx = n + m / 2  # mean context while decoding
    overhead = _term("step_overhead_s", 1.0) + _fixed(fixed)
    rider = (
        _matmuls(model, device.flops, "compute", eff)
        + _kv_and_attention(model, device, model.attended(ctx))
        + _fixed(per_token)
    )

    def step(batch: int) -> _Cost:
        return iteration_cost(model, device, eff, [], SameContexts(ctx, batch), values)

    first = iteration_cost(model, device, eff, [(n, 0)], SameContexts(ctx, c - 1), values)  # ours

    # Other requests' prefills, (c - 1) / (m + 1) per iteration on average: an iteration with
    # k of them prefills them in place of k decode tokens (what `iteration_cost` says that
    # costs; the average k taken between the two whole numbers around it).
    def mixed(k: int) -> _Cost:
        return iteration_cost(model, device, eff, [(n, 0)] * k, SameContexts(ctx, c - k), values)

    per_iteration = (c - 1) / (m + 1)
    k = math.floor(per_iteration)
    f = per_iteration - k
    tpot = (1 - f) * mixed(k) + f * mixed(k + 1) if f else mixed(k)
    others = tpot - step(c)
    request = _term("request_overhead_s", 1.0)
    if c == 1:
        return request + first, tpot
    # A request arriving at a random moment finds a decode iteration running (unless a prefill
    # is) and the prefills of requests that arrived just before it: a queue in front of the
    # engine's prefill work, visited once per cycle, the rest of the cycle being a delay.
    in_flight = step(c - 1)
    # waiting for the engine's next look: (interval - 1) / 2 decode iterations on average
    request += (eff.admission_interval - 1) / 2 * in_flight
    elsewhere = request + in_flight + overhead + (c - 1) * rider + (m - 1) * tpot
    ahead, busy = _prefill_queue(c, elsewhere.at(values) / prefill.at(values))
    at_random = (1 - busy) * in_flight + ahead * prefill
    # A closed loop's request is sent as another ends, at an iteration's end: it waits for the
    # decode iteration the others have just begun and prefills with those that arrived in the
    # same iteration (each other request ends in a given iteration with chance 1 / (m + 1)).
    at_boundary = in_flight + others
    return request + share * at_random + (1 - share) * at_boundary + first, tpot


def _prefill_queue(c: int, delay: float) -> tuple[float, float]:
    """Mean value analysis of `c` requests cycling between prefill (work 1 each, done in order)
    and the rest of their cycle (`delay`). Returns what an arriving request finds: the prefill
    work ahead of it (half of one in progress, all of those waiting, for prefills of equal
    length) and the chance that a prefill is in progress."""
    queue = busy = ahead = seen = 0.0
    for k in range(1, c + 1):
        ahead, seen = busy / 2 + (queue - busy), busy
        busy = min(1.0, k / (1 + ahead + delay))  # utilisation: throughput x prefill time
        queue = k - busy * delay  # those not in the rest of their cycle (Little's law)
    return ahead, seen


# --------------------------------------------------------------------------- prediction


def _check(model: ModelSpec, device: Device, work: Workload) -> None:
    if not (model.params > 0 and 0 < model.active_params <= model.params):
        raise ValueError(f"{model.name}: need 0 < active_params <= params")
    if min(model.layers, model.attention_heads, model.kv_heads, model.head_dim) < 1:
        raise ValueError(f"{model.name}: layers, heads and head_dim must be >= 1")
    if not (model.weight_bits > 0 and model.kv_bits > 0):
        raise ValueError(f"{model.name}: weight_bits and kv_bits must be > 0")
    if not (device.flops > 0 and device.bandwidth > 0 and device.memory_bytes > 0):
        raise ValueError(f"{device.name}: flops, bandwidth and memory_bytes must be > 0")
    if not device.attention_peak > 0:
        raise ValueError(f"{device.name}: attention_flops must be > 0")
    if not (device.link_bandwidth >= 0 and device.link_latency_s >= 0):
        raise ValueError(f"{device.name}: link_bandwidth and link_latency_s must be >= 0")
    if device.stages < 1:
        raise ValueError(f"{device.name}: pipeline stages must be >= 1")
    if device.nodes < 1 or device.count % device.nodes:
        raise ValueError(f"{device.name}: {device.count} devices do not split over "
                         f"{device.nodes} nodes")  # fmt: skip
    if device.nodes > 1 and not (device.network_bandwidth > 0 and device.network_latency_s >= 0):
        raise ValueError(f"{device.name}: a group over {device.nodes} nodes needs a network")
    if model.moe is not None:
        model.moe.check(model.params, model.active_params)
    elif device.attention_dp or device.expert_parallel:
        raise ValueError(f"{device.layout} needs {model.name}'s experts' shape (model_layouts)")
    if min(work.input_tokens, work.output_tokens, work.concurrency) < 1:
        raise ValueError(f"input, output tokens and concurrency must be >= 1, got {work}")
    if work.input_tokens + work.output_tokens > model.max_context:
        raise ValueError(
            f"{work.input_tokens} + {work.output_tokens} tokens exceed {model.name}'s "
            f"context of {model.max_context}"
        )


def check_efficiency(eff: Efficiency) -> None:
    rates = (eff.compute, eff.bandwidth, eff.decode_compute, eff.decode_attention,
             eff.prefill_attention, eff.interconnect, eff.expert_bandwidth,
             eff.expert_compute)  # fmt: skip
    overheads = (eff.step_overhead_s, eff.request_overhead_s, eff.layer_overhead_s,
                 eff.expert_overhead_s, eff.sequence_overhead_s)  # fmt: skip
    if not all(r is None or (math.isfinite(r) and r > 0) for r in rates):
        raise ValueError(f"efficiencies must be finite and > 0: {eff}")
    if not all(math.isfinite(o) and o >= 0 for o in overheads):
        raise ValueError(f"overheads must be finite and >= 0: {eff}")
    if not 0 <= eff.random_arrival_share <= 1:
        raise ValueError(f"random_arrival_share must be in [0, 1]: {eff}")


def microbatches(device: Device, concurrency: int) -> tuple[int, int]:
    """(microbatches, requests in each) a pipeline of `device.stages` keeps in flight at
    `concurrency`: one per stage (vLLM's virtual engines), as many as there are requests."""
    active = max(1, min(device.stages, concurrency))
    return active, math.ceil(concurrency / active)


def predict(model: ModelSpec, device: Device, eff: Efficiency, work: Workload) -> Prediction:
    """TTFT, TPOT and throughput of one replica with `work.concurrency` requests in flight.
    A pipeline runs its requests as microbatches, each a closed loop of its own passing every
    stage in turn while the others fill the other stages (`microbatches`)."""
    _check(model, device, work)
    check_efficiency(eff)
    values = _values(eff)
    _, per = microbatches(device, work.concurrency)  # the fullest microbatch sets the pace
    each = replace(work, concurrency=per)
    ttft_cost, tpot_cost = _costs(model, device, eff, each, values, eff.random_arrival_share)
    ttft, tpot = ttft_cost.at(values), tpot_cost.at(values)
    latency = ttft + (work.output_tokens - 1) * tpot
    kv = work.concurrency * kv_per_request(model, device, work)
    memory = resident_weight_bytes(model, device) + kv
    return Prediction(
        ttft_s=ttft,
        tpot_s=tpot,
        output_tokens_per_s=work.concurrency * work.output_tokens / latency,
        requests_per_s=work.concurrency / latency,
        kv_bytes=kv,
        fits_memory=memory <= device.memory_bytes * USABLE_MEMORY,
    )


# --------------------------------------------------------------------------- calibration


def calibrate(
    model: ModelSpec, device: Device, runs: list[MeasuredRun], held: Efficiency | None = None
) -> Efficiency:
    """The efficiencies and overheads that best explain `runs` (relative least squares on
    TTFT, TPOT and request latency), measured on `device` (a whole group: its collectives and
    layout are part of what was measured). What calibration does not fit (the collectives'
    interconnect efficiency, the per-layer, per-sequence and per-expert overheads) is `held`'s
    (default `Efficiency()`), and terms the runs cannot tell apart stay near `held`'s values."""
    held = held if held is not None else Efficiency()
    if not runs:
        raise ValueError("calibrate needs at least one measured run")
    for run in runs:
        _check(model, device, run.workload)
        measured = (run.ttft_s, run.tpot_s, run.output_tokens_per_s)
        if not all(math.isfinite(v) for v in measured) or run.ttft_s <= 0:
            raise ValueError(f"a measured run needs a finite TTFT > 0: {run}")
        if run.output_tokens_per_s <= 0 or run.tpot_s < 0:
            raise ValueError(f"a measured run needs throughput > 0 and TPOT >= 0: {run}")
    # The arrival share scales terms that depend on the fit, so it is searched on a grid (it
    # matters only under concurrency); everything else is fitted linearly at each share.
    shares = _SHARES if any(run.workload.concurrency > 1 for run in runs) else (1.0,)
    _, values, share = min(_fit_at(model, device, runs, share, held) for share in shares)
    rates = [1 / v for v in values[:_RATES]]
    return replace(
        held,
        compute=rates[0],
        bandwidth=rates[1],
        decode_compute=rates[2],
        decode_attention=rates[3],
        prefill_attention=rates[4],
        step_overhead_s=values[5],
        request_overhead_s=values[6],
        random_arrival_share=share,
        source=f"calibrated on {len(runs)} measured runs",
    )


_SHARES = tuple(i / 20 for i in range(21))


def _fit_at(
    model: ModelSpec, device: Device, runs: list[MeasuredRun], share: float, held: Efficiency
) -> tuple[float, tuple[float, ...], float]:
    """(loss, values, share): the linear fit with `share` held fixed."""
    prior = _values(held)
    values, loss = prior, 0.0
    for _ in range(50):  # the roof and the prefill queue depend on the fit: refit until settled
        rows: list[tuple[_Cost, float]] = []
        for run in runs:
            w = run.workload
            ttft, tpot = _costs(model, device, held, w, values, share)
            rows.append((ttft, run.ttft_s))
            if w.output_tokens > 1 and run.tpot_s > 0:
                rows.append((tpot, run.tpot_s))
            latency = w.concurrency * w.output_tokens / run.output_tokens_per_s
            rows.append((ttft + (w.output_tokens - 1) * tpot, latency))
        loss, fitted = _fit(rows, prior)
        close = zip(fitted, values, strict=True)
        settled = all(math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9) for a, b in close)
        values = fitted
        if settled:
            break
    return loss, values, share


def _fit(
    rows: list[tuple[_Cost, float]], prior: tuple[float, ...]
) -> tuple[float, tuple[float, ...]]:
    """Minimise sum(((cost.x + cost.fixed) / measured - 1)^2) + ridge, with 1/efficiency >= 1
    and overheads >= 0: the normal equations for every choice of variables held at their bound
    (2^7 small systems), keeping the best solution that breaks no bound. Returns (loss,
    values)."""
    size = len(_PARAMS)
    q = [[0.0] * size for _ in range(size)]
    g = [0.0] * size
    target = 0.0  # sum of squared targets: the loss's constant
    for cost, measured in rows:
        a = [c / measured for c in cost.coef]
        t = 1 - cost.fixed / measured  # the fixed part moves to the measured side
        target += t * t
        for i in range(size):
            g[i] += a[i] * t
            for j in range(size):
                q[i][j] += a[i] * a[j]
    for i in range(size):
        g[i] += _RIDGE * q[i][i] * prior[i]
        q[i][i] *= 1 + _RIDGE
    lower = [1.0] * _RATES + [0.0] * (size - _RATES)
    unused = {i: prior[i] for i in range(size) if q[i][i] == 0}  # no run depends on it
    best: tuple[float, tuple[float, ...]] | None = None
    for mask in range(1 << size):
        x = {i: lower[i] for i in range(size) if mask >> i & 1} | unused
        free = [i for i in range(size) if i not in x]
        matrix = [[q[i][j] for j in free] for i in free]
        rhs = [g[i] - sum(q[i][j] * v for j, v in x.items()) for i in free]
        x |= zip(free, _solve(matrix, rhs), strict=True)
        if any(x[i] < lower[i] for i in free):
            continue
        v = tuple(x[i] for i in range(size))
        loss = sum(v[i] * q[i][j] * v[j] for i in range(size) for j in range(size))
        loss -= 2 * sum(g[i] * v[i] for i in range(size))
        if best is None or loss < best[0]:
            best = (loss, v)
    assert best is not None  # every variable at its bound is always feasible
    return best[0] + target, best[1]


def _solve(a: list[list[float]], b: list[float]) -> list[float]:
    """Gaussian elimination with partial pivoting (a small, positive definite system)."""
    n = len(b)
    m = [[*row, rhs] for row, rhs in zip(a, b, strict=True)]
    for col in range(n):
        pivot = max(range(col, n), key=lambda r: abs(m[r][col]))
        m[col], m[pivot] = m[pivot], m[col]
        for r in range(col + 1, n):
            f = m[r][col] / m[col][col]
            m[r] = [x - f * y for x, y in zip(m[r], m[col], strict=True)]
    x = [0.0] * n
    for r in reversed(range(n)):
        x[r] = (m[r][n] - sum(m[r][k] * x[k] for k in range(r + 1, n))) / m[r][r]
    return x
