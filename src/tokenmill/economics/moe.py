"""Mixture of experts: which weights a batch reads, and how the expert matmuls' efficiency
follows the tokens each expert gets.

A routed MoE layer holds `experts` experts; each token goes to `top_k` of them. A batch of
`tokens` tokens, each picking its experts independently and uniformly (the routers are trained
to balance load), touches on average

    E x (1 - (1 - k / E) ^ tokens)

distinct experts per layer: one token reads k experts, a few dozen read most of them. Every
touched expert's weights are read once per iteration whatever its number of tokens, so at small
batches the expert matmuls are bandwidth-bound (each touched expert gets tokens x k / touched
rows) and turn compute-bound only once that is large (DeepSeek-V3 on one fp8 Hopper: about
1979 TFLOP/s / 3.35 TB/s / 2 = 300 rows per expert). `expert_matmul_efficiency` gives the share
of the compute peak the expert matmuls reach at a batch, read-then-compute as the roofline adds
them.

Shapes come from `data/model_layouts.toml` (`model_layouts.py`); this module has the arithmetic.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class MoeShape:
    """The routed experts of a model (shared experts and dense layers count as dense)."""

    experts: int  # routed experts per MoE layer
    top_k: int  # routed experts each token uses
    moe_layers: int  # layers with routed experts
    expert_params: float  # parameters of one routed expert in one layer

    @property
    def routed_params(self) -> float:
        """All routed experts' parameters, every MoE layer."""
        return self.experts * self.moe_layers * self.expert_params

    @property
    def active_routed_params(self) -> float:
        """Routed parameters one token uses."""
        return self.top_k * self.moe_layers * self.expert_params

    def check(self, params: float, active_params: float) -> None:
        if min(self.experts, self.top_k, self.moe_layers) < 1 or self.expert_params <= 0:
            raise ValueError(f"MoE shape needs experts, top_k, moe_layers >= 1: {self}")
        if self.top_k > self.experts:
            raise ValueError(f"MoE top_k {self.top_k} exceeds experts {self.experts}")
        if self.routed_params >= params or self.active_routed_params >= active_params:
            raise ValueError(f"MoE experts ({self.routed_params:.4g} routed, "
                             f"{self.active_routed_params:.4g} active) exceed the model's "
                             f"{params:.4g} / {active_params:.4g} parameters")  # fmt: skip


def touched_experts(tokens: float, experts: int, top_k: int) -> float:
    """Distinct experts a batch of `tokens` touches in one layer, on average (uniform routing)."""
    if tokens <= 0:
        return 0.0
    untouched: float = (1 - top_k / experts) ** tokens
    return experts * (1 - untouched)


def tokens_per_expert(tokens: float, shape: MoeShape) -> float:
    """Rows each touched expert's matmuls get: tokens x top_k / touched experts."""
    touched = touched_experts(tokens, shape.experts, shape.top_k)
    return tokens * shape.top_k / touched if touched else 0.0


def expert_matmul_efficiency(
    tokens: float, shape: MoeShape, flops: float, bandwidth: float, weight_bits: float,
    compute: float, read: float,
) -> float:  # fmt: skip
    """Share of the compute peak the expert matmuls of one layer reach at a batch of `tokens`,
    when reading each touched expert (at `read` x `bandwidth`) and its matmuls (at `compute` x
    `flops`) add up: small batches are bandwidth-bound, large ones reach `compute`."""
    touched = touched_experts(tokens, shape.experts, shape.top_k)
    useful = 2 * tokens * shape.top_k * shape.expert_params
    seconds = touched * shape.expert_params * weight_bits / 8 / (bandwidth * read) + useful / (
        flops * compute
    )
    return useful / flops / seconds if seconds else 0.0
