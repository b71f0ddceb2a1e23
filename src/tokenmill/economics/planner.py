"""The capacity planner: for a model and a workload, rank every catalog accelerator by what a
million tokens would cost, and say why the others cannot serve it.

Filter -> fit -> score, each step with reasons (the shape of GPUStack's scheduler):
  filter  the catalog figures the answer rests on exist (TFLOPS at the precision, price, TDP);
  fit     the tensor-parallel groups (1, 2, 4, 8 up to a node) whose memory holds the weights
          plus one request's KV cache;
  score   per group, the highest concurrency a replica sustains within the TTFT/TPOT SLO
          (roofline model, `perf_model.predict`), replicas for the demanded rate, cost, power,
          racks, payback; the group with the lowest $/1M tokens stands for the accelerator.
Pure computation: no server, no database, nothing slow to import.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Literal

from tokenmill.economics import efficiency_data, perf_model
from tokenmill.economics.collectives import (
    NETWORK_BYTES_PER_S,
    NETWORK_LATENCY_S,
    PCIE4_BYTES_PER_S,
    PCIE_LATENCY_S,
)
from tokenmill.economics.cost import (
    HOURS_PER_MONTH,
    as_decimal,
    cost_per_million_tokens,
    payback_months,
)
from tokenmill.economics.facilities import FacilityBook, default_facilities
from tokenmill.economics.model_layouts import with_layout
from tokenmill.economics.models import FORMATS, ReferenceModel, matmul_precisions
from tokenmill.economics.perf_model import (
    USABLE_MEMORY,
    Device,
    Efficiency,
    ModelSpec,
    Prediction,
    Workload,
)
from tokenmill.economics.planner_band import Band, calibrated_band
from tokenmill.economics.planner_band import band as validation_band
from tokenmill.economics.planner_site import Site, SiteError, hour_cost, rack_counts, site_for
from tokenmill.fleet.catalog import Accelerator, catalog

TP_DEGREES = (1, 2, 4, 8, 16)
MAX_NODES = 4  # the widest replica the planner tries: a pipeline of 4 whole-node stages
# Bounds the search. Engines cap a batch lower (vLLM: max_num_seqs), so near the top of this
# range the plan is optimistic.
MAX_CONCURRENCY = 4096
SECONDS_PER_DAY = 86_400
GB = 1e9

Acquire = Literal["rented", "owned"]
ExclusionKind = Literal["slo", "memory", "rack power", "missing figure"]
_EXCLUSION_ORDER: tuple[ExclusionKind, ...] = ("slo", "memory", "rack power", "missing figure")


class PlanError(ValueError):
    """The plan's inputs are inconsistent or out of range; the message says which."""


@dataclass(frozen=True, slots=True)
class Demand:
    """The workload: a request rate OR a daily token volume (input + output tokens)."""

    input_tokens: int
    output_tokens: int
    requests_per_s: float | None = None
    tokens_per_day: float | None = None

    @property
    def tokens_per_request(self) -> int:
        return self.input_tokens + self.output_tokens

    @property
    def rate(self) -> float:
        """Requests per second."""
        if self.requests_per_s is not None:
            return self.requests_per_s
        assert self.tokens_per_day is not None  # checked by _check_demand
        return self.tokens_per_day / SECONDS_PER_DAY / self.tokens_per_request


@dataclass(frozen=True, slots=True)
class Slo:
    ttft_s: float
    tpot_s: float


