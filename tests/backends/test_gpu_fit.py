"""GPU reading (fake nvidia-smi), safetensors headers and the memory estimate."""

from __future__ import annotations

import json
import os

import pytest

from backends import gpu
from backends.vllm import fit, modelfiles
from tests.backends.model_files import (
    CONFIG,
    fake_gpus,
    nvidia_smi_command,
    shard_bytes,
    truncate,
    write_model,
)

GIB = 1024**3


@pytest.fixture
def smi(tmp_path, monkeypatch, settings):
    state = tmp_path / "gpus.json"
    monkeypatch.setenv("FAKE_NVIDIA_SMI_STATE", str(state))
    settings.IMAGEWORKS_NVIDIA_SMI = nvidia_smi_command()
    fake_gpus(state)
    return state


# --- GPUs ------------------------------------------------------------------------


def test_reads_gpus_and_processes_from_nvidia_smi(smi):
    fake_gpus(
        smi,
        used_mib=18400,
        count=2,
        processes=[
            {
                "pid": 4242,
                "gpu_uuid": "GPU-fake-1",
                "process_name": "python",
                "used_memory": 18000,
            },
            {
                "pid": 77,
                "gpu_uuid": "GPU-fake-0",
                "process_name": "Xorg",
                "used_memory": "[N/A]",
            },
        ],
    )
    snap = gpu.read_gpus(nvidia_smi=nvidia_smi_command())
    assert snap.source == "nvidia-smi" and snap.known
    assert [g.index for g in snap.gpus] == [0, 1]
    g1 = snap.gpu(1)
    assert g1.total_bytes == 24564 * 2**20 and g1.free_bytes == (24564 - 18400) * 2**20
    assert g1.name == "NVIDIA GeForce RTX 4090" and g1.temperature == 41
    assert snap.held_by([4242]) == {1: 18000 * 2**20}
    assert snap.processes[1].used_bytes is None  # "[N/A]" is unknown, not zero


def test_setting_points_at_nvidia_smi(smi):
    assert gpu.read_gpus().source == "nvidia-smi"  # IMAGEWORKS_NVIDIA_SMI


@pytest.mark.parametrize(
    "state, reason, timeout",
    [
        (
            {
                "fail": "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver."
            },
            "couldn't communicate with the NVIDIA driver",
            10.0,  # time for the fake's interpreter to start on a loaded machine
        ),
        ({"gpus": [], "delay": 3}, "did not answer within 0.5s", 0.5),
    ],
)
def test_broken_tooling_is_unknown_not_an_error(smi, state, reason, timeout):
    smi.write_text(json.dumps(state))
    snap = gpu.read_gpus(nvidia_smi=nvidia_smi_command(), timeout=timeout)
    assert not snap.known and snap.source == ""
    assert reason in snap.reason


def test_no_tooling_at_all_is_unknown(tmp_path, monkeypatch, settings):
    settings.IMAGEWORKS_NVIDIA_SMI = ""
    monkeypatch.setenv("PATH", str(tmp_path))  # no nvidia-smi anywhere
    snap = gpu.read_gpus()
    assert not snap.known
    assert "nvidia-smi is not on PATH" in snap.reason
    missing = gpu.read_gpus(nvidia_smi=str(tmp_path / "nope"))
    assert not missing.known and "not found" in missing.reason
    assert gpu.describe(missing).startswith("GPUs unknown:")


# --- safetensors headers ------------------------------------------------------------


def test_headers_of_real_safetensors_files(tmp_path):
    model = write_model(tmp_path / "m", shards=2)
    header = modelfiles.read_header(model / "model-00001-of-00002.safetensors")
    assert header.data_bytes == shard_bytes()
    assert header.tensors["layers.1.w"].shape == (64, 16)
    assert header.bytes_by_dtype() == {"F16": 64 * 16 * 2, "F32": 64 * 4}
    assert header.metadata == {"format": "pt"}


