"""PII guard: quality on the labelled set, and how fast it masks.

    python benchmarks/pii_guard.py [--repeat 50] [--runs 5]

Quality: precision and recall per kind on tests/data/pii_labelled.jsonl (a finding counts when
its kind and exact text match a label; the same scoring as tests/test_pii.py). Speed: `mask`
over the whole set joined by newlines and repeated `--repeat` times, as one text and one call
per sample; and `StreamMasker` fed 4-character deltas, as an SSE relay would. MB/s are of UTF-8
bytes (a Chinese character is 3); each figure is the median of `--runs`.
"""

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tokenmill.bench.report import run_info
from tokenmill.security.pii import mask, score, score_table
from tokenmill.security.pii_stream import StreamMasker

DATA = Path(__file__).resolve().parents[1] / "tests" / "data" / "pii_labelled.jsonl"
DELTA = 4  # characters per streamed delta: about one token


def _stream(text: str) -> str:
    m = StreamMasker()
    out = [m.feed(text[i : i + DELTA]) for i in range(0, len(text), DELTA)]
    return "".join(out) + m.flush()


def _speed(work: Callable[[], object], nbytes: int, runs: int) -> dict[str, float]:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        work()
        times.append(time.perf_counter() - t0)
    median = statistics.median(times)
    return {"seconds": median, "mb_per_s": nbytes / median / 1e6}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--repeat", type=int, default=50, help="copies of the set per timed run")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/pii_guard.json"))
    args = ap.parse_args()
    samples = [json.loads(line) for line in DATA.read_text().splitlines()]
    scores = score(samples)
    print(f"{len(samples)} labelled samples, {scores['all'].tp + scores['all'].fn} PII values")
    print(score_table(scores))

    texts = [s["text"] for s in samples] * args.repeat
    whole = "\n".join(texts)
    nbytes = len(whole.encode())
    assert _stream(whole) == mask(whole)[0]
    speed = {
        "one_text": _speed(lambda: mask(whole), nbytes, args.runs),
        "per_sample": _speed(lambda: [mask(t) for t in texts], nbytes, args.runs),
        "stream": _speed(lambda: _stream(whole), nbytes, args.runs),
    }
    print(f"{nbytes / 1e6:.2f} MB ({len(whole):,} characters, {len(texts):,} samples) per run")
    for name, s in speed.items():
        print(f"  {name}: {s['mb_per_s']:.2f} MB/s ({s['seconds']:.3f} s)")

    results: dict[str, Any] = run_info()
    results["samples"] = len(samples)
    results["scores"] = {
        k: {"precision": v.precision, "recall": v.recall, "tp": v.tp, "fp": v.fp, "fn": v.fn}
        for k, v in scores.items()
    }
    results["bytes_per_run"] = nbytes
    results["throughput"] = speed
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
