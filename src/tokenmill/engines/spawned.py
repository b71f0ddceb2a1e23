"""What every engine TokenMill starts on accelerators shares: the devices it may use, the
vendor's visible-devices variables, the bearer key it demands, options a deployment may give."""

from typing import Any

from tokenmill.engines.base import ReplicaSpec
from tokenmill.engines.devices import Devices
from tokenmill.engines.matrix import EngineFacts, matrix


def devices_for(facts: EngineFacts, spec: ReplicaSpec) -> Devices:
    """The replica's devices, refused with a reason unless this engine runs on their kind."""
    devices = spec.devices
    kinds = ", ".join(sorted(facts.accelerators))
    if devices is None:
        raise ValueError(f"the {facts.id} engine needs devices to run on ({kinds})")
    if devices.accelerator not in facts.accelerators:
        raise ValueError(
            f"the {facts.id} engine does not run on {devices.accelerator}; it runs on {kinds}"
        )
    if devices.accelerator != "cpu" and not devices.count:
        raise ValueError(f"the {facts.id} engine needs at least one {devices.accelerator} device")
    return devices


def visible_env(devices: Devices) -> dict[str, str]:
    """The vendor's visible-devices variables, so the engine sees only its devices (a CPU has
    none). Its device indices then count from 0 inside the engine."""
    return devices.visible(matrix().accelerator(devices.accelerator).visible_devices)


def key_args(facts: EngineFacts, secret: str) -> tuple[list[str], dict[str, str]]:
    """How the engine is told to refuse requests without `secret` as their bearer token: an
    environment variable where it reads one (the environment is private to its owner), else
    a flag. An engine with no such setting gets neither (see its adapter's validate)."""
    kind, _, name = facts.api_key.partition(":")
    if kind == "env":
        return [], {name: secret}
    if kind == "flag":
        return [name, secret], {}
    return [], {}


def memory_fraction(spec: ReplicaSpec) -> float | None:
    """`options.memory_fraction`: the share of each device's memory the engine may take."""
    raw = spec.options.get("memory_fraction")
    if raw is None:
        return None
    value = float(raw)
    if not 0 < value <= 1:
        raise ValueError(f"memory_fraction must be in (0, 1]; got {raw}")
    return value


def engine_args(spec: ReplicaSpec) -> list[str]:
    """`options.engine_args`: more flags for the engine, passed as they are."""
    raw: Any = spec.options.get("engine_args", [])
    if not isinstance(raw, list) or not all(isinstance(a, str) for a in raw):
        raise ValueError("engine_args must be a list of strings")
    return list(raw)


def model_path(facts: EngineFacts, spec: ReplicaSpec) -> str:
    """The model on the node that runs the replica (checked there, by the engine: the path may
    not exist on the machine that plans the launch)."""
    if not spec.model_path:
        formats = ", ".join(facts.model_formats)
        raise ValueError(f"the {facts.id} engine needs --path to a model ({formats})")
    return spec.model_path
