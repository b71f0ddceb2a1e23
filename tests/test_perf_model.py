"""The roofline performance model: hand-checked figures, concurrency, memory, calibration."""

import dataclasses
import itertools
import math

import pytest

from tokenmill.economics.perf_model import (
    Device,
    Efficiency,
    MeasuredRun,
    ModelSpec,
    Workload,
    calibrate,
    kv_per_request,
    max_concurrency,
    predict,
)

# Llama-3.1-8B (config.json): 8.03B parameters, 32 layers, 32 heads, 8 KV heads, head_dim 128.
LLAMA_8B = ModelSpec("Llama-3.1-8B", 8.03e9, 8.03e9, 32, 32, 8, 128, weight_bits=16,
                     max_context=131072)  # fmt: skip
# Mixtral-8x7B: 46.7B parameters, 12.9B used per token.
MIXTRAL = ModelSpec("Mixtral-8x7B", 46.7e9, 12.9e9, 32, 32, 8, 128, weight_bits=16,
                    max_context=32768)  # fmt: skip
# One H100 SXM at bf16: 989 dense TFLOPS, 3.35 TB/s, 80 GB.
H100 = Device("H100", flops=989e12, bandwidth=3.35e12, memory_bytes=80e9)
DEFAULT = Efficiency()  # compute 0.5, bandwidth 0.7, no overheads


def test_kv_cache_of_llama_8b_is_128_kib_per_token_at_bf16() -> None:
    # K and V x 32 layers x 8 KV heads x 128 dims x 2 bytes
    assert LLAMA_8B.kv_bytes_per_token == 2 * 32 * 8 * 128 * 2 == 131072
    assert LLAMA_8B.weight_bytes == 16.06e9


def test_decode_of_8b_at_batch_1_reads_the_weights_once_per_token() -> None:
    p = predict(LLAMA_8B, H100, DEFAULT, Workload(1, 2))
    weights = 16.06e9 / (3.35e12 * 0.7)  # 6.85 ms: bandwidth-bound
    matmuls = 2 * 8.03e9 / (989e12 * 0.5)  # 0.03 ms
    assert p.tpot_s == pytest.approx(weights + matmuls, rel=1e-3)
    assert p.tpot_s == pytest.approx(0.00688, rel=1e-2)


def test_long_context_decode_also_reads_the_kv_cache() -> None:
    short = predict(LLAMA_8B, H100, DEFAULT, Workload(1, 2)).tpot_s
    long = predict(LLAMA_8B, H100, DEFAULT, Workload(32000, 2)).tpot_s
    # 32,001 cached tokens x 128 KiB at 70% of 3.35 TB/s, plus their attention FLOPs
    kv = 32001 * 131072 / (3.35e12 * 0.7)
    attention = 32001 * 4 * 32 * 32 * 128 / (989e12 * 0.5)
    assert long - short == pytest.approx(kv + attention, rel=1e-3)


def test_prefill_is_compute_bound() -> None:
    n = 2048
    p = predict(LLAMA_8B, H100, DEFAULT, Workload(n, 1))
    flops = 2 * 8.03e9 * n + 4 * 32 * 32 * 128 * n * (n + 1) / 2  # matmuls + causal attention
    assert p.ttft_s == pytest.approx(flops / (989e12 * 0.5), rel=1e-6)
    assert p.ttft_s == pytest.approx(0.0688, rel=1e-2)


def test_prefill_is_never_faster_than_reading_the_weights_once() -> None:
    p = predict(LLAMA_8B, H100, DEFAULT, Workload(4, 1))
    assert p.ttft_s == pytest.approx(16.06e9 / (3.35e12 * 0.7), rel=1e-6)


def test_mixture_of_experts_reads_only_the_active_experts_at_batch_1() -> None:
    p = predict(MIXTRAL, H100, DEFAULT, Workload(1, 2))
    active_weights = 12.9e9 * 2 / (3.35e12 * 0.7)
    assert p.tpot_s == pytest.approx(active_weights + 2 * 12.9e9 / (989e12 * 0.5), rel=1e-3)
    # a batch touches nearly every expert
    wide = predict(MIXTRAL, H100, DEFAULT, Workload(1, 2, concurrency=64)).tpot_s
    assert wide > 3 * p.tpot_s


def test_overheads_add_to_each_step_and_each_request() -> None:
    base = predict(LLAMA_8B, H100, DEFAULT, Workload(512, 64))
    eff = dataclasses.replace(DEFAULT, step_overhead_s=0.002, request_overhead_s=0.05)
    slow = predict(LLAMA_8B, H100, eff, Workload(512, 64))
    assert slow.tpot_s - base.tpot_s == pytest.approx(0.002)
    assert slow.ttft_s - base.ttft_s == pytest.approx(0.052)


