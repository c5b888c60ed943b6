"""``activate-model NAME | --stop``, ``current-model``, ``preflight NAME``, ``show-backends``.

Same services, rules, lock and state as the site (``backends.vllm.service``;
``request_activation(..., wait=True)`` refuses while another activation or stop runs
or is queued), run in the CLI process with the OS user as the operator. The vLLM
child is started in its own session, so it outlives the CLI and is recognised later
by its identity (pid + create_time + command line) rather than orphaned (original F3).

The operator's choices are the site's (``service.SlotOptions``):
``--override-preflight --reason TEXT`` activates although preflight checks failed;
``--drain SECONDS`` waits up to SECONDS for the running model's in-flight requests
before stopping or replacing it, ``--force --reason TEXT`` stops it now.

Exit codes follow the original: 0 success (``current-model`` prints ``null`` and
exits 0 when nothing is active), 1 for any refusal or failure, 2 for bad usage.
``preflight``: 0 every check passed, 1 a check failed, 2 unknown or non-vLLM model.
"""

from __future__ import annotations

import argparse
import json
import sys

STOP_WORDS = {"none", "stop"}
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
STATUS_WORDS = {"ok": "ok", "warn": "warn", "fail": "FAIL", "skip": "skip"}


def add_subcommands(subparsers) -> None:
    p = subparsers.add_parser(
        "activate-model",
        help="Activate a vLLM model (stopping the current one) or stop the active model",
        description=(
            "Start NAME on the single vLLM port and wait until it serves; --stop "
            "stops the active model. Preflight runs first; when the running model "
            "is answering requests, choose --drain SECONDS or --force --reason."
        ),
    )
    p.add_argument("name", nargs="?", help="logical model name (or 'none'/'stop')")
    p.add_argument("--stop", action="store_true", help="stop the active vLLM model")
    p.add_argument(
        "--override-preflight",
        action="store_true",
        help="activate even though preflight checks failed (needs --reason)",
    )
    inflight = p.add_mutually_exclusive_group()
    inflight.add_argument(
        "--drain",
        type=float,
        metavar="SECONDS",
        default=0.0,
        help="wait up to SECONDS for the running model's in-flight requests, then stop it",
    )
    inflight.add_argument(
        "--force",
        action="store_true",
        help="stop the running model now, cutting in-flight requests (needs --reason)",
    )
    p.add_argument(
        "--reason", default="", help="why (recorded in the audit log)", metavar="TEXT"
    )
    p.set_defaults(func=cmd_activate_model)
    c = subparsers.add_parser(
        "current-model", help="Print the active vLLM model as JSON (null when none)"
    )
    c.set_defaults(func=cmd_current_model)
    f = subparsers.add_parser(
        "preflight",
        help="check whether a vLLM model would load, without starting it",
        description=(
            "Run the checks activation runs first (files, safetensors headers, "
            "tokenizer, context length, served id, port, lock fingerprint, "
            "extra_args, GPU memory). Exit 0 all passed, 1 a check failed, "
            "2 unknown or non-vLLM model."
        ),
    )
    f.add_argument("name", metavar="NAME")
    f.add_argument("--json", action="store_true", help="print the report as JSON")
    f.set_defaults(func=cmd_preflight)
    _add_show_backends(subparsers)


def _err(message: str) -> None:
    print(message, file=sys.stderr)


def _options(args: argparse.Namespace):
    """The operator's choices, or None after printing why they are unusable."""
    from .vllm import service

    options = service.SlotOptions(
        override_preflight=args.override_preflight,
        drain_s=args.drain,
        force=args.force,
        reason=args.reason.strip(),
    )
    problem = options.problem()
    if problem:
        needs_reason = (args.force or args.override_preflight) and not options.reason
        _err(
            f"activate-model: {problem}"
            + (" Add --reason TEXT." if needs_reason else "")
        )
        return None
    return options


