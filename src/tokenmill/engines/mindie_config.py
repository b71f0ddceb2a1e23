"""MindIE Service is configured by a JSON file, not flags: the replica's fields are set, by
their dotted paths (`BackendConfig.npuDeviceIds`, `...ModelConfig.0.worldSize`), over the
config.json its installation ships."""

import copy
from typing import Any

OVERRIDES_ENV = "TOKENMILL_MINDIE_OVERRIDES"  # the fields, as JSON, for engines/mindie_launch.py


def merged(config: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """A copy of `config` with each dotted path set; a number indexes a list that must exist."""
    out = copy.deepcopy(config)
    for dotted, value in overrides.items():
        _set(out, dotted, value)
    return out


def _set(config: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    node: Any = config
    for part in parents:
        node = _child(node, part, dotted)
    if isinstance(node, list):
        node[_index(node, last, dotted)] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise ValueError(f"MindIE config: {dotted}: '{last}' is under a {type(node).__name__}")


def _child(node: Any, part: str, dotted: str) -> Any:
    if isinstance(node, list):
        return node[_index(node, part, dotted)]
    if isinstance(node, dict):
        return node.setdefault(part, {})
    raise ValueError(f"MindIE config: {dotted}: '{part}' is under a {type(node).__name__}")


def _index(node: list[Any], part: str, dotted: str) -> int:
    if not part.isdigit() or int(part) >= len(node):
        raise ValueError(f"MindIE config: {dotted}: no item {part} in a list of {len(node)}")
    return int(part)