@dataclass(frozen=True, slots=True)
class PlanOptions:
    precision: str | None = None  # a models.FORMATS key; None: how the model is usually served
    weight_bits: float | None = None  # overrides the format's bits per weight
    price_per_million: Decimal | None = None  # revenue per 1M tokens (input + output), USD
    facility: str = "us-industrial"
    cooling: str | None = None  # overrides the facility's cooling type
    acquire: Acquire = "rented"
    years: int = 5  # owned: capital recovered over this many years...
    interest_rate: Decimal = Decimal("0.08")  # ...at this rate (an assumption; set your own)
    max_per_node: int | None = None  # None: the catalog's (`Accelerator.per_node`)
    # None: `efficiency_data` for the engine (a name or family) and the part's vendor, else the
    # data's default entry; an Efficiency given here applies to every part.
    efficiency: Efficiency | None = None
    calibrated: Mapping[str, Efficiency] = field(default_factory=dict)  # by accelerator id
    # the fewest and most requests in flight the calibration's runs had, by accelerator id
    calibrated_loads: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    engine: str | None = None  # the serving engine planned for, e.g. "vllm", "sglang"
    # decode iterations between the engine's looks for new requests (SGLang's
    # --scheduler-recv-interval); None: the efficiency's (engines default to 1)
    admission_interval: int | None = None
    # how the KV cache is stored (`KV_CACHE_BITS`): engines keep it at the model's 16 bits
    # unless told (vLLM/SGLang --kv-cache-dtype fp8) or the checkpoint carries FP8 KV scales
    kv_cache: str = "bf16"


# KV cache formats a plan can assume, bits per element.
KV_CACHE_BITS = {"bf16": 16.0, "fp16": 16.0, "fp8": 8.0}


@dataclass(frozen=True, slots=True)
class Option:
    """One accelerator that can serve the demand, scored."""

    accelerator: Accelerator
    compute_precision: str
    tensor_parallel: int  # accelerators per replica (`layout` says how they share the model)
    concurrency: int  # most requests in flight per replica within the SLO
    replicas: int
    accelerators: int
    nodes: int
    prediction: Prediction  # one replica at `concurrency`
    output_tokens_per_s: float  # all replicas at `concurrency`: the fleet's capacity
    usd_per_accelerator_hour: Decimal
    usd_per_hour: Decimal  # the whole fleet
    usd_per_million: Decimal  # fleet cost over the demanded tokens (input + output)
    usd_per_million_at_capacity: Decimal  # a replica kept busy at `concurrency`
    it_kw: float  # accelerators at TDP, all of them
    all_in_kw: float  # x PUE
    racks: Mapping[str, int | str]  # cooling type -> racks, or why none
    monthly_margin: Decimal | None  # revenue - cost at the demanded rate; None without a price
    payback_months: Decimal | None  # owned only; None when the margin never repays
    efficiency: str  # "default" or what it was calibrated on
    estimated: frozenset[str]  # outputs resting on a low-confidence catalog figure
    low_confidence: tuple[str, ...]  # those catalog figures
    band: Band | None = None  # how far the held-out validation says such a figure may be off
    layout: str = ""  # how a replica's accelerators share the model (`Device.layout`)


@dataclass(frozen=True, slots=True)
class Exclusion:
    accelerator: Accelerator
    kind: ExclusionKind
    reason: str


@dataclass(frozen=True, slots=True)
class Plan:
    model: ReferenceModel
    spec: ModelSpec
    demand: Demand
    slo: Slo
    options_used: PlanOptions
    site: Site
    options: tuple[Option, ...]  # best first
    excluded: tuple[Exclusion, ...]


# --------------------------------------------------------------------------------- checks


