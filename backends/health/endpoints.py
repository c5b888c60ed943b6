"""Which endpoints exist: the active vLLM model, the settings' URLs, every entry's server.

:func:`build_endpoints` lists what to check: the active vLLM model (``active``), the
backend-wide URLs of the settings and every registry entry's ``backend_config``
(host, port, base_url, with the original's default ports), deduplicated by kind +
URL.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings

from registry.models import ModelEntry
from registry.normalize import default_backend_port

from .. import clients, serving
from ..choices import BackendKind, HealthStatus
from .active import active_vllm

VLLM_ACTIVE_KEY = "vllm:active"

KIND_ORDER = [
    BackendKind.VLLM,
    BackendKind.OLLAMA,
    BackendKind.LMDEPLOY,
    BackendKind.TRITON,
    BackendKind.OPENAI,
]


def setting(name: str, default: Any) -> Any:
    return getattr(settings, name, default)


def health_timeout() -> float:
    return float(setting("IMAGEWORKS_HEALTH_TIMEOUT", 2.0))


@dataclass
class Endpoint:
    """One server to check, and why (settings, entries)."""

    key: str
    kind: str
    label: str
    url: str = ""
    expected: list[str] = field(default_factory=list)
    entries: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    # For vLLM: the activation (logical_name, served_model_id, port, pid, state...).
    activation: dict[str, Any] | None = None
    # A status known without probing (vLLM with nothing active -> not configured).
    fixed_status: str | None = None
    note: str = ""


def endpoint_key(kind: str, url: str) -> str:
    return f"{kind}:{url}"[:300]


def entry_kind(backend: str) -> str:
    backend = (backend or "").strip().lower()
    if backend in {"vllm", "ollama", "lmdeploy", "triton"}:
        return backend
    return BackendKind.OPENAI


def _port(value: Any, backend: str) -> int:
    try:
        port = int(value)
    except (TypeError, ValueError):
        port = 0
    if port > 0:
        return port
    return default_backend_port(backend)


def resolve_entry_url(backend: str, backend_config: dict | None) -> str:
    """The server root URL of an entry (no trailing ``/v1``), as the drawer and API
    resolve it (:func:`backends.serving.served_endpoint`): the entry's own
    ``base_url``/``host``/``port``, else the backend's configured URL, else the
    default port. ``localhost`` is probed as ``127.0.0.1`` (one endpoint, not two).
    """
    cfg = backend_config if isinstance(backend_config, dict) else {}
    backend = (backend or "").strip().lower()
    served = serving.served_endpoint(
        {"name": "", "backend": backend, "backend_config": cfg}, live=None
    )
    return served.root.replace("://localhost:", "://127.0.0.1:", 1)


def _is_unset(value: Any) -> bool:
    return value is None or str(value).strip().lower() in {"", "none"}


def ollama_entry_tag(entry: ModelEntry) -> str:
    """The normalised Ollama tag of an entry: served_model_id, else model_path, model, name."""
    cfg = entry.backend_config if isinstance(entry.backend_config, dict) else {}
    for candidate in (
        entry.served_model_id,
        cfg.get("model_path"),
        cfg.get("model"),
        entry.name,
    ):
        if not _is_unset(candidate):
            return clients.normalize_ollama_tag(str(candidate))
    return ""


def _entry_expected_model(entry: ModelEntry) -> str:
    cfg = entry.backend_config if isinstance(entry.backend_config, dict) else {}
    for candidate in (entry.served_model_id, cfg.get("model")):
        if not _is_unset(candidate):
            return str(candidate).strip()
    return entry.name


def _vllm_endpoint() -> Endpoint:
    """The active vLLM model's endpoint (not configured when nothing is active)."""
    state = active_vllm()
    if not state:
        return Endpoint(
            key=VLLM_ACTIVE_KEY,
            kind=BackendKind.VLLM,
            label="vLLM (active model)",
            fixed_status=HealthStatus.NOT_CONFIGURED,
            note="No model is active.",
            sources=["activation"],
        )
    base_url = str(state.get("base_url") or "").strip()
    elsewhere = str(state.get("host_name") or "")
    if elsewhere and not base_url:
        # Nothing on this machine answers for it and no address was recorded.
        return Endpoint(
            key=VLLM_ACTIVE_KEY,
            kind=BackendKind.VLLM,
            label="vLLM (active model)",
            fixed_status=HealthStatus.UNKNOWN,
            note=f"{state.get('logical_name')} is running on host {elsewhere}; "
            "checked from there (it recorded no address other hosts can reach).",
            entries=[str(state.get("logical_name") or "")],
            sources=[f"activation ({state.get('source')})"],
            activation={k: _jsonable(v) for k, v in state.items()},
        )
    if base_url:
        url = clients.root_url(base_url)
    else:
        host = state.get("host") or setting("IMAGEWORKS_VLLM_HOST", "127.0.0.1")
        url = f"http://{host}:{_port(state.get('port'), 'vllm')}"
    served = state.get("served_model_id")
    expected = state.get("logical_name") if _is_unset(served) else served
    return Endpoint(
        key=VLLM_ACTIVE_KEY,
        kind=BackendKind.VLLM,
        label="vLLM (active model)",
        url=url,
        expected=[str(expected)] if expected else [],
        entries=[str(state.get("logical_name") or "")],
        sources=[f"activation ({state.get('source')})"],
        activation={k: _jsonable(v) for k, v in state.items()},
    )


