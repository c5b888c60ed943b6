"""Preflight checks beyond the folder: template, served id, extra_args, port, lock, GPU."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .. import fit, modelfiles, process
from ..command import (
    LaunchRefused,
    duplicate_flags,
    extra_args,
    flag_value,
    has_flag,
    resolve_chat_template,
    served_model_id,
)
from .base import Check, CheckId, Context, fail, ok, skip, warn


def check_chat_template(ctx: Context) -> Check:
    if has_flag(extra_args(ctx.merged), "--chat-template"):
        return ok(CheckId.CHAT_TEMPLATE, "extra_args sets --chat-template.")
    local = (not ctx.cfg.proxy_mode) or ctx.cfg.admin_check_paths
    try:
        path = resolve_chat_template(ctx.merged, ctx.cfg, check=local)
    except LaunchRefused as exc:
        return fail(
            CheckId.CHAT_TEMPLATE, f"{exc}.", "Fix chat_template.path or remove it."
        )
    if path is None:
        return ok(
            CheckId.CHAT_TEMPLATE,
            "No chat template named; vLLM uses the tokenizer's own.",
        )
    return ok(CheckId.CHAT_TEMPLATE, f"Chat template {path} exists.")


def check_served_id(ctx: Context) -> Check:
    served = served_model_id(ctx.merged)
    if ctx.others_with_served_id:
        return fail(
            CheckId.SERVED_ID,
            f"The served id {served!r} is also used by {modelfiles.few(ctx.others_with_served_id)}; "
            "clients could not tell the models apart.",
            "Give one of them a distinct served_model_id.",
            others=ctx.others_with_served_id,
        )
    return ok(CheckId.SERVED_ID, f"The served id {served!r} is unique in the registry.")


def check_extra_args(merged: Mapping[str, Any]) -> Check:
    """extra_args: an argv list of strings, no overrides of what the console sets."""
    bc = (
        merged.get("backend_config")
        if isinstance(merged.get("backend_config"), Mapping)
        else {}
    )
    raw = bc.get("extra_args")
    if raw in (None, "", []):
        return ok(CheckId.EXTRA_ARGS, "No extra_args.")
    if isinstance(raw, str):
        return warn(
            CheckId.EXTRA_ARGS,
            "extra_args is one string; it is split with shell rules.",
            'Store it as a list: ["--flag", "value", ...].',
        )
    if not isinstance(raw, list) or not all(isinstance(a, str) for a in raw):
        return fail(
            CheckId.EXTRA_ARGS,
            "extra_args is not a list of strings.",
            'Store it as a list of strings: ["--flag", "value", ...].',
        )
    args = extra_args(merged)
    for flag, fix in OVERRIDES.items():
        if has_flag(args, flag):
            return fail(
                CheckId.EXTRA_ARGS,
                f"extra_args sets {flag}, which the console sets itself.",
                fix,
            )
    glued = [a for a in args if a.startswith("-") and " " in a.split("=", 1)[0].strip()]
    if glued:
        return fail(
            CheckId.EXTRA_ARGS,
            f"{glued[0]!r} is one list item holding a flag and its value.",
            "Split it into two items: the flag, then the value.",
        )
    bad = _bad_values(args)
    if bad:
        return fail(CheckId.EXTRA_ARGS, bad, "Fix the value in extra_args.")
    dups = duplicate_flags(args)
    if dups:
        return warn(
            CheckId.EXTRA_ARGS,
            f"{', '.join(dups)} given more than once; vLLM uses the last.",
            "Keep one of each.",
        )
    return ok(CheckId.EXTRA_ARGS, f"{len(args)} well-formed extra argument(s).")


OVERRIDES = {
    "--model": "Remove it; set backend_config.model_path (checked against the model roots).",
    "--port": "Remove it; the port is IMAGEWORKS_VLLM_PORT (or backend_config.port with IMAGEWORKS_VLLM_USE_ENTRY_PORT).",
    "--served-model-name": "Remove it; set served_model_id, which readiness checks for.",
}
NUMERIC_FLAGS = {
    "--gpu-memory-utilization": (float, 0.0, 1.0),
    "--tensor-parallel-size": (int, 1, 1024),
    "--max-num-seqs": (int, 1, 1_000_000),
}


def _bad_values(args: Sequence[str]) -> str:
    for flag, (kind, low, high) in NUMERIC_FLAGS.items():
        value = flag_value(args, flag)
        if value is None:
            continue
        try:
            number = kind(value)
        except ValueError:
            return f"{flag} {value!r} is not a number."
        if not (low < number <= high if kind is float else low <= number <= high):
            return f"{flag} {value} is out of range ({low}..{high})."
    return ""


def check_port(ctx: Context) -> Check:
    if ctx.cfg.proxy_mode:
        return skip(CheckId.PORT, "the port is on the admin service's host")
    if ctx.port is None:
        return skip(CheckId.PORT, "the launch command could not be built")
    host, port = ctx.cfg.host, ctx.port
    holders = process.listeners(port)
    if not holders and process.port_is_free(host, port):
        return ok(CheckId.PORT, f"Port {port} is free.")
    foreign = [p for p in holders if p not in ctx.own_pids]
    if holders and not foreign:
        return ok(
            CheckId.PORT,
            f"Port {port} is held by our own server ({ctx.own_name}), which activation replaces.",
        )
    who = (
        ", ".join(process.describe(p) for p in foreign)
        or "a process this user cannot see"
    )
    return fail(
        CheckId.PORT,
        f"Port {port} is in use by {who}.",
        "Stop that process, or set IMAGEWORKS_VLLM_PORT to a free port.",
        pids=foreign,
    )


def check_fingerprint(ctx: Context) -> Check:
    from registry import fingerprint, hashing

    if not ctx.locked:
        return skip(CheckId.FINGERPRINT, "the entry is not locked")
    recorded = fingerprint.recorded_fingerprint(ctx.merged)
    if recorded is None:
        return skip(
            CheckId.FINGERPRINT, "no fingerprint was recorded when it was locked"
        )
    if ctx.model_dir is None:
        return skip(CheckId.FINGERPRINT, "no model directory")
    try:
        drift = fingerprint.fingerprint_drift(recorded, ctx.model_dir)
    except hashing.HashError as exc:
        return fail(
            CheckId.FINGERPRINT, f"Cannot list the locked files: {exc}.", "Run Verify."
        )
    parts = [f"{k}: {modelfiles.few(v)}" for k, v in drift.items() if v]
    if parts:
        return fail(
            CheckId.FINGERPRINT,
            "Files changed since the lock (" + "; ".join(parts) + ").",
            "Run Verify to check them against the locked hash.",
            **drift,
        )
    return ok(
        CheckId.FINGERPRINT,
        f"{len(recorded['files'])} locked file(s) unchanged since the lock.",
    )


def check_gpu_fit(ctx: Context) -> Check:
    if ctx.cfg.proxy_mode:
        return skip(CheckId.GPU_FIT, "the GPU is on the admin service's host")
    if ctx.model_dir is None or not ctx.argv:
        return skip(CheckId.GPU_FIT, "no model files or launch command")
    snapshot = ctx.read_gpus()
    reclaim = snapshot.held_by(ctx.own_pids) if snapshot.known else {}
    est = fit.estimate(
        ctx.model_dir, ctx.argv, snapshot, config=ctx.config or {}, reclaimable=reclaim
    )
    details = est.as_dict()
    if est.verdict == fit.Verdict.UNKNOWN:
        return skip(CheckId.GPU_FIT, est.message, estimate=details)
    if est.verdict == fit.Verdict.WONT_FIT:
        return fail(
            CheckId.GPU_FIT,
            est.message,
            "See the numbers; free GPU memory or change the flags named.",
            estimate=details,
        )
    if est.verdict == fit.Verdict.TIGHT:
        return warn(CheckId.GPU_FIT, est.message, estimate=details)
    return ok(CheckId.GPU_FIT, est.message, estimate=details)
