"""What the GPUs hold: NVML (``nvidia-ml-py``) or ``nvidia-smi``, whichever is there.

``read_gpus()`` returns a :class:`GpuSnapshot`: per GPU total/used/free memory,
utilisation and temperature, and the compute processes holding memory. Which
tool is asked:

1. ``IMAGEWORKS_NVIDIA_SMI`` set (setting or environment): that ``nvidia-smi``
   (an explicit choice wins; the tests point it at ``tests/fakes/fake_nvidia_smi.py``);
2. else NVML, when ``nvidia-ml-py`` is installed (extra ``gpu``) and the driver
   library loads;
3. else ``nvidia-smi`` on ``PATH``.

Absent tooling, a driver that does not answer, a timeout or unparsable output
give ``source=""`` with a ``reason`` ("unknown"), never an exception.
``nvidia-smi`` runs as an argv list with a timeout. No Django import needed.
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field

MIB = 1024 * 1024
GPU_FIELDS = (
    "index",
    "uuid",
    "name",
    "memory.total",
    "memory.used",
    "memory.free",
    "utilization.gpu",
    "temperature.gpu",
)
APP_FIELDS = ("pid", "gpu_uuid", "process_name", "used_memory")
DEFAULT_TIMEOUT = 3.0


@dataclass(frozen=True)
class Gpu:
    index: int
    uuid: str
    name: str
    total_bytes: int
    used_bytes: int
    free_bytes: int
    utilization: int | None = None
    temperature: int | None = None


@dataclass(frozen=True)
class GpuProcess:
    pid: int
    gpu_uuid: str
    gpu_index: int | None
    name: str
    used_bytes: int | None  # None: the driver does not report it (containers, WDDM)


@dataclass
class GpuSnapshot:
    source: str  # "nvml" | "nvidia-smi" | "" (unknown)
    gpus: list[Gpu] = field(default_factory=list)
    processes: list[GpuProcess] = field(default_factory=list)
    reason: str = ""  # why unknown (or a partial failure, e.g. no process list)

    @property
    def known(self) -> bool:
        return bool(self.source) and bool(self.gpus)

    def gpu(self, index: int) -> Gpu | None:
        return next((g for g in self.gpus if g.index == index), None)

    def held_by(self, pids) -> dict[int, int]:
        """Bytes held per GPU index by the processes ``pids`` (unknown figures skipped)."""
        wanted = set(pids)
        out: dict[int, int] = {}
        for proc in self.processes:
            if proc.pid in wanted and proc.used_bytes is not None:
                key = proc.gpu_index if proc.gpu_index is not None else -1
                out[key] = out.get(key, 0) + proc.used_bytes
        return out


def configured_nvidia_smi() -> str:
    """``IMAGEWORKS_NVIDIA_SMI`` from Django settings when configured, else the environment."""
    try:
        from django.conf import settings

        if settings.configured:
            return str(getattr(settings, "IMAGEWORKS_NVIDIA_SMI", "") or "")
    except ImportError:  # pragma: no cover - Django is a dependency
        pass
    return os.environ.get("IMAGEWORKS_NVIDIA_SMI", "")


def default_timeout() -> float:
    """``IMAGEWORKS_NVIDIA_SMI_TIMEOUT`` seconds (3 by default) for one nvidia-smi read."""
    try:
        return float(os.environ.get("IMAGEWORKS_NVIDIA_SMI_TIMEOUT") or DEFAULT_TIMEOUT)
    except ValueError:
        return DEFAULT_TIMEOUT


def read_gpus(
    *, nvidia_smi: str | None = None, timeout: float | None = None
) -> GpuSnapshot:
    """The GPUs and their compute processes, or an "unknown" snapshot saying why."""
    timeout = default_timeout() if timeout is None else timeout
    explicit = configured_nvidia_smi() if nvidia_smi is None else nvidia_smi
    if explicit:
        return read_nvidia_smi(explicit, timeout=timeout)
    nvml = read_nvml()
    if nvml.known:
        return nvml
    found = shutil.which("nvidia-smi")
    if found:
        return read_nvidia_smi(found, timeout=timeout)
    return GpuSnapshot(
        "", reason=f"no GPU tooling: {nvml.reason}; nvidia-smi is not on PATH"
    )


# --- nvidia-smi -------------------------------------------------------------------


def _start(binary: str, query: str, fields) -> subprocess.Popen:
    """Start one ``nvidia-smi --query-...`` (argv list, no shell)."""
    argv = [binary, f"--{query}={','.join(fields)}", "--format=csv,noheader,nounits"]
    return subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _finish(proc: subprocess.Popen, fields, deadline: float) -> list[list[str]]:
    """Rows of stripped strings; RuntimeError on failure, TimeoutExpired on timeout."""
    try:
        out, err = proc.communicate(timeout=max(deadline - time.monotonic(), 0.01))
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise
    if proc.returncode != 0:
        text = (out + err).strip().splitlines()
        raise RuntimeError(text[0] if text else f"exit code {proc.returncode}")
    rows = []
    for row in csv.reader(out.splitlines(), skipinitialspace=True):
        if not row:
            continue
        if len(row) != len(fields):
            raise RuntimeError(f"unexpected output line: {', '.join(row)[:120]}")
        rows.append([c.strip() for c in row])
    return rows


def _num(value: str) -> int | None:
    """nvidia-smi numbers; ``[N/A]`` / ``[Not Supported]`` become None."""
    try:
        return int(float(value))
    except ValueError:
        return None


def read_nvidia_smi(binary: str, *, timeout: float = DEFAULT_TIMEOUT) -> GpuSnapshot:
    """Ask ``nvidia-smi`` for GPUs and compute apps (two runs, side by side)."""
    deadline = time.monotonic() + timeout
    try:
        gpu_proc = _start(binary, "query-gpu", GPU_FIELDS)
        app_proc = _start(binary, "query-compute-apps", APP_FIELDS)
    except FileNotFoundError:
        return GpuSnapshot("", reason=f"{binary} not found")
    except OSError as exc:
        return GpuSnapshot("", reason=f"{binary} failed: {exc}")
    try:
        rows = _finish(gpu_proc, GPU_FIELDS, deadline)
    except subprocess.TimeoutExpired:
        _abandon(app_proc)
        return GpuSnapshot("", reason=f"{binary} did not answer within {timeout:g}s")
    except RuntimeError as exc:
        _abandon(app_proc)
        return GpuSnapshot("", reason=f"{binary} failed: {exc}")
    gpus = []
    for idx, uuid, name, total, used, free, util, temp in rows:
        if _num(idx) is None or _num(total) is None:
            _abandon(app_proc)
            return GpuSnapshot("", reason=f"{binary}: unreadable GPU line for {name}")
        gpus.append(
            Gpu(
                index=_num(idx),
                uuid=uuid,
                name=name,
                total_bytes=_num(total) * MIB,
                used_bytes=(_num(used) or 0) * MIB,
                free_bytes=(_num(free) or 0) * MIB,
                utilization=_num(util),
                temperature=_num(temp),
            )
        )
    snap = GpuSnapshot("nvidia-smi", gpus=gpus)
    by_uuid = {g.uuid: g.index for g in gpus}
    try:
        apps = _finish(app_proc, APP_FIELDS, deadline)
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        snap.reason = f"process list unavailable: {exc}"
        return snap
    for pid, uuid, pname, used in apps:
        if _num(pid) is None:
            continue
        mem = _num(used)
        snap.processes.append(
            GpuProcess(
                pid=_num(pid),
                gpu_uuid=uuid,
                gpu_index=by_uuid.get(uuid),
                name=pname,
                used_bytes=None if mem is None else mem * MIB,
            )
        )
    return snap


def _abandon(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.communicate()


# --- NVML -------------------------------------------------------------------------


def read_nvml() -> GpuSnapshot:
    """Ask NVML through ``nvidia-ml-py``; unknown if it is missing or the driver is."""
    try:
        import pynvml
    except ImportError:
        return GpuSnapshot("", reason="nvidia-ml-py is not installed")
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        return GpuSnapshot("", reason=f"NVML unavailable: {exc}")
    try:
        return _nvml_snapshot(pynvml)
    except pynvml.NVMLError as exc:
        return GpuSnapshot("", reason=f"NVML error: {exc}")
    finally:
        try:
            pynvml.nvmlShutdown()
        except pynvml.NVMLError:
            pass


def _nvml_snapshot(nv) -> GpuSnapshot:
    snap = GpuSnapshot("nvml")
    for i in range(nv.nvmlDeviceGetCount()):
        h = nv.nvmlDeviceGetHandleByIndex(i)
        mem = nv.nvmlDeviceGetMemoryInfo(h)
        uuid = _text(nv.nvmlDeviceGetUUID(h))
        snap.gpus.append(
            Gpu(
                index=i,
                uuid=uuid,
                name=_text(nv.nvmlDeviceGetName(h)),
                total_bytes=int(mem.total),
                used_bytes=int(mem.used),
                free_bytes=int(mem.free),
                utilization=_optional(
                    lambda h=h: nv.nvmlDeviceGetUtilizationRates(h).gpu, nv
                ),
                temperature=_optional(
                    lambda h=h: nv.nvmlDeviceGetTemperature(h, nv.NVML_TEMPERATURE_GPU),
                    nv,
                ),
            )
        )
        for proc in nv.nvmlDeviceGetComputeRunningProcesses(h):
            used = getattr(proc, "usedGpuMemory", None)
            snap.processes.append(
                GpuProcess(
                    pid=int(proc.pid),
                    gpu_uuid=uuid,
                    gpu_index=i,
                    name=_process_name(int(proc.pid)),
                    used_bytes=int(used) if isinstance(used, int) else None,
                )
            )
    return snap


def _optional(read, nv) -> int | None:
    try:
        return int(read())
    except nv.NVMLError:
        return None


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _process_name(pid: int) -> str:
    try:
        import psutil

        return psutil.Process(pid).name()
    except Exception:  # noqa: BLE001 - display only
        return ""


def describe(snapshot: GpuSnapshot) -> str:
    """One line per GPU for CLI output, or why GPUs are unknown."""
    if not snapshot.known:
        return f"GPUs unknown: {snapshot.reason}"
    return "\n".join(
        f"GPU {g.index} {g.name}: {g.used_bytes / 2**30:.1f} of "
        f"{g.total_bytes / 2**30:.1f} GiB used, {g.free_bytes / 2**30:.1f} GiB free"
        for g in snapshot.gpus
    )
