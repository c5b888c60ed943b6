from django.core.management.base import BaseCommand, CommandError

from registry.audit import Actor
from registry.services.sync import sync_registry


class Command(BaseCommand):
    help = "Reload the registry mirror from the JSON layer files (a cheap no-op when nothing changed)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--force",
            action="store_true",
            help="re-read the files even if they look unchanged",
        )

    def handle(self, *args, force, **opts):
        result = sync_registry(Actor.cli(), force=force)
        if not result.ok:
            raise CommandError(result.summary())
        self.stdout.write(result.summary())
        for problem in result.problems:
            self.stderr.write(
                f"skipped {problem['file']}[{problem['index']}] {problem['name'] or ''}: {problem['reason']}"
            )
