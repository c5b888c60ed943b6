"""Reconcile vLLM activation state with reality (adopt live servers, clean stale state)."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand

from backends.vllm import service


class Command(BaseCommand):
    help = "Adopt a running vLLM started earlier, remove a stale state file, print the current state."

    def handle(self, *args, **options):
        for line in service.adopt_or_clean():
            self.stdout.write(line)
        self.stdout.write(json.dumps(service.current(), indent=2))
