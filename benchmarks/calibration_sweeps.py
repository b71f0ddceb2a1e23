"""Calibration on a deployment's own runs, checked on published load sweeps (issue 17).

The plan tells a mixture-of-experts user to measure their own deployment and calibrate, since
the published figures of one model on one part ran several-fold apart between engine
releases. This checks that advice the way a user would follow it, on the published sweeps
that look most like a user's own bench runs: one model, one group of accelerators, one
engine, one prompt and output length, three or more concurrencies, with TTFT, TPOT and
throughput all published (closed loops; bursts and static batches are left out, since
calibration fits the steady state). For each sweep `perf_model.calibrate` is fitted on the
group and layout the sweep ran on (as `tokenmill plan --calibrate ... --calibrated-tp N`
does), on two of its points:
- `ends`: the lowest and the highest concurrency; the points between are predicted
  (interpolation);
- `low`: the two lowest concurrencies; the points above are predicted (extrapolation to more
  load than was measured).
Every other point of the sweep is predicted three ways: calibrated as the product does it
(what calibration does not fit at `Efficiency()`'s values), calibrated holding those terms at
the packaged entry the figure maps to (its fitted per-layer, per-sequence and per-expert
costs), and with the packaged entry alone. Published figures are means or medians as their
sources give them; `tokenmill bench` reports medians. The sweeps were seen while designing
the model (rounds 1-6), and the product's choice of held terms was made on them: this is a
check of calibration's reach, not an unseen test.

    python benchmarks/calibration_sweeps.py    # seconds; writes results/calibration_sweeps.json
"""

from __future__ import annotations

import argparse
import json
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import planner_figures as pf
from tokenmill.economics.perf_model import Efficiency, MeasuredRun, calibrate

# Rounds 1-6, as this script's results were made (round 7's sweeps have runs of their own, with
# --figures, in docs/benchmarks.md); pf.DEV holds rounds 7 and 8 too (issue 17's ninth and
# tenth slices).
ROUNDS = (pf.FIGURES, pf.ROUND2, pf.ROUND3, pf.ROUND4, pf.ROUND5, pf.ROUND6)
NEEDED = ("ttft_ms", "tpot_ms", "output_tokens_per_s")
OUT = Path(__file__).parent / "results" / "calibration_sweeps.json"


def sweeps(paths: Sequence[Path] = ROUNDS) -> dict[str, list[pf.Mapped]]:
    """Closed-loop sweeps of three or more concurrencies, by what is held fixed."""
    pick, _ = pf.efficiencies_from("data")
    found: dict[str, list[pf.Mapped]] = defaultdict(list)
    for path in paths:
        _, figures = pf.load(path)
        for fig in figures:
            m = pf.map_figure(fig, efficiency=pick)
            if isinstance(m, pf.Unmapped) or m.burst is not None or m.stages > 1:
                continue
            if m.replicas != 1 or not all(k in m.published for k in NEEDED):
                continue
            w = m.work
            key = (f"{m.reference} on {m.tensor_parallel} x {m.accelerator.id}"
                   f"{' dp' if m.attention_dp else ''}{' ep' if m.expert_parallel else ''}, "
                   f"{fig.get('engine', '?')}, {w.input_tokens}/{w.output_tokens}")  # fmt: skip
            found[key].append(m)
    return {k: sorted(v, key=lambda m: m.work.concurrency) for k, v in found.items()
            if len({m.work.concurrency for m in v}) >= 3}  # fmt: skip


def ends(points: Sequence[pf.Mapped]) -> tuple[list[pf.Mapped], list[pf.Mapped]]:
    return [points[0], points[-1]], list(points[1:-1])


def low(points: Sequence[pf.Mapped]) -> tuple[list[pf.Mapped], list[pf.Mapped]]:
    return list(points[:2]), list(points[2:])


def measured(m: pf.Mapped) -> MeasuredRun:
    p = m.published
    return MeasuredRun(m.work, p["ttft_ms"] / 1000, p["tpot_ms"] / 1000, p["output_tokens_per_s"])


def calibrated(on: Sequence[pf.Mapped], held: Efficiency | None = None) -> Efficiency:
    """Fitted on `on` (the first sets the group), holding `held` (default `Efficiency()`) with
    the engine's admission interval as the busiest point ran it (a single request finds the
    engine idle, whatever the interval)."""
    m = on[0]
    dev = replace(pf.device(m.accelerator, m.tensor_parallel, m.model.compute_precision),
                  attention_dp=m.attention_dp, expert_parallel=m.expert_parallel)  # fmt: skip
    interval = max(on, key=lambda x: x.work.concurrency).efficiency.admission_interval
    held = replace(held or Efficiency(), admission_interval=interval)
    return calibrate(m.model, dev, [measured(x) for x in on], held=held)


