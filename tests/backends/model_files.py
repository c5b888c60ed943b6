"""Real model directories for preflight/fit tests: safetensors shards written by the
``safetensors`` library (small tensors, real headers), an index, config and tokenizer."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

FAKE_NVIDIA_SMI = (
    Path(__file__).resolve().parent.parent / "fakes" / "fake_nvidia_smi.py"
)

CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "hidden_size": 4096,
    "max_position_embeddings": 8192,
    "torch_dtype": "bfloat16",
}


def write_model(
    path: Path,
    *,
    shards: int = 3,
    rows: int = 64,
    config: dict | None = None,
    tokenizer: bool = True,
    index: bool = True,
) -> Path:
    """A ``shards``-shard model: each shard holds two float16 tensors."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps(config or CONFIG))
    weight_map = {}
    for i in range(1, shards + 1):
        name = f"model-{i:05d}-of-{shards:05d}.safetensors"
        tensors = {
            f"layers.{i}.w": np.full((rows, 16), i, dtype=np.float16),
            f"layers.{i}.b": np.zeros((rows,), dtype=np.float32),
        }
        save_file(tensors, str(path / name), metadata={"format": "pt"})
        weight_map.update({t: name for t in tensors})
    if index:
        (path / "model.safetensors.index.json").write_text(
            json.dumps({"metadata": {}, "weight_map": weight_map})
        )
    if tokenizer:
        (path / "tokenizer.json").write_text("{}")
        (path / "tokenizer_config.json").write_text("{}")
    return path


def shard_bytes(rows: int = 64) -> int:
    """Tensor bytes of one shard written by ``write_model``."""
    return rows * 16 * 2 + rows * 4


def truncate(path: Path, by: int = 100) -> None:
    size = path.stat().st_size
    with open(path, "r+b") as fh:
        fh.truncate(size - by)


def fake_gpus(
    state_file: Path,
    *,
    total_mib: int = 24564,
    used_mib: int = 400,
    processes: list[dict] | None = None,
    count: int = 1,
    **extra,
) -> None:
    """Write the fake nvidia-smi's state (one or more identical GPUs)."""
    gpus = [
        {
            "index": i,
            "uuid": f"GPU-fake-{i}",
            "name": "NVIDIA GeForce RTX 4090",
            "memory.total": total_mib,
            "memory.used": used_mib,
            "memory.free": total_mib - used_mib,
            "utilization.gpu": 3,
            "temperature.gpu": 41,
        }
        for i in range(count)
    ]
    state = {"gpus": gpus, "processes": processes or [], **extra}
    tmp = state_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(state))
    os.replace(tmp, state_file)


def nvidia_smi_command() -> str:
    """The fake as an executable path (its shebang finds python3)."""
    assert os.access(FAKE_NVIDIA_SMI, os.X_OK), "fake_nvidia_smi.py must be executable"
    return str(FAKE_NVIDIA_SMI)


PYTHON = sys.executable
