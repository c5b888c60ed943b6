"""Build the vLLM launch argv from a merged registry entry (reference §3, issue 6).

Pure functions: no Django import at module level, no shell strings. ``VllmConfig``
gathers the settings the launcher needs so tests can build one directly.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CLI_NAME = "imageworks-models"

#: vLLM flags we only add when ``extra_args`` does not set them itself.
DEFAULTED_FLAGS = ("--gpu-memory-utilization", "--max-model-len", "--chat-template")


class LaunchRefused(Exception):
    """The entry cannot be launched as it stands (missing files, bad config).

    Raised before anything is stopped or spawned; the message is shown to the user.
    """


@dataclass(frozen=True)
class VllmConfig:
    """Everything activation needs from settings (see ``from_settings``)."""

    launcher: tuple[str, ...] = ("python", "-m", "vllm.entrypoints.openai.api_server")
    host: str = "127.0.0.1"
    port: int = 24001
    use_entry_port: bool = False
    gpu_memory_utilization: str = "0.75"
    max_model_len: str = ""
    start_timeout: float = 180.0
    stop_grace: float = 30.0
    staging_dir: Path = Path("_staging")
    log_dir: Path = Path("logs")
    registry_dir: Path | None = None
    env_allowlist: tuple[str, ...] = ()
    admin_url: str = ""
    admin_token: str = ""
    admin_log_dir: str = "logs/vllm"
    admin_check_paths: bool = True
    connect_host: str = ""
    cwd: str = ""
    model_roots: tuple[Path, ...] = field(default_factory=tuple)

    @classmethod
    def from_settings(cls, settings: Any = None) -> VllmConfig:
        if settings is None:
            from django.conf import settings  # lazy: keep this module Django-free
        launcher = getattr(settings, "IMAGEWORKS_VLLM_LAUNCHER", "") or ""
        argv = (
            tuple(launcher)
            if isinstance(launcher, list | tuple)
            else tuple(shlex.split(launcher))
        )
        if not argv:
            raise LaunchRefused("IMAGEWORKS_VLLM_LAUNCHER is empty.")
        return cls(
            launcher=argv,
            host=str(
                getattr(settings, "IMAGEWORKS_VLLM_HOST", "127.0.0.1") or "127.0.0.1"
            ),
            port=int(getattr(settings, "IMAGEWORKS_VLLM_PORT", 24001)),
            use_entry_port=bool(
                getattr(settings, "IMAGEWORKS_VLLM_USE_ENTRY_PORT", False)
            ),
            gpu_memory_utilization=str(
                getattr(settings, "IMAGEWORKS_VLLM_GPU_MEMORY_UTILIZATION", "") or ""
            ),
            max_model_len=str(
                getattr(settings, "IMAGEWORKS_VLLM_MAX_MODEL_LEN", "") or ""
            ),
            start_timeout=float(
                getattr(settings, "IMAGEWORKS_VLLM_START_TIMEOUT", 180.0)
            ),
            stop_grace=float(getattr(settings, "IMAGEWORKS_VLLM_STOP_GRACE", 30.0)),
            staging_dir=Path(settings.IMAGEWORKS_STAGING_DIR),
            log_dir=Path(settings.IMAGEWORKS_LOG_DIR),
            registry_dir=_opt_path(getattr(settings, "IMAGEWORKS_REGISTRY_DIR", None)),
            env_allowlist=tuple(
                getattr(settings, "IMAGEWORKS_VLLM_ENV_ALLOWLIST", ()) or ()
            ),
            admin_url=str(
                getattr(settings, "IMAGEWORKS_VLLM_ADMIN_URL", "") or ""
            ).rstrip("/"),
            admin_token=str(getattr(settings, "IMAGEWORKS_VLLM_ADMIN_TOKEN", "") or ""),
            admin_log_dir=str(
                getattr(settings, "IMAGEWORKS_VLLM_ADMIN_LOG_DIR", "logs/vllm")
                or "logs/vllm"
            ),
            admin_check_paths=bool(
                getattr(settings, "IMAGEWORKS_VLLM_ADMIN_CHECK_PATHS", True)
            ),
            connect_host=str(
                getattr(settings, "IMAGEWORKS_VLLM_CONNECT_HOST", "") or ""
            ),
            cwd=str(getattr(settings, "IMAGEWORKS_VLLM_CWD", "") or ""),
            model_roots=tuple(
                Path(p) for p in getattr(settings, "IMAGEWORKS_MODEL_ROOTS", ()) or ()
            ),
        )

    @property
    def proxy_mode(self) -> bool:
        return bool(self.admin_url)

    def probe_host(self) -> str:
        """The host to poll for readiness (separate from the bind host, fixes G12)."""
        if self.connect_host:
            return self.connect_host
        if self.proxy_mode:
            from urllib.parse import urlsplit

            return urlsplit(self.admin_url).hostname or "127.0.0.1"
        return "127.0.0.1" if self.host in ("0.0.0.0", "", "::") else self.host

    def base_url(self, port: int) -> str:
        host = self.probe_host()
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"http://{host}:{port}"


@dataclass(frozen=True)
class LaunchSpec:
    """A fully validated launch: what will run, where, under which names."""

    logical_name: str
    served_model_id: str
    model_path: str
    host: str
    port: int
    argv: list[str]

    @property
    def display(self) -> str:
        return display(self.argv)

    @property
    def cli(self) -> str:
        return cli_equivalent(self.logical_name)


def display(argv: Sequence[str]) -> str:
    """The argv as one copy-pasteable, shell-quoted line (for display only)."""
    return shlex.join([str(a) for a in argv])


def merged_for_launch(entry: Any) -> dict[str, Any]:
    """The merged dict a launch is built from, for a registry ``ModelEntry`` row.

    The row's merged view, with the columns the launch needs filled in where the
    raw layers lack them (one place for ``prepare``, preflight and the fit view).
    """
    merged = dict(entry.merged or {})
    merged.setdefault("name", entry.name)
    merged.setdefault("backend", entry.backend)
    merged.setdefault("backend_config", entry.backend_config or {})
    merged.setdefault("download_path", entry.download_path)
    merged.setdefault("served_model_id", entry.served_model_id or None)
    return merged


def cli_equivalent(name: str) -> str:
    return f"{CLI_NAME} activate-model {shlex.quote(name)}"


def is_unset(value: Any) -> bool:
    """``None``, blank, or the string "None" in any case (it occurs in real data)."""
    return value is None or (
        isinstance(value, str) and value.strip().lower() in ("", "none")
    )


def served_model_id(merged: Mapping[str, Any]) -> str:
    """``served_model_id`` unless unset, else the logical name (reference §3.1)."""
    served = merged.get("served_model_id")
    if isinstance(served, str) and not is_unset(served):
        return served.strip()
    return str(merged.get("name") or "")


def extra_args(merged: Mapping[str, Any]) -> list[str]:
    """``backend_config.extra_args`` as a list of strings.

    A string value (seen in hand-edited files) is split with shell rules rather than
    passed as one argument; nothing is ever run through a shell.
    """
    raw = _backend_config(merged).get("extra_args") or []
    if isinstance(raw, str):
        return shlex.split(raw)
    if isinstance(raw, Sequence):
        return [str(a) for a in raw if a is not None and str(a) != ""]
    return []


def has_flag(args: Sequence[str], flag: str) -> bool:
    """True if ``args`` sets ``flag`` as ``--flag value`` or ``--flag=value``."""
    return any(a == flag or a.startswith(flag + "=") for a in args)


def flag_value(args: Sequence[str], flag: str) -> str | None:
    """The value vLLM will use for ``flag`` (its last ``--flag v`` / ``--flag=v``)."""
    value = None
    for i, a in enumerate(args):
        if a == flag and i + 1 < len(args):
            value = args[i + 1]
        elif a.startswith(flag + "="):
            value = a.split("=", 1)[1]
    return value


def duplicate_flags(args: Sequence[str]) -> list[str]:
    """Flags given more than once in extra_args (vLLM takes the last; we warn)."""
    seen: dict[str, int] = {}
    for a in args:
        if a.startswith("--"):
            name = a.split("=", 1)[0]
            seen[name] = seen.get(name, 0) + 1
    return sorted(f for f, n in seen.items() if n > 1)


def entry_port(merged: Mapping[str, Any]) -> int | None:
    try:
        port = int(_backend_config(merged).get("port"))
    except (TypeError, ValueError):
        return None
    return port if 0 < port < 65536 else None


def launch_port(merged: Mapping[str, Any], cfg: VllmConfig) -> int:
    """The settings port, or the entry's own port when configured so (fixes F14)."""
    if cfg.use_entry_port:
        port = entry_port(merged)
        if port is not None:
            return port
    return cfg.port