def ratios(m: pf.Mapped, eff: Efficiency) -> dict[str, float]:
    """Predicted / published at `eff`, with the engine's admission interval as `m` ran it."""
    eff = replace(eff, admission_interval=m.efficiency.admission_interval)
    row = pf.evaluate(replace(m, efficiency=eff))
    return {k: row["metrics"][k]["ratio"] for k in NEEDED}


def within(r: dict[str, float], metrics: Sequence[str] = NEEDED) -> bool:
    return all(abs(math.log(r[k])) <= math.log(1.25) for k in metrics)


SPEED = ("tpot_ms", "output_tokens_per_s")  # what $/1M rests on, without the TTFT


def run(paths: Sequence[Path] = ROUNDS) -> dict[str, Any]:
    out: dict[str, Any] = {"figures": [str(p.name) for p in paths], "ways": {}}
    found = sweeps(paths)
    for name, way in (("ends", ends), ("low", low)):
        rows = []
        for key, points in found.items():
            on, others = way(points)
            product, holding = calibrated(on), calibrated(on, held=on[0].efficiency)
            for m in others:
                got = {"calibrated": ratios(m, product), "holding_entry": ratios(m, holding),
                       "entry": ratios(m, m.efficiency)}  # fmt: skip
                row = {"sweep": key, "id": m.id, "concurrency": m.work.concurrency,
                       "calibrated_on": [x.work.concurrency for x in on]} | got  # fmt: skip
                for k, r in got.items():
                    row[f"within_{k}"], row[f"speed_within_{k}"] = within(r), within(r, SPEED)
                rows.append(row)
        counts = [f"{speed}within_{k}" for speed in ("", "speed_")
                  for k in ("calibrated", "holding_entry", "entry")]  # fmt: skip
        out["ways"][name] = {"points": len(rows)} | {k: sum(r[k] for r in rows) for k in counts}
        out["ways"][name]["rows"] = rows
    out["sweeps"] = {k: [m.work.concurrency for m in v] for k, v in found.items()}
    return out


BAND = Path(__file__).parents[1] / "src" / "tokenmill" / "economics" / "data"
BAND = BAND / "calibration_bands.toml"


def speed_ratio(ratios: dict[str, float]) -> float:
    """Predicted / published speed on the worst of the three (`planner_figures.speed_ratio`)."""
    return pf.speed_ratio({"metrics": {k: {"ratio": r, "judged": True} for k, r in ratios.items()}})


def write_band(results: Sequence[Path], out: Path = BAND) -> None:
    """The product's calibrated points of `results` as `planner_band` reads them: `between`,
    the points between the two calibrated loads (`ends`); `beyond`, those above them (`low`)."""
    lines = ["# How far a calibrated planner figure may be off: published load-sweep points",
             "# predicted after calibrating on two other points of the same sweep.",
             "# benchmarks/calibration_sweeps.py --write-band; do not edit by hand.",
             "schema_version = 1",
             f'source = "{", ".join(str(r) for r in results)}"', ""]  # fmt: skip
    for path in results:
        done = json.loads(path.read_text())
        for way, where in (("ends", "between"), ("low", "beyond")):
            for row in done["ways"][way]["rows"]:
                lines += ["[[figure]]", f'id = "{row["id"]}"', f'where = "{where}"',
                          f"concurrency = {row['concurrency']}",
                          f"calibrated_on = {row['calibrated_on']}",
                          f"speed_ratio = {speed_ratio(row['calibrated']):.4f}", ""]  # fmt: skip
    out.write_text("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--figures", type=Path, action="append",
                    help="a figures file (repeatable); default: rounds 1-6")  # fmt: skip
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--write-band", type=Path, nargs="+", metavar="RESULTS",
                    help="write the calibrated band from these results, and stop")  # fmt: skip
    args = ap.parse_args()
    if args.write_band:
        write_band(args.write_band)
        return
    results = run(args.figures or ROUNDS)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    for key, points in results["sweeps"].items():
        print(f"sweep: {key}: c = {points}")
    for name, way in results["ways"].items():
        print(f"\n{name}: {way['points']} points; within ±25% on TTFT, TPOT and throughput "
              f"(on TPOT and throughput): calibrated {way['within_calibrated']} "
              f"({way['speed_within_calibrated']}), calibrated holding the entry's overheads "
              f"{way['within_holding_entry']} ({way['speed_within_holding_entry']}), the entry "
              f"alone {way['within_entry']} ({way['speed_within_entry']})")  # fmt: skip
        for r in way["rows"]:
            cells = "  ".join(" ".join(f"{v:.2f}" for v in r[k].values())
                              for k in ("calibrated", "holding_entry", "entry"))  # fmt: skip
            print(
                f"  {'Y' if r['within_calibrated'] else '.'} c={r['concurrency']:<4} {cells}  "
                f"{r['id'][:56]}"
            )
    print(
        f"\nratios: predicted / published TTFT, TPOT, output tok/s, calibrated, calibrated "
        f"holding the entry's overheads, the entry alone; written to {args.out}"
    )


if __name__ == "__main__":
    main()
