"""`tokenmill bench`: load any OpenAI-compatible endpoint (ours or anyone's) and measure it."""

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

from tokenmill.bench import plot as bench_plot
from tokenmill.bench import workload
from tokenmill.bench.report import summarize
from tokenmill.bench.runner import Outcome, run
from tokenmill.cli.output import console, emit
from tokenmill.scheduling.traces import read_azure, read_mooncake


def _pairs(text: str, what: str) -> dict[str, str]:
    try:
        return dict(item.split("=", 1) for item in text.split(",") if item)
    except ValueError:
        raise typer.BadParameter(f"{what}: expected NAME=VALUE[,NAME=VALUE...]") from None


def _workload(
    trace: Path | None, tenants: str, trace_tenants: int, requests: int, rate: float,
    time_scale: float, block_tokens: int, system_tokens: int, prompt_tokens: int,
    max_tokens: int,
) -> list[workload.BenchRequest]:  # fmt: skip
    if trace is None:
        shares = {name: float(share) for name, share in _pairs(tenants, "--tenants").items()}
        return workload.synthetic(shares, requests, rate, system_tokens, prompt_tokens,
                                  max_tokens)  # fmt: skip
    if not trace.is_file():
        raise typer.BadParameter(f"no such trace file: {trace}")
    rows = (read_mooncake if trace.suffix == ".jsonl" else read_azure)(trace, time_scale)
    return workload.from_trace(rows, block_tokens, trace_tenants, requests,
                               max_prompt_tokens=prompt_tokens or None,
                               max_tokens=max_tokens)  # fmt: skip


def bench(
    base_url: Annotated[str, typer.Argument(help="OpenAI-compatible base URL, e.g. .../v1")],
    model: Annotated[str, typer.Option(help="Model to request")],
    key: Annotated[str | None, typer.Option(help="API key (default $TOKENMILL_API_KEY)")] = None,
    tenant_keys: Annotated[str, typer.Option(help="Per-tenant keys: NAME=KEY,...")] = "",
    trace: Annotated[Path | None, typer.Option(help="Mooncake .jsonl or Azure .csv")] = None,
    tenants: Annotated[str, typer.Option(help="Synthetic tenants and shares: a=10,b=1")] = "a=1",
    trace_tenants: Annotated[int, typer.Option(min=1, help="Tenants derived from a trace")] = 4,
    requests: Annotated[int, typer.Option(min=1, help="Requests to send")] = 100,
    rate: Annotated[float, typer.Option(min=0.001, help="Open loop: requests/s")] = 2.0,
    concurrency: Annotated[int | None, typer.Option(min=1, help="Closed loop instead")] = None,
    time_scale: Annotated[float, typer.Option(min=0.001, help="Trace speed-up")] = 1.0,
    block_tokens: Annotated[int, typer.Option(min=1, help="Words per trace block")] = 16,
    system_tokens: Annotated[int, typer.Option(min=0)] = 1000,
    prompt_tokens: Annotated[int, typer.Option(min=0)] = 32,
    max_tokens: Annotated[int, typer.Option(min=1)] = 32,
    slo_ttft_ms: Annotated[float, typer.Option(help="Goodput SLO on TTFT")] = 2000.0,
    slo_tpot_ms: Annotated[float, typer.Option(help="Goodput SLO per output token")] = 200.0,
    out: Annotated[Path | None, typer.Option(help="Write the JSON report here")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON only")] = False,
    plot: Annotated[Path | None, typer.Option(help="Also draw the run to this .png")] = None,
) -> None:
    """Send a synthetic or trace workload and report TTFT, TPOT, latency, throughput, goodput
    and per-tenant service."""
    if plot is not None:
        _check_plot(plot)  # before the load: a long run should not end in a missing module
    keys = _pairs(tenant_keys, "--tenant-keys")
    default_key = key or os.environ.get("TOKENMILL_API_KEY")
    if default_key:
        keys["*"] = default_key
    if not keys:
        raise typer.BadParameter("give --key, --tenant-keys or $TOKENMILL_API_KEY")
    reqs = _workload(trace, tenants, trace_tenants, requests, rate, time_scale, block_tokens,
                     system_tokens, prompt_tokens, max_tokens)  # fmt: skip
    missing = {r.tenant for r in reqs} - set(keys)
    if "*" not in keys and missing:
        raise typer.BadParameter(f"no key for tenant(s) {sorted(missing)}; add --key")
    outcomes, wall = _run_with_progress(base_url, keys, model, reqs, concurrency, json_out)
    summary = summarize(outcomes, wall, slo_ttft_ms / 1000, slo_tpot_ms / 1000)
    report = {
        "command": " ".join(sys.argv),
        "when": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "base_url": base_url, "model": model,
        "mode": f"closed loop, {concurrency} in flight" if concurrency else "open loop",
        "summary": summary,
    }  # fmt: skip
    if out is not None:
        out.write_text(json.dumps(report, indent=2))
    if plot is not None:
        bench_plot.plot(outcomes, wall, model, plot)
    if json_out:
        print(json.dumps(report, indent=2))
        return
    _print(summary)
    if plot is not None:
        console.print(f"[dim]plot written to {plot}[/]")


def _check_plot(path: Path) -> None:
    if path.suffix.lower() != ".png":
        raise typer.BadParameter(f"{path}: the plot is a PNG; name it *.png", param_hint="--plot")
    if not path.parent.is_dir() or not os.access(path.parent, os.W_OK):
        raise typer.BadParameter(f"cannot write into {path.parent}/", param_hint="--plot")
    try:
        bench_plot.require_matplotlib()
    except ImportError as exc:
        raise typer.BadParameter(str(exc), param_hint="--plot") from None


def _run_with_progress(
    base_url: str, keys: dict[str, str], model: str, reqs: list[workload.BenchRequest],
    concurrency: int | None, quiet: bool,
) -> tuple[list[Outcome], float]:  # fmt: skip
    with Progress(
        "[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), console=console, disable=quiet, transient=True,
    ) as progress:  # fmt: skip
        task = progress.add_task("requests", total=len(reqs))
        return asyncio.run(run(base_url, keys, model, reqs, concurrency,
                               on_done=lambda _: progress.advance(task)))  # fmt: skip


def _print(summary: dict[str, Any]) -> None:
    def ms(p: dict[str, float | None]) -> str:
        return " / ".join("-" if v is None else f"{v * 1000:.0f}" for v in p.values())

    console.print(
        f"{summary['ok']}/{summary['requests']} ok in {summary['wall_s']:.1f}s: "
        f"{summary['requests_per_s']:.2f} req/s, {summary['output_tokens_per_s']:.1f} "
        f"output tok/s, goodput {summary['goodput_requests_per_s']:.2f} req/s"
        + (f"; errors {summary['errors']}" if summary["errors"] else "")
    )
    console.print(f"TTFT p50/p90/p99 ms: {ms(summary['ttft_s'])}   TPOT: {ms(summary['tpot_s'])}"
                  f"   ITL: {ms(summary['itl_s'])}   e2e: {ms(summary['e2e_s'])}")  # fmt: skip
    rows = [{"tenant": name, "ok": t["ok"], "output tok/s": f"{t['output_tokens_per_s']:.1f}",
             "TTFT p50/p90/p99 ms": ms(t["ttft_s"])}
            for name, t in summary["tenants"].items()]  # fmt: skip
    emit(rows, False, title="per tenant")
