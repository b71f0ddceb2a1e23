"""What a window of service measured, before any money: per node its busy time and tokens, per
model, replica and tenant on it their tokens and their share of its busy time (by phase), and
the rated revenue. Every figure is a sum over the window, so the measures of consecutive
windows add up to the measure of their union: closed hours can be measured once and kept
(economics/hourly.py) while the costs are priced afresh for whatever window is asked.
"""

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from tokenmill.economics.nodes import Node, node_of
from tokenmill.economics.time_share import Span, share_time

RevenueKey = tuple[str, str, str, str]  # (tenant, model, deployment, currency)
Key = tuple[str, str]  # (dimension, value): ("model", "llama"), ("tenant", "acme")...


@dataclass(frozen=True, slots=True)
class Served:
    """One request from the ledger, as the accounting sees it."""

    request_id: str
    tenant: str
    model: str
    deployment: str
    replica: str
    span: Span
    input_tokens: int
    output_tokens: int
    counted: bool  # it started inside the window, so its tokens count in it


@dataclass
class Use:
    """Tokens counted and busy time taken, by phase (seconds)."""

    input_tokens: int = 0
    output_tokens: int = 0
    prefill_s: float = 0.0
    decode_s: float = 0.0

    def add(self, other: "Use") -> None:
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.prefill_s += other.prefill_s
        self.decode_s += other.decode_s


@dataclass
class NodeUse:
    busy_s: float = 0.0
    tokens: int = 0
    by: dict[Key, Use] = field(default_factory=lambda: defaultdict(Use))


@dataclass
class Measured:
    nodes: dict[str, NodeUse] = field(default_factory=lambda: defaultdict(NodeUse))
    revenue: dict[RevenueKey, int] = field(default_factory=lambda: defaultdict(int))
    without_node: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # tokens

    def add(self, other: "Measured") -> "Measured":
        for name, theirs in other.nodes.items():
            mine = self.nodes[name]
            mine.busy_s += theirs.busy_s
            mine.tokens += theirs.tokens
            for key, use in theirs.by.items():
                mine.by[key].add(use)
        for rkey, pico in other.revenue.items():
            self.revenue[rkey] += pico
        for dep, tokens in other.without_node.items():
            self.without_node[dep] += tokens
        return self


def measure(
    served: Sequence[Served],
    revenue: Mapping[RevenueKey, int],
    nodes: Sequence[Node],
    since: float,
    until: float,
) -> Measured:
    """The window's measure: each node's requests share its busy time (time_share.py)."""
    out = Measured()
    out.revenue.update(revenue)
    home = {dep: node_of(dep, nodes) for dep in {s.deployment for s in served}}
    for node in nodes:
        mine = [s for s in served if home[s.deployment] is node]
        sharing = share_time([s.span for s in mine], since, until)
        use = out.nodes[node.name]
        use.busy_s = sharing.busy_s
        for s, share in zip(mine, sharing.shares, strict=True):
            tokens_in, tokens_out = (s.input_tokens, s.output_tokens) if s.counted else (0, 0)
            use.tokens += tokens_in + tokens_out
            one = Use(tokens_in, tokens_out, share.prefill_s, share.decode_s)
            for key in (("model", s.model), ("replica", s.replica), ("tenant", s.tenant)):
                use.by[key].add(one)
    for s in served:
        if s.counted and home[s.deployment] is None:
            out.without_node[s.deployment] += s.input_tokens + s.output_tokens
    return out
