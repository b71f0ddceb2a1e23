"""Draws a plan as one PNG: $/1M tokens and accelerators needed, per ranked option.

matplotlib is optional (`tokenmill[plot]`) and imported only here, when drawing.
"""

from __future__ import annotations

from pathlib import Path

from tokenmill.economics.planner import Plan


def chart(plan: Plan, path: Path) -> None:
    from matplotlib.figure import Figure  # no pyplot: no global state, renders through Agg

    options = plan.options
    labels = [
        f"{o.accelerator.id}{'*' if '$/1M' in o.estimated else ''} (TP{o.tensor_parallel})"
        for o in options
    ]
    cost = [float(o.usd_per_million) for o in options]  # plotting only; the figures stay Decimal
    count = [o.accelerators for o in options]
    fig = Figure(figsize=(10, 1.5 + 0.45 * max(1, len(options))), layout="constrained")
    fig.suptitle(
        f"{plan.model.name}: {plan.demand.rate:g} req/s, "
        f"{plan.demand.input_tokens} in + {plan.demand.output_tokens} out tokens "
        f"({plan.options_used.acquire}; * rests on a low-confidence figure)"
    )
    left, right = fig.subplots(1, 2, sharey=True)
    ys = range(len(options))
    left.barh(ys, cost, color="C0")
    left.set(xlabel="$ per 1M tokens (input + output)", yticks=list(ys), yticklabels=labels)
    left.invert_yaxis()  # best first, at the top
    right.barh(ys, count, color="C1")
    right.set(xlabel="accelerators")
    for ax, values, fmt in ((left, cost, "{:.3g}"), (right, count, "{}")):
        for y, v in zip(ys, values, strict=True):
            ax.annotate(fmt.format(v), (v, y), xytext=(3, 0), textcoords="offset points",
                        va="center", fontsize=8)  # fmt: skip
        ax.margins(x=0.15)  # room for the labels
    fig.savefig(path, format="png", dpi=100)
