"""The loader protocol's two reads: list models and select one (the original's
``imageworks.model_loader.service.select_model`` and ``GET /v1/models``), answered
from the database mirror.

Differences from the original that a client notices (docs/compatibility.md):

* ``internal_model_id`` is ``served_model_id`` or the name; a ``"None"`` served id
  (the original's null bug) counts as unset, so the name is sent, never ``"None"``.
* ``endpoint`` of a vLLM entry is where the site's vLLM serves it: the live
  activation's address when it is the active model, otherwise the entry's explicit
  ``backend_config.base_url`` if any, otherwise the site's vLLM port
  (``IMAGEWORKS_VLLM_PORT``) on the host vLLM is reachable at. Other backends keep
  the original's precedence (base_url, URL-valued host, host:port), then the
  backend's configured URL (``IMAGEWORKS_OLLAMA_URL`` ...) before the default port.
  One function answers for the API, the drawer and the CLI:
  :func:`backends.serving.served_endpoint`.
"""

from __future__ import annotations

import gzip
import threading
from dataclasses import dataclass, field

import orjson
from django.db.models import Q, TextField
from django.db.models.functions import Cast

from . import services
from .services import ModelEntry

#: ``GET /`` of the original service.
ROOT_PAYLOAD = {"service": "imageworks-model-loader", "version": "0.1"}


class ModelNotFound(Exception):
    """The original raises ``KeyError``; FastAPI shows ``str(exc)``, quotes included."""

    def __init__(self, name: str):
        self.name = name
        super().__init__(f"Model '{name}' not found in registry")

    @property
    def detail(self) -> str:
        return str(KeyError(str(self)))


class CapabilityError(Exception):
    pass


@dataclass
class Selection:
    endpoint: str
    backend: str
    internal_model_id: str
    capabilities: dict

    def as_dict(self) -> dict:
        return {
            "endpoint": self.endpoint,
            "backend": self.backend,
            "internal_model_id": self.internal_model_id,
            "capabilities": self.capabilities,
        }


def get_entry(name: str) -> ModelEntry:
    entry = (
        ModelEntry.objects.only(
            "name",
            "backend",
            "capabilities",
            "served_model_id",
            "backend_config",
        )
        .filter(name=name)
        .first()
    )
    if entry is None:
        raise ModelNotFound(name)
    return entry


def endpoint_for(entry: ModelEntry) -> str:
    """The OpenAI-style base URL (ending in ``/v1``) where ``entry`` is served."""
    return services.served_endpoint(entry).url


def select_model(name: str, require_capabilities: list[str] | None = None) -> Selection:
    """The connection descriptor of ``name`` (``ModelNotFound``, ``CapabilityError``)."""
    entry = get_entry(name)
    capabilities = entry.capabilities or services.normalize_capabilities({})
    if require_capabilities:
        missing = [
            cap
            for cap in require_capabilities
            if not capabilities.get(cap.strip().lower(), False)
        ]
        if missing:
            raise CapabilityError(
                f"Model '{name}' is missing required capabilities: {', '.join(missing)}"
            )
    return Selection(
        endpoint=endpoint_for(entry),
        backend=entry.backend,
        internal_model_id=entry.served_model_id or entry.name,
        capabilities=capabilities,
    )


# --------------------------------------------------------------------------- GET /v1/models

_memo_lock = threading.Lock()
_memo: dict[str, dict[str, bytes]] = {}


