"""Fit the performance model's efficiencies to the FIT halves of the published figures (issue 17).

    python benchmarks/planner_fit.py                       # writes economics/data/efficiencies.toml
    python benchmarks/planner_fit.py --params layer_overhead_s --no-groups \\
        --efficiencies default --out benchmarks/results/planner_fit-step1-overhead.toml

Only figures the frozen split (`planner_figures.split`, tests/test_planner_figures.py) puts in
FIT are read, from the files `planner_figures.DEV` names (rounds 1-8); the HELD-OUT halves
are never seen here. The loss is the sum over FIT figures of
log(predicted / published)^2 for every judged metric (the metrics `planner_figures.py`
judges), plus a ridge `RIDGE` x (log(value / prior))^2 per fitted parameter (an overhead's
measured from its START: log((value + START) / (prior + START))), so a parameter the figures
cannot pin stays at its prior. Parameters move in log space within their bounds; the
minimiser cycles over the coordinates (a grid, then a golden-section search), then polishes
with Nelder-Mead. Every loss simulates the FIT bursts, so a fit takes tens of minutes; the
figures are spread over `--jobs` processes.

First a DEFAULT entry ("*", "*") is fitted on every FIT figure, from `perf_model.Efficiency()`
(its overheads from `--start` when those are zero: a log-space search cannot leave zero). Then
one entry per engine family x accelerator vendor x release era (`ERAS`) that has FIT figures,
with the default entry as its prior. Each entry's source names the FIT ids it was fitted on
and the commit the tree was at.
"""

from __future__ import annotations

import argparse
import functools
import math
import multiprocessing
import multiprocessing.pool
import os
import subprocess
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import planner_figures as pf
from tokenmill.economics.efficiency_data import (
    ANY,
    Entry,
    bounds,
    load,
    pick,
    version_text,
)
from tokenmill.economics.perf_model import Efficiency

DATA = Path(__file__).parents[1] / "src" / "tokenmill" / "economics" / "data"
RIDGE = 0.1  # per parameter, on log(value / prior)^2; fixed before any held-out comparison
FREE_OVERHEADS = True  # the default entry's overheads move without a ridge (--ridge-overheads)
# The experts' reads and matmuls are not among them (`expert_bandwidth`, `expert_compute`):
# fitted on the engines of 2024-2025 they settled at 0.04-0.46 of the dense rates, and the
# engines of 2026 (round 5) ran 2-8x faster than those rates allowed. A fused MoE kernel reads
# an expert as a dense matmul reads its weights; what old kernels paid beyond that is per
# touched expert (`expert_overhead_s`), per layer or per sequence, fitted per release.
PARAMS = ("compute", "bandwidth", "step_overhead_s", "request_overhead_s", "layer_overhead_s",
          "sequence_overhead_s", "expert_overhead_s")  # fmt: skip
# Where a zero overhead starts a log-space search (and what it is pulled toward).
START = {"step_overhead_s": 1e-4, "request_overhead_s": 1e-3, "layer_overhead_s": 1e-5,
         "sequence_overhead_s": 1e-6, "expert_overhead_s": 1e-6}  # fmt: skip
# Engine releases from which a family gets entries of its own. SGLang 0.5: rounds 2 (0.4.x on
# H200 and H20) and 4 (0.5.6-0.5.9 on B200 and MI300X, unseen when first predicted) differ by
# 3-6x on the same models under load, more than one entry can fit. Chosen at the minor release
# before fitting; a figure whose engine has no version counts as the newest release.
# vLLM 0.11: the release that removed the V0 engine (vllm-project/vllm RFC #18571; V1 the only
# engine from 0.11.0), chosen before fitting round 5's FIT half (vLLM 0.15-0.17).
# vLLM 0.14: async scheduling on by default ("overlaps engine core scheduling with GPU
# execution", the v0.14.0 release notes, vllm-project/vllm #27614), which hides the per-step
# CPU work the fixed costs stand for; registered before refit step 18 (issue 17 eleventh slice).
ERAS: dict[str, tuple[tuple[int, ...], ...]] = {"sglang": ((0, 5),), "vllm": ((0, 11), (0, 14))}
VENDOR_NAMES = {"NVIDIA": "NVIDIA", "AMD": "AMD", "Huawei": "Ascend"}
ENGINE_NAMES = {"vllm": "vLLM", "tensorrt-llm": "TensorRT-LLM", "sglang": "SGLang",
                "vllm-ascend": "vLLM-Ascend", "mindie": "MindIE", "atom": "ATOM"}  # fmt: skip