def test_truncated_and_padded_files_are_named(tmp_path):
    model = write_model(tmp_path / "m", shards=2)
    shard = model / "model-00002-of-00002.safetensors"
    truncate(shard, by=10)
    with pytest.raises(
        modelfiles.HeaderError, match=r"is truncated: .* \(10 missing\)"
    ):
        modelfiles.read_header(shard)
    with open(shard, "ab") as fh:
        fh.write(b"\0" * 25)
    with pytest.raises(modelfiles.HeaderError, match="15 bytes more than its header"):
        modelfiles.read_header(shard)
    shard.write_bytes(b"\xff" * 8 + b"{}")
    with pytest.raises(modelfiles.HeaderError, match="header length .* is impossible"):
        modelfiles.read_header(shard)
    shard.write_bytes((5).to_bytes(8, "little") + b"{nope")
    with pytest.raises(modelfiles.HeaderError, match="not valid JSON"):
        modelfiles.read_header(shard)


def test_index_problems(tmp_path):
    model = write_model(tmp_path / "m", shards=3)
    headers = {
        p.name: modelfiles.read_header(p) for p in modelfiles.safetensors_files(model)
    }
    wm = modelfiles.read_index(model)
    assert modelfiles.index_problems(model, wm, headers) == []
    (model / "model-00002-of-00003.safetensors").unlink()
    problems = modelfiles.index_problems(model, wm, headers)
    assert problems == ["names model-00002-of-00003.safetensors, which do not exist"]
    assert modelfiles.missing_numbered_shards(
        ["model-00001-of-00003.safetensors", "model-00003-of-00003.safetensors"]
    ) == ["model-00002-of-00003.safetensors"]


def test_model_max_len_follows_vllm_rules():
    assert modelfiles.model_max_len(CONFIG) == 8192
    yarn = {
        **CONFIG,
        "rope_scaling": {
            "type": "yarn",
            "factor": 4.0,
            "original_max_position_embeddings": 4096,
        },
    }
    assert modelfiles.model_max_len(yarn) == 16384
    llama3 = {**CONFIG, "rope_scaling": {"rope_type": "llama3", "factor": 8.0}}
    assert modelfiles.model_max_len(llama3) == 8192
    vlm = {"architectures": ["X"], "text_config": {"max_position_embeddings": 32768}}
    assert modelfiles.model_max_len(vlm) == 32768
    assert modelfiles.model_max_len({"architectures": ["X"]}) is None


# --- the estimate -----------------------------------------------------------------


def _argv(*extra):
    return ["python", "-m", "vllm", "--model", "m", "--port", "1", *extra]


def test_kv_cache_formula_and_weights_from_headers(tmp_path):
    model = write_model(tmp_path / "m", shards=3)
    w = fit.weights(model)
    assert (w.bytes, w.source) == (3 * shard_bytes(), "safetensors headers")
    # llama-8B-like: 2 x 32 layers x 8 KV heads x 128 dim x 2 bytes = 128 KiB/token
    assert fit.kv_bytes_per_token(CONFIG, 2) == 131072
    params = fit.launch_params(
        _argv("--kv-cache-dtype", "fp8", "--max-model-len", "4096"), CONFIG
    )
    assert (params.kv_dtype_bytes, params.max_model_len, params.utilization) == (
        1,
        4096,
        0.9,
    )


def test_verdicts_against_the_fake_gpu(tmp_path, smi):
    model = write_model(tmp_path / "m", shards=1)
    read = lambda: gpu.read_gpus(nvidia_smi=nvidia_smi_command())  # noqa: E731
    # 24 GiB GPU, 0.75 -> 18 GiB budget; need 2 GiB + 8192 x 128 KiB = 1 GiB KV
    est = fit.estimate(model, _argv("--gpu-memory-utilization", "0.75"), read())
    assert est.verdict == fit.Verdict.FITS, est.message
    assert (
        est.kv_bytes == 8192 * 131072 and est.sequences == 15
    )  # (18 - 2 GiB) / 1 GiB per sequence
    assert est.message.startswith("Fits: weights 0.0 GiB + KV cache 1.0 GiB")

    fake_gpus(
        smi, used_mib=12000
    )  # someone else holds 12 GiB: 18 GiB cannot be reserved
    est = fit.estimate(model, _argv("--gpu-memory-utilization", "0.75"), read())
    assert est.verdict == fit.Verdict.WONT_FIT
    assert (
        "only 12.3 GiB is free: lower --gpu-memory-utilization to 0.51" in est.message
    )
    # ...unless that memory is our own server's, which the switch stops first
    est = fit.estimate(
        model,
        _argv("--gpu-memory-utilization", "0.75"),
        read(),
        reclaimable={0: 12000 * 2**20},
    )
    assert est.verdict == fit.Verdict.FITS

    fake_gpus(smi)
    long = _argv(
        "--gpu-memory-utilization",
        "0.75",
        "--max-model-len",
        "131072",
        "--max-num-seqs",
        "2",
    )
    est = fit.estimate(model, long, read())
    assert est.verdict == fit.Verdict.WONT_FIT
    assert "lower --max-model-len (to at most" in est.message

    tight = _argv("--gpu-memory-utilization", "0.75", "--max-model-len", "122880")
    est = fit.estimate(model, tight, read())
    assert est.verdict == fit.Verdict.TIGHT, est.message


