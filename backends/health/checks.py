"""Backend health service: which endpoints exist, concurrent checks, transitions, reconciliation.

* :func:`build_endpoints` lists what to check: the active vLLM model (from the
  activation service, else ``_staging/active_vllm.json``), the backend-wide URLs
  of the settings and every registry entry's ``backend_config`` (host, port,
  base_url, with the original's default ports), deduplicated by kind + URL.
* :func:`check_all` probes every endpoint at once (one thread each), so one dead
  or slow server never delays the others: the whole check takes about
  ``IMAGEWORKS_HEALTH_TIMEOUT`` plus a small margin. Results are stored on
  :class:`~backends.models.BackendEndpoint`; a
  :class:`~backends.models.HealthTransition` is written only when the status
  changes.
* Reconciliation: Ollama entries get ``installed`` from ``/api/tags`` and
  "active" from ``/api/ps``; tags missing on the server and server tags no entry
  knows are reported; a dead vLLM activation is cleared by the activation
  service's ``reconcile()`` (called first, when it exists).
* The chat proxy's autostart map (``CHAT_PROXY_AUTOSTART_MAP`` or
  ``[autostart] autostart_map_raw`` in chat_proxy.toml) is read and validated; a
  malformed map is reported, never silently ignored.

Probing threads do HTTP only; every database write happens in the caller's
thread after the probes.
"""

from __future__ import annotations

import json
import logging
import os
import time
import tomllib
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from registry.models import ModelEntry

from .. import clients
from ..choices import BackendKind, HealthStatus
from ..models import BackendEndpoint, HealthTransition

logger = logging.getLogger(__name__)

# The original's DEFAULT_BACKEND_PORTS (original-registry.md §7.2); other backends use 8000.
DEFAULT_BACKEND_PORTS = {
    "vllm": 24001,
    "ollama": 11434,
    "lmdeploy": 24001,
    "triton": 9000,
}
OTHER_DEFAULT_PORT = 8000
VLLM_ACTIVE_KEY = "vllm:active"
# Extra wait on top of the probe timeout before an unanswered probe is declared offline.
CHECK_MARGIN_S = 0.5
MAX_THREADS = 32

KIND_ORDER = [
    BackendKind.VLLM,
    BackendKind.OLLAMA,
    BackendKind.LMDEPLOY,
    BackendKind.TRITON,
    BackendKind.OPENAI,
]
# Worst first: the status a backend card shows when its endpoints disagree.
SEVERITY = [
    HealthStatus.ERROR,
    HealthStatus.OFFLINE,
    HealthStatus.DEGRADED,
    HealthStatus.STARTING,
    HealthStatus.UNKNOWN,
    HealthStatus.ONLINE,
    HealthStatus.NOT_CONFIGURED,
]


def _setting(name: str, default: Any) -> Any:
    return getattr(settings, name, default)


def health_timeout() -> float:
    return float(_setting("IMAGEWORKS_HEALTH_TIMEOUT", 2.0))


# --- endpoints ---------------------------------------------------------------


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
    return DEFAULT_BACKEND_PORTS.get(backend, OTHER_DEFAULT_PORT)


def resolve_entry_url(backend: str, backend_config: dict | None) -> str:
    """The server root URL of an entry, as the original resolves it (no trailing ``/v1``).

    Precedence: ``base_url``; ``host`` when it is a URL; else
    ``http://{host or 127.0.0.1}:{port or the backend's default port}``.
    """
    cfg = backend_config if isinstance(backend_config, dict) else {}
    backend = (backend or "").strip().lower()
    base_url = str(cfg.get("base_url") or "").strip()
    if base_url:
        return clients.root_url(base_url)
    host = str(cfg.get("host") or "").strip()
    if host.startswith(("http://", "https://")):
        return clients.root_url(host)
    return f"http://{host or '127.0.0.1'}:{_port(cfg.get('port'), backend)}"


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


def vllm_service():
    """The activation service module (``backends.vllm.service``), or None if absent."""
    try:
        from backends.vllm import service  # owned by the activation work
    except ImportError:
        return None
    return service


