"""A discrete-event fleet simulator that drives the gateway's own scheduler (`SchedulerCore`)
with a model of each replica instead of a real engine, to compare policies at fleet scale.

Replica model (continuous batching): every iteration prefills the prompts admitted since the
last one (the part not in the replica's prefix cache) and decodes one token for each running
sequence; with a `token_budget` (vLLM's max_num_batched_tokens), decoding sequences come first
and prompts are prefilled in chunks of what the budget leaves, oldest first, so a long prompt
spreads over several iterations. How long one takes is an injected `IterationTime`, asked
with the iteration's prefills (new tokens, tokens of the sequence cached or prefilled before
them) and its decoding sequences' context lengths (`core.contexts.Contexts`, kept by
iteration number: `decode_batch`): the planner's performance model
(`economics.perf_model.ReplicaIterations`, wired in by whoever builds the simulator:
scheduling does not import economics), or `IterationModel`, a fitted `a + b x prefill tokens
+ c x decoding sequences + e x (new x cached tokens)` for the CPU llama.cpp calibration
(`benchmarks/calibrate_simulator.py`). A request's first token comes at the end of its last
prefill chunk. Each replica keeps a prompt cache: block-LRU (vLLM, SGLang) or one prompt per
slot (llama.cpp), see `kv_cache`. `run` can close the loop: a callback given a finished job
returns the jobs it sends next.
"""

import heapq
import itertools
import statistics
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from tokenmill.core.contexts import Contexts
from tokenmill.scheduling.core import Dispatch, Limits, Rejected, SchedulerCore
from tokenmill.scheduling.decode_batch import DecodeBatch
from tokenmill.scheduling.job import Job
from tokenmill.scheduling.kv_cache import BlockCache, PromptCache, SlotCache
from tokenmill.scheduling.router import Picker, ReplicaSlot


class IterationTime(Protocol):
    """Seconds of one engine iteration that prefills `prefills`, each (new tokens, tokens of
    its sequence already cached before them), and decodes one token for each sequence of
    `decode_contexts` (their context lengths, valid during the call only: the simulator's
    batch moves on)."""

    def __call__(self, prefills: Sequence[tuple[int, int]], decode_contexts: Contexts) -> float: ...


@dataclass(frozen=True)
class IterationModel:
    """Seconds per engine iteration as a fitted line, an `IterationTime`: what
    `benchmarks/calibrate_simulator.py` measures on a CPU llama.cpp replica. Defaults are
    placeholders; for a GPU replica use the planner's model (`perf_model.ReplicaIterations`)."""

    a: float = 0.010  # fixed cost of an iteration
    b: float = 1 / 10_000  # per prompt token prefilled
    c: float = 0.0005  # per sequence decoding
    e: float = 0.0  # per (new prompt token x cached prompt token it attends to)

    def seconds(self, prefill_tokens: int, decoding: int, attention: int = 0) -> float:
        return self.a + self.b * prefill_tokens + self.c * decoding + self.e * attention

    def __call__(self, prefills: Sequence[tuple[int, int]], decode_contexts: Contexts) -> float:
        new = sum(n for n, _ in prefills)
        attention = sum(n * cached for n, cached in prefills)
        return self.seconds(new, len(decode_contexts), attention)


@dataclass(frozen=True)
class FleetSpec:
    replicas: int
    slots: int = 32  # sequences a replica runs at once
    cache_blocks: int = 1000  # prefix blocks a replica's KV cache holds (block cache)
    cache: Literal["blocks", "slots"] = "blocks"
    block_tokens: int = 512
    model: IterationTime = IterationModel()
    token_budget: int | None = None  # tokens per iteration; None: whole prompts at once
    # decode iterations between a busy replica's looks for new requests (SGLang's
    # --scheduler-recv-interval); it looks at once after an iteration that prefilled
    admission_interval: int = 1


