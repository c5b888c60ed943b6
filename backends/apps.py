from django.apps import AppConfig


class BackendsConfig(AppConfig):
    name = "backends"
    verbose_name = "Model servers"

    def ready(self) -> None:
        from registry import jobs
        from registry.choices import JobKind

        # Named, not imported: backends.tasks imports the vLLM service (httpx,
        # psutil), which only the processes that run these jobs need.
        queue = jobs.Lazy("backends.tasks.vllm_queue")
        for kind, func in (
            (JobKind.ACTIVATE, "activate_job"),
            (JobKind.STOP, "stop_job"),
        ):
            jobs.register(
                jobs.JobSpec(
                    kind,
                    jobs.Lazy(f"backends.tasks.{func}"),
                    "backends.control_backend",
                    queue,
                )
            )
