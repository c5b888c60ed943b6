"""Reconcile vLLM activation state with reality (adopt live servers, clean stale state)."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from backends.vllm import service
from registry.audit import Actor


class Command(BaseCommand):
    help = (
        "Adopt a running vLLM started earlier, remove a stale state file, print the "
        "current state. Run it on the vLLM host: a server started on another host is "
        "only reported (its pid is judged there)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--release-host",
            metavar="HOST",
            help="mark the live activation started on HOST failed (a GPU host that "
            "is gone for good), without touching any process",
        )

    def handle(self, *args, release_host=None, **options):
        if release_host:
            try:
                lines = service.release_host(release_host, Actor.cli())
            except service.ActivationError as exc:
                raise CommandError(str(exc)) from exc
            if not lines:
                lines = [f"No live activation was started on host {release_host}."]
            for line in lines:
                self.stdout.write(line)
            return
        for line in service.adopt_or_clean():
            self.stdout.write(line)
        self.stdout.write(json.dumps(service.current(), indent=2))