@dataclass
class _VisionState:
    """``probes.vision.vision_ok`` by entry fingerprint, kept between builds.

    Reading it means parsing the raw layers. The fingerprint is the hash of both raw
    layers, so an entry whose fingerprint was seen before needs no second look; after
    the first build only changed entries are read (and only those whose raw text
    mentions ``vision_ok`` are parsed).
    """

    seen: set[str] = field(default_factory=set)
    values: dict[str, bool] = field(default_factory=dict)

    def lookup(self, fingerprints: set[str]) -> dict[str, bool]:
        unknown = fingerprints - self.seen
        if unknown:
            rows = ModelEntry.objects.filter(
                Q(curated_raw__contains='"vision_ok"')
                | Q(discovered_raw__contains='"vision_ok"')
            )
            if len(unknown) < len(fingerprints) // 2:
                rows = rows.filter(fingerprint__in=unknown)
            for entry in rows.only("fingerprint", "curated_raw", "discovered_raw"):
                probes = (entry.merged or {}).get("probes")
                vision = probes.get("vision") if isinstance(probes, dict) else None
                if isinstance(vision, dict) and vision:
                    self.values[entry.fingerprint] = bool(vision.get("vision_ok"))
        self.seen = set(fingerprints)
        self.values = {fp: v for fp, v in self.values.items() if fp in self.seen}
        return self.values


_vision = _VisionState()


def build_models_payload() -> bytes:
    """The JSON body of ``GET /v1/models``: every entry, sorted by name.

    Capability maps are copied from the database as stored JSON text (normalized by
    sync), not parsed and re-encoded: 10,000 entries carry 47 keys each. The probe
    result comes from :class:`_VisionState` (only changed entries are read).
    """
    rows = list(
        ModelEntry.objects.annotate(
            caps_json=Cast("capabilities", output_field=TextField())
        ).values_list(
            "name", "backend", "locked", "display_name", "caps_json", "fingerprint"
        )
    )
    with _memo_lock:
        vision = dict(_vision.lookup({row[5] for row in rows}))
    rows.sort(key=lambda row: row[0])  # Python's order, like the original's sorted()
    empty = orjson.dumps(services.normalize_capabilities({})).decode()
    payload = [
        {
            "name": name,
            "backend": backend,
            "capabilities": orjson.Fragment(caps or empty),
            "locked": bool(locked),
            "vision_ok": vision.get(fingerprint),
            "display_name": display_name or name,
        }
        for name, backend, locked, display_name, caps, fingerprint in rows
    ]
    return orjson.dumps(payload)


def models_response(encoding: str = "") -> tuple[str, bytes]:
    """``(ETag, body)`` of ``GET /v1/models``, kept per process for the registry
    version (``registry.version.registry_version()``: one primary-key read), so a
    request costs that read and no entry query while nothing changed.

    10,000 entries are ~10 MB of JSON (47-key capability maps), ~1 MB gzipped at
    level 1: every loader client (requests, httpx) accepts gzip, and on a LAN the
    transfer costs more than the client's decompression. The gzipped copy is made
    on the first request that asks for it.
    """
    key = services.version_token()
    with _memo_lock:
        cached = _memo.get(key)
    if cached is None:
        cached = {"": build_models_payload()}
        with _memo_lock:
            _memo.clear()
            _memo[key] = cached
    if encoding and encoding not in cached:
        cached[encoding] = gzip.compress(cached[""], compresslevel=1, mtime=0)
    return f'"{key}-{encoding or "identity"}"', cached[encoding]


def metrics(name: str) -> dict:
    """``GET /v1/models/{name}/metrics``: the entry's stored ``performance`` summary.

    The original answered an in-memory placeholder, ``{"rolling_samples": 0}``, for
    every name (known or not); we answer the same for entries without samples and
    for unknown names, and the stored rolling summary for entries that have one.
    """
    entry = (
        ModelEntry.objects.only("name", "curated_raw", "discovered_raw")
        .filter(name=name)
        .first()
    )
    perf = (entry.merged or {}).get("performance") if entry else None
    if not isinstance(perf, dict):
        return {"rolling_samples": 0}
    try:
        samples = int(perf.get("rolling_samples") or 0)
    except (TypeError, ValueError):
        samples = 0
    if samples <= 0:
        return {"rolling_samples": 0}
    return {
        "rolling_samples": samples,
        "ttft_ms_avg": perf.get("ttft_ms_avg"),
        "throughput_toks_per_s_avg": perf.get("throughput_toks_per_s_avg"),
        "last_sample": perf.get("last_sample"),
    }