def _value(eff: Efficiency, name: str) -> float:
    value = getattr(eff, name)
    if value is None:  # expert_* default to their dense counterparts
        value = getattr(eff, {"expert_bandwidth": "bandwidth", "expert_compute": "compute"}[name])
    return float(value) if value else START.get(name, 1e-6)


# --------------------------------------------------------------------------- the loss


def fit_figures(experts: bool) -> list[dict[str, Any]]:
    """The FIT halves of `pf.DEV`, as figures (raw TOML tables) with their engine family and
    vendor."""
    out = []
    for path in pf.DEV:
        out += _fit_half(path, experts)
    return out


def _fit_half(path: Path, experts: bool) -> list[dict[str, Any]]:
    _, figures = pf.load(path)
    parts = pf.split(figures)
    out = []
    for fig in figures:
        if parts[fig["id"]] != "fit":
            continue
        mapped = pf.map_figure(fig, experts=experts)
        if isinstance(mapped, pf.Mapped):
            out.append(
                {
                    "fig": fig,
                    "family": mapped.engine,
                    "vendor": mapped.accelerator.vendor,
                    "since": era(mapped.engine, pf.figure_version(fig, mapped.engine)),
                    "moe": fig["architecture"] == "moe",
                }
            )
    return out


def era(family: str | None, version: tuple[int, ...] | None) -> tuple[int, ...]:
    """The release era (`ERAS`) of a figure's engine release (None: the newest): the latest
    cutoff it has reached, () before the first."""
    reached = [c for c in ERAS.get(family or "", ()) if version is None or version >= c]
    return max(reached, default=())


Group = tuple[str, str, tuple[int, ...]]  # engine family, vendor, release era


def _group(f: Mapping[str, Any]) -> Group:
    return f["family"], f["vendor"], f["since"]


def _concurrency(f: Mapping[str, Any], experts: bool) -> int:
    mapped = pf.map_figure(f["fig"], experts=experts)
    assert isinstance(mapped, pf.Mapped)
    return mapped.work.concurrency


_MAPPED: dict[tuple[str, bool], pf.Mapped] = {}


def _log_misses(fig: Mapping[str, Any], eff: Efficiency, experts: bool) -> list[float]:
    if isinstance(fig.get("request_rate"), int | float):  # its concurrency depends on eff
        mapped = pf.map_figure(fig, experts=experts, efficiency=lambda *_: eff)
    else:
        key = (fig["id"], experts)
        if key not in _MAPPED:
            found = pf.map_figure(fig, experts=experts)
            assert isinstance(found, pf.Mapped)
            _MAPPED[key] = found
        mapped = replace(_MAPPED[key], efficiency=eff)
    assert isinstance(mapped, pf.Mapped)
    row = pf.evaluate(mapped)
    return [math.log(x["ratio"]) for x in row["metrics"].values() if x["judged"]]


def _squared_misses(job: tuple[Mapping[str, Any], Efficiency, bool]) -> float:
    fig, eff, experts = job
    return sum(x * x for x in _log_misses(fig, eff, experts))


# Worker processes the loss spreads its figures over (--jobs): the bursts' simulations are
# most of a fit's time, and each figure is independent of the others.
POOL: multiprocessing.pool.Pool | None = None