@dataclass
class _Seq:
    job: Job
    prefill: int  # tokens still to prefill (0 once its first token is out)
    decode: int  # tokens to generate after the first
    cached: int = 0  # prompt tokens found in the prefix cache
    handle: int = 0  # its place in the replica's cache, released when it finishes
    done: int = 0  # prompt tokens prefilled by earlier chunks
    chunk: int = 0  # prompt tokens the running iteration prefills
    first_at: float = 0.0  # when its first token came
    order: int = 0  # when it joined an iteration: the engine's order of its sequences


@dataclass
class _Replica:
    slot: ReplicaSlot
    cache: PromptCache
    waiting: list[_Seq] = field(default_factory=list)  # admitted, not yet in an iteration
    prefilling: list[_Seq] = field(default_factory=list)  # in iterations, prompt not done
    decoding: DecodeBatch[_Seq] = field(default_factory=DecodeBatch)
    busy: bool = False
    starting: bool = False  # an iteration starts once every arrival of this instant is in
    unlooked: int = 0  # decode-only iterations since it last took new requests


@dataclass
class SimResult:
    ttft_s: list[float] = field(default_factory=list)
    e2e_s: list[float] = field(default_factory=list)
    rejected: int = 0
    hit_blocks: int = 0
    total_blocks: int = 0
    makespan_s: float = 0.0
    finished: list[tuple[Job, float, float]] = field(default_factory=list)  # job, TTFT, e2e

    @property
    def hit_rate(self) -> float:
        return self.hit_blocks / self.total_blocks if self.total_blocks else 0.0

    def ttft_pct(self, p: int) -> float:
        return statistics.quantiles(self.ttft_s, n=100)[p - 1]

    def summary(self) -> dict[str, float]:
        return {
            "requests": len(self.ttft_s),
            "rejected": self.rejected,
            "ttft_p50_s": self.ttft_pct(50),
            "ttft_p90_s": self.ttft_pct(90),
            "e2e_p50_s": statistics.median(self.e2e_s),
            "prefix_hit_rate": self.hit_rate,
            "makespan_s": self.makespan_s,
        }


