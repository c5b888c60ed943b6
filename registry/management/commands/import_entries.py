"""``manage.py import_entries``: the CLI's ``imageworks-models import`` as a command."""

from django.core.management.base import BaseCommand, CommandError

from registry.cli import importing as cli_import


class Command(BaseCommand):
    help = (
        "Import discovered entries into the curated registry "
        "(NAME... --role R --backend B [--served-id S] [--display-name D] "
        "[--from-file FILE.json|FILE.csv] [--dry-run])."
    )

    def add_arguments(self, parser):
        cli_import.add_arguments(parser)

    def handle(self, *args, **options):
        namespace = type("Args", (), {})()
        for key in (
            "names",
            "roles",
            "backend",
            "served_id",
            "display_name",
            "from_file",
            "dry_run",
        ):
            setattr(namespace, key, options.get(key))
        namespace.roles = namespace.roles or []
        namespace.names = namespace.names or []
        code = cli_import.run(namespace, stdout=self.stdout, stderr=self.stderr)
        if code:
            raise CommandError(
                f"import finished with exit code {code}", returncode=code
            )
