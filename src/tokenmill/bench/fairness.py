"""Fairness as a client sees it: service per tenant over time, and the largest gap in service
between two tenants while both had requests waiting.

Reconstructed from outcomes: a request waits from when it is sent until its first token; its
input is served at the first token and its output evenly until its last. Weighted like the
scheduler's counters (`TokenCosts`: output dearer than input, each tenant divided by its weight).
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from tokenmill.bench.runner import Outcome
from tokenmill.scheduling.fair_queue import TokenCosts


@dataclass(frozen=True)
class Gap:
    tenants: tuple[str, str]
    service_gap: float  # weighted tokens, largest over the intervals both were backlogged
    backlogged_s: float  # how long both were backlogged at once


def service_at(o: Outcome, t: float, costs: TokenCosts) -> float:
    """Weighted tokens this request had received by time `t` (seconds since the run began)."""
    if not o.ok or o.ttft_s is None:
        return 0.0
    first, last = o.sent_s + o.ttft_s, o.sent_s + o.e2e_s
    if t < first:
        return 0.0
    done = 1.0 if t >= last or last <= first else (t - first) / (last - first)
    return costs.of_input(o.prompt_tokens) + costs.of_output(o.completion_tokens) * done


def waiting_at(o: Outcome, t: float) -> bool:
    return o.ok and o.ttft_s is not None and o.sent_s <= t < o.sent_s + o.ttft_s


def gap(
    outcomes: Sequence[Outcome],
    a: str,
    b: str,
    costs: TokenCosts | None = None,
    weights: Mapping[str, float] | None = None,
    step_s: float = 0.05,
) -> Gap:
    """Over every stretch of time in which both tenants were backlogged, the largest difference
    between the weighted service they received within it (max minus min of the difference
    of their cumulative service, sampled every `step_s`)."""
    costs = costs or TokenCosts()
    weights = weights or {}
    mine = {t: [o for o in outcomes if o.tenant == t] for t in (a, b)}
    end = max((o.sent_s + o.e2e_s for o in outcomes), default=0.0)
    widest, both_s = 0.0, 0.0
    lo = hi = None  # running extremes of the service difference in the current stretch
    for i in range(int(end / step_s) + 1):
        t = i * step_s
        if all(any(waiting_at(o, t) for o in mine[x]) for x in (a, b)):
            served = [sum(service_at(o, t, costs) for o in mine[x]) / weights.get(x, 1.0)
                      for x in (a, b)]  # fmt: skip
            diff = served[0] - served[1]
            lo = diff if lo is None else min(lo, diff)
            hi = diff if hi is None else max(hi, diff)
            widest = max(widest, hi - lo)
            both_s += step_s
        else:
            lo = hi = None
    return Gap((a, b), widest, both_s)


def tokens_per_s(outcomes: Sequence[Outcome], tenant: str, wall_s: float) -> float:
    """Prompt and completion tokens a tenant received per second of the run."""
    served = sum(o.prompt_tokens + o.completion_tokens for o in outcomes
                 if o.tenant == tenant and o.ok)  # fmt: skip
    return served / wall_s if wall_s > 0 else 0.0
