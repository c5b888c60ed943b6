from django.apps import AppConfig
from django.core.signals import request_finished, request_started


class RegistryConfig(AppConfig):
    name = "registry"
    verbose_name = "Model registry"

    def ready(self) -> None:
        from . import jobs, version
        from .choices import JobKind

        jobs.register(
            jobs.JobSpec(
                JobKind.SYNC,
                jobs.Lazy("registry.tasks.sync_job"),
                "registry.sync_registry",
                background=True,
            )
        )
        jobs.register(
            jobs.JobSpec(
                JobKind.VERIFY,
                jobs.Lazy("registry.services.verify.jobs.verify_job"),
                "registry.verify_entry",
                background=True,
            )
        )
        jobs.register(
            jobs.JobSpec(
                JobKind.BULK,
                jobs.Lazy("registry.services.bulk.bulk_job"),
                "registry.lock_entry",
                background=True,
            )
        )
        request_started.connect(
            version.request_started, dispatch_uid="registry-version"
        )
        request_finished.connect(
            version.request_finished, dispatch_uid="registry-version"
        )