def _check(model: ReferenceModel, demand: Demand, slo: Slo, opts: PlanOptions) -> None:
    if demand.input_tokens < 1 or demand.output_tokens < 1:
        raise PlanError("input and output tokens per request must be >= 1")
    given = [x for x in (demand.requests_per_s, demand.tokens_per_day) if x is not None]
    if len(given) != 1:
        raise PlanError("give the demand as a request rate or as tokens per day (one of them)")
    if not (math.isfinite(given[0]) and given[0] > 0):
        raise PlanError(f"the demand must be a finite number > 0, got {given[0]!r}")
    if demand.tokens_per_request > model.max_context:
        raise PlanError(
            f"input + output = {demand.tokens_per_request} tokens exceeds {model.name}'s "
            f"context of {model.max_context}"
        )
    if not (slo.ttft_s > 0 and slo.tpot_s > 0):
        raise PlanError("the TTFT and TPOT SLOs must be > 0")
    if opts.precision is not None and opts.precision not in FORMATS:
        raise PlanError(f"unknown precision {opts.precision!r}; choose from {', '.join(FORMATS)}")
    if opts.weight_bits is not None and not 0 < opts.weight_bits <= 32:
        raise PlanError(f"weight bits must be in (0, 32], got {opts.weight_bits}")
    if opts.max_per_node is not None and opts.max_per_node < 1:
        raise PlanError(f"max accelerators per node must be >= 1, got {opts.max_per_node}")
    if opts.price_per_million is not None and not opts.price_per_million >= 0:
        raise PlanError(f"the token price must be >= 0, got {opts.price_per_million}")
    if opts.kv_cache not in KV_CACHE_BITS:
        raise PlanError(f"unknown KV cache format {opts.kv_cache!r}; choose from "
                        f"{', '.join(KV_CACHE_BITS)}")  # fmt: skip


# --------------------------------------------------------------------------------- plan


def plan(
    model: ReferenceModel,
    demand: Demand,
    slo: Slo,
    opts: PlanOptions | None = None,
    *,
    accelerators: Mapping[str, Accelerator] | None = None,
    facilities: FacilityBook | None = None,
) -> Plan:
    """Every accelerator of the catalog, scored or excluded with a reason; best first."""
    opts = opts or PlanOptions()
    _check(model, demand, slo, opts)
    try:
        site = site_for(facilities or default_facilities(), opts.facility, opts.cooling,
                        owned=opts.acquire == "owned")  # fmt: skip
    except SiteError as exc:
        raise PlanError(str(exc)) from None
    spec = with_layout(model.id, model.spec(opts.precision, weight_bits=opts.weight_bits,
                                            kv_bits=KV_CACHE_BITS[opts.kv_cache]))  # fmt: skip
    precision = opts.precision or model.default_precision
    scored: list[Option] = []
    excluded: list[Exclusion] = []
    for acc in (accelerators or catalog()).values():
        result = _evaluate(acc, spec, precision, demand, slo, opts, site)
        if isinstance(result, Option):
            scored.append(result)
        else:
            excluded.append(result)
    scored.sort(key=lambda o: (o.usd_per_million, o.accelerators, o.accelerator.id))
    excluded.sort(key=lambda e: _EXCLUSION_ORDER.index(e.kind))  # a data gap last
    return Plan(model, spec, demand, slo, opts, site, tuple(scored), tuple(excluded))