def active_vllm() -> dict[str, Any] | None:
    """The active vLLM model: the activation service's ``current()``, else the state file.

    Returns a dict with at least ``logical_name``, ``served_model_id``, ``port``
    and ``source`` ("service" or "state file"), or None when nothing is active.
    """
    service = vllm_service()
    current = getattr(service, "current", None) if service else None
    if callable(current):
        try:
            state = current()
        except Exception:  # the dashboard must not break on an activation bug
            logger.exception("backends.vllm.service.current() failed")
            state = None
        else:
            if not state:
                return None
            if not isinstance(state, dict):
                state = {k: v for k, v in vars(state).items() if not k.startswith("_")}
            return {**state, **_launched_elsewhere(service), "source": "service"}
    return _read_state_file()


def _launched_elsewhere(service) -> dict[str, Any]:
    """For a local-mode server started on another machine: its host and address.

    Its pid means nothing here and ``IMAGEWORKS_VLLM_HOST`` is that machine's bind
    address, so the probe uses the URL the launching host recorded (if any).
    """
    live = getattr(service, "live_activation", lambda: None)()
    if live is None or not getattr(live, "launched_elsewhere", False):
        return {}
    info: dict[str, Any] = {"host_name": live.host_name}
    if live.base_url:
        info["base_url"] = live.base_url
    return info


def state_file_path() -> Path:
    return Path(settings.IMAGEWORKS_STAGING_DIR) / "active_vllm.json"


def _read_state_file() -> dict[str, Any] | None:
    path = state_file_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        logger.warning("unreadable %s: %s", path, exc)
        return None
    if not isinstance(data, dict) or not data.get("port"):
        return None
    return {**data, "source": "state file"}


def _pid_alive(pid: Any) -> bool | None:
    try:
        import psutil

        return psutil.pid_exists(int(pid))
    except (TypeError, ValueError, ImportError):
        return None


def _vllm_endpoint() -> Endpoint:
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
        host = state.get("host") or _setting("IMAGEWORKS_VLLM_HOST", "127.0.0.1")
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
    found: dict[str, Endpoint] = {}

    def add(kind: str, url: str, label: str, source: str) -> Endpoint:
        key = endpoint_key(kind, url)
        endpoint = found.get(key)
        if endpoint is None:
            endpoint = found[key] = Endpoint(key=key, kind=kind, label=label, url=url)
        if source not in endpoint.sources:
            endpoint.sources.append(source)
        return endpoint

    found[VLLM_ACTIVE_KEY] = _vllm_endpoint()
    for kind, setting in (
        (BackendKind.OLLAMA, "IMAGEWORKS_OLLAMA_URL"),
        (BackendKind.LMDEPLOY, "IMAGEWORKS_LMDEPLOY_URL"),
        (BackendKind.TRITON, "IMAGEWORKS_TRITON_URL"),
    ):
        url = clients.root_url(str(_setting(setting, "") or ""))
        if url:
            add(kind, url, f"{BackendKind(kind).label} ({url})", setting)
    for url in _setting("IMAGEWORKS_OPENAI_URLS", []) or []:
        url = clients.root_url(url)
        if url:
            add(
                BackendKind.OPENAI,
                url,
                f"OpenAI-compatible ({url})",
                "IMAGEWORKS_OPENAI_URLS",
            )

    if entries is None:
        entries = ModelEntry.objects.filter(deprecated=False).only(
            "name", "backend", "backend_config", "served_model_id"
        )
    for entry in entries:
        kind = entry_kind(entry.backend)
        if kind == BackendKind.VLLM:
            continue
        url = resolve_entry_url(entry.backend, entry.backend_config)
        endpoint = add(
            kind, url, f"{BackendKind(kind).label} ({url})", f"entry:{entry.name}"
        )
        endpoint.entries.append(entry.name)
        expected = (
            ollama_entry_tag(entry)
            if kind == BackendKind.OLLAMA
            else _entry_expected_model(entry)
        )
        if expected and expected not in endpoint.expected:
            endpoint.expected.append(expected)
    return sorted(found.values(), key=lambda e: (KIND_ORDER.index(e.kind), e.key))


# --- probing -----------------------------------------------------------------


def probe_endpoint(endpoint: Endpoint, timeout: float) -> clients.ProbeResult:
    """Probe one endpoint with the client for its kind (runs in a worker thread)."""
    if endpoint.fixed_status:
        return clients.ProbeResult(
            status=endpoint.fixed_status, error="", url=endpoint.url
        )
    if endpoint.kind == BackendKind.VLLM:
        expected = endpoint.expected[0] if endpoint.expected else None
        return clients.probe_vllm(endpoint.url, expected, timeout=timeout)
    if endpoint.kind == BackendKind.OLLAMA:
        return clients.probe_ollama(endpoint.url, timeout=timeout)
    if endpoint.kind == BackendKind.TRITON:
        return clients.probe_triton(endpoint.url, endpoint.expected, timeout=timeout)
    return clients.probe_openai_compatible(
        endpoint.url, endpoint.expected, timeout=timeout
    )