def loss(
    figs: Sequence[Mapping[str, Any]], eff: Efficiency, prior: Efficiency,
    names: Sequence[str], experts: bool,
) -> float:  # fmt: skip
    jobs = [(f["fig"], eff, experts) for f in figs]
    misses = sum(POOL.map(_squared_misses, jobs) if POOL else map(_squared_misses, jobs))
    ridge = sum(_pull(eff, prior, n) ** 2 for n in names if n not in FREE)
    return misses + RIDGE * ridge


def _pull(eff: Efficiency, prior: Efficiency, name: str) -> float:
    """How far a parameter moved from its prior, in log space; an overhead on the scale where
    it starts to matter (its START), so that a prior of next to nothing (a default entry whose
    per-request cost fitted to 1 us) does not pin a family's at next to nothing too."""
    scale = START.get(name, 0.0)
    return math.log((_value(eff, name) + scale) / (_value(prior, name) + scale))


# Parameters the default entry's fit does not pull toward its start (an overhead's START is a
# place to begin a log-space search, not a belief); families are pulled toward the default.
FREE: set[str] = set()


def _nelder_mead(f: Callable[[list[float]], float], x0: list[float], step: float = 0.5,
                 iterations: int = 200) -> list[float]:  # fmt: skip
    """Minimise f from x0 (a plain Nelder-Mead: reflection, expansion, contraction, shrink)."""
    simplex = [list(x0)] + [[x + (step if i == j else 0.0) for j, x in enumerate(x0)]
                            for i in range(len(x0))]  # fmt: skip
    scores = [f(x) for x in simplex]
    for _ in range(iterations):
        order = sorted(range(len(simplex)), key=scores.__getitem__)
        simplex, scores = [simplex[i] for i in order], [scores[i] for i in order]
        if scores[-1] - scores[0] < 1e-9:
            break
        centre = [sum(x[j] for x in simplex[:-1]) / (len(simplex) - 1) for j in range(len(x0))]
        worst = simplex[-1]
        reflected = [c + (c - w) for c, w in zip(centre, worst, strict=True)]
        r = f(reflected)
        if r < scores[0]:
            expanded = [c + 2 * (c - w) for c, w in zip(centre, worst, strict=True)]
            e = f(expanded)
            simplex[-1], scores[-1] = (expanded, e) if e < r else (reflected, r)
        elif r < scores[-2]:
            simplex[-1], scores[-1] = reflected, r
        else:
            contracted = [c + 0.5 * (w - c) for c, w in zip(centre, worst, strict=True)]
            k = f(contracted)
            if k < scores[-1]:
                simplex[-1], scores[-1] = contracted, k
            else:  # shrink toward the best
                best = simplex[0]
                simplex = [best] + [[b + 0.5 * (x - b) for b, x in zip(best, p, strict=True)]
                                    for p in simplex[1:]]  # fmt: skip
                scores = [scores[0]] + [f(x) for x in simplex[1:]]
    return simplex[min(range(len(simplex)), key=scores.__getitem__)]


EXPERT_PARAMS = frozenset({"expert_overhead_s", "expert_bandwidth", "expert_compute"})
# The rates a family without dense figures fits with its MoE ones: the prefill's matmuls.
# Registered before refit step 17 (docs/benchmarks.md, issue 17 eleventh slice); and, before
# refit step 19, a family whose dense figures time no prefill fits them so too.
FAMILY_RATES = frozenset({"compute"})


def times_a_prefill(fig: Mapping[str, Any]) -> bool:
    """Whether a figure's numbers depend on how fast the prompts prefill: it publishes a time
    to the first token, or its prompts are at least as long as its outputs (a decode-only
    speed test, one token in and 2,048 out, does not)."""
    return "ttft_ms" in fig or fig.get("input_tokens", 0) >= fig.get("output_tokens", 1)


