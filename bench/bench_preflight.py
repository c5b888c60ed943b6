"""Preflight time for a 10-shard model vs a baseline of ``os.stat`` on every file.

Builds (in a temp folder it removes afterwards) a 10-shard safetensors model with
realistic headers (an 8B-class layout: 32 layers, bf16, ~16 GiB declared) whose
files are sparse, so the header parse and size checks run against files of the
real size without writing gigabytes. Then alternates, ``--runs`` times:

* baseline: ``os.stat`` of every file in the model folder;
* ``run_preflight(entry)`` with GPUs unknown (no NVIDIA tooling);
* ``run_preflight(entry)`` reading the fake ``nvidia-smi`` (two subprocess runs of a
  Python script: a real nvidia-smi is of the same order).

Prints median and spread (min..max) of each.

    .venv/bin/python bench/bench_preflight.py [--runs 21] [--shards 10]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import struct
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

LAYERS = 32
HIDDEN = 4096
INTER = 14336
KV = 1024
VOCAB = 128256


def tensors_for_layer(i: int) -> dict[str, list[int]]:
    p = f"model.layers.{i}."
    return {
        p + "self_attn.q_proj.weight": [HIDDEN, HIDDEN],
        p + "self_attn.k_proj.weight": [KV, HIDDEN],
        p + "self_attn.v_proj.weight": [KV, HIDDEN],
        p + "self_attn.o_proj.weight": [HIDDEN, HIDDEN],
        p + "mlp.gate_proj.weight": [INTER, HIDDEN],
        p + "mlp.up_proj.weight": [INTER, HIDDEN],
        p + "mlp.down_proj.weight": [HIDDEN, INTER],
        p + "input_layernorm.weight": [HIDDEN],
        p + "post_attention_layernorm.weight": [HIDDEN],
    }


def write_sparse_shard(path: Path, shapes: dict[str, list[int]]) -> None:
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for name, shape in shapes.items():
        n = 2
        for d in shape:
            n *= d
        header[name] = {
            "dtype": "BF16",
            "shape": shape,
            "data_offsets": [offset, offset + n],
        }
        offset += n
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as fh:
        fh.write(struct.pack("<Q", len(raw)) + raw)
        fh.truncate(8 + len(raw) + offset)  # sparse: declared size, no data written


def build_model(root: Path, shards: int) -> Path:
    model = root / "weights" / "bench-8b"
    model.mkdir(parents=True)
    groups: list[dict[str, list[int]]] = [{} for _ in range(shards)]
    for i in range(LAYERS):
        groups[i * shards // LAYERS].update(tensors_for_layer(i))
    groups[0]["model.embed_tokens.weight"] = [VOCAB, HIDDEN]
    groups[-1]["lm_head.weight"] = [VOCAB, HIDDEN]
    groups[-1]["model.norm.weight"] = [HIDDEN]
    weight_map = {}
    for n, shapes in enumerate(groups, 1):
        name = f"model-{n:05d}-of-{shards:05d}.safetensors"
        write_sparse_shard(model / name, shapes)
        weight_map.update({t: name for t in shapes})
    (model / "model.safetensors.index.json").write_text(
        json.dumps({"weight_map": weight_map})
    )
    config = {
        "architectures": ["LlamaForCausalLM"],
        "num_hidden_layers": LAYERS,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "hidden_size": HIDDEN,
        "max_position_embeddings": 131072,
        "torch_dtype": "bfloat16",
    }
    (model / "config.json").write_text(json.dumps(config))
    for name in ("tokenizer.json", "tokenizer_config.json", "generation_config.json"):
        (model / name).write_text("{}")
    return model


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--shards", type=int, default=10)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="iw-bench-preflight-"))
    try:
        return run(tmp, args)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # only what this bench created


def run(tmp: Path, args) -> int:
    from tests.backends.model_files import fake_gpus, nvidia_smi_command
    from tests.backends.vllm_helpers import free_port

    model = build_model(tmp, args.shards)
    gpu_state = tmp / "gpus.json"
    fake_gpus(gpu_state, total_mib=49140)  # a 48 GiB card: the 8B model fits
    os.environ.update(
        DJANGO_SETTINGS_MODULE="imageworks_site.settings",
        SECRET_KEY="bench",
        IMAGEWORKS_VAR_DIR=str(tmp / "var"),
        IMAGEWORKS_SQLITE_PATH=str(tmp / "bench.sqlite3"),
        IMAGEWORKS_STAGING_DIR=str(tmp / "_staging"),
        IMAGEWORKS_LOG_DIR=str(tmp / "logs"),
        IMAGEWORKS_REGISTRY_DIR=str(tmp / "configs"),
        IMAGEWORKS_MODEL_ROOTS=str(tmp / "weights"),
        IMAGEWORKS_VLLM_PORT=str(free_port()),
        FAKE_NVIDIA_SMI_STATE=str(gpu_state),
        LOG_LEVEL="WARNING",
    )
    os.environ.pop("DATABASE_URL", None)
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from backends import gpu
    from backends.vllm.preflight import run_preflight
    from registry.models import ModelEntry

    bc = {"model_path": str(model), "extra_args": ["--max-model-len", "32768"]}
    entry = ModelEntry.objects.create(
        name="bench-8b",
        backend="vllm",
        backend_config=bc,
        curated_raw={"name": "bench-8b", "backend": "vllm", "backend_config": bc},
        provenance="curated",
        fingerprint=hashlib.sha256(b"bench").hexdigest(),
    )
    files = [model / n for n in os.listdir(model)]

    def baseline() -> float:
        t0 = time.perf_counter()
        for f in files:
            os.stat(f)
        return time.perf_counter() - t0

    def preflight(nvidia_smi: str) -> float:
        settings.IMAGEWORKS_NVIDIA_SMI = nvidia_smi
        t0 = time.perf_counter()
        report = run_preflight(entry, read_gpus=None if nvidia_smi else _unknown(gpu))
        elapsed = time.perf_counter() - t0
        if not report.ok:
            raise SystemExit(f"unexpected failure: {report.refusal()}")
        return elapsed

    preflight(nvidia_smi_command())  # warm imports once (as a long-running site has)
    base, no_gpu, with_gpu = [], [], []
    for _ in range(args.runs):
        base.append(baseline())
        no_gpu.append(preflight(""))
        with_gpu.append(preflight(nvidia_smi_command()))
    size = sum(f.stat().st_size for f in files) / 2**30

    def fmt(values):
        return (
            f"median {statistics.median(values) * 1000:7.2f} ms "
            f"(min {min(values) * 1000:.2f}, max {max(values) * 1000:.2f})"
        )

    print(
        f"runs={args.runs} shards={args.shards} files={len(files)} "
        f"declared size={size:.1f} GiB load={os.getloadavg()[0]:.1f} cpus={os.cpu_count()}"
    )
    print(f"baseline: os.stat of every file          {fmt(base)}")
    print(f"preflight, GPUs unknown                  {fmt(no_gpu)}")
    print(f"preflight, fake nvidia-smi (2 runs)      {fmt(with_gpu)}")
    return 0


def _unknown(gpu):
    return lambda: gpu.GpuSnapshot("", reason="bench: no GPU tooling")


if __name__ == "__main__":
    sys.exit(main())