def _probe_all(endpoints: list[Endpoint], timeout: float) -> list[clients.ProbeResult]:
    """Probe every endpoint concurrently; an unanswered probe is offline after timeout + margin."""
    if not endpoints:
        return []
    clients.warm_up()
    executor = ThreadPoolExecutor(
        max_workers=min(MAX_THREADS, len(endpoints)), thread_name_prefix="health"
    )
    try:
        futures = [executor.submit(probe_endpoint, ep, timeout) for ep in endpoints]
        wait(futures, timeout=timeout + CHECK_MARGIN_S)
        results = []
        for endpoint, future in zip(endpoints, futures, strict=True):
            if future.done() and not future.cancelled() and future.exception() is None:
                results.append(future.result())
            elif future.done() and future.exception() is not None:
                exc = future.exception()
                logger.error(
                    "health probe of %s crashed: %r", endpoint.key, exc, exc_info=exc
                )
                results.append(
                    clients.ProbeResult(
                        status=HealthStatus.ERROR,
                        url=endpoint.url,
                        error=f"probe crashed: {exc!r}",
                    )
                )
            else:
                results.append(
                    clients.ProbeResult(
                        status=HealthStatus.OFFLINE,
                        url=endpoint.url,
                        latency_ms=(timeout + CHECK_MARGIN_S) * 1000,
                        error=f"timed out after {timeout:g}s (no answer)",
                    )
                )
        return results
    finally:
        # Never wait for a hung probe (e.g. a blocking DNS lookup): it ends on its own.
        executor.shutdown(wait=False, cancel_futures=True)


# --- storing -----------------------------------------------------------------


def _transition_reason(result: clients.ProbeResult, endpoint: Endpoint) -> str:
    if result.error:
        return result.error
    if endpoint.note:
        return endpoint.note
    return HealthStatus(result.status).label


def store_result(
    endpoint: Endpoint, result: clients.ProbeResult, details: dict | None = None
):
    """Save one probe result; write a HealthTransition only if the status changed."""
    now = timezone.now()
    # get_or_create survives two checks creating the same endpoint at once.
    created, _ = BackendEndpoint.objects.get_or_create(
        key=endpoint.key,
        defaults={"kind": endpoint.kind, "label": endpoint.label[:200]},
    )
    with transaction.atomic():
        row = BackendEndpoint.objects.select_for_update().get(pk=created.pk)
        old = row.status
        row.kind = endpoint.kind
        row.label = endpoint.label[:200]
        row.url = endpoint.url[:500]
        row.last_checked = now
        row.latency_ms = result.latency_ms
        row.last_error = result.error or ""
        row.details = details if details is not None else _details(endpoint, result)
        changed = old != result.status or row.since is None
        if changed:
            row.status = result.status
            row.since = now
        row.save()
        if old != result.status:
            HealthTransition.objects.create(
                endpoint=row,
                time=now,
                old_status=old,
                new_status=result.status,
                reason=_transition_reason(result, endpoint)[:2000],
            )
    return row


def _details(endpoint: Endpoint, result: clients.ProbeResult) -> dict[str, Any]:
    return {
        **result.details,
        "configured": True,
        "expected": endpoint.expected,
        "entries": {name: {} for name in endpoint.entries},
        "sources": endpoint.sources,
        "activation": endpoint.activation,
        "note": endpoint.note,
        "checked_at": result.checked_at.isoformat(),
    }


def _mark_unconfigured(keys_seen: set[str], kinds: set[str]) -> None:
    """Endpoints no longer configured (entry removed, URL changed) turn "not configured"."""
    gone = BackendEndpoint.objects.filter(kind__in=kinds).exclude(key__in=keys_seen)
    for row in gone.exclude(status=HealthStatus.NOT_CONFIGURED):
        store_result(
            Endpoint(key=row.key, kind=row.kind, label=row.label, url=row.url),
            clients.ProbeResult(
                status=HealthStatus.NOT_CONFIGURED,
                url=row.url,
                error="no longer configured",
            ),
            details={"configured": False},
        )