def fit_staged(
    figs: Sequence[Mapping[str, Any]],
    prior: Efficiency,
    names: Sequence[str],
    experts: bool,
    staged: bool = True,
) -> tuple[Efficiency, float]:
    """`fit`, in two stages when `staged`: the dense parameters on the dense figures alone,
    then the experts' parameters on the MoE figures with the dense ones held. A MoE figure
    cannot tell a slow expert kernel from a slow dense one; this keeps it from moving what
    only dense figures can pin. A family without dense figures keeps the prior's decode
    bandwidth but fits its fixed costs (the `_s` overheads: per request, layer, sequence) and
    its matmul rate (`compute`: the prefill's) with the experts': they are the engine's, not
    the dense kernels', and its MoE figures at one and at many requests in flight, with short
    and long prompts, tell them apart from the experts' reads. Without its own prefill rate
    such a family put a slow prefill into a fixed per-request cost, at its bound, and into the
    experts' decode costs (issue 17, eleventh slice). A family whose dense figures time no
    prefill (`times_a_prefill`) fits its prefill rate on its MoE figures too: the dense stage
    left it at the prior."""
    if not staged:
        return fit(figs, prior, names, experts)
    eff = prior
    dense = [n for n in names if n not in EXPERT_PARAMS]
    dense_figs = [f["fig"] for f in figs if not f["moe"]]
    unpinned = not any(map(times_a_prefill, dense_figs))
    routed = [n for n in names  # in `names`' order: the search cycles over them in turn
              if n in EXPERT_PARAMS or (n.endswith("_s") and not dense_figs)
              or (n in FAMILY_RATES and unpinned)]  # fmt: skip
    for moe, stage in ((False, dense), (True, routed)):
        members = [f for f in figs if f["moe"] == moe]
        if members and stage:
            eff, _ = fit(members, eff, stage, experts)
    return eff, loss(figs, eff, prior, names, experts)


def _coordinates(
    f: Callable[[list[float]], float],
    x0: list[float],
    bounds: Sequence[tuple[float, float]],
    cycles: int = 4,
) -> list[float]:
    """Minimise f by cycling over the coordinates: a grid over each one's whole (log) range,
    then a golden-section search around the best grid point. Robust where the loss is flat in
    one parameter over a wide range (an overhead too small to matter until it is not)."""
    x, best = list(x0), f(list(x0))
    golden = (math.sqrt(5) - 1) / 2
    for _ in range(cycles):
        before = best
        for i, (lo, hi) in enumerate(bounds):
            grid = [lo + (hi - lo) * k / 16 for k in range(17)]
            scores = [f([*x[:i], g, *x[i + 1 :]]) for g in grid]
            k = min(range(len(grid)), key=scores.__getitem__)
            a, b = grid[max(0, k - 1)], grid[min(len(grid) - 1, k + 1)]
            for _ in range(12):
                c, d = b - golden * (b - a), a + golden * (b - a)
                fc, fd = f([*x[:i], c, *x[i + 1 :]]), f([*x[:i], d, *x[i + 1 :]])
                a, b = (a, d) if fc < fd else (c, b)
            candidates = [(scores[k], grid[k]), (f([*x[:i], (a + b) / 2, *x[i + 1:]]), (a + b) / 2),
                          (best, x[i])]  # fmt: skip
            best, x[i] = min(candidates)
        if before - best < 1e-7:
            break
    return x


def fit(
    figs: Sequence[Mapping[str, Any]], prior: Efficiency, names: Sequence[str], experts: bool
) -> tuple[Efficiency, float]:
    """The efficiency minimising `loss` over `figs`, moving `names` from `prior`."""

    def at(x: Sequence[float]) -> Efficiency:
        values = {}
        for name, z in zip(names, x, strict=True):
            lo, hi = bounds(name)
            values[name] = min(hi, max(lo, math.exp(z)))
        return replace(prior, **values)

    def objective(x: list[float]) -> float:
        return loss(figs, at(x), prior, names, experts)

    x = [math.log(_value(prior, n)) for n in names]
    ranges = [tuple(math.log(b) for b in bounds(n)) for n in names]
    x = _coordinates(objective, x, ranges)  # type: ignore[arg-type]
    x = _nelder_mead(objective, x, step=0.1)  # a polish across coordinates
    best = at(x)
    return best, loss(figs, best, prior, names, experts)


