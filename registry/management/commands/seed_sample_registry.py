from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

from registry.sample import write_sample_registry


class Command(BaseCommand):
    help = "Write the sample registry (a dozen entries + small model folders) unless one exists."

    def add_arguments(self, parser):
        parser.add_argument(
            "--dir",
            type=Path,
            default=None,
            help="registry folder (default: IMAGEWORKS_REGISTRY_DIR)",
        )
        parser.add_argument(
            "--models-dir",
            type=Path,
            default=None,
            help="where the sample model folders go (default: var/sample-models)",
        )
        parser.add_argument(
            "--force", action="store_true", help="overwrite existing registry files"
        )

    def handle(self, *args, dir, models_dir, force, **opts):
        registry_dir = (dir or Path(settings.IMAGEWORKS_REGISTRY_DIR)).resolve()
        models_dir = (models_dir or Path(settings.VAR_DIR) / "sample-models").resolve()
        if write_sample_registry(registry_dir, models_dir, force=force):
            self.stdout.write(
                self.style.SUCCESS(
                    f"Wrote the sample registry to {registry_dir} (models in {models_dir})"
                )
            )
        else:
            self.stdout.write(
                f"A registry already exists in {registry_dir}; left it alone (use --force to overwrite)."
            )
