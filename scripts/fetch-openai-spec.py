#!/usr/bin/env python3
"""Reproduces tests/data/openai/openapi.json: OpenAI's published OpenAPI document, cut down to
the operations TokenMill serves, with every component they reference (kept as $refs).

    .venv/bin/python scripts/fetch-openai-spec.py                  # the pinned commit
    .venv/bin/python scripts/fetch-openai-spec.py --commit <sha> --date <YYYY-MM-DD>
    .venv/bin/python scripts/fetch-openai-spec.py --source ./openapi.json   # a local copy

The upstream document is github.com/openai/openai-openapi's `openapi.json` (the same document
as its `openapi.yaml`, in JSON). Nothing in the kept operations and components is changed,
except that each operation's `x-oaiMeta` (code samples for OpenAI's reference site) is left
out. Moving to a newer commit: run with --commit and --date, then update
tests/data/openai/SOURCE.md and run tests/test_openai_spec.py.
"""

import argparse
import json
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPOSITORY = "openai/openai-openapi"
UPSTREAM_PATH = "openapi.json"
COMMIT = "f85dbe223d40e1a31cba812ab2d755c7e98a92a3"
COMMITTED = "2026-08-21"  # the commit's date (git log -1 --format=%ci)
OUT = Path(__file__).resolve().parent.parent / "tests" / "data" / "openai" / "openapi.json"

# The operations TokenMill serves under /v1 (docs/openai.md), by OpenAI's path and method.
OPERATIONS = {
    "/chat/completions": ["post"],
    "/completions": ["post"],
    "/embeddings": ["post"],
    "/models": ["get"],
    "/models/{model}": ["get"],
    "/responses": ["post"],
}
_DROPPED_OPERATION_KEYS = ("x-oaiMeta",)


def raw_url(commit: str) -> str:
    return f"https://raw.githubusercontent.com/{REPOSITORY}/{commit}/{UPSTREAM_PATH}"


def load(source: str) -> dict[str, Any]:
    if source.startswith("https://"):
        with urllib.request.urlopen(source, timeout=120) as resp:  # noqa: S310 - https only
            data = resp.read()
    else:
        data = Path(source).read_bytes()
    doc = json.loads(data)
    assert isinstance(doc, dict)
    return doc


def refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for value in node.values():
            yield from refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from refs(value)


def trim(doc: dict[str, Any], source: dict[str, str]) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for path, methods in OPERATIONS.items():
        item = doc["paths"][path]
        kept = {
            k: v
            for k, v in item.items()
            if k not in ("get", "put", "post", "delete", "patch", "head", "options", "trace")
        }
        for method in methods:
            op = item[method]
            kept[method] = {k: v for k, v in op.items() if k not in _DROPPED_OPERATION_KEYS}
        paths[path] = kept
    out: dict[str, Any] = {
        "openapi": doc["openapi"],
        "info": {**doc["info"], "x-source": source},
        "servers": doc["servers"],
        "security": doc["security"],
        "paths": paths,
    }
    components: dict[str, dict[str, Any]] = {}
    schemes = {name for req in doc["security"] for name in req}
    for op in (o for item in paths.values() for o in item.values() if isinstance(o, dict)):
        schemes |= {name for req in op.get("security", ()) for name in req}
    components["securitySchemes"] = {
        name: doc["components"]["securitySchemes"][name] for name in sorted(schemes)
    }
    pending = list(refs(paths))
    seen: set[str] = set()
    while pending:  # transitively: a component's own refs are kept too
        ref = pending.pop()
        if ref in seen:
            continue
        seen.add(ref)
        prefix, kind, name = ref.split("/", 2)
        if prefix != "#" or kind != "components" or "/" not in name:
            raise SystemExit(f"unexpected $ref {ref!r}")
        section, name = name.split("/", 1)
        target = doc["components"][section][name]
        components.setdefault(section, {})[name] = target
        pending.extend(refs(target))
    out["components"] = {k: dict(sorted(v.items())) for k, v in sorted(components.items())}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--commit", default=COMMIT)
    parser.add_argument("--date", default=COMMITTED, help="the commit's date, YYYY-MM-DD")
    parser.add_argument("--source", help="a local copy of the upstream openapi.json")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    url = raw_url(args.commit)
    doc = load(args.source or url)
    source = {
        "repository": f"https://github.com/{REPOSITORY}",
        "path": UPSTREAM_PATH,
        "commit": args.commit,
        "committed": args.date,
        "url": url,
        "trimmed_by": "scripts/fetch-openai-spec.py",
    }
    trimmed = trim(doc, source)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(trimmed, indent=1, ensure_ascii=False) + "\n")
    kept = sum(len(v) for v in trimmed["components"].values())
    print(f"{args.out}: {len(trimmed['paths'])} paths, {kept} components, "
          f"{args.out.stat().st_size:,} bytes", file=sys.stderr)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
