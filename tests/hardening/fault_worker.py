"""A victim process for the kill -9 tests (tests/hardening/test_faults.py).

``python -m tests.hardening.fault_worker COMMAND [ARG]`` against the settings given by
the environment (a file SQLite database and a temp registry). Loops run until killed.
Commands that report print one JSON line.
"""

from __future__ import annotations

import json
import os
import sys


def main(argv: list[str]) -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "imageworks_site.settings")
    import django

    django.setup()
    from registry import layers
    from registry.audit import Actor
    from registry.choices import Action

    command, arg = argv[0], (argv[1] if len(argv) > 1 else "")
    actor = Actor.system("fault-worker")
    print("READY", flush=True)
    if command == "edit-loop":
        from registry.services.writeback import change_entry

        i = 0
        while True:
            i += 1
            change_entry(
                actor,
                Action.EDIT,
                arg,
                layers.CURATED,
                mutate=lambda raw, i=i: {**(raw or {}), "display_name": f"edit {i}"},
                expected_fingerprint=None,
            )
    if command == "lock-loop":
        from registry.services.verify import lock, unlock

        while True:
            lock(arg, actor, set_expected=True)
            unlock(arg, actor)
    if command == "activate":
        from backends.vllm import service
        from registry.models import ModelEntry

        # The sample registry's model folders hold placeholder files: these tests
        # are about crashes, not preflight, so it is overridden (with a reason).
        options = service.SlotOptions(
            override_preflight=True, reason="fault test: sample placeholder files"
        )
        service.activate(ModelEntry.objects.get(name=arg), actor, options=options)
        print("ACTIVE", flush=True)
        return 0
    if command == "enqueue-verify":
        from django.db import transaction

        from registry.choices import JobKind
        from registry.jobs import enqueue
        from registry.models import ModelEntry

        with transaction.atomic():
            job = enqueue(
                JobKind.VERIFY,
                actor=actor,
                entry=ModelEntry.objects.get(name=arg),
            )
        print(json.dumps({"job": job.pk}), flush=True)
        return 0
    if command == "reap":
        from django.core.management import call_command

        call_command("jobs_reap", "--max-silence", arg or "600")
        return 0
    if command == "state":
        return _state(reconcile=arg == "reconcile")
    print(f"unknown command {command}", file=sys.stderr)
    return 2


def _state(*, reconcile: bool) -> int:
    from backends.models import Activation
    from backends.vllm import service, statefile
    from registry.models import Job

    done = service.adopt_or_clean() if reconcile else []
    cfg = service.config()
    try:
        state = statefile.read_state(statefile.state_path(cfg.staging_dir))
    except statefile.InvalidState as exc:
        state = {"invalid": str(exc)}
    print(
        json.dumps(
            {
                "reconciled": done,
                "state_file": state,
                "activations": [
                    {"pk": a.pk, "state": a.state, "pid": a.pid, "error": a.error}
                    for a in Activation.objects.order_by("pk")
                ],
                "jobs": [
                    {"pk": j.pk, "status": j.status, "error": j.error, "kind": j.kind}
                    for j in Job.objects.order_by("pk")
                ],
            }
        ),
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
