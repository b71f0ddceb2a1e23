"""Draws a bench run as one PNG: TTFT CDF per tenant, TTFT over the run, output tokens/s.

matplotlib is an optional extra (`tokenmill[plot]`) and is imported only when drawing, so the
CLI starts fast and runs without it.
"""

import math
from collections.abc import Sequence
from pathlib import Path

from tokenmill.bench.runner import Outcome

INSTALL_HINT = "matplotlib is not installed: install tokenmill[plot]"


def require_matplotlib() -> None:
    """Raises ImportError with the install hint; call it before sending load, not after."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ImportError(INSTALL_HINT) from None


def token_times(o: Outcome) -> list[tuple[float, float]]:
    """(seconds since the run started, output tokens) per content chunk the client saw.

    Chunk times are the first token plus the gaps; the usage total is spread over the chunks
    (an engine may put several tokens in one chunk). A stream without usage counts one a chunk.
    """
    if o.ttft_s is None:
        return []
    t = o.sent_s + o.ttft_s
    times = [t]
    for gap in o.gaps_s:
        t += gap
        times.append(t)
    per_chunk = (o.completion_tokens or len(times)) / len(times)
    return [(t, per_chunk) for t in times]


def plot(outcomes: Sequence[Outcome], wall_s: float, model: str, path: Path) -> None:
    """Writes the run's three panels to `path` as a PNG."""
    # Figure without pyplot: no global backend state, no display; PNG renders through Agg.
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    tenants = sorted({o.tenant for o in outcomes})
    color = {name: f"C{i % 10}" for i, name in enumerate(tenants)}
    ok = sum(o.ok for o in outcomes)
    fig = Figure(figsize=(10, 12), layout="constrained")
    fig.suptitle(f"{model}: {len(outcomes)} requests, {ok} ok, {wall_s:.1f} s")
    cdf, scatter, tput = fig.subplots(3, 1)
    tput.sharex(scatter)

    for name in tenants:
        ttfts = sorted(o.ttft_s for o in outcomes if o.tenant == name and o.ok and o.ttft_s)
        if ttfts:
            cdf.step(ttfts, [(i + 1) / len(ttfts) for i in range(len(ttfts))], where="post",
                     color=color[name], label=f"{name} (n={len(ttfts)})")  # fmt: skip
    cdf.set(xscale="log", xlabel="TTFT (s)", ylabel="fraction of ok requests", ylim=(0, 1.02),
            title="TTFT CDF per tenant")  # fmt: skip
    cdf.grid(alpha=0.3, which="both")
    if cdf.lines:
        cdf.legend(loc="lower right")
    else:
        cdf.text(0.5, 0.5, "no successful requests", transform=cdf.transAxes, ha="center")

    # One artist per tenant and kind, not per request: runs can have thousands. Failures have
    # no TTFT, so they sit on a strip along the bottom (x in data, y in axes coordinates).
    strip = scatter.get_xaxis_transform()
    for name in tenants:
        mine = [o for o in outcomes if o.tenant == name]
        good = [(o.sent_s, o.ttft_s) for o in mine if o.ok and o.ttft_s]
        refused = [o.sent_s for o in mine if o.status not in (None, 200)]
        errored = [o.sent_s for o in mine if not o.ok and o.status in (None, 200)]
        scatter.plot([x for x, _ in good], [y for _, y in good], "o", ms=3, alpha=0.6,
                     color=color[name])  # fmt: skip
        for xs, marker in ((refused, "x"), (errored, "^")):
            scatter.plot(xs, [0.03] * len(xs), marker, ms=6, color=color[name], transform=strip)
    scatter.set(yscale="log", xlabel="sent at (s since start)", ylabel="TTFT (s)",
                title="TTFT by send time (bottom strip: x refused, ^ error)")  # fmt: skip
    scatter.set_ymargin(0.12)  # keeps the lowest TTFTs clear of the failure strip
    scatter.grid(alpha=0.3, which="both")
    scatter.legend(
        handles=[Line2D([], [], ls="", marker="o", color=color[n], label=n) for n in tenants]
        + [Line2D([], [], ls="", marker="x", color="k", label="refused (HTTP status)"),
           Line2D([], [], ls="", marker="^", color="k", label="error (no answer / broken)")],
        loc="upper left", bbox_to_anchor=(1, 1), fontsize="small",
    )  # fmt: skip

    bins = max(1, math.ceil(wall_s))
    # The last bin is only as wide as the run's tail; dividing by its width keeps it a rate.
    widths = [1.0] * (bins - 1) + [wall_s - (bins - 1) or 1.0]
    bottom = [0.0] * bins
    for name in tenants:
        per_s = [0.0] * bins
        for o in outcomes:
            if o.tenant == name:
                for t, tokens in token_times(o):
                    per_s[min(bins - 1, int(t))] += tokens
        rates = [v / w for v, w in zip(per_s, widths, strict=True)]
        tput.bar(range(bins), rates, width=widths, align="edge", bottom=bottom,
                 color=color[name], label=name)  # fmt: skip
        bottom = [b + r for b, r in zip(bottom, rates, strict=True)]
    tput.set(xlabel="time (s since start)", ylabel="output tokens/s",
             title="Output token throughput (1 s bins, stacked by tenant)")  # fmt: skip
    tput.grid(alpha=0.3, axis="y")
    tput.legend(loc="upper left", bbox_to_anchor=(1, 1), fontsize="small")

    fig.savefig(path, format="png", dpi=100)
