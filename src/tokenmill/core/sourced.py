"""Figures that carry their source, as the economics data files write them: a `[sources]`
table, and entries whose numbers are tables `{value, src[, date, note]}` citing it. Loading
is strict; every error names the file, the entry and the field."""

from __future__ import annotations

import math
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, Self, TypeVar


@dataclass(frozen=True, slots=True)
class Source:
    title: str
    date: str
    note: str | None = None


class _Identified(Protocol):
    @property
    def id(self) -> str: ...


T = TypeVar("T", bound=_Identified)
Build = Callable[[object, int, Mapping[str, "Source"]], T]


def load(text: str, entry: type[Entry], array: str, build: Build[T]) -> dict[str, T]:
    """Every `[[array]]` entry of a data file (TOML, schema version 1, with `[sources]`), built
    by `build(raw, index, sources)` and keyed by id; a duplicate id is refused."""
    file, error = entry.file, entry.error
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{file}: not valid TOML: {exc}") from None
    if doc.get("schema_version") != 1:
        raise error(f"{file}: schema_version must be 1, got {doc.get('schema_version')!r}")
    sources = _sources(doc, file, error)
    found = doc.get(array)
    if not isinstance(found, list) or not found:
        raise error(f"{file}: no [[{array}]] entries")
    out: dict[str, T] = {}
    for index, raw in enumerate(found):
        item = build(raw, index, sources)
        if item.id in out:
            raise error(f"{file}: {array} {item.id!r}: duplicate id")
        out[item.id] = item
    return out


def _sources(doc: Mapping[str, Any], file: str, error: type[ValueError]) -> dict[str, Source]:
    raw = doc.get("sources")
    if not isinstance(raw, dict) or not raw:
        raise error(f"{file}: a [sources] table is required")
    sources = {}
    for key, table in raw.items():
        if not isinstance(table, dict) or set(table) - {"title", "date", "url"}:
            raise error(f"{file}: source {key!r}: keys are title, date[, url]")
        title, date = table.get("title"), table.get("date")
        if not isinstance(title, str) or not title or not isinstance(date, str) or not date:
            raise error(f"{file}: source {key!r}: needs title and date strings")
        sources[key] = Source(title, date)
    return sources


_FROM_ENTRY = object()  # `number`'s default: the entry's own field of that name


class Entry:
    """Validation context for one entry of a data file; records the source of every figure."""

    error: ClassVar[type[ValueError]]
    file: ClassVar[str]
    citation_keys: ClassVar[frozenset[str]] = frozenset({"src", "date", "note"})

    def __init__(self, raw: Mapping[str, Any], label: str, sources: Mapping[str, Source]):
        self.raw, self.label, self.known = raw, label, sources
        self.sources: dict[str, Source] = {}  # figure name -> its source

    @classmethod
    def of(
        cls, raw: object, index: int, kind: str, keys: frozenset[str],
        sources: Mapping[str, Source],
    ) -> Self:  # fmt: skip
        """The context for the `index`-th `kind` of the file, once `raw` is known to be a table
        with no field outside `keys` (named by its `id` where it has one)."""
        if not isinstance(raw, dict):
            raise cls.error(f"{cls.file}: {kind} #{index + 1}: must be a table")
        ident = raw.get("id")
        label = f"{kind} {ident!r}" if isinstance(ident, str) else f"{kind} #{index + 1}"
        entry = cls(raw, label, sources)
        unknown = set(raw) - keys
        if unknown:
            known = ", ".join(sorted(keys))
            raise entry.fail(sorted(unknown)[0], f"unknown field (known: {known})")
        return entry

    def fail(self, name: str, problem: str) -> ValueError:
        return self.error(f"{self.file}: {self.label}: field {name!r}: {problem}")

    def text(self, name: str, *, required: bool = True) -> str | None:
        value = self.raw.get(name)
        if value is None:
            if required:
                raise self.fail(name, "is required")
            return None
        if not isinstance(value, str) or not value.strip():
            raise self.fail(name, "must be a non-empty string")
        return value

    def cite(self, name: str, table: Mapping[str, Any], values: frozenset[str]) -> None:
        """Check a figure's table (its `values` and citation keys) and record its source."""
        unknown = set(table) - values - self.citation_keys
        if unknown:
            raise self.fail(name, f"unknown keys {sorted(unknown)}")
        src = table.get("src")
        if not isinstance(src, str) or src not in self.known:
            raise self.fail(
                name, f"needs src naming one of [sources]: {', '.join(sorted(self.known))}"
            )
        date, note = table.get("date", self.known[src].date), table.get("note")
        if not isinstance(date, str) or not date:
            raise self.fail(name, "date must be a non-empty string")
        if note is not None and not isinstance(note, str):
            raise self.fail(name, "note must be a string")
        self.sources[name] = Source(self.known[src].title, date, note)

    def number(
        self,
        name: str,
        table: object = _FROM_ENTRY,
        *,
        required: bool = True,
        integer: bool = False,
    ) -> float | None:
        """A positive figure `{value, src, ...}` (`table`, else the entry's field `name`)."""
        if table is _FROM_ENTRY:
            table = self.raw.get(name)
        if table is None:
            if required:
                raise self.fail(name, "is required")
            return None
        if not isinstance(table, dict):
            raise self.fail(
                name, f"must be a table {{value, {', '.join(sorted(self.citation_keys))}}}"
            )
        value = table.get("value")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(name, f"value must be a number, got {value!r}")
        if not (math.isfinite(value) and value > 0):
            raise self.fail(name, f"value must be positive, got {value!r}")
        if integer and value != int(value):
            raise self.fail(name, f"value must be a whole number, got {value!r}")
        self.cite(name, table, frozenset({"value"}))
        return float(value)
