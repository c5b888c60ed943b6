"""Where an entry is (or would be) served, and why: the one answer every front end shows.

The drawer's "Endpoint" and "Copy endpoint info", the loader API's ``/v1/select``,
``GET /api/v1/entries/<pk>``, ``imageworks-models show --layers`` and the health cards
all ask :func:`served_endpoint`, so a URL a user copies is the URL a client is given
and the URL the health check probes.

vLLM (one model served at a time, on the site's port):

1. the live activation of this entry: where it answers now (``source="activation"``);
2. an explicit ``backend_config.base_url`` (or a URL-valued ``host``): the entry says
   it is served elsewhere (``"entry"``);
3. otherwise where the site's vLLM would serve it once activated:
   ``IMAGEWORKS_VLLM_HOST``/``IMAGEWORKS_VLLM_PORT`` (the readiness host, or the
   advertised host when vLLM binds every interface); the entry's
   ``backend_config.port`` only with ``IMAGEWORKS_VLLM_USE_ENTRY_PORT``
   (``"settings"``).

Ollama, LMDeploy, Triton and other OpenAI-style servers:

1. the entry's own ``base_url``, URL-valued ``host`` or ``host``/``port`` (``"entry"``);
2. else the backend's configured URL (``IMAGEWORKS_OLLAMA_URL``,
   ``IMAGEWORKS_LMDEPLOY_URL``, ``IMAGEWORKS_TRITON_URL``) (``"settings"``);
3. else the original's default port on localhost (``"default"``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

from registry.normalize import default_backend_port

from . import clients

#: The setting holding each backend's configured server URL.
BACKEND_URL_SETTINGS = {
    "ollama": "IMAGEWORKS_OLLAMA_URL",
    "lmdeploy": "IMAGEWORKS_LMDEPLOY_URL",
    "triton": "IMAGEWORKS_TRITON_URL",
}

SOURCE_LABELS = {
    "activation": "the running vLLM server",
    "entry": "the entry's backend_config",
    "settings": "the site's settings",
    "default": "the backend's default port (nothing configured)",
}

_UNSET: Any = object()


@dataclass(frozen=True)
class ServedEndpoint:
    """An OpenAI-style base URL (ending in ``/v1``) and where it came from."""

    url: str
    source: str  # activation | entry | settings | default
    detail: str  # e.g. "IMAGEWORKS_VLLM_HOST / IMAGEWORKS_VLLM_PORT"
    serving: bool = False  # True only for the live vLLM activation of this entry

    @property
    def root(self) -> str:
        """The server root (no ``/v1``): what health probes ask."""
        return clients.root_url(self.url)

    @property
    def source_label(self) -> str:
        label = SOURCE_LABELS.get(self.source, self.source)
        return f"{label} ({self.detail})" if self.detail else label

    def info(self, model: str, backend: str) -> str:
        """The text "Copy endpoint info" puts on the clipboard."""
        return (
            f"base_url: {self.url}\nmodel: {model}\nbackend: {backend}\n"
            f"source: {self.source_label}"
        )


def _cfg(entry: Any) -> dict:
    cfg = getattr(entry, "backend_config", None)
    if cfg is None and isinstance(entry, dict):
        cfg = entry.get("backend_config")
    return cfg if isinstance(cfg, dict) else {}


def _attr(entry: Any, name: str) -> Any:
    if isinstance(entry, dict):
        return entry.get(name)
    return getattr(entry, name, None)


def _v1(root: str) -> str:
    return root.rstrip("/") + "/v1"


def _port(value: Any) -> int:
    if isinstance(value, bool):
        return 0
    try:
        port = int(str(value).strip())
    except (TypeError, ValueError):
        return 0
    return port if 0 < port < 65536 else 0


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def entry_server(backend: str, cfg: dict) -> tuple[str, str] | None:
    """``(base URL, detail)`` when the entry names its own server, else None.

    As the original: ``base_url`` and a URL-valued ``host`` are used as written
    (trailing ``/`` dropped); ``host``/``port`` give ``http://{host or localhost}:{port}/v1``.
    """
    base_url = str(cfg.get("base_url") or "").strip().rstrip("/")
    if base_url:
        return base_url, "backend_config.base_url"
    host = str(cfg.get("host") or "").strip()
    if host.startswith(("http://", "https://")):
        return host.rstrip("/"), "backend_config.host"
    port = _port(cfg.get("port"))
    if host or port:
        parts = [p for p, given in (("host", host), ("port", port)) if given]
        port = port or default_backend_port(backend)
        return (
            f"http://{_host(host or 'localhost')}:{port}/v1",
            "backend_config." + "/".join(parts),
        )
    return None


def configured_server(backend: str) -> tuple[str, str] | None:
    """``(root URL, setting name)`` of a backend's configured server, if any."""
    name = BACKEND_URL_SETTINGS.get(backend)
    if not name:
        return None
    url = clients.root_url(str(getattr(settings, name, "") or ""))
    return (url, name) if url else None


