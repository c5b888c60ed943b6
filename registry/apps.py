from django.apps import AppConfig
from django.core.signals import request_finished, request_started


class RegistryConfig(AppConfig):
    name = "registry"
    verbose_name = "Model registry"

    def ready(self) -> None:
        from . import jobs, version
        from .choices import JobKind
        from .services.bulk import bulk_job
        from .services.verify import verify_job
        from .tasks import sync_job

        jobs.register(jobs.JobSpec(JobKind.SYNC, sync_job, "registry.sync_registry"))
        jobs.register(jobs.JobSpec(JobKind.VERIFY, verify_job, "registry.verify_entry"))
        jobs.register(jobs.JobSpec(JobKind.BULK, bulk_job, "registry.lock_entry"))
        request_started.connect(
            version.request_started, dispatch_uid="registry-version"
        )
        request_finished.connect(
            version.request_finished, dispatch_uid="registry-version"
        )
