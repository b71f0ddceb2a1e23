# ruff: noqa: RUF001  (Chinese prose has full-width commas)
"""PII guard: quality on a labelled set, and how fast it masks.

    python benchmarks/pii_guard.py [--data PATH] [--repeat 50] [--runs 5]
    python benchmarks/pii_guard.py --baseline /path/to/old/src [--rounds 7]   # before/after
    python benchmarks/pii_guard.py --presidio-only MODEL --out FILE           # adds Presidio

Quality: precision and recall per kind on `--data` (default tests/data/pii_labelled.jsonl; a
finding counts when its kind and exact text match a label, `pii.score`, the same scoring as
tests/test_pii.py). Speed on the set: `mask` over the set joined by newlines and repeated
`--repeat` times, as one text and one call per sample; `StreamMasker` fed 4-character deltas,
as an SSE relay would. Speed on the mixed corpus: 1 MB (UTF-8) built deterministically from the
development set's texts, each followed by three sentences of plain English or Chinese prose
(seeded: dates, prices, versions, counts, no PII); `mask` of it as one text, and streamed. With
`--baseline`, the same corpus is timed in subprocesses that import `tokenmill` from that source
tree and from this one, alternately, `--rounds` times: the medians compare code on the same
machine at the same time. MB/s are of UTF-8 bytes (a Chinese character is 3).
"""

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data" / "pii_labelled.jsonl"
DELTA = 4  # characters per streamed delta: about one token
CORPUS_BYTES = 1_000_000
PLAIN_PER_SAMPLE = 3

_EN = [
    "The quarterly review on {date} covered {n} projects and a budget of ${money}.",
    "Version {ver} fixes {n} bugs; see the release notes for details.",
    "Our team met at {time} to discuss the roadmap for the next {n} weeks.",
    "Revenue grew {pct}% year over year, while costs rose {pct2}%.",
    "Please summarise the attached report in {n} bullet points.",
    "The model was trained for {n} epochs on {n2} GPUs with a batch size of {bs}.",
    "Shipping takes {n} to {n2} business days; orders over ${money} ship free.",
    "Room {room} on floor {n} is booked from {time} to {time2}.",
    "The committee agreed to revisit the proposal after further analysis.",
    "Explain the difference between supervised and unsupervised learning.",
]
_ZH = [
    "会议于{date}召开，共有{n}人参加，讨论了下一阶段的工作安排。",
    "本季度销售额为{money}元，同比增长{pct}%。",
    "请在{n}个工作日内提交报告，逾期将影响绩效考核。",
    "系统版本{ver}修复了{n}个问题，建议尽快升级。",
    "今天天气晴，最高气温{n}度，最低气温{n2}度。",
    "项目共分为{n}个阶段，预计在{date}前完成。",
    "我们需要进一步讨论这个方案的可行性，并评估可能的风险。",
    "请帮我把这段话翻译成英文，并保持语气正式。",
]


def _plain(rng: random.Random) -> str:
    template = rng.choice(_EN if rng.random() < 0.5 else _ZH)
    return template.format(
        date=f"{rng.randint(2019, 2026)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
        n=rng.randint(2, 60),
        n2=rng.randint(2, 60),
        money=f"{rng.randint(1, 999)},{rng.randint(0, 999):03d}.{rng.randint(0, 99):02d}",
        ver=f"{rng.randint(1, 9)}.{rng.randint(0, 20)}.{rng.randint(0, 9)}",
        time=f"{rng.randint(8, 17)}:{rng.choice(['00', '15', '30', '45'])}",
        time2=f"{rng.randint(18, 21)}:00",
        pct=f"{rng.randint(1, 40)}.{rng.randint(0, 9)}",
        pct2=rng.randint(1, 20),
        bs=rng.choice([32, 64, 128, 256]),
        room=rng.randint(100, 999),
    )


def mixed_corpus(samples: list[dict[str, Any]], size: int = CORPUS_BYTES) -> str:
    """The development set's texts in order (again and again), each followed by plain
    sentences, to `size` bytes of UTF-8: about a fifth of the bytes are PII-dense samples."""
    rng = random.Random(18)
    lines: list[str] = []
    total = 0
    while True:
        for sample in samples:
            for line in [sample["text"], *(_plain(rng) for _ in range(PLAIN_PER_SAMPLE))]:
                total += len(line.encode()) + 1
                if total > size:
                    return "\n".join(lines)
                lines.append(line)


def _stream(text: str) -> str:
    from tokenmill.security.pii_stream import StreamMasker

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


def time_corpus(path: Path) -> dict[str, list[float]]:
    """Seconds to mask the corpus at `path` as one text, and streamed, with whatever
    `tokenmill` this process imports (the worker side of --baseline; old code has both)."""
    from tokenmill.security.pii import mask

    text = path.read_text()
    mask(text)  # first use: compiled patterns, caches
    out: dict[str, list[float]] = {}
    for name, work in (("mask", lambda: mask(text)), ("stream", lambda: _stream(text))):
        t0 = time.perf_counter()
        work()
        out[name] = [time.perf_counter() - t0]
    return out


