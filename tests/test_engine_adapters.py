"""Each engine adapter's exact command line and environment, per accelerator: what a replica on
those devices is started with. No engine runs here: these are the launch descriptions."""

import json
import sys

import pytest

from tokenmill.engines.base import ReplicaSpec
from tokenmill.engines.devices import Devices
from tokenmill.engines.llamacpp import LlamaCppAdapter
from tokenmill.engines.matrix import matrix
from tokenmill.engines.mindie import MindieAdapter
from tokenmill.engines.registry import get_adapter
from tokenmill.engines.sglang import SglangAdapter
from tokenmill.engines.vllm import VllmAdapter

SECRET = "s3cret-from-the-supervisor"


def spec(devices: Devices | None, **kw: object) -> ReplicaSpec:
    return ReplicaSpec("qwen", 0, model_path="/models/qwen2.5-7b", devices=devices, **kw)  # type: ignore[arg-type]


def test_vllm_on_two_ascend_npus():
    cmd = VllmAdapter().launch(
        spec(Devices("ascend", (4, 5)), options={"memory_fraction": 0.9}), 8001, SECRET
    )
    assert cmd.argv == [
        "vllm", "serve", "/models/qwen2.5-7b",
        "--host", "127.0.0.1",
        "--port", "8001",
        "--served-model-name", "qwen",
        "--tensor-parallel-size", "2",
        "--gpu-memory-utilization", "0.9",
    ]  # fmt: skip
    assert cmd.env == {"ASCEND_RT_VISIBLE_DEVICES": "4,5", "VLLM_API_KEY": SECRET}


@pytest.mark.parametrize(
    ("accelerator", "indices", "env"),
    [
        ("nvidia", (0,), {"CUDA_VISIBLE_DEVICES": "0"}),
        ("amd", (2, 3), {"HIP_VISIBLE_DEVICES": "2,3", "CUDA_VISIBLE_DEVICES": "2,3"}),
        ("cambricon", (0, 1, 2, 3), {"MLU_VISIBLE_DEVICES": "0,1,2,3"}),
        ("hygon", (7,), {"HIP_VISIBLE_DEVICES": "7"}),
        ("gaudi", (0, 1), {"HABANA_VISIBLE_MODULES": "0,1"}),
    ],
)
def test_vllm_sets_the_vendors_visible_devices_and_one_tp_rank_per_device(
    accelerator: str, indices: tuple[int, ...], env: dict[str, str]
):
    cmd = VllmAdapter().launch(spec(Devices(accelerator, indices)), 8001, SECRET)
    assert cmd.env == {**env, "VLLM_API_KEY": SECRET}
    tp = cmd.argv.index("--tensor-parallel-size")
    assert cmd.argv[tp + 1] == str(len(indices))
    assert "--gpu-memory-utilization" not in cmd.argv  # the engine's own default
    assert SECRET not in cmd.argv  # the key travels in the environment, never on argv


def test_a_replica_serving_other_machines_binds_and_is_reached_at_the_node_address():
    s = spec(Devices("nvidia", (0,)), host="10.0.0.7", upstream_model="Qwen/Qwen2.5-7B")
    adapter = VllmAdapter()
    cmd = adapter.launch(s, 8001, SECRET)
    assert cmd.argv[cmd.argv.index("--host") + 1] == "10.0.0.7"
    assert cmd.argv[cmd.argv.index("--served-model-name") + 1] == "Qwen/Qwen2.5-7B"
    assert adapter.base_url(s, 8001) == "http://10.0.0.7:8001/v1"
    assert adapter.health_url(s, 8001) == "http://10.0.0.7:8001/health"
    v6 = spec(Devices("nvidia", (0,)), host="fd00::7")
    assert adapter.base_url(v6, 8001) == "http://[fd00::7]:8001/v1"


def test_engine_args_are_appended_as_given():
    s = spec(Devices("nvidia", (0,)), options={"engine_args": ["--max-model-len", "8192"]})
    assert VllmAdapter().launch(s, 1, SECRET).argv[-2:] == ["--max-model-len", "8192"]


@pytest.mark.parametrize(
    ("devices", "options", "host", "reason"),
    [
        (None, {}, "127.0.0.1", "needs devices"),
        (Devices("cpu"), {}, "127.0.0.1", "does not run on cpu"),
        (Devices("nvidia"), {}, "127.0.0.1", "at least one nvidia device"),
        (Devices("nvidia", (0,)), {}, "0.0.0.0", "not '0.0.0.0'"),
        (Devices("nvidia", (0,)), {"memory_fraction": 1.5}, "127.0.0.1", "memory_fraction"),
        (Devices("nvidia", (0,)), {"engine_args": "--x"}, "127.0.0.1", "engine_args"),
    ],
)
def test_vllm_refuses_what_it_cannot_run_with_a_reason(
    devices: Devices | None, options: dict[str, object], host: str, reason: str
):
    with pytest.raises(ValueError, match=reason):
        VllmAdapter().validate(spec(devices, options=options, host=host))


def test_vllm_needs_a_model():
    with pytest.raises(ValueError, match="needs --path"):
        VllmAdapter().validate(ReplicaSpec("q", 0, devices=Devices("nvidia", (0,))))


def test_sglang_on_four_nvidia_gpus():
    cmd = SglangAdapter().launch(
        spec(Devices("nvidia", (0, 1, 2, 3)), options={"memory_fraction": 0.8}), 30001, SECRET
    )
    assert cmd.argv == [
        "python3", "-m", "sglang.launch_server",
        "--model-path", "/models/qwen2.5-7b",
        "--host", "127.0.0.1",
        "--port", "30001",
        "--served-model-name", "qwen",
        "--tp-size", "4",
        "--enable-metrics", "--enable-cache-report",
        "--mem-fraction-static", "0.8",
        "--api-key", SECRET,
    ]  # fmt: skip
    assert cmd.env == {"CUDA_VISIBLE_DEVICES": "0,1,2,3"}


