"""vLLM's OpenAI server (`vllm serve`) on NVIDIA and AMD GPUs, and through its plugins on Huawei
Ascend (vllm-ascend), Cambricon MLU (vllm-mlu), Hygon DCU and Intel Gaudi: the same command
line everywhere; the accelerator decides the visible-devices variable."""

from tokenmill.engines.accelerated import AcceleratedAdapter
from tokenmill.engines.base import LaunchCommand, ReplicaSpec
from tokenmill.engines.spawned import model_path


class VllmAdapter(AcceleratedAdapter):
    engine_id = "vllm"

    def launch(self, spec: ReplicaSpec, port: int, secret: str) -> LaunchCommand:
        program = [str(spec.options.get("binary", "vllm")), "serve", model_path(self.facts, spec)]
        return self.served(spec, port, secret, program, [])