def cmd_activate_model(args: argparse.Namespace) -> int:
    from registry.audit import Actor
    from registry.models import ModelEntry

    from .vllm import service

    name = (args.name or "").strip()
    stopping = args.stop or name.lower() in STOP_WORDS
    if stopping and args.override_preflight:
        _err("activate-model: --override-preflight applies to activation, not --stop")
        return EXIT_USAGE
    options = _options(args)
    if options is None:
        return EXIT_USAGE
    actor = Actor.cli()
    if stopping:
        answer = service.request_stop(actor, wait=True, options=options, notify=_err)
        if answer.outcome != service.RequestOutcome.DONE:
            _err(f"Failed to stop vLLM: {answer.message}")
            _hints(answer, stopping=True)
            return EXIT_FAILED
        # Unlike the original (F16) say so when nothing was running.
        print(answer.message)
        return EXIT_OK
    if not name:
        _err("activate-model: give a model NAME or --stop")
        return EXIT_USAGE
    entry = ModelEntry.objects.filter(name=name).first()
    if entry is None:
        _err(f"Model '{name}' not found in registry")
        return EXIT_FAILED
    if (entry.backend or "").lower() != "vllm":
        _err(f"Model '{name}' is not served by vLLM.")
        return EXIT_FAILED
    print(f"Activating {name} (this can take minutes)…", file=sys.stderr)
    answer = service.request_activation(
        entry, actor, wait=True, options=options, notify=_err
    )
    if answer.outcome != service.RequestOutcome.DONE:
        if answer.preflight is not None:
            _err(f"Activation refused: preflight failed for {name}:")
            _print_checks(answer.preflight.failed, sys.stderr)
        else:
            _err(f"Activation failed: {answer.message}")
        _hints(answer, stopping=False, name=name)
        return EXIT_FAILED
    print(json.dumps(service.state_dict(answer.activation), indent=2))
    return EXIT_OK


def _hints(answer, *, stopping: bool, name: str = "") -> None:
    """How to proceed after a refusal the operator can override."""
    import shlex

    if answer.preflight is not None:
        _err(
            "Fix the files, or activate anyway: imageworks-models activate-model "
            f"{shlex.quote(name)} --override-preflight --reason TEXT"
        )
    if answer.in_flight is not None:
        again = "--stop" if stopping else shlex.quote(name)
        _err(
            f"Wait for them: imageworks-models activate-model {again} --drain SECONDS\n"
            f"or cut them off: imageworks-models activate-model {again} --force --reason TEXT"
        )


def cmd_current_model(args: argparse.Namespace) -> int:
    from .vllm.status import current  # not the whole service: start-up time

    print(json.dumps(current(), indent=2))
    return EXIT_OK


def cmd_preflight(args: argparse.Namespace) -> int:
    from registry.models import ModelEntry

    from .vllm.preflight import run_preflight

    entry = ModelEntry.objects.filter(name=args.name).first()
    if entry is None:
        _err(f"Model '{args.name}' not found in registry")
        return EXIT_USAGE
    if (entry.backend or "").lower() != "vllm":
        _err(
            f"Model '{args.name}' is not served by vLLM; preflight checks vLLM launches."
        )
        return EXIT_USAGE
    report = run_preflight(entry)
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        failed, total = len(report.failed), len(report.checks)
        verdict = (
            "every check passed" if report.ok else f"{failed} of {total} checks failed"
        )
        print(f"Preflight for {entry.name}: {verdict} ({report.elapsed_s:.2f}s)")
        _print_checks(report.checks, sys.stdout)
    return EXIT_OK if report.ok else EXIT_FAILED


def _print_checks(checks, stream) -> None:
    """``  FAIL  Weight files     message`` then ``        fix: ...`` per check."""
    width = max((len(c.label) for c in checks), default=0)
    for c in checks:
        print(
            f"  {STATUS_WORDS[c.status]:<4}  {c.label:<{width}}  {c.message}",
            file=stream,
        )
        if c.fix and c.status in ("fail", "warn"):
            print(f"  {'':<4}  {'':<{width}}  fix: {c.fix}", file=stream)


def _add_show_backends(subparsers) -> None:
    parser = subparsers.add_parser(
        "show-backends",
        help="check every backend now and show its health",
        description=(
            "Check vLLM (active model), Ollama, LMDeploy, Triton and OpenAI-compatible "
            "endpoints now (concurrently) and print status, since when, latency, "
            "last error and what each serves."
        ),
    )
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument(
        "--timeout", type=float, default=None, help="probe timeout in seconds"
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="exit 1 when a configured endpoint is not ready",
    )
    parser.set_defaults(func=cmd_show_backends)


def cmd_show_backends(args: argparse.Namespace) -> int:
    """``show-backends``: the health package is imported only when the command runs."""
    from .health.cli import show_backends

    return show_backends(args)
