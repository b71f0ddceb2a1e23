"""SGLang's server (`python -m sglang.launch_server`) on NVIDIA and AMD GPUs."""

from tokenmill.engines.accelerated import AcceleratedAdapter
from tokenmill.engines.base import LaunchCommand, ReplicaSpec
from tokenmill.engines.spawned import model_path


class SglangAdapter(AcceleratedAdapter):
    engine_id = "sglang"

    def launch(self, spec: ReplicaSpec, port: int, secret: str) -> LaunchCommand:
        f = self.facts
        python = str(spec.options.get("python", "python3"))
        program = [python, "-m", "sglang.launch_server", f.flag("model"), model_path(f, spec)]
        # Its Prometheus counters (what reconcile reads), and cached prompt tokens in usage.
        return self.served(spec, port, secret, program, [f.flag("metrics"), f.flag("cache_report")])
