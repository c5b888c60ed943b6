"""Preflight checks of the model folder: path, roots, readable, config, weights, tokenizer."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .. import modelfiles
from ..command import (
    LaunchRefused,
    VllmConfig,
    extra_args,
    flag_value,
    has_flag,
    resolve_model_path,
)
from .base import Check, CheckId, Context, fail, ok, skip, warn


def path_checks(ctx: Context) -> list[Check]:
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
            f"{len(unreadable)} file(s) cannot be read: {modelfiles.few(sorted(unreadable))}.",
            _perm_fix(),
        )
    return ok(CheckId.READABLE, "Every model file is readable.")


def _perm_fix() -> str:
    return "Give the user running the console and vLLM read access (chmod/chown)."


# --- files ------------------------------------------------------------------------


def file_checks(ctx: Context) -> list[Check]:
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
                f"Shard(s) missing: {modelfiles.few(missing)}.",
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
