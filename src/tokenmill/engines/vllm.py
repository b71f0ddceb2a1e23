"""vLLM's OpenAI server (`vllm serve`) on NVIDIA and AMD GPUs, and through its plugins on Huawei
Ascend (vllm-ascend), Cambricon MLU (vllm-mlu), Hygon DCU and Intel Gaudi: the same command
line everywhere; the accelerator decides the visible-devices variable."""

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


class VllmAdapter(AcceleratedAdapter):
    engine_id = "vllm"

    def launch(self, spec: ReplicaSpec, port: int, secret: str) -> LaunchCommand:
        self.validate(spec)
        f = self.facts
        devices = devices_for(f, spec)
        argv = [
            str(spec.options.get("binary", "vllm")), "serve", model_path(f, spec),
            f.flag("host"), spec.host,
            f.flag("port"), str(port),
            f.flag("served_name"), self.upstream_model(spec),
            f.flag("tensor_parallel"), str(devices.count),
        ]  # fmt: skip
        fraction = memory_fraction(spec)
        if fraction is not None:
            argv += [f.flag("memory_fraction"), str(fraction)]
        key_argv, key_env = key_args(f, secret)
        argv += key_argv + engine_args(spec)
        return LaunchCommand(argv=argv, env={**visible_env(devices), **key_env})
