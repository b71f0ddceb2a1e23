"""Turns outcomes into the numbers serving people compare: TTFT, time per output token,
end-to-end latency, throughput, goodput under an SLO, and service per tenant."""

import platform
import sys
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

from tokenmill.bench.runner import Outcome

PCTS = (50, 90, 99)


def percentiles(values: Sequence[float]) -> dict[str, float | None]:
    ordered = sorted(values)
    return {
        f"p{p}": ordered[min(len(ordered) - 1, p * len(ordered) // 100)] if ordered else None
        for p in PCTS
    }


def _error_kind(o: Outcome) -> str:
    if o.status is None:
        return o.error or "no answer"
    return f"status {o.status}" if o.status != 200 else "broken stream"


def tpot(o: Outcome) -> float | None:
    """Time per output token after the first."""
    if o.ttft_s is None or o.completion_tokens < 2:
        return None
    return (o.e2e_s - o.ttft_s) / (o.completion_tokens - 1)


def summarize(
    outcomes: Sequence[Outcome], wall_s: float, slo_ttft_s: float, slo_tpot_s: float
) -> dict[str, Any]:
    ok = [o for o in outcomes if o.ok]
    tpots = [t for o in ok if (t := tpot(o)) is not None]
    good = [o for o in ok if (o.ttft_s or 0) <= slo_ttft_s and (tpot(o) or 0) <= slo_tpot_s]
    tenants: dict[str, Any] = {}
    for name in sorted({o.tenant for o in outcomes}):
        mine = [o for o in ok if o.tenant == name]
        tenants[name] = {
            "requests": sum(o.tenant == name for o in outcomes),
            "ok": len(mine),
            "prompt_tokens": sum(o.prompt_tokens for o in mine),
            "completion_tokens": sum(o.completion_tokens for o in mine),
            "output_tokens_per_s": sum(o.completion_tokens for o in mine) / wall_s,
            "ttft_s": percentiles([o.ttft_s for o in mine if o.ttft_s is not None]),
        }
    return {
        "requests": len(outcomes),
        "ok": len(ok),
        "errors": dict(Counter(_error_kind(o) for o in outcomes if not o.ok)),
        "wall_s": wall_s,
        "requests_per_s": len(ok) / wall_s,
        "output_tokens_per_s": sum(o.completion_tokens for o in ok) / wall_s,
        "ttft_s": percentiles([o.ttft_s for o in ok if o.ttft_s is not None]),
        "tpot_s": percentiles(tpots),
        "itl_s": percentiles([g for o in ok for g in o.gaps_s]),
        "e2e_s": percentiles([o.e2e_s for o in ok]),
        "slo": {"ttft_s": slo_ttft_s, "tpot_s": slo_tpot_s},
        "goodput_requests_per_s": len(good) / wall_s,
        "tenants": tenants,
    }


def run_info() -> dict[str, str]:
    """Where, when and how a benchmark ran: the head of every results file."""
    return {
        "machine": f"{platform.machine()}, python {platform.python_version()}",
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": " ".join(sys.argv),
    }