# --- Ollama reconciliation ----------------------------------------------------


def _reconcile_ollama(
    endpoint: Endpoint, result: clients.ProbeResult, autostart: AutostartMap
) -> dict[str, Any]:
    """Per-entry installed/active for one Ollama endpoint; updates ModelEntry.installed.

    ``installed`` becomes None (unknown) while the server cannot tell.
    """
    details = _details(endpoint, result)
    installed = result.details.get("installed")
    loaded = result.details.get("loaded")
    installed_tags = {m["tag"] for m in installed} if installed is not None else None
    loaded_tags = {m["tag"] for m in loaded} if loaded is not None else None
    entries = ModelEntry.objects.filter(name__in=endpoint.entries)
    per_entry: dict[str, dict[str, Any]] = {}
    known_tags: set[str] = set()
    missing: list[dict[str, str]] = []
    for entry in entries:
        tag = ollama_entry_tag(entry)
        known_tags.add(tag)
        is_installed = None if installed_tags is None else tag in installed_tags
        is_active = None if loaded_tags is None else tag in loaded_tags
        command = autostart.commands.get(entry.name)
        per_entry[entry.name] = {
            "tag": tag,
            "installed": is_installed,
            "active": is_active,
            "autostart": command,
        }
        if is_installed is False:
            missing.append({"entry": entry.name, "tag": tag})
        if entry.installed != is_installed:
            ModelEntry.objects.filter(pk=entry.pk).update(installed=is_installed)
    unknown = [
        {"name": m["name"], "tag": m["tag"], "digest": m["digest"], "size": m["size"]}
        for m in (installed or [])
        if m["tag"] not in known_tags
    ]
    details.update(
        entries=per_entry,
        missing_tags=missing,
        unknown_tags=unknown,
        autostart_error=autostart.error,
        autostart_source=autostart.source,
    )
    return details


# --- the check ----------------------------------------------------------------


@dataclass
class CheckReport:
    """What :func:`check_all` did."""

    endpoints: list[BackendEndpoint]
    results: dict[str, clients.ProbeResult]
    autostart: AutostartMap
    duration_s: float
    reconcile_error: str = ""


def reconcile_vllm() -> str:
    """Let the activation service clear a dead activation (lazy; absent service = no-op)."""
    service = vllm_service()
    # ``reconcile()`` as agreed; ``adopt_or_clean()`` is what the service offers today.
    reconcile = None
    for name in ("reconcile", "adopt_or_clean"):
        reconcile = getattr(service, name, None) if service else None
        if callable(reconcile):
            break
    if not callable(reconcile):
        return ""
    try:
        reconcile()
    except Exception as exc:
        logger.exception("backends.vllm.service.reconcile() failed")
        return f"vLLM reconcile failed: {exc}"
    return ""


def check_all(
    kinds: Iterable[str] | None = None, *, timeout: float | None = None
) -> CheckReport:
    """Check every configured endpoint now (concurrently) and store the results.

    ``kinds`` limits the check to some backend kinds (the card's "Check now").
    Total time is about ``timeout`` (default ``IMAGEWORKS_HEALTH_TIMEOUT``) plus
    a small margin, however many servers hang.
    """
    started = time.monotonic()
    timeout = health_timeout() if timeout is None else float(timeout)
    wanted = {str(k) for k in kinds} if kinds else {k.value for k in BackendKind}
    reconcile_error = reconcile_vllm() if BackendKind.VLLM in wanted else ""
    endpoints = [ep for ep in build_endpoints() if ep.kind in wanted]
    results = _probe_all(endpoints, timeout)
    autostart = load_autostart_map()
    rows = []
    by_key: dict[str, clients.ProbeResult] = {}
    for endpoint, result in zip(endpoints, results, strict=True):
        result = _adjust_vllm(endpoint, result)
        if endpoint.kind == BackendKind.OLLAMA:
            details = _reconcile_ollama(endpoint, result, autostart)
        else:
            details = _details(endpoint, result)
            for name in endpoint.entries:
                details["entries"][name] = {"autostart": autostart.commands.get(name)}
        if endpoint.kind == BackendKind.VLLM and reconcile_error:
            details["reconcile_error"] = reconcile_error
        rows.append(store_result(endpoint, result, details))
        by_key[endpoint.key] = result
    _mark_unconfigured({ep.key for ep in endpoints}, wanted)
    return CheckReport(
        endpoints=rows,
        results=by_key,
        autostart=autostart,
        duration_s=round(time.monotonic() - started, 3),
        reconcile_error=reconcile_error,
    )