def resolve_model_path(
    merged: Mapping[str, Any], cfg: VllmConfig, *, check: bool = True
) -> str:
    """``model_path`` if it exists, else ``download_path`` if it exists (reference §3.1).

    Unlike the original there is no silent fallback to the raw value (which vLLM then
    treats as a Hugging Face repo id and tries to download): a missing directory is
    refused with both paths named.
    """
    candidates = []
    for raw in (_backend_config(merged).get("model_path"), merged.get("download_path")):
        if (
            isinstance(raw, str)
            and raw.strip()
            and not raw.strip().startswith("ollama:")
        ):
            candidates.append(raw.strip())
    if not candidates:
        raise LaunchRefused(
            f"Model '{merged.get('name')}' has no model_path or download_path."
        )
    if not check:
        # Files live elsewhere (proxy mode): still refuse paths outside the roots,
        # lexically (``..`` collapsed), since the local filesystem cannot tell more.
        path = Path(os.path.expanduser(candidates[0]))
        _check_roots(Path(os.path.normpath(path)), cfg)
        return str(path)
    for raw in candidates:
        path = Path(os.path.expanduser(raw))
        if path.exists():
            _check_roots(path, cfg)
            return str(path)
    tried = " or ".join(repr(c) for c in candidates)
    raise LaunchRefused(f"Model files not found: {tried} does not exist.")


