"""How fast a model runs on a device: a roofline model of prefill and decode, calibrated by
measured runs.

Prefill is compute-bound: each prompt token costs 2 x active_params FLOPs in the matmuls, and
causal attention 4 x layers x heads x head_dim FLOPs per (query, earlier token) pair; a prefill
is never faster than reading the weights once. Decode is memory-bound: each step reads the
weights (for a mixture of experts, the experts the batch touches) and every sequence's KV cache
to make one token per sequence, plus each sequence's matmul and attention FLOPs and a fixed
step overhead. All terms add up: the kernels of a step run one after another.

Concurrency, `c` requests in flight on an engine with continuous batching (a closed loop: a
new request arrives as another ends): a request's prefill runs in one iteration with the others'
decode tokens, and every decode iteration carries on average (c - 1) / (output + 1) other
prefills, which is what concurrency does to TPOT. What a request waits for before its prefill
depends on when it arrives. At a random moment (open traffic, or an engine that spreads a
prefill over several iterations) it finds a decode iteration running and the prefills of
requests that arrived just before it: a queue in front of the engine's prefill work, solved by
mean value analysis of the closed loop. Between iterations (a closed loop on an engine that
prefills a prompt in one iteration, such as llama.cpp below its batch size: a request is sent
as another ends) it waits only for the decode iteration just begun and prefills together with
those that arrived in the same iteration. `random_arrival_share` mixes the two. TTFT and TPOT
are means; a request's latency is R = TTFT + (output - 1) x TPOT, and a replica delivers
c x output / R tokens per second.

Peaks come from the hardware catalog; `Efficiency` says how much of each peak an engine really
reaches. With the prefill's binding roof and the queue length held fixed, every predicted time
is linear in the inverse efficiencies and the overheads, so `calibrate` fits them to measured
runs by least squares on relative errors (TTFT, TPOT and request latency), each efficiency in
(0, 1] and each overhead >= 0, and refits until roof and queue settle; the arrival share is
searched on a grid. Prefill has a fixed, a linear (matmuls) and a quadratic (attention) part:
calibrating it needs runs at three or more prompt lengths.

Not modelled: tensor-parallel collectives (they land in `step_overhead_s` when calibrated),
chunked-prefill limits, queueing beyond the engine's batch, speculative decoding. Embedding and
LM-head weights count as ordinary matmul weights, which overstates prefill FLOPs by their share
(13% for Llama-3.1-8B); calibration absorbs it for the model it was fitted on.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

# Share of device memory for weights and KV cache; the rest holds activations, the runtime and
# fragmentation (vLLM's default gpu_memory_utilization is 0.9).
USABLE_MEMORY = 0.9
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
    bandwidth: float  # peak memory bytes/s, all devices together
    memory_bytes: float  # all devices together
    count: int = 1  # tensor-parallel degree


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
    kv_bytes: float  # KV cache the workload holds at its peak
    fits_memory: bool


@dataclass(frozen=True, slots=True)
class MeasuredRun:
    """One measured run (a `tokenmill bench` report, summarised)."""

    workload: Workload
    ttft_s: float  # p50
    tpot_s: float  # p50
    output_tokens_per_s: float


# --------------------------------------------------------------------------- linear costs

# What a cost is linear in: 1 / efficiency for the first five, seconds for the overheads.
_PARAMS = (
    "compute",
    "bandwidth",
    "decode_compute",
    "decode_attention",
    "prefill_attention",
    "step_overhead_s",
    "request_overhead_s",
)
_RATES = 5  # the first five are efficiencies


@dataclass(frozen=True, slots=True)
class _Cost:
    """Seconds as sum(coef[i] x value[i]) over `_PARAMS`."""

    coef: tuple[float, ...] = (0.0,) * len(_PARAMS)

    def __add__(self, other: _Cost) -> _Cost:
        return _Cost(tuple(a + b for a, b in zip(self.coef, other.coef, strict=True)))

    def __rmul__(self, k: float) -> _Cost:
        return _Cost(tuple(k * a for a in self.coef))

    def at(self, values: Sequence[float]) -> float:
        return sum(a * v for a, v in zip(self.coef, values, strict=True))


def _term(param: str, seconds: float) -> _Cost:
    coef = [0.0] * len(_PARAMS)
    coef[_PARAMS.index(param)] = seconds
    return _Cost(tuple(coef))


def _values(eff: Efficiency) -> tuple[float, ...]:
    decode = eff.decode_compute if eff.decode_compute is not None else eff.compute
    attention = eff.decode_attention if eff.decode_attention is not None else eff.compute
    prefill_attention = eff.prefill_attention if eff.prefill_attention is not None else eff.compute
    rates = (eff.compute, eff.bandwidth, decode, attention, prefill_attention)
    return (*(1 / r for r in rates), eff.step_overhead_s, eff.request_overhead_s)


def _weights_read(model: ModelSpec, tokens: float) -> float:
    """Weight bytes a batch of `tokens` reads: all of a dense model; of a mixture of experts,
    the share its tokens touch (each token its active share, picked independently)."""
    untouched: float = (1 - model.active_params / model.params) ** tokens
    return model.weight_bytes * (1 - untouched)


def _costs(
    model: ModelSpec, device: Device, work: Workload, values: Sequence[float], share: float
) -> tuple[_Cost, _Cost]:
    """TTFT and TPOT as linear costs; `values` picks the prefill's binding roof and sizes the
    prefill queue; `share` of requests arrive at random moments, the rest on iteration ends."""
    n, m, c = work.input_tokens, work.output_tokens, work.concurrency
    flops, bandwidth = device.flops, device.bandwidth
    pair = model.attention_flops_per_pair
    prefill = _term("compute", 2 * model.active_params * n / flops) + _term(
        "prefill_attention", pair * n * (n + 1) / 2 / flops
    )
    floor = _term("bandwidth", _weights_read(model, n) / bandwidth)
    prefill_iteration = floor if floor.at(values) > prefill.at(values) else prefill
    ctx = n + m / 2  # mean context while decoding
    kv_and_attention = _term("bandwidth", ctx * model.kv_bytes_per_token / bandwidth) + _term(
        "decode_attention", ctx * pair / flops
    )
    per_sequence = _term("decode_compute", 2 * model.active_params / flops) + kv_and_attention
    # a decode token riding in a prefill's batch is one more row of the prefill's matmuls
    rider = _term("compute", 2 * model.active_params / flops) + kv_and_attention
    overhead = _term("step_overhead_s", 1.0)

    def step(batch: int) -> _Cost:
        return (
            overhead
            + _term("bandwidth", _weights_read(model, batch) / bandwidth)
            + (batch * per_sequence)
        )

    others = ((c - 1) / (m + 1)) * prefill  # other requests' prefills, per iteration
    tpot = step(c) + others
    first = overhead + prefill_iteration + (c - 1) * rider  # the iteration with our prefill
    request = _term("request_overhead_s", 1.0)
    if c == 1:
        return request + first, tpot
    # A request arriving at a random moment finds a decode iteration running (unless a prefill
    # is) and the prefills of requests that arrived just before it: a queue in front of the
    # engine's prefill work, visited once per cycle, the rest of the cycle being a delay.
    in_flight = step(c - 1)
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
    if min(work.input_tokens, work.output_tokens, work.concurrency) < 1:
        raise ValueError(f"input, output tokens and concurrency must be >= 1, got {work}")
    if work.input_tokens + work.output_tokens > model.max_context:
        raise ValueError(
            f"{work.input_tokens} + {work.output_tokens} tokens exceed {model.name}'s "
            f"context of {model.max_context}"
        )


def _check_efficiency(eff: Efficiency) -> None:
    rates = (eff.compute, eff.bandwidth, eff.decode_compute, eff.decode_attention,
             eff.prefill_attention)  # fmt: skip
    overheads = (eff.step_overhead_s, eff.request_overhead_s)
    if not all(r is None or (math.isfinite(r) and r > 0) for r in rates):
        raise ValueError(f"efficiencies must be finite and > 0: {eff}")
    if not all(math.isfinite(o) and o >= 0 for o in overheads):
        raise ValueError(f"overheads must be finite and >= 0: {eff}")
    if not 0 <= eff.random_arrival_share <= 1:
        raise ValueError(f"random_arrival_share must be in [0, 1]: {eff}")


def predict(model: ModelSpec, device: Device, eff: Efficiency, work: Workload) -> Prediction:
    """TTFT, TPOT and throughput of one replica with `work.concurrency` requests in flight."""
    _check(model, device, work)
    _check_efficiency(eff)
    values = _values(eff)
    ttft_cost, tpot_cost = _costs(model, device, work, values, eff.random_arrival_share)
    ttft, tpot = ttft_cost.at(values), tpot_cost.at(values)
    latency = ttft + (work.output_tokens - 1) * tpot
    kv = work.concurrency * (work.input_tokens + work.output_tokens) * model.kv_bytes_per_token
    return Prediction(
        ttft_s=ttft,
        tpot_s=tpot,
        output_tokens_per_s=work.concurrency * work.output_tokens / latency,
        requests_per_s=work.concurrency / latency,
        kv_bytes=kv,
        fits_memory=model.weight_bytes + kv <= device.memory_bytes * USABLE_MEMORY,
    )


# --------------------------------------------------------------------------- calibration


def calibrate(model: ModelSpec, device: Device, runs: list[MeasuredRun]) -> Efficiency:
    """The efficiencies and overheads that best explain `runs` (relative least squares on
    TTFT, TPOT and request latency). Terms the runs cannot tell apart stay near the defaults."""
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
    _, values, share = min(_fit_at(model, device, runs, share) for share in shares)
    rates = [1 / v for v in values[:_RATES]]
    return Efficiency(
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
    model: ModelSpec, device: Device, runs: list[MeasuredRun], share: float
) -> tuple[float, tuple[float, ...], float]:
    """(loss, values, share): the linear fit with `share` held fixed."""
    prior = _values(Efficiency())
    values, loss = prior, 0.0
    for _ in range(50):  # the roof and the prefill queue depend on the fit: refit until settled
        rows: list[tuple[_Cost, float]] = []
        for run in runs:
            w = run.workload
            ttft, tpot = _costs(model, device, w, values, share)
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
    """Minimise sum((cost.x / measured - 1)^2) + ridge, with 1/efficiency >= 1 and overheads
    >= 0: the normal equations for every choice of variables held at their bound (2^7 small
    systems), keeping the best solution that breaks no bound. Returns (loss, values)."""
    size = len(_PARAMS)
    q = [[0.0] * size for _ in range(size)]
    g = [0.0] * size
    for cost, measured in rows:
        a = [c / measured for c in cost.coef]
        for i in range(size):
            g[i] += a[i]
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
    return best[0] + len(rows), best[1]


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
