"""Check before activating: will this entry load? (issue 13 §2)

``run_preflight(entry)`` answers in well under a second for a 10-shard model
(it reads safetensors headers, never hashes) with a :class:`PreflightReport`:
one :class:`Check` per question, each ``ok`` / ``warn`` / ``fail`` / ``skip``
with one sentence a person understands and, when not ok, the fix.

The questions: model path exists, is inside ``IMAGEWORKS_MODEL_ROOTS`` and is
readable; ``config.json`` parses and names an architecture; the launch's
``--max-model-len`` is within the model's own limit; every safetensors header
parses and matches its file's size; the shard index is consistent; tokenizer
files are there; the chat template exists; the served id is unique in the
registry; the port is free or held by our own server; a locked entry's files
match the fingerprint recorded at lock time; ``extra_args`` is a well-formed
argv list without ``--model``/``--port`` overrides; and whether it fits the GPU.

Entry points for the wiring: ``run_preflight`` (activation, drawer, CLI),
``PreflightReport.ok`` / ``refusal()`` (refuse unless overridden with a reason),
``PreflightReport.as_dict()`` (``--json``, audit details).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from django.db import models

from backends import gpu as gpu_mod

from .. import process
from ..command import LaunchRefused, VllmConfig, build_launch, served_model_id
from .base import Check, CheckId, Context, PreflightReport, Status, skip
from .files import file_checks, path_checks
from .runtime import (
    check_chat_template,
    check_extra_args,
    check_fingerprint,
    check_gpu_fit,
    check_port,
    check_served_id,
)

__all__ = ["Check", "CheckId", "PreflightReport", "Status", "run_preflight"]


def run_preflight(
    entry,
    *,
    cfg: VllmConfig | None = None,
    read_gpus: Callable[[], gpu_mod.GpuSnapshot] | None = None,
) -> PreflightReport:
    """Run every check for a ``ModelEntry`` and return the report (never raises
    for a bad entry: every problem is a check)."""
    t0 = time.perf_counter()
    ctx = gather(entry, cfg or VllmConfig.from_settings())
    if read_gpus is not None:
        ctx.read_gpus = read_gpus
    checks = run_checks(ctx)
    return PreflightReport(entry.name, checks, time.perf_counter() - t0)


def gather(entry, cfg: VllmConfig) -> Context:
    """The entry's merged view plus the registry and process facts the checks need."""
    from backends.choices import ActivationState
    from backends.models import Activation
    from registry.models import ModelEntry

    merged = dict(entry.merged or {})
    merged.setdefault("name", entry.name)
    merged.setdefault("backend", entry.backend)
    merged.setdefault("backend_config", entry.backend_config or {})
    merged.setdefault("download_path", entry.download_path)
    merged.setdefault("served_model_id", entry.served_model_id or None)
    ctx = Context(merged=merged, cfg=cfg, locked=bool(entry.locked))
    served = served_model_id(merged)
    for other in ModelEntry.objects.filter(
        models.Q(name=served) | models.Q(served_model_id=served)
    ).exclude(pk=entry.pk):
        if (
            served_model_id(
                {"name": other.name, "served_model_id": other.served_model_id}
            )
            == served
        ):
            ctx.others_with_served_id.append(other.name)
    live = Activation.objects.filter(
        slot="vllm", state__in=ActivationState.live(), pid__isnull=False
    ).first()
    if live is not None and not live.launched_elsewhere and live.mode == "local":
        ident = process.ProcessIdentity(
            pid=live.pid,
            pgid=live.pgid or live.pid,
            create_time=live.create_time or 0.0,
            cmdline_hash=live.cmdline_hash,
            owns_group=live.owns_group,
        )
        ctx.own_pids = {p.pid for p in process.server_processes(ident)}
        ctx.own_name = live.logical_name
    return ctx


def run_checks(ctx: Context) -> list[Check]:
    """All checks in order; later ones are skipped when what they need is missing."""
    checks = path_checks(ctx)
    if ctx.model_dir is not None and ctx.model_dir.is_dir():
        checks += file_checks(ctx)
    else:
        why = (
            "the model is a single file (GGUF): folder checks do not apply"
            if ctx.model_dir is not None and ctx.model_dir.is_file()
            else "no model directory to look into"
        )
        checks += [
            skip(c, why)
            for c in (
                CheckId.CONFIG,
                CheckId.ARCHITECTURE,
                CheckId.MAX_MODEL_LEN,
                CheckId.SAFETENSORS,
                CheckId.INDEX,
                CheckId.TOKENIZER,
            )
        ]
    checks.append(check_chat_template(ctx))
    checks.append(check_served_id(ctx))
    checks.append(check_extra_args(ctx.merged))
    _build_argv(ctx)
    checks.append(check_port(ctx))
    checks.append(check_fingerprint(ctx))
    checks.append(check_gpu_fit(ctx))
    return checks


def _build_argv(ctx: Context) -> None:
    """The launch argv as activation would build it (paths not re-checked)."""
    try:
        spec = build_launch(ctx.merged, ctx.cfg, check_paths=False)
    except LaunchRefused:
        return
    ctx.argv, ctx.port = spec.argv, spec.port