def _adjust_vllm(
    endpoint: Endpoint, result: clients.ProbeResult
) -> clients.ProbeResult:
    """vLLM nuances: refused while the activation is starting = starting; a dead pid is named."""
    if endpoint.kind != BackendKind.VLLM or not endpoint.activation:
        return result
    state = str(endpoint.activation.get("state") or "").lower()
    if result.status == HealthStatus.OFFLINE and state == "starting":
        result.status = HealthStatus.STARTING
        result.error = f"loading ({result.error})"
    elif (
        result.status != HealthStatus.ONLINE
        and endpoint.activation.get("pid")
        and not endpoint.activation.get("host_name")  # another machine's pid
        and _pid_alive(endpoint.activation["pid"]) is False
    ):
        result.error = (
            f"vLLM process {endpoint.activation['pid']} is not running "
            f"(stale {endpoint.activation.get('source')}); {result.error}"
        ).strip("; ")
    return result


def refresh_if_stale(kinds: Iterable[str], max_age: float | None = None) -> bool:
    """Run a check of ``kinds`` when their stored results are older than ``max_age`` seconds.

    Lets cards stay truthful even when no qcluster runs the schedule. 0 disables.
    """
    if max_age is None:
        max_age = float(
            _setting(
                "IMAGEWORKS_HEALTH_CARD_REFRESH",
                _setting("IMAGEWORKS_HEALTH_INTERVAL", 30),
            )
        )
    if max_age <= 0:
        return False
    kinds = [str(k) for k in kinds]
    cutoff = timezone.now() - timedelta(seconds=max_age)
    rows = BackendEndpoint.objects.filter(kind__in=kinds).exclude(
        details__configured=False
    )
    if (
        rows.exists()
        and not rows.filter(last_checked__lt=cutoff).exists()
        and not rows.filter(last_checked__isnull=True).exists()
    ):
        return False
    check_all(kinds)
    return True


# --- reading stored results (views, CLI, other apps) ------------------------


def worst_status(statuses: Iterable[str]) -> str:
    statuses = list(statuses)
    for status in SEVERITY:
        if status in statuses:
            return status
    return HealthStatus.NOT_CONFIGURED


def configured_endpoints(kind: str | None = None):
    """Stored endpoints that are still configured (the vLLM slot is always listed)."""
    rows = BackendEndpoint.objects.exclude(details__configured=False)
    if kind:
        rows = rows.filter(kind=kind)
    return rows.order_by("kind", "key")


def kind_summary(kind: str) -> dict[str, Any]:
    """Everything a backend card shows: overall status, endpoints, autostart problems."""
    kind = BackendKind(kind)
    endpoints = list(configured_endpoints(kind))
    probed = [ep for ep in endpoints if ep.status != HealthStatus.NOT_CONFIGURED]
    status = (
        worst_status(ep.status for ep in probed)
        if probed
        else HealthStatus.NOT_CONFIGURED
    )
    note = ""
    if not endpoints:
        if any(ep.kind == kind and not ep.fixed_status for ep in build_endpoints()):
            status = HealthStatus.UNKNOWN
            note = "Never checked."
        else:
            note = "Not configured: no URL in the settings and no registry entry uses this backend."
    elif not probed:
        note = endpoints[0].details.get("note") or endpoints[0].last_error
    autostart = load_autostart_map() if kind == BackendKind.OLLAMA else None
    return {
        "kind": kind.value,
        "label": kind.label,
        "status": status,
        "status_label": HealthStatus(status).label,
        "colour": HealthStatus(status).colour,
        "endpoints": endpoints,
        "note": note,
        "autostart": autostart,
        # When the card entered its current status (the latest endpoint to get there).
        "since": max(
            (ep.since for ep in probed if ep.since and ep.status == status),
            default=None,
        ),
        "last_checked": max(
            (ep.last_checked for ep in endpoints if ep.last_checked), default=None
        ),
    }