def _fit_all(figs: Sequence[Mapping[str, Any]], names: Sequence[str], experts: bool,
             groups: bool, family_prior: str = "default", staged: bool = True,
             ) -> tuple[Efficiency, dict[Group, Efficiency]]:  # fmt: skip
    start = replace(Efficiency(), **{n: START[n] for n in names if n in START})
    FREE.update(n for n in names if n.endswith("_s") and FREE_OVERHEADS)
    default, _ = fit_staged(figs, start, names, experts, staged)
    FREE.clear()
    prior = default if family_prior == "default" else start
    by_group: dict[Group, list[Mapping[str, Any]]] = {}
    for f in figs:
        if f["family"] is not None and groups:
            by_group.setdefault(_group(f), []).append(f)
    return default, {k: fit_staged(v, prior, names, experts, staged)[0]
                     for k, v in by_group.items()}  # fmt: skip


def leave_one_out(figs: Sequence[Mapping[str, Any]], names: Sequence[str], experts: bool,
                  groups: bool, family_prior: str = "default", staged: bool = True,
                  ) -> None:  # fmt: skip
    """Each FIT figure predicted by a fit on the other FIT figures: how a design (the
    parameter list) generalises, judged without the held-out half."""
    misses: list[float] = []
    within = 0
    for i, f in enumerate(figs):
        rest = [g for j, g in enumerate(figs) if j != i]
        default, fitted = _fit_all(rest, names, experts, groups, family_prior, staged)
        eff = fitted.get(_group(f), default)
        logs = _log_misses(f["fig"], eff, experts)
        misses += logs
        ok = all(math.log(0.75) <= x <= math.log(1.25) for x in logs)
        within += ok
        print(f"  {f['fig']['id']}: " + ", ".join(f"{math.exp(x):.2f}" for x in logs)
              + (" (within)" if ok else ""), flush=True)  # fmt: skip
    rms = math.sqrt(sum(x * x for x in misses) / len(misses))
    print(
        f"LOO over {len(figs)} FIT figures, params {', '.join(names)}: {within} within 25%, "
        f"rms log miss {rms:.3f}"
    )


# --------------------------------------------------------------------------- output


def _commit() -> str:
    try:
        done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True, cwd=Path(__file__).parent)  # fmt: skip
        head = done.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head


def _entry(ident: str, engine: str, vendor: str, eff: Efficiency, names: Sequence[str],
           ids: Sequence[str], note: str, since: tuple[int, ...] = ()) -> Entry:  # fmt: skip
    release = f" {version_text(since)} or later" if since else ""
    what = (
        ("every engine" if engine == ANY else ENGINE_NAMES.get(engine, engine))
        + release
        + ("" if vendor == ANY else f" on {VENDOR_NAMES.get(vendor, vendor)}")
    )
    label = "default" if engine == ANY and vendor == ANY else (
        f"{what} (fitted on {len(ids)} published figure{'s' * (len(ids) != 1)})")  # fmt: skip
    source = (f"fitted on FIT ids [{', '.join(sorted(ids))}] by benchmarks/planner_fit.py "
              f"(ridge {RIDGE}) at commit {_commit()}; "
              f"{note}")  # fmt: skip
    values = {n: getattr(eff, n) for n in names}
    return Entry(ident, engine, vendor, label, source, values, tuple(sorted(ids)), since,
                 architectures(ids))  # fmt: skip


def architectures(ids: Iterable[str]) -> tuple[str, ...]:
    """The architectures ("dense", "moe") of the published figures `ids` (any round's)."""
    known = _architecture_of()
    return tuple(sorted({known[i] for i in ids}))


@functools.cache
def _architecture_of() -> dict[str, str]:
    """Every published figure's architecture by id: the rounds read once per run, not once per
    entry written."""
    return {f["id"]: f["architecture"] for path in pf.DEV for f in pf.load(path)[1]}


def relabel(path: Path) -> None:
    """Write an efficiencies file's `architectures` from its entries' `fitted_on` figures, its
    values untouched (a file fitted before entries recorded them)."""
    entries = load(path.read_text("utf-8"))
    write([replace(e, architectures=architectures(e.fitted_on)) for e in entries], path, HEADER)


