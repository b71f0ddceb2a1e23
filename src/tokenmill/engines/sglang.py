"""SGLang's server (`python -m sglang.launch_server`) on NVIDIA and AMD GPUs."""

from tokenmill.engines.accelerated import AcceleratedAdapter
from tokenmill.engines.base import LaunchCommand, ReplicaSpec
from tokenmill.engines.spawned import (
    devices_for,
    engine_args,
    key_args,
    memory_fraction,
    model_path,
    visible_env,
)


class SglangAdapter(AcceleratedAdapter):
    engine_id = "sglang"

    def launch(self, spec: ReplicaSpec, port: int, secret: str) -> LaunchCommand:
        self.validate(spec)
        f = self.facts
        devices = devices_for(f, spec)
        python = str(spec.options.get("python", "python3"))
        argv = [
            python, "-m", "sglang.launch_server",
            f.flag("model"), model_path(f, spec),
            f.flag("host"), spec.host,
            f.flag("port"), str(port),
            f.flag("served_name"), self.upstream_model(spec),
            f.flag("tensor_parallel"), str(devices.count),
            # Its Prometheus counters (what reconcile reads), and cached prompt tokens in usage.
            f.flag("metrics"), f.flag("cache_report"),
        ]  # fmt: skip
        fraction = memory_fraction(spec)
        if fraction is not None:
            argv += [f.flag("memory_fraction"), str(fraction)]
        key_argv, key_env = key_args(f, secret)
        argv += key_argv + engine_args(spec)
        return LaunchCommand(argv=argv, env={**visible_env(devices), **key_env})