def device(acc: Accelerator, count: int, precision: str, per_node: int | None = None) -> Device:
    """`count` accelerators working as one replica (tensor parallel), at `precision`, talking
    over the catalog's interconnect (PCIe 4.0 x16 where the catalog has no figure), and over
    a 400 Gb/s network port each when they fill more than one node of `per_node` (default:
    the catalog's)."""
    tflops = acc.tflops(precision)
    if tflops is None:
        raise PlanError(f"{acc.id} has no TFLOPS figure at {precision}")
    # Attention runs at the 16-bit rate whatever the matmuls' format (an int8 peak can be far
    # below it: GB300's); an fp32 part (a CPU) runs it at fp32, a part with no 16-bit figure at
    # the peak it has.
    sixteen = acc.tflops("bf16") or acc.tflops("fp16") or tflops
    attention = tflops if precision == "fp32" else sixteen
    link = acc.interconnect_gbs * GB / 2 if acc.interconnect_gbs else PCIE4_BYTES_PER_S
    latency = acc.collective_latency_us
    node = per_node or acc.per_node
    nodes = -(-count // node)
    if count % nodes:
        raise PlanError(f"{count} x {acc.id} do not split evenly over {nodes} nodes of {node}")
    return Device(
        name=f"{count} x {acc.name}" if count > 1 else acc.name,
        flops=tflops * 1e12 * count,
        attention_flops=attention * 1e12 * count,
        bandwidth=acc.memory_bandwidth_gbs * GB * count,
        memory_bytes=acc.memory_gb * GB * count,
        count=count,
        link_bandwidth=link,
        link_latency_s=latency * 1e-6 if latency is not None else PCIE_LATENCY_S,
        nodes=nodes,
        network_bandwidth=NETWORK_BYTES_PER_S if nodes > 1 else 0.0,
        network_latency_s=NETWORK_LATENCY_S if nodes > 1 else 0.0,
    )


def pipeline(
    acc: Accelerator, count: int, stages: int, precision: str, per_node: int | None = None
) -> Device:
    """`stages` groups of `count` accelerators holding the layers in turn (pipeline parallel):
    each stage's speed, every stage's memory, hops between nodes when the stages fill more
    than one node of `per_node` (default: the catalog's)."""
    stage = device(acc, count, precision, per_node)
    across = count * stages > (per_node or acc.per_node)
    return replace(
        stage,
        name=f"{stages} x {stage.name}",
        memory_bytes=stage.memory_bytes * stages,
        stages=stages,
        network_bandwidth=NETWORK_BYTES_PER_S if across else stage.network_bandwidth,
        network_latency_s=NETWORK_LATENCY_S if across else stage.network_latency_s,
    )


def interconnect_assumed(acc: Accelerator) -> bool:
    """The catalog lacks a link figure for `acc`: a group's collectives are PCIe-class guesses."""
    return acc.interconnect_gbs is None or acc.collective_latency_us is None


def _missing(acc: Accelerator, compute: tuple[str, ...], opts: PlanOptions) -> list[str]:
    missing = []
    if not any(acc.tflops(p) for p in compute):
        have = ", ".join(sorted(acc.tflops_dense)) or "none"
        missing.append(f"dense TFLOPS at {' or '.join(compute)} (catalog has: {have})")
    price = acc.rental_usd_per_hour if opts.acquire == "rented" else acc.purchase_price_usd
    if price is None:
        missing.append("rental price per hour" if opts.acquire == "rented" else "purchase price")
    if acc.tdp_w is None:
        missing.append("TDP (power draw)")
    return missing


def _evaluate(
    acc: Accelerator, spec: ModelSpec, precision: str, demand: Demand, slo: Slo,
    opts: PlanOptions, site: Site,
) -> Option | Exclusion:  # fmt: skip
    compute = matmul_precisions(precision, acc.vendor, acc.tflops("fp4") is not None, opts.engine)
    missing = _missing(acc, compute, opts)
    if missing:
        return Exclusion(acc, "missing figure", "no catalog figure for " + "; ".join(missing))
    spec = replace(spec, compute_precision=next(p for p in compute if acc.tflops(p)))
    kv_request = spec.kv_bytes_per_token * demand.tokens_per_request
    fitting: list[Device] = []
    for candidates in _groups(acc, spec, _per_node(acc, opts)):
        fitting = [
            g for g in candidates
            if g.memory_bytes * USABLE_MEMORY >= spec.weight_bytes + kv_request * _replicas(spec, g)
        ]  # fmt: skip
        if fitting:
            break
    if not fitting:
        widest = candidates[-1]
        kv_last = kv_request * _replicas(spec, widest)
        return Exclusion(acc, "memory", _memory_reason(acc, spec, kv_last, demand, widest))
    eff = (opts.calibrated.get(acc.id) or opts.efficiency
           or efficiency_data.efficiency_for(opts.engine, acc.vendor))  # fmt: skip
    if opts.admission_interval is not None:
        eff = replace(eff, admission_interval=opts.admission_interval)
    scored: list[Option | Exclusion] = []
    for group in fitting:
        for dev in layouts(spec, group):
            found = _best_concurrency(spec, dev, eff, demand, slo)
            if found is not None:
                scored.append(_score(acc, spec, dev, eff, demand, opts, site, *found))
    options = [o for o in scored if isinstance(o, Option)]
    if options:  # the cheapest group; on a tie the fewer accelerators, the smaller group, TP
        return min(options, key=lambda o: (o.usd_per_million, o.accelerators, o.tensor_parallel))
    if scored:
        return scored[0]  # every group that meets the SLO makes too hot a node
    last = perf_model.predict(spec, fitting[-1], eff, _work(demand, 1))
    return Exclusion(acc, "slo", _slo_reason(acc, fitting[-1], last, slo))


def _groups(acc: Accelerator, spec: ModelSpec, node: int) -> tuple[list[Device], list[Device]]:
    """The groups a replica may run on, smallest first: tensor parallel inside one node at
    each degree; then, for a model that needs more than a node, tensor parallel over two
    nodes and pipelines of 2 and 4 whole-node stages (`MAX_NODES`)."""
    precision = spec.compute_precision
    inside = [device(acc, d, precision, node) for d in TP_DEGREES if d <= node] or [
        device(acc, node, precision, node)
    ]
    wider = [device(acc, d, precision, node) for d in TP_DEGREES if node < d <= 2 * node]
    wider += [pipeline(acc, node, stages, precision, node) for stages in range(2, MAX_NODES + 1)
              if stages & (stages - 1) == 0]  # fmt: skip
    return inside, sorted(wider, key=lambda g: g.devices)


def layouts(spec: ModelSpec, group: Device) -> list[Device]:
    """The ways a group may share the model: tensor parallelism, and for a mixture of experts
    with a known shape also whole experts spread over the group and data-parallel attention
    (`parallel.py`), tensor parallelism first."""
    if spec.moe is None or group.count == 1:
        return [group]
    return [replace(group, attention_dp=dp, expert_parallel=ep)
            for dp in (False, True) for ep in (False, True)]  # fmt: skip


def _replicas(spec: ModelSpec, group: Device) -> float:
    """Copies of the KV cache a group keeps (`perf_model.kv_replication`)."""
    return perf_model.kv_replication(spec, group)


def _work(demand: Demand, concurrency: int) -> Workload:
    return Workload(demand.input_tokens, demand.output_tokens, concurrency)


def _best_concurrency(
    spec: ModelSpec, dev: Device, eff: Efficiency, demand: Demand, slo: Slo
) -> tuple[int, Prediction] | None:
    """The highest concurrency within memory (the KV blocks in use, `perf_model.kv_per_request`)
    and the SLO, by bisection: latency grows with the batch, so feasibility is monotone. None
    when even one request misses."""
    top = max(1, min(MAX_CONCURRENCY, perf_model.max_concurrency(spec, dev, _work(demand, 1))))

    def ok(c: int) -> Prediction | None:
        p = perf_model.predict(spec, dev, eff, _work(demand, c))
        meets = p.fits_memory and p.ttft_s <= slo.ttft_s and p.tpot_s <= slo.tpot_s
        return p if meets and p.requests_per_s > 0 else None

    best = ok(1)
    if best is None:
        return None
    lo, hi = 1, top  # ok(lo) holds; find the largest such
    while lo < hi:
        mid = (lo + hi + 1) // 2
        p = ok(mid)
        if p is None:
            hi = mid - 1
        else:
            lo, best = mid, p
    return lo, best


def _per_node(acc: Accelerator, opts: PlanOptions) -> int:
    """Accelerators in one node: a replica's largest tensor-parallel group."""
    return opts.max_per_node or acc.per_node


def _score(
    acc: Accelerator, spec: ModelSpec, dev: Device, eff: Efficiency, demand: Demand,
    opts: PlanOptions, site: Site, concurrency: int, pred: Prediction,
) -> Option | Exclusion:  # fmt: skip
    size, node = dev.devices, _per_node(acc, opts)
    replicas = max(1, math.ceil(demand.rate / pred.requests_per_s))
    total = replicas * size
    per_node = min(total, node // size * size or node)
    assert acc.tdp_w is not None  # filtered
    node_kw = per_node * acc.tdp_w / 1000
    limit = site.cooling.max_kw_per_rack
    if limit is not None and node_kw > limit.value:
        reason = (
            f"exceeds rack power: one node of {per_node} x {acc.name} draws {node_kw:.1f} kW "
            f"at TDP > {site.cooling.name} cooling's {limit.value:g} kW per rack"
        )
        return Exclusion(acc, "rack power", reason)
    nodes = math.ceil(total / per_node)
    hour = hour_cost(acc, opts.acquire, site, years=opts.years, rate=opts.interest_rate)
    fleet_hour = hour.total * total
    tokens_per_s = demand.rate * demand.tokens_per_request
    replica_tokens_per_s = pred.requests_per_s * demand.tokens_per_request
    replica_hour = hour.total * size
    margin = payback = None
    if opts.price_per_million is not None:
        margin, payback = _returns(acc, opts, hour.energy + hour.fixed_opex, fleet_hour,
                                   total, tokens_per_s)  # fmt: skip
    it_kw = total * acc.tdp_w / 1000
    low = _low_confidence(acc, spec.compute_precision, opts.acquire)
    return Option(
        accelerator=acc,
        compute_precision=spec.compute_precision,
        tensor_parallel=size,
        concurrency=concurrency,
        replicas=replicas,
        accelerators=total,
        nodes=nodes,
        prediction=pred,
        output_tokens_per_s=pred.output_tokens_per_s * replicas,
        usd_per_accelerator_hour=hour.total,
        usd_per_hour=fleet_hour,
        usd_per_million=cost_per_million_tokens(fleet_hour, tokens_per_s),
        usd_per_million_at_capacity=cost_per_million_tokens(replica_hour, replica_tokens_per_s),
        it_kw=it_kw,
        all_in_kw=it_kw * site.pue,
        racks=rack_counts(site.book, nodes, node_kw),
        monthly_margin=margin,
        payback_months=payback,
        efficiency=eff.source,
        estimated=_estimated(low, opts.acquire),
        low_confidence=tuple(sorted(low)),
        band=_band(
            acc,
            spec,
            dev,
            concurrency,
            opts.calibrated_loads.get(acc.id),
            _leans_on(acc, spec, opts),
        ),
        layout=dev.layout,
    )


def _leans_on(acc: Accelerator, spec: ModelSpec, opts: PlanOptions) -> list[str]:
    """What the entry an option runs on cannot vouch for: fitted values at the edge of their
    range (each stands in for something the model does not have), and a model of an
    architecture none of its figures ran."""
    if opts.efficiency is not None or acc.id in opts.calibrated:
        return []
    entry = efficiency_data.entry_for(opts.engine, acc.vendor)
    names = entry.at_bounds()
    leans = [f"{entry.label}: {', '.join(names)} at the fit's bound"] if names else []
    unfitted = entry.unfitted(_architecture(spec))
    return leans + ([f"{entry.label}: {unfitted}"] if unfitted else [])


def _band(
    acc: Accelerator, spec: ModelSpec, dev: Device, concurrency: int,
    calibrated: tuple[int, int] | None = None, leans: Sequence[str] = (),
) -> Band:  # fmt: skip
    if calibrated is not None:  # measured on this part: the calibration's own check
        return calibrated_band(concurrency, calibrated)
    tp = dev.count
    guesses = list(leans)
    if tp > 1 and interconnect_assumed(acc):
        guesses.append(f"{acc.id} interconnect taken as PCIe 4.0 (no catalog figure)")
    if _architecture(spec) == "moe" and spec.moe is None:
        guesses.append("the experts' shape is unknown (custom MoE)")
    return validation_band(_architecture(spec), tp, acc.vendor, concurrency,
                           layout=dev.layout_kind, assumptions=guesses,
                           accelerator=acc.id)  # fmt: skip


def _architecture(spec: ModelSpec) -> str:
    return "moe" if spec.active_params < spec.params else "dense"


def _returns(
    acc: Accelerator, opts: PlanOptions, running_per_hour: Decimal, fleet_hour: Decimal,
    accelerators: int, tokens_per_s: float,
) -> tuple[Decimal, Decimal | None]:  # fmt: skip
    """Monthly margin at the demanded rate, and (owned) months for it to repay the purchase:
    the margin before capital recovery is what pays the capex back."""
    assert opts.price_per_million is not None
    tokens_per_month = as_decimal(tokens_per_s) * 3600 * HOURS_PER_MONTH
    revenue = opts.price_per_million * tokens_per_month / 1_000_000
    margin = revenue - fleet_hour * HOURS_PER_MONTH
    if opts.acquire != "owned":
        return margin, None
    assert acc.purchase_price_usd is not None
    capex = acc.purchase_price_usd.mid * accelerators
    running = running_per_hour * accelerators * HOURS_PER_MONTH
    return margin, payback_months(capex, revenue - running)


# Which outputs a catalog figure feeds: a low-confidence figure makes them estimates.
_PERF = frozenset({"tokens/s", "concurrency", "accelerators", "$/1M", "$/h", "kW", "racks",
                   "payback"})  # fmt: skip
_MONEY = frozenset({"$/1M", "$/h", "payback"})


def _low_confidence(acc: Accelerator, compute: str, acquire: Acquire) -> set[str]:
    price = "rental_usd_per_hour" if acquire == "rented" else "purchase_price_usd"
    used = ("memory_gb", "memory_bandwidth_gbs", f"tflops_dense.{compute}", "tdp_w", price)
    return {n for n in used if (p := acc.provenances.get(n)) and p.confidence == "low"}


def _estimated(low: set[str], acquire: Acquire) -> frozenset[str]:
    feeds: set[str] = set()
    for name in low:
        if name == "tdp_w":  # a rent already includes the power, so TDP feeds no money then
            feeds |= {"kW", "racks"} | (_MONEY if acquire == "owned" else set())
        elif name.endswith("_usd") or name.endswith("_per_hour"):
            feeds |= _MONEY
        else:
            feeds |= _PERF
    return frozenset(feeds)


# --------------------------------------------------------------------------------- reasons


def _memory_reason(
    acc: Accelerator, spec: ModelSpec, kv_request: float, demand: Demand, group: Device
) -> str:
    need = spec.weight_bytes + kv_request
    count = group.devices
    return (
        f"does not fit memory: needs {need / GB:.1f} GB (weights {spec.weight_bytes / GB:.1f} GB "
        f"+ KV {kv_request / GB:.2f} GB for one {demand.tokens_per_request}-token request); "
        f"{count} x {acc.memory_gb:g} GB = {acc.memory_gb * count:g} GB ({group.layout}) has "
        f"{group.memory_bytes * USABLE_MEMORY / GB:.1f} GB usable ({USABLE_MEMORY:.0%})"
    )


def _slo_reason(acc: Accelerator, group: Device, p: Prediction, slo: Slo) -> str:
    misses = []
    if p.ttft_s > slo.ttft_s:
        misses.append(f"TTFT {p.ttft_s * 1000:.0f} ms > SLO {slo.ttft_s * 1000:g} ms")
    if p.tpot_s > slo.tpot_s:
        misses.append(f"TPOT {p.tpot_s * 1000:.1f} ms > SLO {slo.tpot_s * 1000:g} ms")
    if not misses:  # the predictor says it does not fit, though our headroom check passed
        misses.append("the predicted KV cache does not fit")
    where = f"{group.devices} x {acc.name}" + (f" ({group.layout})" if group.stages > 1 else "")
    return f"misses the SLO at concurrency 1 on {where}: " + ", ".join(misses)
