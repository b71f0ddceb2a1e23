"""How one replica's accelerators share a mixture-of-experts model beyond plain tensor
parallelism: data-parallel attention and expert parallelism, as the engines run them.

Two choices, each on or off (`perf_model.Device`):
- `attention_dp` (SGLang --enable-dp-attention, TensorRT-LLM attention DP, vLLM's DP ranks):
  every device runs the attention of its own sequences with the attention and other dense
  weights whole on it, so the KV cache is neither split nor copied (a latent cache is stored
  once, not once per device) but the dense weights sit and are read on every device, and the
  busiest device has ceil(batch / devices) sequences. Attention needs no all-reduce; the MoE
  layer gathers the tokens and scatters them back.
- `expert_parallel` (vLLM --enable-expert-parallel, SGLang/TensorRT-LLM EP): whole experts
  are spread over the devices instead of every expert being sliced, so the grouped GEMMs'
  cost per expert is paid once per expert, not on every device; the busiest device sets the
  pace, and with data-parallel attention the tokens travel to their experts' devices and back
  (two all-to-alls per MoE layer).

Routing imbalance: tokens pick experts independently and uniformly (the router is trained to
balance load), so a device's share of the batch's `tokens x top_k` expert assignments is
binomial with p = 1 / devices; the busiest of `n` devices sits about sqrt(2 ln n) standard
deviations above the mean. Real routers are less even than that (hot experts; EPLB exists to
spread them): the uniform figure is a lower bound on the imbalance.
"""

from __future__ import annotations

import math

from tokenmill.economics.collectives import ACTIVATION_BYTES


def expert_imbalance(tokens: float, top_k: int, devices: int) -> float:
    """The busiest device's expert assignments over the mean, at most `devices` (all of a
    batch's assignments on one device)."""
    assignments = tokens * top_k
    if devices <= 1 or assignments <= 0:
        return 1.0
    excess = math.sqrt(2 * math.log(devices) * (devices - 1) / assignments)
    return min(float(devices), 1 + excess)


def attention_imbalance(batch: int, devices: int) -> float:
    """The busiest device's sequences over the mean when `batch` sequences are spread over
    `devices` data-parallel attention ranks as evenly as they go."""
    if devices <= 1 or batch <= 0:
        return 1.0
    return math.ceil(batch / devices) * devices / batch


def all_to_all_per_token_s(
    hidden: int, top_k: int, devices: int, bandwidth: float, nodes: int = 1,
    network: float = 0.0,
) -> float:  # fmt: skip
    """Dispatch and combine of one MoE layer, per token of the iteration: each device sends its
    1/n of the tokens to their `top_k` experts, (n - 1) / n of them elsewhere, and gets the
    results back, at `bandwidth` bytes/s out of each device; over several `nodes`, the share
    bound for other nodes leaves by the device's `network` port, the rest by its links."""
    if devices <= 1:
        return 0.0
    per_device = top_k * hidden * ACTIVATION_BYTES / devices  # what one device sends out
    local = devices // max(1, nodes)
    inside = per_device * (local - 1) / devices / bandwidth
    if nodes <= 1:
        return 2 * inside
    return 2 * (inside + per_device * (devices - local) / devices / network)
