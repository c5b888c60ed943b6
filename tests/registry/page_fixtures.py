"""The acceptance-scenario entries (original-gui.md §5.0) as database rows."""

from __future__ import annotations

from tests.utils import create_model_entry

HASH_A = "ab12cd34ef56" + "0" * 52
HASH_B = "9f8e7d6c5b4a" + "1" * 52


def seed_scenario() -> dict:
    rows = {
        "qwen": create_model_entry(
            "qwen2.5-vl-7b-instruct_(AWQ)",
            display_name="Qwen2.5-VL 7B (AWQ)",
            aliases=["qwen-vl"],
            roles=["caption", "keywords", "description", "narration", "vision_general"],
            cap_vision=True,
            installed=True,
            download_path="/models/qwen2.5-vl-7b-awq",
            aggregate_sha256=HASH_A,
            served_model_id="qwen2.5-vl-7b-awq",
        ),
        "florence": create_model_entry(
            "florence-2-large_(FP16)",
            display_name="Florence 2 Large",
            roles=["caption", "object_detection"],
            cap_vision=True,
            installed=True,
            download_path="/models/florence-2-large",
        ),
        "gemma": create_model_entry(
            "gemma3_27.0b_(Q3_K_M)",
            display_name="Gemma 3 27B",
            backend="ollama",
            roles=["chat"],
            installed=False,
        ),
        "siglip": create_model_entry(
            "siglip-large-patch16-384_(FP32)",
            display_name="SigLIP large",
            roles=["embedding"],
            cap_embedding=True,
            installed=True,
            locked=True,
            aggregate_sha256=HASH_B,
            expected_sha256=HASH_B,
        ),
        "testmodel": create_model_entry(
            "testmodel-alpha", testing=True, installed=True
        ),
        "lab": create_model_entry("lab-experiment_(FP8)", testing=True),
        "qwen3": create_model_entry(
            "qwen3-vl-8b-instruct_(FP8)",
            display_name="Qwen3-VL 8B",
            provenance="discovered",
            in_curated=False,
            in_discovered=True,
            cap_vision=True,
            cap_tools=True,
        ),
        "gptoss": create_model_entry(
            "gpt-oss-20b_(MXFP4)",
            display_name="GPT-OSS 20B",
            provenance="discovered",
            in_curated=False,
            in_discovered=True,
            cap_thinking=True,
            cap_tools=True,
            backend="lmdeploy",
        ),
        "old": create_model_entry("llava-1.5-7b_(old)", deprecated=True),
    }
    return rows


VISIBLE_BY_DEFAULT = 6  # 9 rows minus 2 testing minus 1 deprecated


def bulk_entries(count: int, prefix: str = "bulk") -> None:
    """Many plain entries, fast (for query-count tests)."""
    import hashlib

    from registry.models import ModelEntry
    from registry.version import bump

    ModelEntry.objects.bulk_create(
        [
            ModelEntry(
                name=f"{prefix}-model-{i:05d}",
                display_name=f"Bulk Model {i}",
                backend=("vllm", "ollama", "lmdeploy")[i % 3],
                roles=["caption"] if i % 2 else ["chat"],
                roles_key="|caption|" if i % 2 else "|chat|",
                search_text=f"{prefix}-model-{i:05d}\nbulk model {i}",
                provenance="curated",
                in_curated=True,
                curated_raw={"name": f"{prefix}-model-{i:05d}"},
                aggregate_sha256=hashlib.sha256(str(i).encode()).hexdigest(),
                locked=i % 5 == 0,
                installed=(True, False, None)[i % 3],
                fingerprint=hashlib.sha256(f"{prefix}{i}".encode()).hexdigest(),
            )
            for i in range(count)
        ]
    )
    bump()
