"""A burst: every prompt sent at once (`vllm bench serve` with no request rate), run on the
fleet simulator with the planner's own iterations (`perf_model.ReplicaIterations`).

A static batch (TensorRT-LLM's and vLLM's latency benchmarks: `batch` prompts prefilled
together, then decoded together) is the same run with every prompt admitted at once. A burst
is not a steady state: the engine admits as many requests as it may run, they end at
different times, and the run's tail decodes the longest answers in ever smaller batches. What
such a benchmark publishes (total tokens over the run's length, the mean TPOT of its
requests) depends on how the lengths are spread, so the prompts are given lengths:
- `fixed`: every request the stated mean (the `random` datasets of vLLM's benchmark, with no
  range ratio, are fixed lengths);
- `sharegpt`: prompt and output lengths each exponential with the stated mean (the most
  spread-out distribution a mean alone allows), cut to the ShareGPT sampler's filter of
  vLLM's benchmark (prompt and output at least 4 tokens, prompt at most 1,024, prompt + output
  at most 2,048; `benchmarks/benchmark_dataset.py`, `is_valid_sequence`), the scale set so the
  cut distribution keeps the stated mean. Lengths sit at evenly spaced quantiles, prompts
  paired with outputs in a fixed shuffled order: no sampling noise between runs.
- `uniform` (`uniform_lengths`): a random dataset's lengths with a range ratio r, each drawn
  from [r x L, L] for the client's stated L (InferenceX's client: r = 0.8), at evenly spaced
  quantiles, outputs paired in a fixed shuffled order.
The engine prefills in chunks of `token_budget` tokens per iteration, decodes first, and runs
at most `max_running` requests (its batch cap or the paged KV cache, whichever is smaller).

A client run (`in_flight`: `--max-concurrency` with every prompt ready, `--request-rate inf`)
sends the first `in_flight` prompts at t = 0 and each next one as a request ends, timing each
from its sending. With lengths that vary the run is no steady state either: it starts as one
wave, and ten prompts per slot (InferenceX's runs) keep its arrivals bunched, so prompts queue
behind each other's prefills more than in the steady closed loop `perf_model.predict` solves.
"""

from __future__ import annotations

import math
import random
import statistics
from dataclasses import dataclass, replace
from statistics import NormalDist

from tokenmill.economics.perf_model import (
    Device,
    Efficiency,
    ModelSpec,
    ReplicaIterations,
    microbatches,
)
from tokenmill.scheduling.job import Job
from tokenmill.scheduling.router import ReplicaPicker
from tokenmill.scheduling.simulator import FleetSimulator, FleetSpec

MIN_TOKENS, MAX_PROMPT, MAX_TOTAL = 4, 1024, 2048  # vLLM's ShareGPT filter


@dataclass(frozen=True, slots=True)
class Burst:
    output_tokens_per_s: float  # all output tokens over the run's length
    ttft_s: float  # means over requests
    tpot_s: float
    latency_s: float
    makespan_s: float


def _lognormal_quantiles(mean: float, spread: float, lo: int, hi: int, count: int) -> list[int]:
    """`count` evenly spaced quantiles of a lognormal of log-spread `spread`, cut to [lo, hi]
    (values outside are clamped), whose mean is `mean` (the location found by bisection: the
    cut mean grows with it)."""
    if not lo < mean < hi:
        raise ValueError(f"a mean of {mean} is not inside the filter's [{lo}, {hi}]")
    z = [NormalDist().inv_cdf((i + 0.5) / count) for i in range(count)]

    def at(mu: float) -> list[float]:
        return [min(hi, max(lo, math.exp(mu + spread * x))) for x in z]

    low, high = math.log(lo) - 10 * spread - 1, math.log(hi) + 1
    for _ in range(100):
        mid = (low + high) / 2
        low, high = (mid, high) if statistics.fmean(at(mid)) < mean else (low, mid)
    return [round(v) for v in at(low)]