def _jsonable(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def build_endpoints(entries: Iterable[ModelEntry] | None = None) -> list[Endpoint]:
    """Every endpoint to check, from the settings and the registry entries, deduplicated.

    Deprecated entries are skipped; vLLM entries are not probed one by one (only
    one vLLM model is served at a time: the active one).
    """
    found: dict[str, Endpoint] = {VLLM_ACTIVE_KEY: _vllm_endpoint()}
    # (endpoint key, list, value) already listed: with 10,000 entries on one server a
    # membership test of the lists themselves would be quadratic (seconds per check).
    listed = {
        (key, name, value)
        for key, ep in found.items()
        for name in ("sources", "expected")
        for value in getattr(ep, name)
    }

    def listed_once(endpoint: Endpoint, name: str, value: str) -> None:
        if (endpoint.key, name, value) not in listed:
            listed.add((endpoint.key, name, value))
            getattr(endpoint, name).append(value)

    def add(kind: str, url: str, source: str) -> Endpoint:
        key = endpoint_key(kind, url)
        endpoint = found.get(key)
        if endpoint is None:
            label = f"{BackendKind(kind).label} ({url})"
            endpoint = found[key] = Endpoint(key=key, kind=kind, label=label, url=url)
        listed_once(endpoint, "sources", source)
        return endpoint

    for kind, url, source in _setting_urls():
        add(kind, url, source)
    hosts = probe_hosts()
    if entries is None:
        entries = ModelEntry.objects.filter(deprecated=False).only(
            "name", "backend", "backend_config", "served_model_id"
        )
    for entry in entries:
        kind = entry_kind(entry.backend)
        if kind == BackendKind.VLLM:
            continue
        url = resolve_entry_url(entry.backend, entry.backend_config)
        endpoint = add(kind, url, f"entry:{entry.name}")
        if not endpoint.fixed_status and not _may_probe(url, hosts):
            # An editor chose this address: the server contacts only configured hosts.
            endpoint.fixed_status = HealthStatus.UNKNOWN
            endpoint.note = (
                f"Not checked: {urlsplit(url).hostname or url} is not a configured "
                "backend host (IMAGEWORKS_HEALTH_HOSTS or a backend URL setting)."
            )
        endpoint.entries.append(entry.name)
        expected = (
            ollama_entry_tag(entry)
            if kind == BackendKind.OLLAMA
            else _entry_expected_model(entry)
        )
        if expected:
            listed_once(endpoint, "expected", expected)
    return sorted(found.values(), key=lambda e: (KIND_ORDER.index(e.kind), e.key))


def probe_hosts() -> set[str]:
    """The hosts an entry's endpoint may be on to be probed: those of the backend
    URL settings, ``IMAGEWORKS_VLLM_HOST`` and ``IMAGEWORKS_HEALTH_HOSTS`` (default:
    this machine's loopback names). Entries are edited through the site, so without
    this list "Check now" would make the server fetch any URL an editor typed."""
    hosts = {str(setting("IMAGEWORKS_VLLM_HOST", "127.0.0.1") or "").lower()}
    hosts.update(
        str(host).strip().strip("[]").lower()
        for host in setting(
            "IMAGEWORKS_HEALTH_HOSTS", ["127.0.0.1", "localhost", "::1"]
        )
        or []
    )
    for _kind, url, _source in _setting_urls():
        host = urlsplit(url).hostname
        if host:
            hosts.add(host.lower())
    hosts.discard("")
    return hosts


def _may_probe(url: str, hosts: set[str]) -> bool:
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(host) and host.lower() in hosts


def _setting_urls() -> list[tuple[str, str, str]]:
    """``(kind, url, setting name)`` for every backend URL configured in the settings."""
    urls = []
    for kind, name in (
        (BackendKind.OLLAMA, "IMAGEWORKS_OLLAMA_URL"),
        (BackendKind.LMDEPLOY, "IMAGEWORKS_LMDEPLOY_URL"),
        (BackendKind.TRITON, "IMAGEWORKS_TRITON_URL"),
    ):
        url = clients.root_url(str(setting(name, "") or ""))
        if url:
            urls.append((kind, url, name))
    for url in setting("IMAGEWORKS_OPENAI_URLS", []) or []:
        url = clients.root_url(url)
        if url:
            urls.append((BackendKind.OPENAI, url, "IMAGEWORKS_OPENAI_URLS"))
    return urls
