"""Backend health: which endpoints exist, concurrent checks, transitions, reconciliation.

Other apps and the CLI import from here (``from backends.health import runtime_flags``);
the names below are the public API. The work lives in:

=============  ================================================================
``endpoints``  what to check: the active vLLM model, settings URLs, entries' servers
``active``     the vLLM coupling: ``service.current()`` / state file, reconcile, dead pids
``probe``      concurrent probes with a hard cut-off (HTTP only, no database)
``store``      results on ``BackendEndpoint``; a ``HealthTransition`` on each change
``ollama``     Ollama installed/active per entry, missing and unknown tags
``autostart``  the chat proxy's autostart map, validated
``check``      ``check_all`` and ``refresh_if_stale``: probe, store, reconcile
``summary``    reading stored results: cards, runtime flags, Ollama tags
``views``, ``urls``, ``cli``, ``tasks``: the pages, ``show-backends`` and the schedule
=============  ================================================================

Tests that replace an internal patch it where it is looked up, e.g.
``backends.health.check.check_all`` or ``backends.health.active.current``.
"""

from .active import active_vllm, reconcile_vllm, state_file_path
from .autostart import (
    AutostartMap,
    autostart_for,
    load_autostart_map,
    parse_autostart_map,
)
from .check import CheckReport, check_all, refresh_if_stale
from .endpoints import (
    KIND_ORDER,
    VLLM_ACTIVE_KEY,
    Endpoint,
    build_endpoints,
    endpoint_key,
    entry_kind,
    health_timeout,
    ollama_entry_tag,
    resolve_entry_url,
)
from .probe import CHECK_MARGIN_S, probe_all, probe_endpoint
from .store import store_result
from .summary import (
    configured_endpoints,
    kind_summary,
    missing_ollama_tags,
    runtime_flags,
    unknown_ollama_tags,
    worst_status,
)

__all__ = [
    # checking
    "check_all",
    "refresh_if_stale",
    "CheckReport",
    # reading stored results (views, CLI, the registry app)
    "kind_summary",
    "configured_endpoints",
    "worst_status",
    "runtime_flags",
    "unknown_ollama_tags",
    "missing_ollama_tags",
    # the active vLLM model
    "active_vllm",
    "reconcile_vllm",
    "state_file_path",
    # the chat proxy's autostart map
    "AutostartMap",
    "autostart_for",
    "load_autostart_map",
    "parse_autostart_map",
    # endpoints and probes
    "Endpoint",
    "build_endpoints",
    "endpoint_key",
    "entry_kind",
    "ollama_entry_tag",
    "resolve_entry_url",
    "health_timeout",
    "probe_all",
    "probe_endpoint",
    "store_result",
    "CHECK_MARGIN_S",
    "KIND_ORDER",
    "VLLM_ACTIVE_KEY",
]
