"""Measured GPU memory per launch: record it once ready, show it first next time.

* ``record_measurement(activation)``: after an activation reaches ``running``, sum
  what the server and its descendants hold on each GPU (NVML / nvidia-smi
  per-process figures) and store a :class:`~backends.models.MemoryMeasurement`
  with what the formula expected, keyed by ``launch_key(argv)``.
* ``memory_view(name, argv)``: the latest measurement for the same launch, with
  how far the formula was off then (and now, given a fresh estimate).

Both return None rather than raise when nothing can be measured (unknown GPUs,
proxy mode, a server on another host, a driver without per-process figures).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from backends import gpu as gpu_mod
from backends.choices import ActivationMode
from backends.models import Activation, MemoryMeasurement
from registry.normalize import local_path

from . import fit, process
from .server import identity

#: Flags that do not change memory: left out of the key (their value too).
IGNORED_FLAGS = ("--host", "--port", "--served-model-name")


def launch_key(argv: Sequence[str]) -> tuple[str, list[str]]:
    """``(sha256, args)``: the launch arguments from ``--model`` on, minus
    ``IGNORED_FLAGS``, so a different port or launcher path keeps the key."""
    args = list(argv)
    if "--model" in args:
        args = args[args.index("--model") :]
    kept: list[str] = []
    skip_next = False
    for a in args:
        if skip_next:
            skip_next = False
            continue
        name = a.split("=", 1)[0]
        if name in IGNORED_FLAGS:
            skip_next = "=" not in a
            continue
        kept.append(a)
    digest = hashlib.sha256(json.dumps(kept).encode()).hexdigest()
    return digest, kept


def record_measurement(
    act: Activation,
    *,
    snapshot: gpu_mod.GpuSnapshot | None = None,
    estimate: fit.FitEstimate | None = None,
) -> MemoryMeasurement | None:
    """Measure what ``act``'s server holds now and store it (None: nothing measurable)."""
    if act.mode != ActivationMode.LOCAL or act.launched_elsewhere or not act.pid:
        return None
    pids = [p.pid for p in process.server_processes(identity(act))]
    snapshot = snapshot or gpu_mod.read_gpus()
    held = snapshot.held_by(pids) if snapshot.known else {}
    held.pop(-1, None)  # a figure without a GPU cannot be compared with one
    if not held:
        return None
    if estimate is None and act.entry is not None and act.entry.model_dir:
        estimate = fit.estimate(
            local_path(act.entry.model_dir),
            act.command or [],
            snapshot,
            reclaimable=held,
            gpu_indexes=sorted(held),
        )
    key, args = launch_key(act.command or [])
    return MemoryMeasurement.objects.create(
        entry=act.entry,
        logical_name=act.logical_name,
        launch_key=key,
        launch_args=args,
        activation=act,
        measured_bytes=max(held.values()),
        per_gpu={str(i): b for i, b in sorted(held.items())},
        gpu_names=[g.name for g in snapshot.gpus if g.index in held],
        estimated_bytes=estimate.expected_hold_bytes if estimate else None,
        source=snapshot.source,
    )


@dataclass
class MemoryView:
    """What the drawer and preflight show: measured first, then the formula's error."""

    measured_bytes: int
    measured_at: datetime
    per_gpu: dict[str, int]
    estimated_then: int | None
    estimate_now: int | None = None

    @staticmethod
    def _off(estimate: int | None, measured: int) -> float | None:
        if estimate is None or measured <= 0:
            return None
        return (estimate - measured) / measured

    @property
    def error_then(self) -> float | None:
        """(formula - measured) / measured at measurement time; +0.1 = 10 % high."""
        return self._off(self.estimated_then, self.measured_bytes)

    @property
    def error_now(self) -> float | None:
        return self._off(self.estimate_now, self.measured_bytes)

    @property
    def text(self) -> str:
        gpus = ", ".join(f"GPU {i}" for i in self.per_gpu)
        line = (
            f"Measured {self.measured_bytes / 2**30:.1f} GiB on {gpus} "
            f"({self.measured_at:%Y-%m-%d %H:%M})"
        )
        err = self.error_now if self.error_now is not None else self.error_then
        est = (
            self.estimate_now if self.estimate_now is not None else self.estimated_then
        )
        if err is not None:
            line += f"; the formula says {est / 2**30:.1f} GiB ({err:+.0%})"
        return line + "."


def memory_view(
    logical_name: str, argv: Sequence[str], *, estimate: fit.FitEstimate | None = None
) -> MemoryView | None:
    """The latest measurement of this model with the same launch arguments."""
    key, _ = launch_key(argv)
    row = MemoryMeasurement.objects.filter(
        logical_name=logical_name, launch_key=key
    ).first()
    if row is None:
        return None
    return MemoryView(
        measured_bytes=row.measured_bytes,
        measured_at=row.measured_at,
        per_gpu=dict(row.per_gpu),
        estimated_then=row.estimated_bytes,
        estimate_now=estimate.expected_hold_bytes if estimate else None,
    )
