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

import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from django.db import models

from backends import gpu as gpu_mod

from . import fit, modelfiles, process
from .command import (
    LaunchRefused,
    VllmConfig,
    build_launch,
    duplicate_flags,
    extra_args,
    flag_value,
    has_flag,
    resolve_chat_template,
    resolve_model_path,
    served_model_id,
)


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


# --- the run ----------------------------------------------------------------------


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
    checks = _path_checks(ctx)
    if ctx.model_dir is not None and ctx.model_dir.is_dir():
        checks += _file_checks(ctx)
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


# --- path ---------------------------------------------------------------------------


def _path_checks(ctx: Context) -> list[Check]:
    local = (not ctx.cfg.proxy_mode) or ctx.cfg.admin_check_paths
    if not local:
        return [
            skip(c, "model files are on the admin service's host")
            for c in (CheckId.PATH, CheckId.ROOTS, CheckId.READABLE)
        ]
    try:
        raw = resolve_model_path(ctx.merged, VllmConfig(), check=True)
    except LaunchRefused as exc:
        return [
            fail(
                CheckId.PATH,
                str(exc),
                "Set backend_config.model_path to the folder holding config.json "
                "and the weights, or download the model there.",
            ),
            skip(CheckId.ROOTS, "no model path"),
            skip(CheckId.READABLE, "no model path"),
        ]
    ctx.model_dir = Path(raw)
    checks = [ok(CheckId.PATH, f"Model files are at {raw}.", path=raw)]
    checks.append(_roots_check(ctx.model_dir))
    checks.append(_readable_check(ctx.model_dir))
    return checks


def _roots_check(path: Path) -> Check:
    from registry.services.verify import OutsideModelRoots, check_model_root

    try:
        check_model_root(path)
    except OutsideModelRoots as exc:
        return fail(
            CheckId.ROOTS,
            str(exc).split(";")[0] + ".",
            "Move the model under an allowed root or add its folder to "
            "IMAGEWORKS_MODEL_ROOTS.",
        )
    return ok(CheckId.ROOTS, "The model path is inside the allowed model roots.")


def _readable_check(path: Path) -> Check:
    if path.is_file():
        if os.access(path, os.R_OK):
            return ok(CheckId.READABLE, f"{path.name} is readable.")
        return fail(
            CheckId.READABLE, f"{path} is not readable by this user.", _perm_fix()
        )
    if not os.access(path, os.R_OK | os.X_OK):
        return fail(
            CheckId.READABLE,
            f"The folder {path} cannot be listed by this user.",
            _perm_fix(),
        )
    unreadable = []
    with os.scandir(path) as it:
        for e in it:
            if e.is_file() and not os.access(e.path, os.R_OK):
                unreadable.append(e.name)
    if unreadable:
        return fail(
            CheckId.READABLE,
            f"{len(unreadable)} file(s) cannot be read: {modelfiles._few(sorted(unreadable))}.",
            _perm_fix(),
        )
    return ok(CheckId.READABLE, "Every model file is readable.")


def _perm_fix() -> str:
    return "Give the user running the console and vLLM read access (chmod/chown)."


# --- files ------------------------------------------------------------------------


def _file_checks(ctx: Context) -> list[Check]:
    path = ctx.model_dir
    checks = []
    try:
        ctx.config = modelfiles.read_config(path)
        checks.append(ok(CheckId.CONFIG, "config.json parses."))
    except modelfiles.HeaderError as exc:
        checks.append(
            fail(
                CheckId.CONFIG,
                f"{exc}.",
                "Copy config.json from the model's original repository.",
            )
        )
    checks.append(check_architecture(ctx.config))
    checks.append(check_max_model_len(ctx))
    checks += check_weights(ctx)
    checks.append(check_tokenizer(path, extra_args(ctx.merged)))
    return checks


def check_architecture(config: Mapping[str, Any] | None) -> Check:
    if config is None:
        return skip(CheckId.ARCHITECTURE, "config.json is not usable")
    archs = config.get("architectures")
    if (
        isinstance(archs, list)
        and archs
        and all(isinstance(a, str) and a for a in archs)
    ):
        return ok(CheckId.ARCHITECTURE, f"Architecture {', '.join(archs)}.")
    return fail(
        CheckId.ARCHITECTURE,
        "config.json names no architecture, so vLLM cannot choose a model class.",
        'Add "architectures": [...] from the original config.json.',
    )


def check_max_model_len(ctx: Context) -> Check:
    if ctx.config is None:
        return skip(CheckId.MAX_MODEL_LEN, "config.json is not usable")
    limit = modelfiles.model_max_len(ctx.config)
    args = extra_args(ctx.merged)
    raw = flag_value(args, "--max-model-len") or ctx.cfg.max_model_len or None
    if raw is None:
        if limit is None:
            return warn(
                CheckId.MAX_MODEL_LEN,
                "Neither the entry nor config.json gives a context length.",
                "Set --max-model-len in extra_args.",
            )
        return ok(
            CheckId.MAX_MODEL_LEN,
            f"vLLM will use the model's own limit, {limit} tokens.",
            limit=limit,
        )
    try:
        wanted = _tokens(raw)
    except ValueError:
        return fail(
            CheckId.MAX_MODEL_LEN,
            f"--max-model-len {raw!r} is not a number.",
            "Give --max-model-len a whole number of tokens.",
        )
    if limit is None:
        return warn(
            CheckId.MAX_MODEL_LEN,
            f"--max-model-len {wanted}, but config.json gives no limit to check it against.",
        )
    if wanted > limit:
        return fail(
            CheckId.MAX_MODEL_LEN,
            f"--max-model-len {wanted} is above the model's own limit of {limit} tokens.",
            f"Lower --max-model-len to {limit} or less.",
            wanted=wanted,
            limit=limit,
        )
    return ok(
        CheckId.MAX_MODEL_LEN,
        f"--max-model-len {wanted} is within the model's {limit}.",
        wanted=wanted,
        limit=limit,
    )


