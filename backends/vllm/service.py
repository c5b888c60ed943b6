"""The vLLM activation service: the one place that activates and stops the served model.

Views, tasks, management commands, health and the CLI import this module and call
its names (``from backends.vllm import service; service.request_activation(...)``);
:data:`__all__` is the whole public API. The work lives in the package's modules:

==================  ==========================================================
``admission``       ``request_activation`` / ``request_stop``: the one-activation-
                    at-a-time rule and its typed answer, for views and the CLI
``prepare``         validate before you stop: backend, lock gate, files, port
``activate``        take the slot from A, start B, wait until it serves
``stop``            stop the served model or cancel a start
``reconcile``       adopt servers started elsewhere, clean dead rows and stale files
``status``          ``current()`` and the slot status the UI polls
``hosts``           whose pid is it: this machine, the GPU queue, remote checks
``server``          a server's identity, liveness and stopping (local or admin)
``slot``            the slot's live row, jobs, state file and shared helpers
``errors``          the exceptions (messages are shown to the operator as is)
==================  ==========================================================

Guarantees:

* **Validate before you stop.** B's launch is fully checked before A is touched,
  so a bad request never leaves the GPU idle (F6, R12).
* **One live activation across processes.** The ``Activation`` partial unique
  constraint (one starting/running/stopping row per slot) decides who wins; the
  loser is told who is activating what. Replacing A is a conditional
  ``running -> stopping`` update, so two replacements cannot both proceed (F15).
  Requests (:func:`request_activation`) are refused while another activation or
  stop runs or is queued, on the site and in the CLI alike.
* **A state machine with history.** starting -> running -> stopping ->
  stopped/failed, with who/when/command/pid/port/time-to-ready/exit code/error.
  A stop during "starting" cancels the start.
* **One audit row per activate/stop** via ``registry.audit.audited``; adopting a
  server or removing a stale state file writes a ``reconcile`` row saying why.
* ``_staging/active_vllm.json`` (five fields) is written only once ready and
  removed on stop or when the process is found dead.
* **Pids are judged where they live** (``hosts``): in local mode only the machine
  that launched a server declares it dead, stops or replaces it.

Tests that replace an internal patch it where it is looked up, e.g.
``backends.vllm.prepare.lock_gate`` or ``backends.vllm.status.adopt_or_clean``.
"""

from __future__ import annotations

from backends.choices import RequestOutcome

from .activate import activate
from .admission import SlotRequest, request_activation, request_stop, slot_busy
from .errors import (
    ActivationBusy,
    ActivationError,
    ActivationFailed,
    ActivationRefused,
)
from .hosts import (
    advertised_url,
    elsewhere_refusal,
    release_host,
    remote_check,
    this_host,
    vllm_queue,
)
from .prepare import prepare, preview
from .reconcile import DEAD_START_GRACE_S, adopt_or_clean
from .slot import (
    SLOT,
    SLOT_JOB_KINDS,
    busy_message,
    config,
    live_activation,
    state_dict,
)
from .status import SlotStatus, current, status
from .stop import stop

__all__ = [
    # requests (views, CLI)
    "RequestOutcome",
    "SlotRequest",
    "request_activation",
    "request_stop",
    "slot_busy",
    # actions (jobs, CLI, management commands)
    "activate",
    "stop",
    "adopt_or_clean",
    "release_host",
    # queries
    "current",
    "status",
    "SlotStatus",
    "live_activation",
    "busy_message",
    "state_dict",
    "prepare",
    "preview",
    "config",
    # machines
    "this_host",
    "vllm_queue",
    "advertised_url",
    "remote_check",
    "elsewhere_refusal",
    # errors
    "ActivationError",
    "ActivationRefused",
    "ActivationBusy",
    "ActivationFailed",
    # constants
    "SLOT",
    "SLOT_JOB_KINDS",
    "DEAD_START_GRACE_S",
]
