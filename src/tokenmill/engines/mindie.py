"""Huawei MindIE Service on Ascend NPUs. Configured by a JSON file rather than flags (see
engines/mindie_config.py); started through engines/mindie_launch.py, which writes the
replica's file and then becomes `mindieservice_daemon`.

MindIE has no bearer-key setting we could confirm, so a replica cannot refuse callers other
than the gateway: it binds to the loopback address only and serves its own node's gateway."""

import json
import os
import sys
from typing import Any

from tokenmill.engines.accelerated import AcceleratedAdapter
from tokenmill.engines.base import LOOPBACK, LaunchCommand, ReplicaSpec
from tokenmill.engines.mindie_config import OVERRIDES_ENV
from tokenmill.engines.spawned import devices_for, memory_fraction, model_path


class MindieAdapter(AcceleratedAdapter):
    engine_id = "mindie"
    # Whether its OpenAI surface honours stream_options.include_usage is not confirmed: the
    # gateway counts streamed tokens itself and labels them so.
    reports_stream_usage = False

    def validate(self, spec: ReplicaSpec) -> None:
        super().validate(spec)
        if spec.host != LOOPBACK:
            raise ValueError(
                f"MindIE replicas bind to {LOOPBACK} only: MindIE has no bearer-key setting, "
                "so a replica on a node address would answer anyone who reaches it"
            )
        if spec.options.get("engine_args"):
            raise ValueError("MindIE takes no flags: set its fields with options.config")
        if not isinstance(spec.options.get("config", {}), dict):
            raise ValueError("options.config must map MindIE config.json paths to values")

    def smoke_request(self, spec: ReplicaSpec) -> tuple[str, dict[str, Any]] | None:
        return None  # its /v1/completions is not confirmed; health is /info

    def launch(self, spec: ReplicaSpec, port: int, secret: str) -> LaunchCommand:
        self.validate(spec)
        f, keys = self.facts, self.facts.config_keys
        devices = devices_for(f, spec)
        fields: dict[str, Any] = {
            keys["host"]: spec.host,
            # One port for the OpenAI API, management (health) and metrics, as GPUStack does.
            keys["port"]: port,
            keys["management_port"]: port,
            keys["metrics_port"]: port,
            keys["https"]: False,  # plain HTTP, on the loopback address only (validate)
            # MindIE takes the NPUs by their ids (not a visible-devices mask): one instance.
            keys["devices"]: [list(devices.indices)],
            keys["world_size"]: devices.count,
            keys["served_name"]: self.upstream_model(spec),
            keys["model"]: model_path(f, spec),
            **spec.options.get("config", {}),
        }
        install = spec.options.get("install_path") or os.environ.get(f.env["install_path"])
        env = {
            f.env["install_path"]: str(install or f.paths["install"]),
            f.env["metrics_switch"]: "1",
            OVERRIDES_ENV: json.dumps(fields),
        }
        fraction = memory_fraction(spec)
        if fraction is not None:
            env[f.env["memory_fraction"]] = str(fraction)
        argv = [sys.executable, "-m", "tokenmill.engines.mindie_launch"]
        return LaunchCommand(argv=argv, env=env)