class FleetSimulator:
    def __init__(self, spec: FleetSpec, picker: Picker, model_name: str = "m") -> None:
        self.spec = spec
        self.core = SchedulerCore(Limits(10**9, 10**9), picker=picker)
        self._replicas: dict[str, _Replica] = {}
        slots = []
        for i in range(spec.replicas):
            slot = ReplicaSlot(f"r{i}", capacity=spec.slots, cache_blocks=spec.cache_blocks)
            slots.append(slot)
            cache: PromptCache = (
                SlotCache(spec.slots) if spec.cache == "slots" else BlockCache(spec.cache_blocks)
            )
            self._replicas[slot.id] = _Replica(slot, cache)
        self.core.update_replicas(model_name, slots)
        self.model_name = model_name
        self._events: list[tuple[float, int, str, object]] = []
        self._order = itertools.count()
        self.result = SimResult()
        self._then: Callable[[Job, float], Iterable[Job]] | None = None
        self._joined = itertools.count()

    def run(
        self, jobs: Iterable[Job], then: Callable[[Job, float], Iterable[Job]] | None = None
    ) -> SimResult:
        """Runs `jobs` to the end; `then(job, now)`, when given, is told of every job that
        finishes and returns the jobs sent because of it (a closed loop: the next request)."""
        self._then = then
        for job in jobs:
            self._at(job.arrived, "arrive", job)
        now = 0.0
        while self._events:
            now, _, kind, what = heapq.heappop(self._events)
            if kind == "arrive":
                assert isinstance(what, Job)
                self._arrive(what, now)
            elif kind == "wake":
                self._dispatch(now)
            elif kind == "start":
                assert isinstance(what, _Replica)
                what.starting = False
                if not what.busy:
                    self._start_iteration(what, now)
            else:
                assert isinstance(what, _Replica)
                self._iteration_done(what, now)
        self.result.makespan_s = now
        return self.result

    def _at(self, when: float, kind: str, what: object) -> None:
        heapq.heappush(self._events, (when, next(self._order), kind, what))

    def _arrive(self, job: Job, now: float) -> None:
        try:
            placed = self.core.submit(job, now)
        except Rejected:
            self.result.rejected += 1
            return
        if placed is not None:
            self._admit(placed, now)
        else:
            self._dispatch(now)  # a job held for its replica schedules its own wake-up

    def _dispatch(self, now: float) -> None:
        for placed in self.core.dispatch(now):
            self._admit(placed, now)
        wake = self.core.wake_at(self.model_name)
        if wake is not None and wake > now:
            self._at(wake, "wake", None)

    def _admit(self, placed: Dispatch, now: float) -> None:
        replica = self._replicas[placed.choice.replica.id]
        job = placed.job
        cached, handle = replica.cache.admit(job.prefix_blocks)
        self.result.hit_blocks += cached
        self.result.total_blocks += len(job.prefix_blocks)
        prefill = max(1, job.input_tokens - cached * self.spec.block_tokens)
        replica.waiting.append(
            _Seq(job, prefill, job.max_output_tokens - 1, job.input_tokens - prefill, handle)
        )
        if not (replica.busy or replica.starting):  # after the other arrivals of this instant
            replica.starting = True
            self._at(now, "start", replica)

    def _start_iteration(self, replica: _Replica, now: float) -> None:
        decoding = replica.decoding
        budget = self.spec.token_budget
        left = sys.maxsize if budget is None else budget - len(decoding)
        partial = list(replica.prefilling)  # chunked prompts go on first
        interval = self.spec.admission_interval
        looks = interval <= 1 or not decoding or replica.unlooked >= interval
        prefills = []
        for seq in itertools.chain(partial, replica.waiting if looks else ()):
            if left <= 0:
                break
            seq.chunk = min(seq.prefill, left)
            left -= seq.chunk
            prefills.append((seq.chunk, seq.cached + seq.done))
        started = max(0, len(prefills) - len(partial))
        # the look counts from here; an iteration that prefills is followed by a look
        replica.unlooked = interval if prefills else (0 if looks else replica.unlooked) + 1
        for seq in replica.waiting[:started]:
            seq.order = next(self._joined)
        replica.prefilling += replica.waiting[:started]
        replica.waiting = replica.waiting[started:]
        replica.busy = True
        seconds = self.spec.model(prefills, decoding)
        self._at(now + seconds, "iteration", replica)

    def _iteration_done(self, replica: _Replica, now: float) -> None:
        finished = [(key, True, seq) for key, seq in replica.decoding.advance()]
        first: list[tuple[int, bool, _Seq]] = []  # prompts done: their first token is out
        still: list[_Seq] = []
        for seq in replica.prefilling:
            if seq.chunk:
                seq.prefill -= seq.chunk
                seq.done += seq.chunk
                seq.chunk = 0
            if seq.prefill:
                still.append(seq)
            else:
                first.append((seq.order, False, seq))
        replica.prefilling = still
        # in the engine's order of its sequences, as it reports them
        for _, decoded, seq in heapq.merge(first, finished):
            if not decoded:
                seq.first_at = now
                self.result.ttft_s.append(now - seq.job.arrived)
                self.core.on_first_token(seq.job, now)
                self.core.on_prompt_counted(seq.job, seq.job.input_tokens, seq.cached)
                if seq.decode > 0:  # it attends to its prompt and its first token
                    replica.decoding.add(seq.order, seq, seq.job.input_tokens + 1, seq.decode)
                    continue
            self._finish(replica, seq, now)
        replica.busy = False
        self._dispatch(now)
        if (replica.prefilling or replica.decoding or replica.waiting) and not replica.busy:
            self._start_iteration(replica, now)

    def _finish(self, replica: _Replica, seq: _Seq, now: float) -> None:
        self.result.e2e_s.append(now - seq.job.arrived)
        ttft = seq.first_at - seq.job.arrived
        self.result.finished.append((seq.job, ttft, now - seq.job.arrived))
        replica.cache.release(seq.handle)
        self.core.finish(seq.job, now)
        for job in self._then(seq.job, now) if self._then is not None else ():
            self._at(max(now, job.arrived), "arrive", job)