def served_endpoint(entry: Any, *, live: Any = _UNSET) -> ServedEndpoint:
    """Where ``entry`` (a ModelEntry, or a dict with name/backend/backend_config) is served.

    ``live`` is the live vLLM activation when the caller already has it (or None
    for "nothing live"); by default it is read (one query, vLLM entries only).
    """
    backend = str(_attr(entry, "backend") or "").strip().lower()
    cfg = _cfg(entry)
    if backend == "vllm":
        return _vllm_endpoint(entry, cfg, live)
    own = entry_server(backend, cfg)
    if own:
        return ServedEndpoint(own[0], "entry", own[1])
    configured = configured_server(backend)
    if configured:
        return ServedEndpoint(_v1(configured[0]), "settings", configured[1])
    port = default_backend_port(backend)
    return ServedEndpoint(
        f"http://localhost:{port}/v1", "default", f"port {port} on localhost"
    )


def _vllm_endpoint(entry: Any, cfg: dict, live: Any) -> ServedEndpoint:
    if live is _UNSET:
        live = serving_activation()
    name = str(_attr(entry, "name") or "")
    if _is_serving(live, name):
        return ServedEndpoint(
            _v1(activation_url(live)),
            "activation",
            f"activation #{live.pk}, port {live.port}",
            serving=True,
        )
    base_url = str(cfg.get("base_url") or "").strip()
    host = str(cfg.get("host") or "").strip()
    if base_url or host.startswith(("http://", "https://")):
        own = entry_server("vllm", cfg)
        assert own is not None
        return ServedEndpoint(own[0], "entry", own[1])
    return ServedEndpoint(
        _v1(vllm_served_root({"name": name, "backend_config": cfg})),
        "settings",
        _vllm_settings_detail(cfg),
    )


def _vllm_settings_detail(cfg: dict) -> str:
    config = vllm_config()
    if config is not None and config.use_entry_port and _port(cfg.get("port")):
        return "IMAGEWORKS_VLLM_HOST + backend_config.port (IMAGEWORKS_VLLM_USE_ENTRY_PORT)"
    return "IMAGEWORKS_VLLM_HOST / IMAGEWORKS_VLLM_PORT"


# ------------------------------------------------------------------------ vLLM helpers

_config_cache: list = []


@receiver(setting_changed)
def _forget_config(**kwargs) -> None:
    _config_cache.clear()


def vllm_config():
    """The activation settings, or None when they are unusable (empty launcher).

    Kept per process (the select hot path; parsing the launcher costs more than the
    rest of the lookup) and forgotten when a test changes the settings.
    """
    if not _config_cache:
        from .vllm import command

        try:
            _config_cache.append(command.VllmConfig.from_settings())
        except command.LaunchRefused:
            _config_cache.append(None)
    return _config_cache[0]


def vllm_served_root(merged: dict) -> str:
    """Where the site's vLLM serves ``merged`` once activated (server root, no ``/v1``)."""
    from .vllm import command, hosts

    cfg = vllm_config()
    if cfg is None:
        host = str(getattr(settings, "IMAGEWORKS_VLLM_HOST", "") or "127.0.0.1")
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        return f"http://{_host(host)}:{settings.IMAGEWORKS_VLLM_PORT}"
    port = command.launch_port(merged, cfg) or cfg.port
    return hosts.advertised_url(cfg, port) or cfg.base_url(port)


def serving_activation():
    """The live activation's address fields only (no entry join)."""
    from .choices import ActivationState
    from .models import Activation
    from .vllm.slot import SLOT

    return (
        Activation.objects.filter(slot=SLOT, state__in=ActivationState.live())
        .only("logical_name", "state", "port", "base_url")
        .first()
    )


def activation_url(act: Any) -> str:
    """Where a live activation answers (its recorded base URL, else this host's)."""
    if act.base_url:
        return clients.root_url(act.base_url)
    cfg = vllm_config()
    if cfg is None:
        return f"http://127.0.0.1:{act.port}"
    return cfg.base_url(act.port)


def _is_serving(act: Any, name: str) -> bool:
    from .choices import ActivationState

    return (
        act is not None
        and bool(name)
        and act.logical_name == name
        and act.state in (ActivationState.STARTING, ActivationState.RUNNING)
    )