def test_sglang_on_amd_sets_both_hip_and_cuda_masks():
    cmd = SglangAdapter().launch(spec(Devices("amd", (1,))), 30001, SECRET)
    assert cmd.env == {"HIP_VISIBLE_DEVICES": "1", "CUDA_VISIBLE_DEVICES": "1"}


def test_sglang_is_not_offered_where_the_matrix_does_not_list_it():
    with pytest.raises(ValueError, match="does not run on ascend"):
        SglangAdapter().validate(spec(Devices("ascend", (0,))))


def test_mindie_on_four_ascend_npus_is_configured_by_its_json_fields():
    s = spec(Devices("ascend", (0, 1, 2, 3)), options={"memory_fraction": 0.85})
    cmd = MindieAdapter().launch(s, 1025, SECRET)
    assert cmd.argv == [sys.executable, "-m", "tokenmill.engines.mindie_launch"]
    fields = json.loads(cmd.env.pop("TOKENMILL_MINDIE_OVERRIDES"))
    assert cmd.env == {
        "MIES_INSTALL_PATH": "/usr/local/Ascend/mindie/latest/mindie-service",
        "MIES_SERVICE_MONITOR_MODE": "1",
        "NPU_MEMORY_FRACTION": "0.85",
    }  # no ASCEND_RT_VISIBLE_DEVICES: MindIE takes the NPU ids in its config
    model = "BackendConfig.ModelDeployConfig.ModelConfig.0."
    assert fields == {
        "ServerConfig.ipAddress": "127.0.0.1",
        "ServerConfig.port": 1025,
        "ServerConfig.managementPort": 1025,
        "ServerConfig.metricsPort": 1025,
        "ServerConfig.httpsEnabled": False,
        "BackendConfig.npuDeviceIds": [[0, 1, 2, 3]],
        model + "worldSize": 4,
        model + "modelName": "qwen",
        model + "modelWeightPath": "/models/qwen2.5-7b",
    }
    assert SECRET not in json.dumps(cmd.env)


def test_mindie_options_config_sets_more_fields_and_install_path_moves():
    s = spec(
        Devices("ascend", (6,)),
        options={"config": {"ServerConfig.maxLinkNum": 300}, "install_path": "/opt/mindie"},
    )
    cmd = MindieAdapter().launch(s, 1025, SECRET)
    assert json.loads(cmd.env["TOKENMILL_MINDIE_OVERRIDES"])["ServerConfig.maxLinkNum"] == 300
    assert cmd.env["MIES_INSTALL_PATH"] == "/opt/mindie"


@pytest.mark.parametrize(
    ("s", "reason"),
    [
        (spec(Devices("ascend", (0,)), host="10.0.0.7"), "bind to 127.0.0.1 only"),
        (spec(Devices("ascend", (0,)), options={"engine_args": ["--x"]}), "takes no flags"),
        (spec(Devices("nvidia", (0,))), "does not run on nvidia"),
    ],
)
def test_mindie_refuses_with_a_reason(s: ReplicaSpec, reason: str):
    with pytest.raises(ValueError, match=reason):
        MindieAdapter().validate(s)


def test_llamacpp_keeps_todays_command_line_by_default():
    s = ReplicaSpec("smol", 0, model_path="/m/smol.gguf")
    cmd = LlamaCppAdapter().launch(s, 9001, SECRET, binary="/opt/llama-server")
    assert cmd.argv[:9] == [
        "/opt/llama-server", "--model", "/m/smol.gguf",
        "--host", "127.0.0.1", "--port", "9001", "--alias", "smol",
    ]  # fmt: skip
    assert "--metrics" in cmd.argv
    assert cmd.env == {"LLAMA_API_KEY": SECRET}
    assert LlamaCppAdapter().base_url(s, 9001) == "http://127.0.0.1:9001/v1"


def test_llamacpp_on_a_node_address_and_a_cuda_build():
    s = ReplicaSpec(
        "smol", 0, model_path="/m/smol.gguf", host="10.0.0.7", devices=Devices("nvidia", (1,))
    )
    adapter = LlamaCppAdapter()
    cmd = adapter.launch(s, 9001, SECRET, binary="/opt/llama-server-cuda")
    assert cmd.argv[cmd.argv.index("--host") + 1] == "10.0.0.7"
    assert cmd.env == {"CUDA_VISIBLE_DEVICES": "1", "LLAMA_API_KEY": SECRET}
    assert adapter.health_url(s, 9001) == "http://10.0.0.7:9001/health"


def test_llamacpp_refuses_an_npu():
    with pytest.raises(ValueError, match="does not run on ascend"):
        LlamaCppAdapter().validate(
            ReplicaSpec("smol", 0, model_path="/m/smol.gguf", devices=Devices("ascend", (0,)))
        )


def test_every_spawned_engine_is_registered_with_the_matrix_accelerators():
    for engine in matrix().engines.values():
        adapter = get_adapter(engine.id)
        assert adapter.spawns
        assert adapter.accelerators == frozenset(engine.accelerators)
        assert adapter.metrics_path == engine.metrics_path


def test_devices_refuse_repeated_or_negative_indices():
    with pytest.raises(ValueError, match="distinct"):
        Devices("nvidia", (0, 0))
    with pytest.raises(ValueError, match="distinct"):
        Devices("nvidia", (-1,))
