"""What the screens show about GPU memory (issue 13 §3).

* :func:`fit_view` for the drawer: the fit estimate of an entry's launch against
  the GPUs now, and the memory its server was measured to hold last time with the
  same launch arguments (shown first, with how far the formula was off).
* :func:`gpu_panel` for the Backends page and the Models page's card: per GPU
  total/used/free and the processes holding memory, our served model marked.

GPUs that cannot be read (no NVML, no ``nvidia-smi``, a driver that does not
answer) are "unknown" with the reason, never an error.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from backends import gpu as gpu_mod
from backends.choices import ActivationMode
from backends.models import Activation
from registry.models import ModelEntry

from . import fit
from .command import (
    LaunchRefused,
    VllmConfig,
    build_launch,
    merged_for_launch,
    resolve_model_path,
)
from .memory import MemoryView, memory_view
from .server import own_server_pids
from .slot import live_activation

ReadGpus = Callable[[], gpu_mod.GpuSnapshot]


@dataclass
class FitView:
    """The drawer's GPU memory line: measured first, then the estimate."""

    estimate: fit.FitEstimate | None = None
    measured: MemoryView | None = None
    note: str = ""  # why there is no estimate


def _no_estimate(exc: Exception) -> str:
    """``No estimate: <why>.`` with one full stop, whether or not the reason ends in one."""
    return f"No estimate: {str(exc).rstrip('.')}."


def fit_view(
    entry: ModelEntry,
    *,
    cfg: VllmConfig | None = None,
    read_gpus: ReadGpus = gpu_mod.read_gpus,
) -> FitView:
    """The fit of ``entry``'s launch on the GPUs now, and its last measurement."""
    cfg = cfg or VllmConfig.from_settings()
    merged = merged_for_launch(entry)
    try:
        spec = build_launch(merged, cfg, check_paths=False)
    except LaunchRefused as exc:
        return FitView(note=_no_estimate(exc))
    measured = memory_view(entry.name, spec.argv)
    if cfg.proxy_mode:
        return FitView(
            measured=measured, note="The GPUs are on the vLLM admin service's host."
        )
    try:
        model_dir = Path(resolve_model_path(merged, cfg, check=True))
    except LaunchRefused as exc:
        return FitView(measured=measured, note=_no_estimate(exc))
    snapshot = read_gpus()
    live = _local_live()
    reclaim = snapshot.held_by(own_server_pids(live)) if snapshot.known else {}
    est = fit.estimate(model_dir, spec.argv, snapshot, reclaimable=reclaim)
    if measured is not None:
        measured = memory_view(entry.name, spec.argv, estimate=est)
    return FitView(estimate=est, measured=measured)


@dataclass
class ProcessRow:
    pid: int
    name: str
    used_bytes: int | None
    model: str = ""  # our served model's name when the process is its server


@dataclass
class GpuRow:
    gpu: gpu_mod.Gpu
    processes: list[ProcessRow] = field(default_factory=list)

    @property
    def used_fraction(self) -> float:
        return (
            self.gpu.used_bytes / self.gpu.total_bytes if self.gpu.total_bytes else 0.0
        )

    @property
    def ours_bytes(self) -> int:
        return sum(p.used_bytes or 0 for p in self.processes if p.model)


@dataclass
class GpuPanel:
    source: str
    rows: list[GpuRow]
    reason: str = ""  # why unknown (or what part is missing)
    model: str = ""  # the served model whose processes are marked

    @property
    def known(self) -> bool:
        return bool(self.rows)


def gpu_panel(*, read_gpus: ReadGpus = gpu_mod.read_gpus) -> GpuPanel:
    """Every GPU with its memory and the processes holding it (ours marked)."""
    snapshot = read_gpus()
    if not snapshot.known:
        return GpuPanel("", [], reason=snapshot.reason or "no GPU found")
    live = _local_live()
    ours = set(own_server_pids(live))
    model = live.logical_name if live is not None else ""
    rows = {g.index: GpuRow(g) for g in sorted(snapshot.gpus, key=lambda g: g.index)}
    for proc in snapshot.processes:
        row = rows.get(proc.gpu_index)
        if row is None:
            continue
        row.processes.append(
            ProcessRow(
                pid=proc.pid,
                name=Path(proc.name).name or proc.name or "?",
                used_bytes=proc.used_bytes,
                model=model if proc.pid in ours else "",
            )
        )
    for row in rows.values():
        row.processes.sort(key=lambda p: (not p.model, -(p.used_bytes or 0)))
    return GpuPanel(snapshot.source, list(rows.values()), snapshot.reason, model)


def _local_live() -> Activation | None:
    """The live activation when its processes are on this machine (else None)."""
    live = live_activation()
    if live is None or live.mode != ActivationMode.LOCAL or live.launched_elsewhere:
        return None
    return live