def test_unknown_gpus_still_give_the_need(tmp_path, monkeypatch):
    model = write_model(tmp_path / "m", shards=1)
    snap = gpu.GpuSnapshot("", reason="nvidia-ml-py is not installed")
    est = fit.estimate(model, _argv(), snap)
    assert est.verdict == fit.Verdict.UNKNOWN
    assert "GPUs unknown (nvidia-ml-py is not installed)" in est.message
    assert est.need_bytes == shard_bytes() + 8192 * 131072 + 2 * GIB


def test_tensor_parallel_needs_enough_gpus(tmp_path, smi):
    model = write_model(tmp_path / "m", shards=1)
    snap = gpu.read_gpus(nvidia_smi=nvidia_smi_command())
    est = fit.estimate(model, _argv("--tensor-parallel-size", "2"), snap)
    assert (
        est.verdict == fit.Verdict.WONT_FIT and "needs 2 GPUs; 1 found" in est.message
    )
    assert os.access(nvidia_smi_command(), os.X_OK)


def test_nvml_is_read_when_the_driver_loads(monkeypatch, settings):
    """NVML itself cannot run here: a stand-in module with pynvml's API shape."""
    import types

    class NVMLError(Exception):
        pass

    mem = types.SimpleNamespace(total=24 * GIB, used=20 * GIB, free=4 * GIB)
    procs = [types.SimpleNamespace(pid=os.getpid(), usedGpuMemory=19 * GIB)]
    calls = []
    fake = types.SimpleNamespace(
        NVMLError=NVMLError,
        NVML_TEMPERATURE_GPU=0,
        nvmlInit=lambda: calls.append("init"),
        nvmlShutdown=lambda: calls.append("shutdown"),
        nvmlDeviceGetCount=lambda: 1,
        nvmlDeviceGetHandleByIndex=lambda i: f"h{i}",
        nvmlDeviceGetMemoryInfo=lambda h: mem,
        nvmlDeviceGetUUID=lambda h: b"GPU-nvml-0",
        nvmlDeviceGetName=lambda h: "NVIDIA A10",
        nvmlDeviceGetUtilizationRates=lambda h: types.SimpleNamespace(gpu=97),
        nvmlDeviceGetTemperature=lambda h, kind: (_ for _ in ()).throw(
            NVMLError("n/a")
        ),
        nvmlDeviceGetComputeRunningProcesses=lambda h: procs,
    )
    monkeypatch.setitem(__import__("sys").modules, "pynvml", fake)
    settings.IMAGEWORKS_NVIDIA_SMI = ""
    snap = gpu.read_gpus()
    assert snap.source == "nvml" and calls == ["init", "shutdown"]
    g = snap.gpus[0]
    assert (g.uuid, g.name, g.free_bytes, g.utilization, g.temperature) == (
        "GPU-nvml-0",
        "NVIDIA A10",
        4 * GIB,
        97,
        None,
    )
    assert snap.held_by([os.getpid()]) == {0: 19 * GIB}
    fake.nvmlInit = lambda: (_ for _ in ()).throw(NVMLError("Driver Not Loaded"))
    monkeypatch.setenv("PATH", "/nonexistent")
    assert "NVML unavailable: Driver Not Loaded" in gpu.read_gpus().reason