def test_concurrency_raises_latency_and_throughput() -> None:
    preds = [predict(LLAMA_8B, H100, DEFAULT, Workload(1024, 256, c)) for c in (1, 2, 8, 64)]
    for a, b in itertools.pairwise(preds):
        assert b.ttft_s > a.ttft_s
        assert b.tpot_s > a.tpot_s
        assert b.output_tokens_per_s > a.output_tokens_per_s
        assert b.requests_per_s > a.requests_per_s
    one = preds[0]
    latency = one.ttft_s + 255 * one.tpot_s
    assert one.output_tokens_per_s == pytest.approx(256 / latency)
    assert one.requests_per_s == pytest.approx(1 / latency)


def test_prefills_queue_when_the_rest_of_a_request_is_short() -> None:
    # 1-token answers to long prompts: 8 clients keep the engine prefilling back to back, so an
    # arriving request waits behind the others' prefills (but never behind more than 7).
    one = predict(LLAMA_8B, H100, DEFAULT, Workload(8192, 1, 1)).ttft_s
    eight = predict(LLAMA_8B, H100, DEFAULT, Workload(8192, 1, 8)).ttft_s
    assert 5 * one < eight < 8 * one


def test_a_paged_cache_holds_blocks_in_use_not_full_length_reservations() -> None:
    # 100-token prompts making 4,000 tokens: 2,100 tokens held on average, not 4,100
    work = Workload(100, 4000, 1)
    assert kv_per_request(LLAMA_8B, H100, work) == 132 * 16 * 131072
    room = 80e9 * 0.9 - LLAMA_8B.weight_bytes
    assert max_concurrency(LLAMA_8B, H100, work) == int(room // (132 * 16 * 131072))
    full_length = int(room // (4100 * 131072))
    assert max_concurrency(LLAMA_8B, H100, work) > 1.9 * full_length


def test_kv_memory_and_fit() -> None:
    p = predict(LLAMA_8B, H100, DEFAULT, Workload(2000, 48, 100))
    # paged: the prompt and half the output, 2024 tokens, in 127 blocks of 16
    assert p.kv_bytes == 100 * 127 * 16 * 131072  # 26.6 GB
    assert p.fits_memory  # 16.06 + 26.6 GB <= 72 GB usable
    assert not predict(LLAMA_8B, H100, DEFAULT, Workload(2000, 48, 250)).fits_memory  # 67 GB KV
    llama_70b = ModelSpec("Llama-3.1-70B", 70.6e9, 70.6e9, 80, 64, 8, 128, weight_bits=16)
    assert not predict(llama_70b, H100, DEFAULT, Workload(100, 10)).fits_memory  # 141 GB
    four = dataclasses.replace(H100, flops=4 * 989e12, bandwidth=4 * 3.35e12,
                               memory_bytes=320e9, count=4)  # fmt: skip
    assert predict(llama_70b, four, DEFAULT, Workload(100, 10)).fits_memory


# A CPU-like device where every term matters: slow matmuls, slower attention, and overheads.
CPU = Device("cpu", flops=150e9, bandwidth=18e9, memory_bytes=24e9)
SMOL = ModelSpec("SmolLM2-135M", 134.5e6, 134.5e6, 30, 9, 3, 64, weight_bits=5.744)
TRUE = Efficiency(compute=0.28, bandwidth=0.6, step_overhead_s=0.004, request_overhead_s=0.15,
                  decode_compute=0.13, decode_attention=0.016, prefill_attention=0.06,
                  random_arrival_share=0.25)  # fmt: skip


def _measured(model: ModelSpec, dev: Device, eff: Efficiency, work: Workload) -> MeasuredRun:
    p = predict(model, dev, eff, work)
    return MeasuredRun(work, p.ttft_s, p.tpot_s, p.output_tokens_per_s)


def test_calibrate_recovers_known_parameters_from_synthetic_runs() -> None:
    grid = [Workload(n, 64, c) for n in (32, 128, 1024) for c in (1, 2, 4)]
    fitted = calibrate(SMOL, CPU, [_measured(SMOL, CPU, TRUE, w) for w in grid])
    assert fitted.source == "calibrated on 9 measured runs"
    names = ("compute", "decode_compute", "decode_attention", "prefill_attention",
             "request_overhead_s", "random_arrival_share")  # fmt: skip
    for name in names:
        assert getattr(fitted, name) == pytest.approx(getattr(TRUE, name), rel=0.02), name

    # the weight read and the step overhead cost the same at every step: only their sum shows
    def step(e: Efficiency) -> float:
        return e.step_overhead_s + SMOL.weight_bytes / (CPU.bandwidth * e.bandwidth)

    assert step(fitted) == pytest.approx(step(TRUE), rel=0.02)
    for held_out in (Workload(512, 64, 3), Workload(256, 128, 1)):
        want, got = predict(SMOL, CPU, TRUE, held_out), predict(SMOL, CPU, fitted, held_out)
        assert got.ttft_s == pytest.approx(want.ttft_s, rel=0.01)
        assert got.output_tokens_per_s == pytest.approx(want.output_tokens_per_s, rel=0.01)


def test_calibrate_on_a_gpu_predicts_held_out_workloads() -> None:
    true = Efficiency(compute=0.35, bandwidth=0.8, step_overhead_s=0.001, request_overhead_s=0.02)
    # three prompt lengths: a fixed cost, the matmuls (linear) and attention (quadratic)
    runs = [_measured(LLAMA_8B, H100, true, Workload(n, 256, c))
            for n in (256, 2048, 4096) for c in (1, 16)]  # fmt: skip
    fitted = calibrate(LLAMA_8B, H100, runs)
    assert fitted.compute == pytest.approx(0.35, rel=0.02)
    for held_out in (Workload(1024, 128, 8), Workload(8000, 512, 32)):
        want = predict(LLAMA_8B, H100, true, held_out)
        got = predict(LLAMA_8B, H100, fitted, held_out)
        for field in ("ttft_s", "tpot_s", "output_tokens_per_s"):
            assert getattr(got, field) == pytest.approx(getattr(want, field), rel=0.02), field


def test_calibrated_efficiencies_stay_physical_on_noisy_runs() -> None:
    grid = [Workload(n, 64, c) for n in (32, 1024) for c in (1, 4)]
    runs = []
    for i, w in enumerate(grid):
        run = _measured(SMOL, CPU, TRUE, w)
        noise = 1.2 if i % 2 else 0.8
        runs.append(dataclasses.replace(run, ttft_s=run.ttft_s * noise))
    fitted = calibrate(SMOL, CPU, runs)
    rates = (fitted.compute, fitted.bandwidth, fitted.decode_compute, fitted.decode_attention,
             fitted.prefill_attention)  # fmt: skip
    for rate in rates:
        assert rate is not None and 0 < rate <= 1
    assert 0 <= fitted.random_arrival_share <= 1
    assert fitted.step_overhead_s >= 0 and fitted.request_overhead_s >= 0


@pytest.mark.parametrize(
    ("work", "message"),
    [
        (Workload(0, 10), "must be >= 1"),
        (Workload(10, 10, concurrency=0), "must be >= 1"),
        (Workload(130000, 2000), "exceed"),
    ],
)
def test_bad_workloads_are_refused(work: Workload, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        predict(LLAMA_8B, H100, DEFAULT, work)


def test_bad_models_devices_and_efficiencies_are_refused() -> None:
    work = Workload(10, 10)
    with pytest.raises(ValueError, match="active_params"):
        predict(dataclasses.replace(LLAMA_8B, active_params=9e9), H100, DEFAULT, work)
    with pytest.raises(ValueError, match="flops"):
        predict(LLAMA_8B, dataclasses.replace(H100, bandwidth=0), DEFAULT, work)
    with pytest.raises(ValueError, match="efficiencies"):
        predict(LLAMA_8B, H100, Efficiency(compute=0), work)
    with pytest.raises(ValueError, match="efficiencies"):
        predict(LLAMA_8B, H100, Efficiency(decode_attention=math.nan), work)
    with pytest.raises(ValueError, match="overheads"):
        predict(LLAMA_8B, H100, Efficiency(step_overhead_s=-1), work)
    with pytest.raises(ValueError, match="random_arrival_share"):
        predict(LLAMA_8B, H100, Efficiency(random_arrival_share=1.5), work)


def test_calibrate_refuses_bad_runs() -> None:
    with pytest.raises(ValueError, match="at least one"):
        calibrate(LLAMA_8B, H100, [])
    good = _measured(LLAMA_8B, H100, DEFAULT, Workload(100, 100))
    with pytest.raises(ValueError, match="TTFT"):
        calibrate(LLAMA_8B, H100, [dataclasses.replace(good, ttft_s=0)])
    with pytest.raises(ValueError, match="throughput"):
        calibrate(LLAMA_8B, H100, [dataclasses.replace(good, output_tokens_per_s=0)])
    with pytest.raises(ValueError, match="exceed"):
        calibrate(LLAMA_8B, H100, [dataclasses.replace(good, workload=Workload(131072, 1))])


def test_requests_arriving_between_iterations_do_not_queue_behind_prefills() -> None:
    """A closed loop on an engine that prefills in one iteration: a request waits for the decode
    iteration just begun and the prefills that arrived with it, not for a prefill queue."""
    work = Workload(4096, 16, 16)  # prefill-heavy: others' prefills keep the engine busy
    boundary = dataclasses.replace(DEFAULT, random_arrival_share=0.0)
    at_boundary = predict(LLAMA_8B, H100, boundary, work).ttft_s
    alone = predict(LLAMA_8B, H100, boundary, Workload(4096, 16, 1)).ttft_s
    at_random = predict(LLAMA_8B, H100, DEFAULT, work).ttft_s
    assert alone < at_boundary < at_random / 1.25
    # fewer requests end per iteration with longer answers: fewer prefills batched with ours
    longer = predict(LLAMA_8B, H100, boundary, Workload(4096, 256, 16)).ttft_s
    assert alone < longer < at_boundary
    half = dataclasses.replace(DEFAULT, random_arrival_share=0.5)
    mixed = predict(LLAMA_8B, H100, half, work).ttft_s
    assert mixed == pytest.approx((at_random + at_boundary) / 2)
