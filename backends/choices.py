"""Choice sets for model servers and their health."""

from django.db import models


class ActivationState(models.TextChoices):
    STARTING = "starting", "Activating"
    RUNNING = "running", "Active"
    STOPPING = "stopping", "Stopping"
    STOPPED = "stopped", "Stopped"
    FAILED = "failed", "Failed"

    @classmethod
    def live(cls) -> tuple[str, ...]:
        return (cls.STARTING, cls.RUNNING, cls.STOPPING)


class ActivationMode(models.TextChoices):
    LOCAL = "local", "Local process"
    PROXY = "proxy", "Remote admin service"


class RequestOutcome(models.TextChoices):
    """What became of an activate or stop request (``service.request_activation``)."""

    QUEUED = "queued", "Queued"  # a job will do it
    DONE = "done", "Done"  # done in this process (the CLI)
    REFUSED = "refused", "Refused"  # it cannot work; nothing changed
    BUSY = "busy", "Busy"  # another activation or stop holds or claimed the slot
    FAILED = "failed", "Failed"  # started or stopped here, and it failed


class HealthStatus(models.TextChoices):
    UNKNOWN = "unknown", "Never checked"
    ONLINE = "online", "Ready"
    DEGRADED = "degraded", "Degraded"
    STARTING = "starting", "Starting"
    OFFLINE = "offline", "Offline"
    ERROR = "error", "Error"
    NOT_CONFIGURED = "not_configured", "Not configured"

    @property
    def colour(self) -> str:
        return {
            "online": "green",
            "degraded": "amber",
            "starting": "amber",
            "offline": "red",
            "error": "red",
        }.get(self.value, "grey")


class BackendKind(models.TextChoices):
    VLLM = "vllm", "vLLM"
    OLLAMA = "ollama", "Ollama"
    LMDEPLOY = "lmdeploy", "LMDeploy"
    TRITON = "triton", "Triton"
    OPENAI = "openai", "OpenAI-compatible"
