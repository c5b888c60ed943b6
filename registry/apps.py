from django.apps import AppConfig


class RegistryConfig(AppConfig):
    name = "registry"
    verbose_name = "Model registry"

    def ready(self) -> None:
        from . import jobs
        from .choices import JobKind
        from .services.verify import verify_job
        from .tasks import sync_job

        jobs.register(jobs.JobSpec(JobKind.SYNC, sync_job, "registry.sync_registry"))
        jobs.register(jobs.JobSpec(JobKind.VERIFY, verify_job, "registry.verify_entry"))