def lengths(prompt: float, output: float, count: int, spread: float) -> list[tuple[int, int]]:
    """(prompt, output) tokens of each of `count` requests with the stated means: all alike
    (`spread` 0), or lognormal of that log-spread cut to the ShareGPT filter."""
    if spread == 0:
        return [(round(prompt), round(output))] * count
    prompts = _lognormal_quantiles(prompt, spread, MIN_TOKENS, MAX_PROMPT, count)
    outputs = _lognormal_quantiles(output, spread, MIN_TOKENS, MAX_TOTAL - MAX_PROMPT, count)
    random.Random(17).shuffle(outputs)
    return list(zip(prompts, outputs, strict=True))


def uniform_lengths(prompt: int, output: int, count: int, ratio: float) -> list[tuple[int, int]]:
    """(prompt, output) tokens of `count` requests of a random dataset whose client draws each
    length uniformly from [ratio x L, L] (vLLM's and InferenceX's `sample_random_requests`:
    `randint(int(L x ratio), L + 1)`, at least 1), at evenly spaced quantiles."""
    if not 0 <= ratio <= 1:
        raise ValueError(f"a range ratio is in [0, 1], not {ratio}")

    def spread(cap: int) -> list[int]:
        low = max(1, int(cap * ratio))
        return [low + math.floor((cap - low + 1) * (i + 0.5) / count) for i in range(count)]

    outputs = spread(output)
    random.Random(17).shuffle(outputs)
    return list(zip(spread(prompt), outputs, strict=True))


def simulate(
    model: ModelSpec, device: Device, eff: Efficiency, requests: list[tuple[int, int]],
    max_running: int, token_budget: int | None, in_flight: int | None = None,
) -> Burst:  # fmt: skip
    """Every request of `requests` sent at t = 0 to one replica (a pipeline's microbatches,
    `perf_model.microbatches`, each a replica of the simulator), or, with `in_flight`, the
    first that many, each next one sent as a request ends (a client run). The engine sees a
    request `request_overhead_s` after its sending (HTTP, tokenizing: what
    `perf_model.predict` adds to a TTFT), so every time the client measures is that much
    longer."""
    iterations = ReplicaIterations(model, device, eff)
    engines, slots = microbatches(device, max(1, max_running))
    spec = FleetSpec(replicas=engines, slots=slots, cache_blocks=1, model=iterations,
                     token_budget=token_budget,
                     admission_interval=round(eff.admission_interval))  # fmt: skip
    jobs = [Job(id=str(i), tenant="bench", model="m", input_tokens=n, max_output_tokens=m,
                arrived=0.0, deadline=math.inf) for i, (n, m) in enumerate(requests)]  # fmt: skip
    held = iter(jobs[in_flight:] if in_flight is not None else ())

    def send_next(_: Job, now: float) -> list[Job]:
        job = next(held, None)
        return [] if job is None else [replace(job, arrived=now)]

    first = jobs[:in_flight] if in_flight is not None else jobs
    result = FleetSimulator(spec, ReplicaPicker()).run(first, send_next)
    if len(result.finished) != len(requests):
        raise RuntimeError(f"{len(requests) - len(result.finished)} requests did not finish")
    # a request's TPOT: its time after the first token over the tokens after the first
    tpots = [(e2e - ttft) / (job.max_output_tokens - 1)
             for job, ttft, e2e in result.finished if job.max_output_tokens > 1]  # fmt: skip
    late = eff.request_overhead_s
    return Burst(
        output_tokens_per_s=sum(m for _, m in requests) / (result.makespan_s + late),
        ttft_s=statistics.fmean(ttft for _, ttft, _ in result.finished) + late,
        tpot_s=statistics.fmean(tpots) if tpots else 0.0,
        latency_s=statistics.fmean(e2e for _, _, e2e in result.finished) + late,
        makespan_s=result.makespan_s + late,
    )
