"""The engine matrix: which engine runs on which accelerator, and the facts its adapter drives
it by (visible-devices variables, flags, port, health, metrics and counter names), each with
its source. The data lives in engines/data/matrix.toml; `load` refuses it otherwise."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from types import MappingProxyType
from typing import Any

from tokenmill.core import sourced
from tokenmill.engines.counters import CounterNames

__all__ = ["AcceleratorFacts", "EngineFacts", "Matrix", "MatrixError", "load", "matrix"]

_API_KEY_KINDS = ("env:", "flag:")
_COUNTER_KEYS = frozenset({"prompt", "cached", "completion", "prompt_includes_cached", "lazy"})


class MatrixError(ValueError):
    """The engine matrix is malformed, or a lookup found nothing."""


@dataclass(frozen=True)
class AcceleratorFacts:
    id: str
    vendor: str
    resource: str  # what Ray and placement schedule it as: GPU, NPU, HPU, MLU, DCU, CPU
    visible_devices: tuple[str, ...]
    sources: Mapping[str, sourced.Source] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class EngineFacts:
    id: str
    name: str
    checked_against: str
    accelerators: Mapping[str, str]  # accelerator id -> the build that runs there
    model_formats: tuple[str, ...]
    default_port: int
    health_path: str
    metrics_path: str | None
    api_key: str  # "env:NAME", "flag:--name" or "none"
    counters: CounterNames | None
    flags: Mapping[str, str] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)
    config_keys: Mapping[str, str] = field(default_factory=dict)
    paths: Mapping[str, str] = field(default_factory=dict)
    sources: Mapping[str, sourced.Source] = field(default_factory=dict, repr=False, compare=False)

    def flag(self, name: str) -> str:
        try:
            return self.flags[name]
        except KeyError:
            raise MatrixError(f"engine {self.id}: no flag {name!r} in the matrix") from None


@dataclass(frozen=True)
class Matrix:
    accelerators: Mapping[str, AcceleratorFacts]
    engines: Mapping[str, EngineFacts]

    def engine(self, engine_id: str) -> EngineFacts:
        try:
            return self.engines[engine_id]
        except KeyError:
            raise MatrixError(f"engine {engine_id!r} is not in the engine matrix") from None

    def accelerator(self, accelerator_id: str) -> AcceleratorFacts:
        try:
            return self.accelerators[accelerator_id]
        except KeyError:
            known = ", ".join(sorted(self.accelerators))
            raise MatrixError(f"unknown accelerator {accelerator_id!r}; known: {known}") from None


class _Entry(sourced.Entry):
    error = MatrixError
    file = "engine matrix"

    def fact(self, name: str, check: Callable[[Any], bool], what: str, table: Any = None) -> Any:
        """A sourced fact `{value, src[, date, note]}` whose value passes `check`."""
        table = self.raw.get(name) if table is None else table
        if not isinstance(table, dict):
            raise self.fail(name, "must be a table {value, src[, date, note]}")
        value = table.get("value")
        if not check(value):
            raise self.fail(name, f"value must be {what}, got {value!r}")
        self.cite(name, table, frozenset({"value"}))
        return value

    def known_keys(self, allowed: frozenset[str]) -> None:
        unknown = set(self.raw) - allowed
        if unknown:
            raise self.fail(
                sorted(unknown)[0], f"unknown key; allowed: {', '.join(sorted(allowed))}"
            )


def _text(v: Any) -> bool:
    return isinstance(v, str) and bool(v.strip())


def _texts(v: Any) -> bool:
    return isinstance(v, list) and all(_text(x) for x in v)


def _text_map(v: Any) -> bool:
    return isinstance(v, dict) and bool(v) and all(_text(x) for x in v.values())


def _port(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 0 < v < 65536


def _path(v: Any) -> bool:
    return _text(v) and str(v).startswith("/")


def _api_key(v: Any) -> bool:
    return v == "none" or (_text(v) and str(v).startswith(_API_KEY_KINDS) and v[-1] != ":")


def _counters(v: Any) -> bool:
    return (
        isinstance(v, dict)
        and not set(v) - _COUNTER_KEYS
        and _text(v.get("prompt"))
        and _text(v.get("completion"))
        and (v.get("cached") is None or _text(v.get("cached")))
        and isinstance(v.get("prompt_includes_cached", True), bool)
        and isinstance(v.get("lazy", False), bool)
    )


_ACCELERATOR_KEYS = frozenset({"id", "vendor", "resource", "visible_devices"})


def _accelerator(raw: object, index: int, known: Mapping[str, sourced.Source]) -> AcceleratorFacts:
    if not isinstance(raw, dict):
        raise MatrixError(f"engine matrix: accelerator #{index} must be a table")
    e = _Entry(raw, f"accelerator {raw.get('id', f'#{index}')!r}", known)
    e.known_keys(_ACCELERATOR_KEYS)
    return AcceleratorFacts(
        id=str(e.text("id")),
        vendor=str(e.text("vendor")),
        resource=e.fact("resource", _text, "a resource name"),
        visible_devices=tuple(e.fact("visible_devices", _texts, "a list of variable names")),
        sources=MappingProxyType(dict(e.sources)),
    )


_ENGINE_KEYS = frozenset(
    {
        "id", "name", "checked_against", "accelerators", "model_formats", "default_port",
        "health_path", "metrics_path", "api_key", "counters", "flags", "env", "config_keys",
        "paths",
    }
)  # fmt: skip


def _engine(raw: object, index: int, known: Mapping[str, sourced.Source]) -> EngineFacts:
    if not isinstance(raw, dict):
        raise MatrixError(f"engine matrix: engine #{index} must be a table")
    e = _Entry(raw, f"engine {raw.get('id', f'#{index}')!r}", known)
    e.known_keys(_ENGINE_KEYS)
    on = raw.get("accelerators")
    if not isinstance(on, dict) or not on:
        raise e.fail("accelerators", "must be a table: accelerator id -> {value, src}")
    accelerators = {
        acc: e.fact(f"accelerators.{acc}", _text, "the build's name", table)
        for acc, table in on.items()
    }
    counters = e.fact("counters", _counters, "a counters table") if "counters" in raw else None
    optional_maps = {
        key: e.fact(key, _text_map, "a table of names") if key in raw else {}
        for key in ("flags", "env", "config_keys", "paths")
    }
    return EngineFacts(
        id=str(e.text("id")),
        name=str(e.text("name")),
        checked_against=e.fact("checked_against", _text, "a version"),
        accelerators=MappingProxyType(accelerators),
        model_formats=tuple(e.fact("model_formats", _texts, "a list of formats")),
        default_port=e.fact("default_port", _port, "a port number"),
        health_path=e.fact("health_path", _path, "a path starting with /"),
        metrics_path=e.fact("metrics_path", _path, "a path") if "metrics_path" in raw else None,
        api_key=e.fact("api_key", _api_key, '"env:NAME", "flag:--name" or "none"'),
        counters=CounterNames(**counters) if counters is not None else None,
        flags=MappingProxyType(optional_maps["flags"]),
        env=MappingProxyType(optional_maps["env"]),
        config_keys=MappingProxyType(optional_maps["config_keys"]),
        paths=MappingProxyType(optional_maps["paths"]),
        sources=MappingProxyType(dict(e.sources)),
    )


class _Top(sourced.Entry):
    error = MatrixError
    file = "engine matrix"


def load(text: str) -> Matrix:
    """Parse and check the matrix: every fact sourced, every accelerator an engine names listed."""
    accelerators = sourced.load(text, _Top, "accelerator", _accelerator)
    engines = sourced.load(text, _Top, "engine", _engine)
    for engine in engines.values():
        for acc in engine.accelerators:
            if acc not in accelerators:
                raise MatrixError(
                    f"engine matrix: engine {engine.id!r} names accelerator {acc!r}, "
                    f"which has no [[accelerator]] entry"
                )
    return Matrix(MappingProxyType(accelerators), MappingProxyType(engines))


@functools.cache
def matrix() -> Matrix:
    """The shipped matrix (engines/data/matrix.toml), loaded once."""
    text = resources.files("tokenmill.engines").joinpath("data/matrix.toml").read_text("utf-8")
    return load(text)
