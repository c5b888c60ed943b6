"""``imageworks-models activate-model NAME | --stop`` and ``current-model``.

Same services, rules, lock and state as the site (``backends.vllm.service``;
``request_activation(..., wait=True)`` refuses while another activation or stop runs
or is queued), run in the CLI process with the OS user as the operator. The vLLM
child is started in its own session, so it outlives the CLI and is recognised later
by its identity (pid + create_time + command line) rather than orphaned (original F3).

Exit codes follow the original: 0 success (``current-model`` prints ``null`` and
exits 0 when nothing is active), 1 for any refusal or failure.
"""

from __future__ import annotations

import argparse
import json
import sys

STOP_WORDS = {"none", "stop"}


def add_subcommands(subparsers) -> None:
    p = subparsers.add_parser(
        "activate-model",
        help="Activate a vLLM model (stopping the current one) or stop the active model",
        description="Start NAME on the single vLLM port and wait until it serves; --stop stops the active model.",
    )
    p.add_argument("name", nargs="?", help="logical model name (or 'none'/'stop')")
    p.add_argument("--stop", action="store_true", help="stop the active vLLM model")
    p.set_defaults(func=cmd_activate_model)
    c = subparsers.add_parser(
        "current-model", help="Print the active vLLM model as JSON (null when none)"
    )
    c.set_defaults(func=cmd_current_model)


def _err(message: str) -> None:
    print(message, file=sys.stderr)


def cmd_activate_model(args: argparse.Namespace) -> int:
    from registry.audit import Actor
    from registry.models import ModelEntry

    from .vllm import service

    name = (args.name or "").strip()
    actor = Actor.cli()
    if args.stop or name.lower() in STOP_WORDS:
        answer = service.request_stop(actor, wait=True)
        if answer.outcome != service.RequestOutcome.DONE:
            _err(f"Failed to stop vLLM: {answer.message}")
            return 1
        # Unlike the original (F16) say so when nothing was running.
        print(answer.message)
        return 0
    if not name:
        _err("activate-model: give a model NAME or --stop")
        return 2
    entry = ModelEntry.objects.filter(name=name).first()
    if entry is None:
        _err(f"Model '{name}' not found in registry")
        return 1
    if (entry.backend or "").lower() != "vllm":
        _err(f"Model '{name}' is not served by vLLM.")
        return 1
    print(f"Activating {name} (this can take minutes)…", file=sys.stderr)
    answer = service.request_activation(entry, actor, wait=True)
    if answer.outcome != service.RequestOutcome.DONE:
        _err(f"Activation failed: {answer.message}")
        return 1
    print(json.dumps(service.state_dict(answer.activation), indent=2))
    return 0


def cmd_current_model(args: argparse.Namespace) -> int:
    from .vllm import service

    print(json.dumps(service.current(), indent=2))
    return 0
