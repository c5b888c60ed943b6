"""The report types of preflight: statuses, check ids, checks, the report, the context."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from django.db import models

from backends import gpu as gpu_mod

from .. import modelfiles
from ..command import VllmConfig


class Status(models.TextChoices):
    OK = "ok", "OK"
    WARN = "warn", "Warning"
    FAIL = "fail", "Failed"
    SKIP = "skip", "Skipped"


class CheckId(models.TextChoices):
    PATH = "path", "Model path"
    ROOTS = "model_roots", "Inside the model roots"
    READABLE = "readable", "Readable"
    CONFIG = "config", "config.json"
    ARCHITECTURE = "architecture", "Architecture"
    MAX_MODEL_LEN = "max_model_len", "Context length"
    SAFETENSORS = "safetensors", "Weight files"
    INDEX = "index", "Shard index"
    TOKENIZER = "tokenizer", "Tokenizer"
    CHAT_TEMPLATE = "chat_template", "Chat template"
    SERVED_ID = "served_id", "Served id"
    PORT = "port", "Port"
    FINGERPRINT = "lock_fingerprint", "Locked files"
    EXTRA_ARGS = "extra_args", "extra_args"
    GPU_FIT = "gpu_fit", "GPU memory"


@dataclass
class Check:
    id: str
    status: str
    message: str
    fix: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return CheckId(self.id).label


def ok(cid, message, **details) -> Check:
    return Check(cid, Status.OK, message, details=details)


def warn(cid, message, fix="", **details) -> Check:
    return Check(cid, Status.WARN, message, fix, details)


def fail(cid, message, fix="", **details) -> Check:
    return Check(cid, Status.FAIL, message, fix, details)


def skip(cid, message, **details) -> Check:
    return Check(cid, Status.SKIP, message, details=details)


@dataclass
class PreflightReport:
    name: str
    checks: list[Check]
    elapsed_s: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.status == Status.FAIL]

    @property
    def warnings(self) -> list[Check]:
        return [c for c in self.checks if c.status == Status.WARN]

    def get(self, cid: str) -> Check | None:
        return next((c for c in self.checks if c.id == cid), None)

    def refusal(self) -> str:
        """The message activation refuses with ("" when nothing failed)."""
        if self.ok:
            return ""
        lines = "; ".join(
            f"{c.message} ({c.fix})" if c.fix else c.message for c in self.failed
        )
        return f"Preflight failed for {self.name}: {lines}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ok": self.ok,
            "elapsed_s": round(self.elapsed_s, 4),
            "checks": [{**asdict(c), "label": c.label} for c in self.checks],
        }


@dataclass
class Context:
    """What the checks need, gathered once (Django lookups happen only here)."""

    merged: Mapping[str, Any]
    cfg: VllmConfig
    locked: bool = False
    others_with_served_id: list[str] = field(default_factory=list)
    own_pids: set[int] = field(default_factory=set)
    own_name: str = ""
    own_memory: dict[int, int] = field(default_factory=dict)
    read_gpus: Callable[[], gpu_mod.GpuSnapshot] = gpu_mod.read_gpus
    model_dir: Path | None = None
    argv: list[str] = field(default_factory=list)
    port: int | None = None
    config: dict[str, Any] | None = None
    headers: dict[str, modelfiles.SafetensorsHeader] = field(default_factory=dict)