def unknown_ollama_tags(*, fresh: bool = False) -> list[dict[str, Any]]:
    """Tags installed on an Ollama server that no registry entry knows (for the import wizard).

    Read from the last check; ``fresh=True`` checks the Ollama servers first.
    Each item: ``{endpoint, url, name, tag, digest, size}``.
    """
    if fresh:
        check_all([BackendKind.OLLAMA])
    out = []
    for row in configured_endpoints(BackendKind.OLLAMA):
        for tag in row.details.get("unknown_tags") or []:
            out.append({"endpoint": row.key, "url": row.url, **tag})
    return out


def missing_ollama_tags() -> list[dict[str, Any]]:
    """Ollama entries whose tag the server does not have: ``{endpoint, url, entry, tag}``."""
    out = []
    for row in configured_endpoints(BackendKind.OLLAMA):
        for item in row.details.get("missing_tags") or []:
            out.append({"endpoint": row.key, "url": row.url, **item})
    return out


def runtime_flags() -> dict[str, dict[str, Any]]:
    """Entry name -> ``{installed, active, autostart}`` from the last check (no network).

    Ollama: installed from /api/tags, active from /api/ps. vLLM: active when it
    is the active model and its endpoint answered ready.
    """
    flags: dict[str, dict[str, Any]] = {}
    for row in configured_endpoints():
        for name, info in (row.details.get("entries") or {}).items():
            flags[name] = {
                "installed": info.get("installed"),
                "active": info.get("active"),
                "autostart": info.get("autostart"),
            }
        if row.key == VLLM_ACTIVE_KEY and row.details.get("activation"):
            name = row.details["activation"].get("logical_name")
            if name:
                flags.setdefault(name, {})["active"] = row.status == HealthStatus.ONLINE
    return flags


# --- chat proxy autostart map -------------------------------------------------


@dataclass
class AutostartMap:
    """The chat proxy's autostart map: logical name -> argv, with where it came from."""

    commands: dict[str, list[str]] = field(default_factory=dict)
    source: str = ""
    error: str = ""

    @property
    def configured(self) -> bool:
        return bool(self.source)


def parse_autostart_map(raw: str, source: str) -> AutostartMap:
    """Validate the map's JSON: an object of ``name -> {"command": [argv...]}``.

    Valid items are kept; every invalid one is named in ``error``.
    """
    result = AutostartMap(source=source)
    raw = (raw or "").strip()
    if not raw:
        return AutostartMap()
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        result.error = f"autostart map from {source} is not valid JSON: {exc}"
        return result
    if not isinstance(data, dict):
        result.error = (
            f"autostart map from {source} must be a JSON object "
            f'{{"name": {{"command": [...]}}}}, got {type(data).__name__}'
        )
        return result
    problems = []
    for name, spec in data.items():
        command = spec.get("command") if isinstance(spec, dict) else None
        if (
            isinstance(command, list)
            and command
            and all(isinstance(arg, str) and arg for arg in command)
        ):
            result.commands[str(name)] = list(command)
        else:
            problems.append(f'{name!r} needs {{"command": [non-empty strings]}}')
    if problems:
        result.error = f"autostart map from {source}: " + "; ".join(problems)
    return result


def load_autostart_map() -> AutostartMap:
    """Read the map from ``CHAT_PROXY_AUTOSTART_MAP`` or ``[autostart]`` of chat_proxy.toml.

    The environment variable wins (as in the original). Problems reading the
    toml file are reported in ``error``.
    """
    raw = os.environ.get("CHAT_PROXY_AUTOSTART_MAP", "")
    if raw.strip():
        return parse_autostart_map(raw, "env CHAT_PROXY_AUTOSTART_MAP")
    config = str(_setting("IMAGEWORKS_CHAT_PROXY_CONFIG", "") or "").strip()
    if not config:
        return AutostartMap()
    path = Path(config).expanduser()
    source = f"{path} [autostart]"
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        return AutostartMap(source=source, error=f"chat proxy config {path} not found")
    except (OSError, tomllib.TOMLDecodeError) as exc:
        return AutostartMap(
            source=source, error=f"cannot read chat proxy config {path}: {exc}"
        )
    section = data.get("autostart") or {}
    raw = section.get("autostart_map_raw", "") if isinstance(section, dict) else ""
    if not isinstance(raw, str):
        return AutostartMap(
            source=source, error=f"{source}: autostart_map_raw must be a JSON string"
        )
    return parse_autostart_map(raw, source)


def autostart_for(entry_name: str) -> list[str] | None:
    """The autostart argv configured for an entry, or None."""
    return load_autostart_map().commands.get(entry_name)