def _check_roots(path: Path, cfg: VllmConfig) -> None:
    if not cfg.model_roots:
        return
    resolved = path.resolve()
    for root in cfg.model_roots:
        try:
            resolved.relative_to(Path(os.path.expanduser(root)).resolve())
            return
        except ValueError:
            continue
    roots = ", ".join(str(r) for r in cfg.model_roots)
    raise LaunchRefused(
        f"Model path {path} is outside the allowed model roots ({roots})."
    )


def resolve_chat_template(
    merged: Mapping[str, Any], cfg: VllmConfig, *, check: bool = True
) -> str | None:
    """The entry's chat template path, or None when it has none.

    A relative path is tried against the registry folder's parent (the original's
    repo root) and the registry folder. A template that is named but missing is
    refused *before* anything is stopped (the original failed after stopping, F6).
    """
    tmpl = merged.get("chat_template")
    raw = tmpl.get("path") if isinstance(tmpl, Mapping) else None
    if is_unset(raw) or not isinstance(raw, str):
        return None
    path = Path(os.path.expanduser(raw.strip()))
    if not check:
        return str(path)
    candidates = [path]
    if not path.is_absolute() and cfg.registry_dir is not None:
        candidates += [cfg.registry_dir.parent / path, cfg.registry_dir / path]
    for cand in candidates:
        if cand.is_file():
            return str(cand)
    raise LaunchRefused(f"Chat template not found: {raw}")


def build_launch(
    merged: Mapping[str, Any], cfg: VllmConfig, *, check_paths: bool = True
) -> LaunchSpec:
    """Validate the entry and build its argv (reference §3.2, with issue 6's changes).

    Order: launcher prefix, ``--model``, ``--served-model-name``, ``--host``,
    ``--port``, defaults for flags absent from extra_args, then extra_args verbatim.
    Raises ``LaunchRefused`` with a user-facing reason.
    """
    name = str(merged.get("name") or "").strip()
    if not name:
        raise LaunchRefused("The entry has no name.")
    backend = str(merged.get("backend") or "").strip().lower()
    if backend != "vllm":
        raise LaunchRefused("Only vLLM models can be activated.")
    served = served_model_id(merged)
    model_path = resolve_model_path(merged, cfg, check=check_paths)
    port = launch_port(merged, cfg)
    extras = extra_args(merged)
    if cfg.model_roots and has_flag(extras, "--model"):
        # vLLM takes the last --model: extra_args must not bypass the model roots.
        raise LaunchRefused(
            "extra_args must not set --model (use backend_config.model_path, "
            "which is checked against the allowed model roots)."
        )
    argv = [
        *cfg.launcher,
        "--model",
        model_path,
        "--served-model-name",
        served,
        "--host",
        cfg.host,
        "--port",
        str(port),
    ]
    if cfg.gpu_memory_utilization and not has_flag(extras, "--gpu-memory-utilization"):
        argv += ["--gpu-memory-utilization", cfg.gpu_memory_utilization]
    if cfg.max_model_len and not has_flag(extras, "--max-model-len"):
        argv += ["--max-model-len", cfg.max_model_len]
    if not has_flag(extras, "--chat-template"):
        template = resolve_chat_template(merged, cfg, check=check_paths)
        if template:
            argv += ["--chat-template", template]
    argv += extras
    return LaunchSpec(
        logical_name=name,
        served_model_id=served,
        model_path=model_path,
        host=cfg.host,
        port=port,
        argv=argv,
    )


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(name: str) -> str:
    """A file-name-safe version of a logical name (names hold / ( ) : and spaces)."""
    cleaned = _UNSAFE.sub("_", name).strip("._") or "model"
    return cleaned[:120]


def _opt_path(value: Any) -> Path | None:
    return Path(value) if value else None


def _backend_config(merged: Mapping[str, Any]) -> Mapping[str, Any]:
    bc = merged.get("backend_config")
    return bc if isinstance(bc, Mapping) else {}
