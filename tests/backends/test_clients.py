"""Health probes against real local HTTP servers (the fakes), no Django needed."""

from __future__ import annotations

import socket
import time

import pytest

from backends import clients
from tests.fakes.fake_ollama import FakeOllama
from tests.fakes.fake_openai import FakeOpenAI
from tests.fakes.fake_triton import FakeTriton

TIMEOUT = 0.5


def dead_url() -> str:
    """A URL where nothing listens (a port bound then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def ollama():
    with FakeOllama(
        installed=["qwen3:8b", "Llama3.1-local"], loaded=["qwen3:8b"]
    ) as fake:
        yield fake


@pytest.fixture
def openai():
    with FakeOpenAI(models=["served-a"]) as fake:
        yield fake


@pytest.fixture
def triton():
    with FakeTriton(ready_models=["resnet"]) as fake:
        yield fake


# --- Ollama ---------------------------------------------------------------


def test_ollama_online_reports_version_installed_and_loaded(ollama):
    result = clients.probe_ollama(ollama.url, timeout=TIMEOUT)
    assert result.status == "online", result.error
    assert result.details["version"] == "0.12.6"
    installed = {m["tag"]: m for m in result.details["installed"]}
    assert set(installed) == {"qwen3:8b", "llama3.1-local:latest"}
    assert len(installed["qwen3:8b"]["digest"]) == 64
    assert installed["qwen3:8b"]["size"] > 0
    (loaded,) = result.details["loaded"]
    assert loaded["tag"] == "qwen3:8b"
    assert loaded["size_vram"] > 0 and loaded["expires_at"]
    assert result.latency_ms is not None and result.latency_ms < TIMEOUT * 1000


def test_ollama_loaded_models_change_at_runtime(ollama):
    ollama.configure(loaded=[])
    assert clients.probe_ollama(ollama.url, timeout=TIMEOUT).details["loaded"] == []
    import httpx

    httpx.post(
        f"{ollama.url}/_control", json={"loaded": ["Llama3.1-local"]}, trust_env=False
    )
    loaded = clients.ollama_ps(ollama.url, timeout=TIMEOUT)
    assert [m["tag"] for m in loaded] == ["llama3.1-local:latest"]


def test_ollama_offline_when_nothing_listens():
    result = clients.probe_ollama(dead_url(), timeout=TIMEOUT)
    assert result.status == "offline"
    assert "refused" in result.error


def test_ollama_slow_is_offline_within_timeout(ollama):
    ollama.configure(mode="slow", delay=10)
    start = time.monotonic()
    result = clients.probe_ollama(ollama.url, timeout=TIMEOUT)
    elapsed = time.monotonic() - start
    assert result.status == "offline"
    assert result.error == "timed out after 0.5s"
    assert elapsed < TIMEOUT + 0.4


def test_ollama_500_is_error(ollama):
    ollama.configure(mode="error")
    result = clients.probe_ollama(ollama.url, timeout=TIMEOUT)
    assert result.status == "error"
    assert "HTTP 500" in result.error


def test_ollama_malformed_json(ollama):
    ollama.configure(mode="malformed")
    result = clients.probe_ollama(ollama.url, timeout=TIMEOUT)
    assert result.status == "error"
    assert result.error.startswith(f"malformed JSON from {ollama.url}/api/version")


def test_ollama_functions_raise_probe_failure():
    with pytest.raises(clients.ProbeFailure) as info:
        clients.ollama_version(dead_url(), timeout=TIMEOUT)
    assert info.value.status == "offline"


@pytest.mark.parametrize(
    "raw,expected",
    [
        ("Qwen3", "qwen3:latest"),
        ("ollama:/qwen3:8b", "qwen3:8b"),
        (" llama3.1-local:latest ", "llama3.1-local:latest"),
        (
            "aqualaguna/gemma-3-27b-it-abliterated-GGUF:q3_k_m",
            "aqualaguna/gemma-3-27b-it-abliterated-gguf:q3_k_m",
        ),
        ("registry.local:5000/ns/model", "registry.local:5000/ns/model:latest"),
        ("", ""),
        (None, ""),
    ],
)
def test_normalize_ollama_tag(raw, expected):
    assert clients.normalize_ollama_tag(raw) == expected


# --- vLLM -----------------------------------------------------------------


def test_vllm_ready_when_served_id_listed(openai):
    result = clients.probe_vllm(openai.url + "/v1", "served-a", timeout=TIMEOUT)
    assert result.status == "online", result.error
    assert result.details["served_models"] == ["served-a"]
    assert result.details["max_model_len"] == {"served-a": 4096}
    assert result.url == openai.url


def test_vllm_lists_a_different_model_is_degraded(openai):
    result = clients.probe_vllm(openai.url, "expected-b", timeout=TIMEOUT)
    assert result.status == "degraded"
    assert result.error == "serves served-a, expected expected-b"


def test_vllm_503_engine_dead(openai):
    openai.configure(health_code=503)
    result = clients.probe_vllm(openai.url, "served-a", timeout=TIMEOUT)
    assert result.status == "error"
    assert "engine dead" in result.error


def test_vllm_offline_slow_500_malformed(openai):
    assert clients.probe_vllm(dead_url(), "x", timeout=TIMEOUT).status == "offline"
    openai.configure(mode="error")
    assert clients.probe_vllm(openai.url, timeout=TIMEOUT).status == "error"
    openai.configure(mode="malformed")
    result = clients.probe_vllm(openai.url, timeout=TIMEOUT)
    # /health of a malformed server still answers 200: the model list is the broken part
    assert result.status == "error" and result.error.startswith("malformed JSON from")
    openai.configure(mode="slow", delay=10)
    start = time.monotonic()
    result = clients.probe_vllm(openai.url, timeout=TIMEOUT)
    assert result.status == "offline" and "timed out after 0.5s" in result.error
    assert time.monotonic() - start < TIMEOUT + 0.4


# --- OpenAI-compatible (LMDeploy) -----------------------------------------


def test_openai_compatible_online_and_expected(openai):
    result = clients.probe_openai_compatible(openai.url, "served-a", timeout=TIMEOUT)
    assert result.status == "online"
    result = clients.probe_openai_compatible(
        openai.url, ["served-a", "other"], timeout=TIMEOUT
    )
    assert result.status == "degraded"
    assert result.error == "serves served-a, expected other"


def test_openai_compatible_404_on_models_is_unhealthy(openai):
    openai.configure(models_code=404)
    result = clients.probe_openai_compatible(openai.url, timeout=TIMEOUT)
    assert result.status == "error"
    assert "HTTP 404" in result.error


def test_openai_compatible_failures(openai):
    assert (
        clients.probe_openai_compatible(dead_url(), timeout=TIMEOUT).status == "offline"
    )
    openai.configure(mode="error")
    assert (
        clients.probe_openai_compatible(openai.url, timeout=TIMEOUT).status == "error"
    )
    openai.configure(mode="malformed")
    assert (
        "malformed JSON"
        in clients.probe_openai_compatible(openai.url, timeout=TIMEOUT).error
    )


# --- Triton ---------------------------------------------------------------


def test_triton_ready_and_model_ready(triton):
    result = clients.probe_triton(triton.url, ["resnet"], timeout=TIMEOUT)
    assert result.status == "online"
    assert result.details["ready"] == {"resnet": True}


def test_triton_model_not_ready_is_degraded(triton):
    result = clients.probe_triton(
        triton.url, ["resnet", "bert base/v1"], timeout=TIMEOUT
    )
    assert result.status == "degraded"
    assert "bert base/v1" in result.error
    assert ("GET", "/v2/models/bert%20base%2Fv1/ready") in triton.requests


def test_triton_server_not_ready_and_offline(triton):
    triton.configure(server_ready=False)
    assert clients.probe_triton(triton.url, timeout=TIMEOUT).status == "error"
    triton.stop()
    assert clients.probe_triton(triton.url, timeout=TIMEOUT).status == "offline"


def test_probe_budget_is_shared_across_requests(openai):
    """Several slow requests in one probe still finish within one timeout."""
    openai.configure(mode="slow", delay=0.3)
    start = time.monotonic()
    result = clients.probe_vllm(openai.url, "served-a", timeout=TIMEOUT)
    assert time.monotonic() - start < TIMEOUT + 0.3
    assert result.status == "offline"
