"""Collectives of a tensor-parallel group over the node's interconnect, and between nodes.

Tensor parallelism (Megatron-style, as vLLM, SGLang and TensorRT-LLM run it) splits every layer's
matmuls over the group and sums the partial outputs twice per layer: after the attention output
projection and after the MLP (or MoE) down projection. Each sum is an all-reduce of the
iteration's activations, tokens x hidden x 2 bytes (bf16, whatever the weights' format).

A ring all-reduce of S bytes over n devices sends 2 (n - 1) / n x S bytes out of each device:
at a link bandwidth B (one direction, per device) that takes 2 (n - 1) / n x S / B, plus a fixed
latency per collective that dominates the small messages of decode (a few KiB to a few hundred
KiB). Both figures are per accelerator in the hardware catalog (`interconnect_gbs`, both
directions together, and `collective_latency_us`); the share of the link a collective reaches is
an efficiency (`Efficiency.interconnect`).

Where the catalog has no link figure the group is taken to talk over PCIe 4.0 x16 (below), and
the planner says so.

A group wider than a node (`Accelerator.per_node`) all-reduces hierarchically, as NCCL does:
a ring inside each node over its links, and between the nodes each device's 1/m share of the
sum (m devices per node) over its network port, so the network carries
2 (k - 1) / k x S / m per device for k nodes.
"""

from __future__ import annotations

ACTIVATION_BYTES = 2  # bf16 activations: what the all-reduces carry
ALL_REDUCES_PER_LAYER = 2  # attention output, MLP/MoE output

# PCIe 4.0 x16: 16 GT/s x 16 lanes, 128b/130b: 31.5 GB/s each direction (PCI-SIG PCIe 4.0
# base specification). Small all-reduces over PCIe take 26-42 us measured (ROCm/rccl issue
# #362: 2 GPUs behind one PCIe switch, 26-27 us for 16 B-2 KiB; NVIDIA/nccl issue #1530:
# 8 x RTX 4090 over PCIe, 42 us for 8 B): 30 us is taken.
PCIE4_BYTES_PER_S = 31.5e9
PCIE_LATENCY_S = 30e-6
# Between nodes: one 400 Gb/s NIC per GPU (NVIDIA's DGX/HGX H100 and H200 reference design, 8
# ConnectX-7 per 8 GPUs; the 2-node SGLang DeepSeek-V3 figures state InfiniBand at 400 Gb/s),
# 50 GB/s each way. A small all-reduce between two nodes over InfiniBand takes about 20 us
# (NVIDIA/nccl-tests issue #150: 2 x A100 nodes on HDR, 19-21 us for 8-128 B).
NETWORK_BYTES_PER_S = 50e9
NETWORK_LATENCY_S = 20e-6


def ring_all_reduce_s(size_bytes: float, devices: int, bandwidth: float, latency_s: float) -> float:
    """Seconds for one ring all-reduce of `size_bytes` over `devices`, each sending at
    `bandwidth` bytes/s (one direction), plus `latency_s`. Zero for a single device."""
    if devices <= 1 or size_bytes <= 0:
        return 0.0
    return 2 * (devices - 1) / devices * size_bytes / bandwidth + latency_s


def all_reduce_per_token_s(
    hidden: int, devices: int, bandwidth: float, nodes: int = 1, network: float = 0.0
) -> float:
    """Bandwidth part of one all-reduce, per token of the iteration: a ring over each node's
    `devices / nodes` on their links (`bandwidth`), then among the `nodes` over the `network`
    port of each device, for its share of the sum."""
    size = hidden * ACTIVATION_BYTES
    if nodes <= 1:
        return 2 * (devices - 1) / devices * size / bandwidth if devices > 1 else 0.0
    local = devices // nodes
    inside = 2 * (local - 1) / local * size / bandwidth if local > 1 else 0.0
    return inside + 2 * (nodes - 1) / nodes * size / local / network