def _worker(src: Path, corpus: Path) -> dict[str, list[float]]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    cmd = [sys.executable, __file__, "--time-corpus", str(corpus)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return dict(json.loads(done.stdout))


def compare(corpus: str, baseline: Path, rounds: int) -> dict[str, Any]:
    """Old and new code on the same corpus, alternating, one subprocess per round each."""
    nbytes = len(corpus.encode())
    runs: dict[str, dict[str, list[float]]] = {
        "before": {"mask": [], "stream": []},
        "after": {"mask": [], "stream": []},
    }
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "corpus.txt"
        path.write_text(corpus)
        for _ in range(rounds):
            for side, src in (("before", baseline), ("after", ROOT / "src")):
                for name, seconds in _worker(src, path).items():
                    runs[side][name] += seconds
    out: dict[str, Any] = {"bytes": nbytes, "rounds": rounds, "baseline_src": str(baseline)}
    for side, times in runs.items():
        out[side] = {
            name: {
                "mb_per_s": nbytes / statistics.median(ts) / 1e6,
                "seconds": sorted(round(t, 4) for t in ts),
            }
            for name, ts in times.items()
        }
    out["slower_by"] = {
        name: 1 - out["after"][name]["mb_per_s"] / out["before"][name]["mb_per_s"]
        for name in ("mask", "stream")
    }
    return out


def presidio_section(model: str) -> dict[str, Any]:
    """Presidio through the guard's own wrapper: load time, latency per KB, what it finds."""
    from importlib.metadata import version

    from tokenmill.security.pii import detect, presidio_findings

    kinds = ["person", "location"]
    en = (
        "John Smith met Mary Johnson in London last Tuesday to review the contract with Acme "
        "Corp. They agreed to meet again at 221B Baker Street before flying to New York. "
    )
    zh = (
        "张伟和李娜上周二在北京市朝阳区建国路88号见面，"
        "讨论了与上海某公司的合同，并约定周五前往深圳。"
    )
    t0 = time.perf_counter()
    presidio_findings("warm up", kinds, model)
    out: dict[str, Any] = {
        "presidio_analyzer": version("presidio_analyzer"),
        "spacy": version("spacy"),
        "model": f"{model} {version(model)}",
        "python": sys.executable,  # Presidio is no dependency of the project's own environment
        "first_call_s": time.perf_counter() - t0,
    }
    for name, text in (("en_1KB", (en * 7)[:1000]), ("en_10KB", (en * 70)[:10000]), ("zh", zh * 3)):
        nbytes = len(text.encode())
        s = _speed(lambda text=text: presidio_findings(text, kinds, model), nbytes, 9)["seconds"]
        p = _speed(lambda text=text: detect(text), nbytes, 9)["seconds"]
        out[name] = {"bytes": nbytes, "presidio_ms": s * 1e3, "patterns_ms": p * 1e3}
    for name, text in (("found_en", en), ("found_zh", zh)):
        found = presidio_findings(text, ["person", "location", "address"], model)
        out[name] = [(f.kind, text[f.start : f.end]) for f in found]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--data", type=Path, default=DATA, help="labelled JSONL to score")
    ap.add_argument("--repeat", type=int, default=50, help="copies of the set per timed run")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--baseline", type=Path, help="old source tree (its src/) to compare with")
    ap.add_argument("--rounds", type=int, default=7, help="alternating rounds with --baseline")
    ap.add_argument("--time-corpus", type=Path, help=argparse.SUPPRESS)  # --baseline's worker
    ap.add_argument("--presidio-only", metavar="MODEL", help="add Presidio's figures to --out")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/pii_guard.json")
    args = ap.parse_args()
    if args.time_corpus:
        print(json.dumps(time_corpus(args.time_corpus)))
        return
    if args.presidio_only:
        results = json.loads(args.out.read_text()) if args.out.exists() else {}
        results["presidio"] = presidio_section(args.presidio_only)
        args.out.write_text(json.dumps(results, indent=2, ensure_ascii=False))
        print(json.dumps(results["presidio"], indent=2, ensure_ascii=False))
        return

    from tokenmill.bench.report import run_info
    from tokenmill.security.pii import mask, score, score_table

    samples = [json.loads(line) for line in args.data.read_text().splitlines() if line.strip()]
    scores = score(samples)
    print(f"{args.data.name}: {len(samples)} samples, {scores['all'].tp + scores['all'].fn} PII")
    print(score_table(scores))
    results: dict[str, Any] = run_info()
    results["data"] = args.data.name
    results["samples"] = len(samples)
    results["scores"] = {
        k: {"precision": v.precision, "recall": v.recall, "tp": v.tp, "fp": v.fp, "fn": v.fn}
        for k, v in scores.items()
    }
    if args.data != DATA:  # a set to score, not to time
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2))
        return

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
    results["bytes_per_run"] = nbytes
    results["throughput"] = speed

    corpus = mixed_corpus(samples)
    assert _stream(corpus) == mask(corpus)[0]
    # the guard's measure: the mixed corpus; and the worst case, the set itself (dense with PII)
    for key, text in (("mixed_corpus", corpus), ("dev_set_corpus", whole)):
        if not args.baseline:
            break
        cmp = compare(text, args.baseline, args.rounds)
        results[key] = cmp
        print(f"{key}, {cmp['bytes']:,} bytes, median of {args.rounds} rounds:")
        for name in ("mask", "stream"):
            before, after = cmp["before"][name]["mb_per_s"], cmp["after"][name]["mb_per_s"]
            print(f"  {name}: before {before:.2f} MB/s, after {after:.2f} MB/s "
                  f"({cmp['slower_by'][name]:+.1%} slower)")  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