def _toml_value(value: object) -> str:
    if isinstance(value, float):
        text = f"{value:.6g}"
        return text if "e" in text or "." in text else text + ".0"
    return repr(value) if not isinstance(value, str) else '"' + value.replace('"', "'") + '"'


def write(entries: Sequence[Entry], out: Path, header: str) -> None:
    lines = [header, "schema_version = 1", f'updated = "{date.today().isoformat()}"', ""]
    for e in entries:
        lines += ["[[efficiency]]", f'id = "{e.id}"', f'engine = "{e.engine}"',
                  f'vendor = "{e.vendor}"', f"label = {_toml_value(e.label)}",
                  f"source = {_toml_value(e.source)}",
                  *([f'since = "{version_text(e.since)}"'] if e.since else []),
                  "fitted_on = [" + ", ".join(f'"{i}"' for i in e.fitted_on) + "]",
                  *(["architectures = [" + ", ".join(f'"{a}"' for a in e.architectures) + "]"]
                    if e.architectures else []),
                  "values = {" + ", ".join(f"{k} = {_toml_value(float(v))}"
                                           for k, v in e.values.items()) + "}", ""]  # fmt: skip
    out.write_text("\n".join(lines))


HEADER = """# Efficiencies per engine family x accelerator vendor x engine release
# (economics/efficiency_data.py). Written by benchmarks/planner_fit.py: fitted ONLY on the FIT
# halves of the published figures' rounds in benchmarks/data/ (the splits frozen in
# tests/test_planner_figures.py); the held-out halves are reported by
# benchmarks/planner_figures.py. Each entry's `source` and `fitted_on` name the figures it was
# fitted on, `architectures` their kinds (dense, MoE); `since`, the engine release it holds
# from. Values not listed are perf_model.Efficiency's defaults (e.g. interconnect 0.82: NCCL's
# app-level 370 of NVLink 4's 450 GB/s each way, NVIDIA/nccl #1442).
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--params", default=",".join(PARAMS), help="comma-separated Efficiency fields")
    ap.add_argument("--no-groups", action="store_true", help="fit the default entry only")
    ap.add_argument("--no-moe-shapes", action="store_true")
    ap.add_argument(
        "--loo",
        action="store_true",
        help="leave-one-out within FIT: refit without each FIT figure and predict "
        "it (to choose --params on FIT data alone); writes nothing",
    )
    ap.add_argument(
        "--family-prior",
        choices=("default", "start"),
        default="default",
        help="what a family's fit is pulled toward: the fitted default entry, or "
        "Efficiency() with the START overheads",
    )
    ap.add_argument(
        "--ridge-overheads",
        action="store_true",
        help="pull the default entry's overheads toward START too (the design "
        "before leave-one-out chose free ones: rms 0.659 against 0.650)",
    )
    ap.add_argument(
        "--joint",
        action="store_true",
        help="fit dense and expert parameters together on every figure (the first "
        "design); default: in two stages, see fit_staged",
    )
    ap.add_argument(
        "--batch-one",
        action="store_true",
        help="only FIT figures at one request in flight (what exposes fixed costs)",
    )
    ap.add_argument(
        "--family-params",
        help="comma-separated: what each family's entry fits (default: --params); the "
        "others stay at the default entry's values",
    )
    ap.add_argument(
        "--default-from",
        type=Path,
        help="take this efficiencies file's default entry as it is, not fitted again "
        "(to refit the families alone)",
    )
    ap.add_argument("--out", type=Path, default=DATA / "efficiencies.toml")
    ap.add_argument(
        "--relabel",
        type=Path,
        help="write this efficiencies file's architectures from its fitted_on figures, "
        "values untouched, and stop",
    )
    ap.add_argument(
        "--jobs",
        type=int,
        default=os.cpu_count() or 1,
        help="processes the loss's figures are spread over (default: the CPUs)",
    )
    ap.add_argument(
        "--prior",
        type=Path,
        help="start the default entry from this efficiencies file's default entry "
        "(its values are kept, and fitted again only if listed in --params)",
    )
    args = ap.parse_args()
    if args.relabel is not None:
        relabel(args.relabel)
        print(f"wrote {args.relabel}")
        return
    global FREE_OVERHEADS
    FREE_OVERHEADS = not args.ridge_overheads
    names = [n.strip() for n in args.params.split(",") if n.strip()]
    unknown = set(names) - set(PARAMS)
    if unknown:
        ap.error(f"cannot fit {sorted(unknown)}; choose from {', '.join(PARAMS)}")
    family_names = names
    if args.family_params is not None:
        family_names = [n.strip() for n in args.family_params.split(",") if n.strip()]
        if set(family_names) - set(names):
            ap.error(f"--family-params {sorted(set(family_names) - set(names))} not in --params")
    experts = not args.no_moe_shapes
    figs = fit_figures(experts)
    global POOL
    if args.jobs > 1:
        POOL = multiprocessing.Pool(args.jobs)
    if args.batch_one:
        figs = [f for f in figs if _concurrency(f, experts) == 1]
    if not experts:  # without shapes nothing tells the expert terms apart: leave them
        names = [n for n in names if not n.startswith(("expert_", "moe_"))]
    if args.loo:
        leave_one_out(figs, names, experts, not args.no_groups, args.family_prior, not args.joint)
        return
    base = Efficiency()
    kept: dict[str, float] = {}
    if args.prior is not None:
        prior_entry = pick(load(args.prior.read_text("utf-8")), ANY, ANY)
        base, kept = prior_entry.efficiency(), dict(prior_entry.values)
    start = replace(base, **{n: START[n] for n in names
                             if n in START and not getattr(base, n)})  # fmt: skip
    listed = [*dict.fromkeys([*kept, *names])]  # what the entries list: kept values too
    ids = [f["fig"]["id"] for f in figs]
    if args.default_from is not None:
        taken = pick(load(args.default_from.read_text("utf-8")), ANY, ANY)
        default = taken.efficiency()
        entries = [replace(taken, source=f"{taken.source} (taken from {args.default_from.name}"
                           f" at commit {_commit()}, not fitted again)",
                           architectures=architectures(taken.fitted_on))]  # fmt: skip
    else:
        FREE.update(n for n in names if n.endswith("_s") and FREE_OVERHEADS)
        default, score = fit_staged(figs, start, names, experts, not args.joint)
        FREE.clear()
        print(f"default: loss {score:.3f} over {len(ids)} FIT figures: "
              + ", ".join(f"{n} {getattr(default, n):.4g}" for n in listed))  # fmt: skip
        entries = [_entry("default", ANY, ANY, default, listed, ids, "the prior for every "
                          "engine family; used when the engine is not known")]  # fmt: skip
    groups: dict[Group, list[dict[str, Any]]] = {}
    for f in figs:
        if f["family"] is not None:
            groups.setdefault(_group(f), []).append(f)
    family_prior = default if args.family_prior == "default" else start
    for (family, vendor, since), members in [] if args.no_groups else sorted(groups.items()):
        eff, score = fit_staged(members, family_prior, family_names, experts, not args.joint)
        member_ids = [f["fig"]["id"] for f in members]
        release = "-" + version_text(since) if since else ""
        print(f"{family}{release} on {vendor}: loss {score:.3f} over {len(members)}: "
              + ", ".join(f"{n} {getattr(eff, n):.4g}" for n in names))  # fmt: skip
        prior_text = ("the default entry" if args.family_prior == "default"
                      else "Efficiency() with the START overheads")  # fmt: skip
        held = [n for n in names if n not in family_names]
        note = f"prior: {prior_text}" + (f"; {', '.join(held)} held at the default entry's"
                                         if held else "")  # fmt: skip
        entries.append(_entry(f"{family}{release}-{vendor.lower()}", family, vendor, eff, listed,
                              member_ids, note, since))  # fmt: skip
    write(entries, args.out, HEADER)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
