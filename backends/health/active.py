"""Health and the vLLM activation service: the active model, reconciling, dead pids.

The active vLLM model comes from the activation service's ``current()`` (which
reconciles first); when the service fails, ``_staging/active_vllm.json`` is read
instead so the dashboard still shows what runs. A dead vLLM activation is cleared by
the service's ``adopt_or_clean()`` before each vLLM check.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil
from django.conf import settings

from backends.vllm.service import adopt_or_clean, current, live_activation

from .. import clients
from ..choices import BackendKind, HealthStatus

if TYPE_CHECKING:
    from .endpoints import Endpoint

logger = logging.getLogger(__name__)


def active_vllm() -> dict[str, Any] | None:
    """The active vLLM model: the activation service's ``current()``, else the state file.

    Returns a dict with at least ``logical_name``, ``served_model_id``, ``port``
    and ``source`` ("service" or "state file"), or None when nothing is active.
    The state file is read only when the service fails.
    """
    try:
        state = current()
    except Exception:  # the dashboard must not break on an activation bug
        logger.exception("backends.vllm.service.current() failed")
        return _read_state_file()
    if not state:
        return None
    return {**state, **_launched_elsewhere(), "source": "service"}


def _launched_elsewhere() -> dict[str, Any]:
    """For a local-mode server started on another machine: its host and address.

    Its pid means nothing here and ``IMAGEWORKS_VLLM_HOST`` is that machine's bind
    address, so the probe uses the URL the launching host recorded (if any).
    """
    live = live_activation()
    if live is None or not live.launched_elsewhere:
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
        return psutil.pid_exists(int(pid))
    except (TypeError, ValueError):
        return None


def reconcile_vllm() -> str:
    """Let the activation service clear a dead activation; returns an error or ""."""
    try:
        adopt_or_clean()
    except Exception as exc:
        logger.exception("backends.vllm.service.adopt_or_clean() failed")
        return f"vLLM reconcile failed: {exc}"
    return ""


def adjust_vllm(endpoint: Endpoint, result: clients.ProbeResult) -> clients.ProbeResult:
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
