"""Launch argv construction (reference §3, issue 6)."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from backends.vllm.command import (
    LaunchRefused,
    VllmConfig,
    build_launch,
    cli_equivalent,
    display,
    duplicate_flags,
    has_flag,
    safe_name,
    served_model_id,
)


@pytest.fixture
def weights(tmp_path: Path) -> Path:
    path = tmp_path / "weights" / "Florence-2-large"
    path.mkdir(parents=True)
    return path


def cfg(**kw) -> VllmConfig:
    base = dict(
        launcher=("python", "-m", "vllm.entrypoints.openai.api_server"), port=24001
    )
    base.update(kw)
    return VllmConfig(**base)


def entry(path, **kw):
    data = {
        "name": "florence-2-large_(FP16)",
        "backend": "vllm",
        "backend_config": {"port": 24002, "model_path": str(path), "extra_args": []},
        "served_model_id": "None",
    }
    data.update(kw)
    return data


def test_reference_example_argv(weights):
    extra = [
        "--tensor-parallel-size",
        "1",
        "--dtype",
        "auto",
        "--gpu-memory-utilization",
        "0.75",
        "--max-model-len",
        "4096",
        "--max-num-seqs",
        "2",
        "--trust-remote-code",
    ]
    e = entry(weights)
    e["backend_config"]["extra_args"] = extra
    spec = build_launch(e, cfg(max_model_len="8192"))
    assert spec.argv == [
        "python",
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        str(weights),
        "--served-model-name",
        "florence-2-large_(FP16)",
        "--host",
        "127.0.0.1",
        "--port",
        "24001",
        *extra,
    ]
    assert spec.served_model_id == "florence-2-large_(FP16)"
    assert spec.port == 24001


def test_defaults_added_only_when_absent(weights, tmp_path):
    tmpl = tmp_path / "t.jinja"
    tmpl.write_text("{{ x }}")
    spec = build_launch(
        entry(weights, chat_template={"path": str(tmpl)}), cfg(max_model_len="4096")
    )
    a = spec.argv
    assert a[a.index("--gpu-memory-utilization") + 1] == "0.75"
    assert a[a.index("--max-model-len") + 1] == "4096"
    assert a[a.index("--chat-template") + 1] == str(tmpl)
    e = entry(weights, chat_template={"path": str(tmpl)})
    e["backend_config"]["extra_args"] = [
        "--gpu-memory-utilization=0.9",
        "--chat-template",
        "x",
        "--max-model-len=1",
    ]
    a = build_launch(e, cfg(max_model_len="4096")).argv
    assert (
        a.count("--gpu-memory-utilization") == 0 and "--gpu-memory-utilization=0.9" in a
    )
    assert a.count("--chat-template") == 1 and a[-3:] == [
        "--chat-template",
        "x",
        "--max-model-len=1",
    ]


def test_no_gpu_default_when_setting_blank(weights):
    assert (
        "--gpu-memory-utilization"
        not in build_launch(entry(weights), cfg(gpu_memory_utilization="")).argv
    )
    assert "--max-model-len" not in build_launch(entry(weights), cfg()).argv


def test_served_name_rules(weights):
    assert served_model_id({"name": "n", "served_model_id": "None"}) == "n"
    assert served_model_id({"name": "n", "served_model_id": " none "}) == "n"
    assert served_model_id({"name": "n", "served_model_id": None}) == "n"
    assert served_model_id({"name": "n", "served_model_id": " qwen "}) == "qwen"
    spec = build_launch(entry(weights, served_model_id="my-id"), cfg())
    assert spec.argv[spec.argv.index("--served-model-name") + 1] == "my-id"


def test_model_path_falls_back_to_download_path(tmp_path, weights):
    e = entry(tmp_path / "missing", download_path=str(weights))
    assert build_launch(e, cfg()).model_path == str(weights)


def test_missing_model_files_refused(tmp_path):
    e = entry(tmp_path / "missing", download_path=str(tmp_path / "also-missing"))
    with pytest.raises(LaunchRefused, match="Model files not found"):
        build_launch(e, cfg())
    e = entry("")
    e["backend_config"]["model_path"] = ""
    with pytest.raises(LaunchRefused, match="no model_path or download_path"):
        build_launch(e, cfg())


def test_missing_chat_template_refused(weights):
    with pytest.raises(LaunchRefused, match="Chat template not found"):
        build_launch(entry(weights, chat_template={"path": "/nope/t.jinja"}), cfg())


def test_non_vllm_refused(weights):
    with pytest.raises(LaunchRefused, match="Only vLLM models can be activated"):
        build_launch(entry(weights, backend="ollama"), cfg())


def test_model_roots(weights, tmp_path):
    build_launch(entry(weights), cfg(model_roots=(tmp_path / "weights",)))
    with pytest.raises(LaunchRefused, match="outside the allowed model roots"):
        build_launch(entry(weights), cfg(model_roots=(tmp_path / "other",)))


def test_entry_port_when_configured(weights):
    assert build_launch(entry(weights), cfg()).port == 24001
    spec = build_launch(entry(weights), cfg(use_entry_port=True))
    assert spec.port == 24002 and spec.argv[spec.argv.index("--port") + 1] == "24002"
    e = entry(weights)
    e["backend_config"]["port"] = None
    assert build_launch(e, cfg(use_entry_port=True)).port == 24001


def test_launcher_from_settings_is_split_not_shelled(tmp_path):
    class S:
        IMAGEWORKS_VLLM_LAUNCHER = "/opt/venv v/bin/vllm serve"
        IMAGEWORKS_STAGING_DIR = tmp_path
        IMAGEWORKS_LOG_DIR = tmp_path

    S.IMAGEWORKS_VLLM_LAUNCHER = "'/opt/venv v/bin/vllm' serve"
    assert VllmConfig.from_settings(S).launcher == ("/opt/venv v/bin/vllm", "serve")


def test_extra_args_string_is_split(weights):
    e = entry(weights)
    e["backend_config"]["extra_args"] = "--dtype auto --trust-remote-code"
    assert build_launch(e, cfg()).argv[-3:] == [
        "--dtype",
        "auto",
        "--trust-remote-code",
    ]


def test_display_and_cli_equivalent(weights):
    spec = build_launch(entry(weights), cfg())
    assert shlex.split(spec.display) == spec.argv
    assert (
        cli_equivalent("florence-2-large_(FP16)")
        == "imageworks-models activate-model 'florence-2-large_(FP16)'"
    )
    assert spec.cli == cli_equivalent(spec.logical_name)
    assert display(["a b", "c"]) == "'a b' c"


def test_flag_helpers():
    assert (
        has_flag(["--x", "1"], "--x")
        and has_flag(["--x=1"], "--x")
        and not has_flag(["--xy"], "--x")
    )
    assert duplicate_flags(["--a", "1", "--a=2", "--b"]) == ["--a"]
    assert safe_name("org/model (FP8): v1") == "org_model_FP8_v1"
