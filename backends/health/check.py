"""The check: probe every configured endpoint now, store results, reconcile.

:func:`check_all` is what the schedule, "Check now", ``show-backends`` and stale
cards run (:func:`refresh_if_stale`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from django.utils import timezone

from .. import clients
from ..choices import BackendKind
from ..models import BackendEndpoint
from .active import adjust_vllm, reconcile_vllm
from .autostart import AutostartMap, load_autostart_map
from .endpoints import Endpoint, build_endpoints, health_timeout, setting
from .ollama import reconcile_ollama
from .probe import probe_all
from .store import base_details, mark_unconfigured, store_result

logger = logging.getLogger(__name__)


@dataclass
class CheckReport:
    """What :func:`check_all` did."""

    endpoints: list[BackendEndpoint]
    results: dict[str, clients.ProbeResult]
    autostart: AutostartMap
    duration_s: float
    reconcile_error: str = ""


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
    results = probe_all(endpoints, timeout)
    autostart = load_autostart_map()
    rows = []
    by_key: dict[str, clients.ProbeResult] = {}
    for endpoint, result in zip(endpoints, results, strict=True):
        result = adjust_vllm(endpoint, result)
        details = _details(endpoint, result, autostart)
        if endpoint.kind == BackendKind.VLLM and reconcile_error:
            details["reconcile_error"] = reconcile_error
        rows.append(store_result(endpoint, result, details))
        by_key[endpoint.key] = result
    mark_unconfigured({ep.key for ep in endpoints}, wanted)
    return CheckReport(
        endpoints=rows,
        results=by_key,
        autostart=autostart,
        duration_s=round(time.monotonic() - started, 3),
        reconcile_error=reconcile_error,
    )


def check_vllm_now() -> CheckReport | None:
    """Check the vLLM endpoint now: the last step of every activation and stop (site,
    CLI, API), so the vLLM card and the Dashboard say Ready or Not configured at once
    instead of after the next scheduled check. Never fails the caller."""
    try:
        return check_all([BackendKind.VLLM])
    except Exception:  # noqa: BLE001 - a health check must not fail an activation
        logger.exception("health check after an activation or stop failed")
        return None


def _details(
    endpoint: Endpoint, result: clients.ProbeResult, autostart: AutostartMap
) -> dict:
    """What to store for one endpoint: Ollama reconciles its entries, others name theirs."""
    if endpoint.kind == BackendKind.OLLAMA:
        return reconcile_ollama(endpoint, result, autostart)
    details = base_details(endpoint, result)
    for name in endpoint.entries:
        details["entries"][name] = {"autostart": autostart.commands.get(name)}
    return details


def refresh_if_stale(kinds: Iterable[str], max_age: float | None = None) -> bool:
    """Run a check of ``kinds`` when their stored results are older than ``max_age`` seconds.

    Lets cards stay truthful even when no qcluster runs the schedule. 0 disables.
    """
    if max_age is None:
        max_age = float(
            setting(
                "IMAGEWORKS_HEALTH_CARD_REFRESH",
                setting("IMAGEWORKS_HEALTH_INTERVAL", 30),
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
        and not (BackendKind.VLLM in kinds and _vllm_slot_moved())
    ):
        return False
    check_all(kinds)
    return True


def _vllm_slot_moved() -> bool:
    """Does the stored vLLM result name another running model than the live one?

    An activation that became ready (or a stop) since the last check: the card would
    say "Not configured" next to the active model until the next scheduled check.
    """
    from ..choices import ActivationState
    from ..models import Activation
    from ..vllm.slot import SLOT
    from .endpoints import VLLM_ACTIVE_KEY

    running = (
        Activation.objects.filter(slot=SLOT, state=ActivationState.RUNNING)
        .values_list("logical_name", flat=True)
        .first()
    )
    row = BackendEndpoint.objects.filter(key=VLLM_ACTIVE_KEY).only("details").first()
    stored = (row.details.get("activation") or {}) if row is not None else {}
    return (stored.get("logical_name") or None) != (running or None)
