from django.apps import AppConfig


class BackendsConfig(AppConfig):
    name = "backends"
    verbose_name = "Model servers"

    def ready(self) -> None:
        from registry import jobs

        from .tasks import JOB_SPECS

        for spec in JOB_SPECS:
            jobs.register(spec)