def _tokens(raw: str) -> int:
    """vLLM accepts ``32768``, ``32k`` and ``1m`` (k = 1000, K = 1024)."""
    text = str(raw).strip()
    scale = {"k": 1000, "K": 1024, "m": 1000**2, "M": 1024**2}.get(text[-1:], 1)
    value = int(text[:-1] if scale != 1 else text)
    if value <= 0:
        raise ValueError(text)
    return value * scale


def check_weights(ctx: Context) -> list[Check]:
    """Headers of every shard, then the index (or, without one, the shard numbering)."""
    path = ctx.model_dir
    files = modelfiles.safetensors_files(path)
    if not files:
        others = [
            e.name for e in os.scandir(path) if e.name.endswith((".bin", ".pt", ".pth"))
        ]
        if others:
            return [
                warn(
                    CheckId.SAFETENSORS,
                    f"No safetensors files; {len(others)} PyTorch weight file(s) cannot be checked quickly.",
                    "Prefer the safetensors release of this model.",
                ),
                skip(CheckId.INDEX, "no safetensors files"),
            ]
        return [
            fail(
                CheckId.SAFETENSORS,
                f"No weight files (*.safetensors or *.bin) in {path}.",
                "Download the model's weights into this folder.",
            ),
            skip(CheckId.INDEX, "no safetensors files"),
        ]
    problems = []
    for f in files:
        try:
            ctx.headers[f.name] = modelfiles.read_header(f)
        except modelfiles.HeaderError as exc:
            problems.append(str(exc))
    if problems:
        head = fail(
            CheckId.SAFETENSORS,
            "; ".join(problems[:3])
            + (f" (and {len(problems) - 3} more)" if len(problems) > 3 else "")
            + ".",
            "Download the named file(s) again, then run Verify.",
            problems=problems,
        )
    else:
        size = sum(h.data_bytes for h in ctx.headers.values())
        head = ok(
            CheckId.SAFETENSORS,
            f"{len(files)} safetensors file(s), every header matches its file size ({size / 2**30:.1f} GiB of tensors).",
        )
    return [head, _index_check(ctx, [f.name for f in files])]


def _index_check(ctx: Context, names: Sequence[str]) -> Check:
    try:
        weight_map = modelfiles.read_index(ctx.model_dir)
    except modelfiles.HeaderError as exc:
        return fail(
            CheckId.INDEX, f"{exc}.", "Download model.safetensors.index.json again."
        )
    if weight_map is None:
        missing = modelfiles.missing_numbered_shards(names)
        if missing:
            return fail(
                CheckId.INDEX,
                f"Shard(s) missing: {modelfiles._few(missing)}.",
                "Download the missing shard(s).",
                missing=missing,
            )
        return ok(CheckId.INDEX, "No index file; the shard numbering is complete.")
    problems = modelfiles.index_problems(ctx.model_dir, weight_map, ctx.headers)
    if problems:
        return fail(
            CheckId.INDEX,
            f"{modelfiles.INDEX_FILE} " + "; ".join(problems) + ".",
            "Download the missing shard(s) or the matching index file.",
            problems=problems,
        )
    return ok(
        CheckId.INDEX,
        f"The index names {len(set(weight_map.values()))} shard(s), all present and complete.",
    )


#: Any one of these is a usable tokenizer (vocab.json needs merges.txt).
TOKENIZER_SETS = (
    ("tokenizer.json",),
    ("tokenizer.model",),
    ("tiktoken.model",),
    ("vocab.json", "merges.txt"),
    ("vocab.txt",),
    ("spiece.model",),
)


def check_tokenizer(path: Path, args: Sequence[str]) -> Check:
    if has_flag(args, "--tokenizer"):
        return ok(
            CheckId.TOKENIZER,
            f"extra_args names the tokenizer ({flag_value(args, '--tokenizer')}).",
        )
    try:
        names = set(os.listdir(path))
    except OSError:
        names = set()
    for group in TOKENIZER_SETS:
        if all(n in names for n in group):
            return ok(
                CheckId.TOKENIZER, f"Tokenizer files present ({', '.join(group)})."
            )
    if any(n.endswith(".tiktoken") for n in names):
        return ok(CheckId.TOKENIZER, "Tokenizer files present (tiktoken).")
    return fail(
        CheckId.TOKENIZER,
        "No tokenizer files (tokenizer.json, tokenizer.model or vocab.json + merges.txt).",
        "Copy the tokenizer files from the original repository, or set --tokenizer in extra_args.",
    )


# --- registry and runtime --------------------------------------------------------------


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
            f"The served id {served!r} is also used by {modelfiles._few(ctx.others_with_served_id)}; "
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
    parts = [f"{k}: {modelfiles._few(v)}" for k, v in drift.items() if v]
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
