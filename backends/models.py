"""Model-server state: vLLM activations and backend health."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from .choices import ActivationMode, ActivationState, BackendKind, HealthStatus


class Activation(models.Model):
    """One attempt to serve a vLLM model, from request to stop (state machine + history).

    At most one activation per ``slot`` is live (starting/running/stopping); the
    partial unique constraint enforces that across every web process and worker.
    """

    slot = models.CharField(max_length=64, default="vllm")
    entry = models.ForeignKey(
        "registry.ModelEntry",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="activations",
    )
    logical_name = models.CharField(max_length=500, db_index=True)
    served_model_id = models.CharField(max_length=500)
    state = models.CharField(
        max_length=16,
        choices=ActivationState.choices,
        default=ActivationState.STARTING,
        db_index=True,
    )
    mode = models.CharField(
        max_length=16, choices=ActivationMode.choices, default=ActivationMode.LOCAL
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    user_name = models.CharField(max_length=150, blank=True)
    command = models.JSONField(default=list, blank=True)
    # The bind host passed to vLLM (--host), not the machine: see host_name.
    host = models.CharField(max_length=255, default="127.0.0.1")
    port = models.PositiveIntegerField()
    # The machine that launched the server (IMAGEWORKS_HOST_NAME). Its pid, pgid and
    # create_time mean something only there; empty = recorded before hosts were
    # tracked (single-host), judged locally as before.
    host_name = models.CharField(max_length=255, blank=True, db_index=True)
    # Where other machines can reach the server ("" = only on host_name's loopback).
    base_url = models.CharField(max_length=500, blank=True)
    pid = models.IntegerField(null=True, blank=True)
    pgid = models.IntegerField(null=True, blank=True)
    # psutil create_time + a hash of the command line: a reused pid never counts as ours.
    create_time = models.FloatField(null=True, blank=True)
    cmdline_hash = models.CharField(max_length=64, blank=True)
    # True: we launched the server in a new session, so its process group is ours to
    # signal on stop. False: adopted (someone else started it, maybe inside their own
    # group): only the server and its descendants are signalled. None: not recorded.
    owns_group = models.BooleanField(null=True, blank=True)
    log_path = models.TextField(blank=True)
    requested_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    ready_at = models.DateTimeField(null=True, blank=True)
    stopped_at = models.DateTimeField(null=True, blank=True)
    time_to_ready_s = models.FloatField(null=True, blank=True)
    exit_code = models.IntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    job = models.ForeignKey(
        "registry.Job",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="activations",
    )
    last_updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-requested_at", "-pk"]
        permissions = [("control_backend", "Can activate and stop model servers")]
        constraints = [
            models.UniqueConstraint(
                fields=["slot"],
                condition=Q(state__in=["starting", "running", "stopping"]),
                name="one_live_activation_per_slot",
            )
        ]

    def __str__(self) -> str:
        return f"{self.logical_name} ({self.state})"

    @property
    def is_live(self) -> bool:
        return self.state in ActivationState.live()

    @property
    def launched_elsewhere(self) -> bool:
        """A local-mode server started on another machine (its pid means nothing here)."""
        return (
            self.mode == ActivationMode.LOCAL
            and bool(self.host_name)
            and self.host_name != settings.IMAGEWORKS_HOST_NAME
        )


class BackendEndpoint(models.Model):
    """Current health of one backend endpoint (one row per endpoint, updated in place)."""

    key = models.CharField(max_length=300, unique=True)
    kind = models.CharField(max_length=16, choices=BackendKind.choices, db_index=True)
    label = models.CharField(max_length=200)
    url = models.CharField(max_length=500, blank=True)
    status = models.CharField(
        max_length=16, choices=HealthStatus.choices, default=HealthStatus.UNKNOWN
    )
    since = models.DateTimeField(null=True, blank=True)
    last_checked = models.DateTimeField(null=True, blank=True)
    latency_ms = models.FloatField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["kind", "key"]

    def __str__(self) -> str:
        return f"{self.label}: {self.status}"


class HealthTransition(models.Model):
    """A change of an endpoint's status (online -> offline ...), not one row per poll."""

    endpoint = models.ForeignKey(
        BackendEndpoint, on_delete=models.CASCADE, related_name="transitions"
    )
    time = models.DateTimeField(default=timezone.now, db_index=True)
    old_status = models.CharField(max_length=16, choices=HealthStatus.choices)
    new_status = models.CharField(max_length=16, choices=HealthStatus.choices)
    reason = models.TextField(blank=True)

    class Meta:
        ordering = ["-time", "-pk"]

    def __str__(self) -> str:
        return f"{self.endpoint.key}: {self.old_status} -> {self.new_status}"


class MemoryMeasurement(models.Model):
    """What a vLLM server really held on the GPUs once ready, per launch (issue 13 §3).

    Keyed by the model and the launch arguments that change memory
    (``backends.vllm.memory.launch_key``), so the next activation with the same
    arguments can show the measured figure first, and how far the formula was off.
    """

    entry = models.ForeignKey(
        "registry.ModelEntry",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="memory_measurements",
    )
    logical_name = models.CharField(max_length=500)
    launch_key = models.CharField(max_length=64)
    launch_args = models.JSONField(default=list, blank=True)
    activation = models.ForeignKey(
        Activation,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="memory_measurements",
    )
    # The largest figure of any one GPU (what must be free there next time).
    measured_bytes = models.BigIntegerField()
    per_gpu = models.JSONField(default=dict, blank=True)  # {"0": bytes, ...}
    gpu_names = models.JSONField(default=list, blank=True)
    # What the formula expected the server to hold, per GPU, for the same launch.
    estimated_bytes = models.BigIntegerField(null=True, blank=True)
    source = models.CharField(max_length=16, blank=True)  # nvml | nvidia-smi
    measured_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-measured_at", "-pk"]
        indexes = [
            models.Index(
                fields=["logical_name", "launch_key", "-measured_at"],
                name="memory_by_launch",
            )
        ]

    def __str__(self) -> str:
        return f"{self.logical_name}: {self.measured_bytes / 2**30:.1f} GiB"
