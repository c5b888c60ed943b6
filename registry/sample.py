"""A small, realistic sample registry of our own (for the demo and the tests).

A dozen entries across vLLM, Ollama and LMDeploy in the original's file format:
curated and discovered layers, a few locked (expected hash = the real hash of the
small model folders written next to them), a few testing entries, a few
discovered-only entries, and the messy values real registries carry ("None"
served ids, 47-key capability maps).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from . import hashing, layers, normalize

CAPS = {
    "text": {"text": True},
    "vision": {"text": True, "vision": True},
    "tools": {"text": True, "tools": True},
    "thinking": {"text": True, "tools": True, "thinking": True},
    "embedding": {"text": True, "embedding": True},
}


def _caps(kind: str) -> dict:
    return normalize.normalize_capabilities(CAPS[kind])


def _weights(seed: str, size: int) -> bytes:
    """Deterministic pseudo-random bytes (same hash on every machine)."""
    out = bytearray()
    block = hashlib.sha256(seed.encode()).digest()
    while len(out) < size:
        block = hashlib.sha256(block).digest()
        out.extend(block * 32)
    return bytes(out[:size])


# name -> (relative model dir, {file: content})
MODEL_DIRS = {
    "Qwen/Qwen2.5-VL-7B-Instruct-AWQ": {
        "config.json": json.dumps(
            {"architectures": ["Qwen2_5_VLForConditionalGeneration"]}
        ),
        "tokenizer_config.json": json.dumps({"chat_template": "{{ messages }}"}),
        "model-00001-of-00002.safetensors": ("qwen-a", 96_000),
        "model-00002-of-00002.safetensors": ("qwen-b", 64_000),
        "chat_template.json": json.dumps({"chat_template": "{{ messages }}"}),
    },
    "microsoft/Florence-2-large": {
        "config.json": json.dumps(
            {"architectures": ["Florence2ForConditionalGeneration"]}
        ),
        "pytorch_model.bin": ("florence", 80_000),
        "README.md": "# Florence-2 large (sample)\n",
    },
    "google/siglip-large-patch16-384": {
        "config.json": json.dumps({"architectures": ["SiglipModel"]}),
        "model.safetensors": ("siglip", 72_000),
        ".gitattributes": "*.safetensors filter=lfs\n",
    },
    "Qwen/Qwen3-VL-8B-Instruct-FP8": {
        "config.json": json.dumps(
            {"architectures": ["Qwen3VLForConditionalGeneration"]}
        ),
        "model.safetensors": ("qwen3vl", 88_000),
    },
    "openai/gpt-oss-20b": {
        "config.json": json.dumps({"architectures": ["GptOssForCausalLM"]}),
        "model.safetensors": ("gptoss", 60_000),
    },
    "OpenGVLab/InternVL2-8B-AWQ": {
        "config.json": json.dumps({"architectures": ["InternVLChatModel"]}),
        "model.safetensors": ("internvl", 50_000),
    },
    "sample/testmodel-alpha": {
        "config.json": "{}",
        "weights.bin": "ABC",
    },
}


def write_model_dirs(models_dir: Path) -> dict[str, Path]:
    paths = {}
    for rel, files in MODEL_DIRS.items():
        folder = models_dir / rel
        folder.mkdir(parents=True, exist_ok=True)
        for name, content in files.items():
            target = folder / name
            if isinstance(content, tuple):
                data = _weights(*content)
            else:
                data = content.encode()
            if not target.exists() or target.read_bytes() != data:
                target.write_bytes(data)
        paths[rel] = folder
    return paths


def _vllm(
    name,
    display,
    rel,
    models_dir,
    *,
    caps="text",
    roles=(),
    served="None",
    port=24001,
    extra=(),
):
    path = str(models_dir / rel)
    return {
        "name": name,
        "display_name": display,
        "backend": "vllm",
        "backend_config": {"port": port, "model_path": path, "extra_args": list(extra)},
        "capabilities": _caps(caps),
        "generation_defaults": {"temperature": 0.7, "top_p": 0.95, "max_tokens": 1024},
        "chat_template": {"source": "embedded", "path": None, "sha256": None},
        "profiles_placeholder": None,
        "metadata": {"registry_layer": "curated"},
        "served_model_id": served,
        "model_aliases": [rel],
        "roles": list(roles),
        "license": None,
        "source": {"huggingface_id": rel},
        "deprecated": False,
        "family": rel.split("/")[-1].lower(),
        "source_provider": "hf",
        "quantization": name.rsplit("(", 1)[-1].rstrip(")").lower()
        if "(" in name
        else None,
        "backend_alternatives": [],
        "role_priority": {r: 80 for r in roles},
    }


def _ollama(name, display, tag, *, caps="text", roles=()):
    return {
        "name": name,
        "display_name": display,
        "backend": "ollama",
        "backend_config": {
            "port": 11434,
            "model_path": f"ollama:/{tag}",
            "extra_args": ["--num-ctx", "4096"],
            "host": "127.0.0.1",
        },
        "capabilities": _caps(caps),
        "generation_defaults": {"temperature": 0.8, "context_window": 4096},
        "chat_template": {"source": "embedded", "path": None, "sha256": None},
        "profiles_placeholder": None,
        "metadata": {"registry_layer": "curated", "ollama_family": tag.split(":")[0]},
        "served_model_id": tag,
        "model_aliases": [],
        "roles": list(roles),
        "license": None,
        "source": None,
        "deprecated": False,
        "family": tag.split(":")[0],
        "source_provider": "ollama",
        "quantization": "q4_k_m",
        "backend_alternatives": [],
        "role_priority": {},
    }


def _discovered(
    curated: dict, models_dir: Path | None, rel: str | None, *, lock: str = ""
) -> dict:
    """A discovered-layer copy with the dynamic fields a download tool writes."""
    entry = {k: v for k, v in curated.items() if k != "metadata"}
    entry["metadata"] = {
        k: v for k, v in curated.get("metadata", {}).items() if k != "registry_layer"
    }
    artifacts = {"aggregate_sha256": "", "files": []}
    files: list[str] = []
    if models_dir is not None and rel is not None:
        result = hashing.hash_directory(models_dir / rel)
        artifacts = {
            "aggregate_sha256": result.aggregate_sha256,
            "files": result.files_as_artifacts(),
        }
        files = [f.path for f in result.files]
        entry["download_path"] = str(models_dir / rel)
        entry["download_size_bytes"] = result.total_bytes
        entry["download_format"] = "safetensors"
        entry["download_location"] = "linux_wsl"
        entry["download_files"] = files
        entry["downloaded_at"] = "2026-10-30T09:12:44.120311+00:00"
    entry["artifacts"] = artifacts
    entry["version_lock"] = {
        "locked": bool(lock),
        "expected_aggregate_sha256": artifacts["aggregate_sha256"] if lock else None,
        "last_verified": "2026-11-01T08:00:00+00:00" if lock else None,
    }
    entry["performance"] = {
        "rolling_samples": 0,
        "ttft_ms_avg": None,
        "throughput_toks_per_s_avg": None,
        "last_sample": None,
    }
    entry["probes"] = {"vision": None}
    return entry


def build(models_dir: Path) -> tuple[list[dict], list[dict]]:
    """The curated and discovered layers (lists of raw dicts).

    Long on purpose: it is the sample registry's data, entry by entry, in one place
    (the tests and the README refer to these entries by name).
    """
    write_model_dirs(models_dir)
    qwen = _vllm(
        "qwen2.5-vl-7b-instruct_(AWQ)",
        "Qwen2.5-VL 7B (AWQ)",
        "Qwen/Qwen2.5-VL-7B-Instruct-AWQ",
        models_dir,
        caps="vision",
        roles=["caption", "keywords", "description", "narration", "vision_general"],
        extra=["--max-model-len", "4096", "--enforce-eager"],
    )
    qwen["model_aliases"].append("qwen-vl")
    florence = _vllm(
        "florence-2-large_(FP16)",
        "Florence-2 Large (FP16)",
        "microsoft/Florence-2-large",
        models_dir,
        roles=["caption", "keywords", "object_detection"],
        port=24002,
        extra=["--trust-remote-code", "--max-num-seqs", "2"],
    )
    siglip = _vllm(
        "siglip-large-patch16-384_(FP32)",
        "SigLIP Large 384 (FP32)",
        "google/siglip-large-patch16-384",
        models_dir,
        caps="embedding",
        served="siglip-large",
    )
    internvl = _vllm(
        "internvl2-8b_(AWQ)",
        "InternVL2 8B (AWQ)",
        "OpenGVLab/InternVL2-8B-AWQ",
        models_dir,
        caps="vision",
        roles=["description"],
    )
    internvl["backend"] = "lmdeploy"
    internvl["backend_config"] = {
        "port": 23333,
        "model_path": str(models_dir / "OpenGVLab/InternVL2-8B-AWQ"),
        "extra_args": ["--tp", "1"],
        "host": "127.0.0.1",
    }
    testmodel = _vllm(
        "testmodel-alpha", "testmodel-alpha", "sample/testmodel-alpha", models_dir
    )
    lab = _vllm(
        "lab-experiment_(FP8)",
        "Lab experiment (FP8)",
        "Qwen/Qwen3-VL-8B-Instruct-FP8",
        models_dir,
        caps="vision",
    )
    lab["metadata"]["testing"] = True
    gemma = _ollama(
        "gemma3_27.0b_(Q3_K_M)",
        "gemma3 27.0b (Q3 K M)",
        "gemma3:27b",
        roles=["description"],
    )
    qwen3 = _ollama(
        "qwen3_8b_(Q4_K_M)", "qwen3 8b (Q4 K M)", "qwen3:8b", caps="thinking"
    )
    llama = _ollama(
        "llama3.1_8b_(Q5_K_M)", "llama3.1 8b (Q5 K M)", "llama3.1:8b", caps="tools"
    )
    llava = _ollama(
        "llava_7b_(Q4_K_M)",
        "llava 7b (Q4 K M)",
        "llava:7b",
        caps="vision",
        roles=["caption"],
    )
    llava["deprecated"] = True
    curated = [
        florence,
        gemma,
        internvl,
        lab,
        llama,
        llava,
        qwen,
        qwen3,
        siglip,
        testmodel,
    ]

    # Discovered-only entries (downloads nobody has curated yet).
    qwen3vl = _vllm(
        "qwen3-vl-8b-instruct_(FP8)",
        "qwen3-vl-8b-instruct (FP8)",
        "Qwen/Qwen3-VL-8B-Instruct-FP8",
        models_dir,
        caps="vision",
    )
    gptoss = _vllm(
        "gpt-oss-20b_(MXFP4)",
        "gpt-oss-20b (MXFP4)",
        "openai/gpt-oss-20b",
        models_dir,
        caps="thinking",
    )
    discovered_only = []
    for entry, rel in (
        (qwen3vl, "Qwen/Qwen3-VL-8B-Instruct-FP8"),
        (gptoss, "openai/gpt-oss-20b"),
    ):
        disc = _discovered(entry, models_dir, rel)
        disc["metadata"] = {"created_from_download": True}
        discovered_only.append(disc)

    discovered = [
        _discovered(qwen, models_dir, "Qwen/Qwen2.5-VL-7B-Instruct-AWQ"),
        _discovered(florence, models_dir, "microsoft/Florence-2-large"),
        _discovered(
            siglip, models_dir, "google/siglip-large-patch16-384", lock="locked"
        ),
        _discovered(internvl, models_dir, "OpenGVLab/InternVL2-8B-AWQ", lock="locked"),
        _discovered(testmodel, models_dir, "sample/testmodel-alpha"),
        _discovered(gemma, None, None),
        _discovered(qwen3, None, None),
        *discovered_only,
    ]
    return curated, discovered


def write_sample_registry(
    registry_dir: Path, models_dir: Path, *, force: bool = False
) -> bool:
    """Write the sample layers unless a registry already exists there (or ``force``)."""
    registry_dir.mkdir(parents=True, exist_ok=True)
    has_files = any(
        (registry_dir / f).exists()
        for f in (layers.CURATED_FILE, layers.DISCOVERED_FILE, layers.SNAPSHOT_FILE)
    )
    if has_files and not force:
        return False
    curated, discovered = build(models_dir)
    layers.atomic_write(
        registry_dir / layers.CURATED_FILE, layers.dumps(curated), keep_backups=0
    )
    layers.atomic_write(
        registry_dir / layers.DISCOVERED_FILE, layers.dumps(discovered), keep_backups=0
    )
    registry = layers.load_registry(registry_dir)
    layers.atomic_write(
        registry_dir / layers.SNAPSHOT_FILE,
        layers.dumps(layers.export_merged(registry)),
        keep_backups=0,
    )
    return True
