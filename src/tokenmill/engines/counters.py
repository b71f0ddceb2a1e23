"""An engine's own token counters, read from its Prometheus text: what `reconcile` checks the
ledger against. Which counters mean what is each engine's fact (engines/data/matrix.toml)."""

from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families


@dataclass(frozen=True)
class CounterNames:
    """Counter family names (without `_total`) for prompt, cached and generated tokens."""

    prompt: str
    completion: str
    cached: str | None = None  # None: the engine has no cached-token counter we know of
    prompt_includes_cached: bool = True  # False: `prompt` counts only the uncached tokens
    # Labelled series that appear at their first increment: an absent counter is zero, as long
    # as the engine's metrics are there at all (some family with the same prefix).
    lazy: bool = False

    @property
    def prefix(self) -> str:
        return self.prompt.split(":", 1)[0] + ":" if ":" in self.prompt else ""


@dataclass(frozen=True)
class EngineCounts:
    prompt: int  # all prompt tokens, cached ones included
    cached: int | None  # None: the engine does not say
    completion: int


def read_counts(metrics_text: str, names: CounterNames) -> EngineCounts | None:
    """The engine's counts since its process started, or None when its text lacks them."""
    totals = _counter_totals(metrics_text)
    wanted = [names.prompt, names.completion] + ([names.cached] if names.cached else [])
    if names.lazy and _has_prefix(totals, names.prefix):
        totals = {name: totals.get(name, 0) for name in wanted} | totals
    if any(name not in totals for name in wanted):
        return None
    cached = totals[names.cached] if names.cached else None
    prompt = totals[names.prompt]
    if not names.prompt_includes_cached:
        prompt += cached or 0
    return EngineCounts(prompt, cached, totals[names.completion])


def _counter_totals(metrics_text: str) -> dict[str, int]:
    """Each family's samples summed over their labels (engine index, model, cache source...),
    keyed by the family name without `_total`; `_created` timestamps are not counts."""
    totals: dict[str, int] = {}
    for family in text_string_to_metric_families(metrics_text):
        name = family.name.removesuffix("_total")
        values = [s.value for s in family.samples if s.name in (name, name + "_total", family.name)]
        totals[name] = totals.get(name, 0) + round(sum(values))
    return totals


def _has_prefix(totals: dict[str, int], prefix: str) -> bool:
    return bool(prefix) and any(name.startswith(prefix) for name in totals)
