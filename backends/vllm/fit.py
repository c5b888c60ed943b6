"""Will it fit? A GPU memory estimate for one launch, compared with the GPUs.

The formula (all per GPU; tensor parallelism splits weights and KV cache):

* **weights**: the tensors' bytes from the safetensors headers (dtype x shape),
  else the weight files' sizes;
* **KV cache**: ``2 x layers x KV heads x head dim x bytes`` per token (from
  ``config.json``; KV dtype from ``--kv-cache-dtype``, else the model dtype) for
  ``--max-model-len`` tokens x ``--max-num-seqs`` sequences when that flag is
  given, else for one full-length sequence: the least vLLM needs to start, since
  it shares the rest of its cache between requests;
* **overhead**: a stated 2 GiB (CUDA context, activations during profiling,
  CUDA graphs), ``DEFAULT_OVERHEAD_BYTES``.

vLLM's V1 engine (0.9 to 0.11 at least; the original pins 0.11) reserves
``--gpu-memory-utilization x total`` at start and refuses to start when less
than that is free. So the **budget** is ``utilization x total``; it must be free
(counting memory our own running server will give back when replaced), and the
need above must fit inside it. Verdict: ``won't fit`` if either fails, ``tight``
within 10 % of either limit, else ``fits``; ``unknown`` without GPU figures.
Pure functions: no Django.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backends.gpu import GpuSnapshot

from . import modelfiles
from .command import flag_value

GIB = 1024**3
DEFAULT_OVERHEAD_BYTES = 2 * GIB
TIGHT_MARGIN = 0.10
DEFAULT_UTILIZATION = 0.9  # vLLM's own default when the flag is absent
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
DTYPE_BYTES = {
    "float32": 4,
    "float": 4,
    "float16": 2,
    "half": 2,
    "bfloat16": 2,
    "fp8": 1,
    "fp8_e4m3": 1,
    "fp8_e5m2": 1,
    "fp8_inc": 1,
    "int8": 1,
}


class Verdict(enum.StrEnum):
    FITS = "fits"
    TIGHT = "tight"
    WONT_FIT = "won't fit"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Weights:
    bytes: int
    source: str  # "safetensors headers" | "file sizes" | "none found"


def weights(model_dir: str | os.PathLike) -> Weights:
    """Bytes of the weights: headers where they parse, file sizes otherwise."""
    files = modelfiles.safetensors_files(model_dir)
    if files:
        total, from_headers = 0, True
        for path in files:
            try:
                total += modelfiles.read_header(path).data_bytes
            except modelfiles.HeaderError:
                from_headers = False
                total += _size(path)
        return Weights(total, "safetensors headers" if from_headers else "file sizes")
    try:
        others = [
            Path(e.path)
            for e in os.scandir(model_dir)
            if e.name.endswith(WEIGHT_SUFFIXES) and e.is_file()
        ]
    except OSError:
        others = []
    if not others:
        return Weights(0, "none found")
    return Weights(sum(_size(p) for p in others), "file sizes")


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


@dataclass(frozen=True)
class LaunchParams:
    """What the launch argv (and the model's config) say about memory."""

    max_model_len: int | None
    max_num_seqs: int | None  # None: not set (we count one full sequence)
    utilization: float
    tensor_parallel: int
    kv_dtype_bytes: int


def launch_params(argv: Sequence[str], config: Mapping[str, Any]) -> LaunchParams:
    args = list(argv)
    text = modelfiles.text_config(config)
    mml = _int(flag_value(args, "--max-model-len")) or modelfiles.model_max_len(config)
    model_dtype = str(flag_value(args, "--dtype") or "auto").lower()
    if model_dtype == "auto":
        model_dtype = str(text.get("torch_dtype") or config.get("torch_dtype") or "")
    kv = str(flag_value(args, "--kv-cache-dtype") or "auto").lower()
    kv_bytes = DTYPE_BYTES.get(kv) or DTYPE_BYTES.get(model_dtype.lower(), 2)
    util = _float(flag_value(args, "--gpu-memory-utilization"))
    return LaunchParams(
        max_model_len=mml,
        max_num_seqs=_int(flag_value(args, "--max-num-seqs")),
        utilization=util if util and 0 < util <= 1 else DEFAULT_UTILIZATION,
        tensor_parallel=max(_int(flag_value(args, "--tensor-parallel-size")) or 1, 1),
        kv_dtype_bytes=kv_bytes,
    )


def kv_bytes_per_token(config: Mapping[str, Any], dtype_bytes: int) -> int | None:
    """``2 x layers x KV heads x head dim x bytes`` (None when config.json lacks them)."""
    cfg = modelfiles.text_config(config)
    layers = _int(cfg.get("num_hidden_layers") or cfg.get("n_layer"))
    heads = _int(cfg.get("num_attention_heads") or cfg.get("n_head"))
    kv_heads = _int(cfg.get("num_key_value_heads")) or heads
    head_dim = _int(cfg.get("head_dim"))
    if not head_dim and heads:
        hidden = _int(cfg.get("hidden_size") or cfg.get("n_embd"))
        head_dim = hidden // heads if hidden else None
    if not (layers and kv_heads and head_dim):
        return None
    return 2 * layers * kv_heads * head_dim * dtype_bytes


@dataclass
class FitEstimate:
    verdict: Verdict
    message: str
    weights_bytes: int = 0
    weights_source: str = ""
    kv_bytes: int | None = None
    overhead_bytes: int = DEFAULT_OVERHEAD_BYTES
    need_bytes: int | None = None  # per GPU
    budget_bytes: int | None = None  # per GPU: utilization x total
    available_bytes: int | None = None  # free + what our replaced server gives back
    gpus: list[int] = field(default_factory=list)
    sequences: int | None = None  # full-length sequences the budget's KV room holds
    params: LaunchParams | None = None

    @property
    def expected_hold_bytes(self) -> int | None:
        """What the server will hold per GPU once ready: vLLM fills its whole budget
        with KV cache, so the budget when known, else the bare need."""
        if self.budget_bytes is not None and self.need_bytes is not None:
            return max(self.budget_bytes, self.need_bytes)
        return self.need_bytes

    def as_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if k != "params"}
        data["verdict"] = str(self.verdict)
        data["expected_hold_bytes"] = self.expected_hold_bytes
        return data


def estimate(
    model_dir: str | os.PathLike,
    argv: Sequence[str],
    snapshot: GpuSnapshot,
    *,
    config: Mapping[str, Any] | None = None,
    reclaimable: Mapping[int, int] | None = None,
    overhead_bytes: int = DEFAULT_OVERHEAD_BYTES,
    gpu_indexes: Sequence[int] | None = None,
) -> FitEstimate:
    """The verdict for launching ``argv`` from ``model_dir`` on ``snapshot``'s GPUs.

    ``reclaimable``: bytes per GPU index that our own running server holds and
    will free when it is replaced. ``gpu_indexes``: the GPUs vLLM will use
    (default: the first ``--tensor-parallel-size`` by index).
    """
    if config is None:
        try:
            config = modelfiles.read_config(model_dir)
        except modelfiles.HeaderError:
            config = {}
    params = launch_params(argv, config)
    w = weights(model_dir)
    per_token = kv_bytes_per_token(config, params.kv_dtype_bytes)
    tp = params.tensor_parallel
    est = FitEstimate(
        Verdict.UNKNOWN,
        "",
        weights_bytes=w.bytes // tp,
        weights_source=w.source,
        overhead_bytes=overhead_bytes,
        params=params,
    )
    if per_token is None or not params.max_model_len:
        est.message = (
            "Cannot estimate the KV cache: config.json lacks layers/heads/head size "
            "or the context length."
        )
        return est
    seqs = params.max_num_seqs or 1
    est.kv_bytes = per_token * params.max_model_len * seqs // tp
    est.need_bytes = est.weights_bytes + est.kv_bytes + overhead_bytes
    if not snapshot.known:
        est.message = (
            f"Needs about {_gib(est.need_bytes)} per GPU; GPUs unknown "
            f"({snapshot.reason})."
        )
        return est
    chosen = _choose_gpus(snapshot, tp, gpu_indexes)
    if len(chosen) < tp:
        est.verdict = Verdict.WONT_FIT
        est.message = (
            f"--tensor-parallel-size {tp} needs {tp} GPUs; {len(snapshot.gpus)} found."
        )
        return est
    _judge(est, chosen, per_token, reclaimable or {})
    return est


def _choose_gpus(snapshot: GpuSnapshot, tp: int, indexes: Sequence[int] | None):
    if indexes:
        return [g for i in indexes if (g := snapshot.gpu(i)) is not None][:tp]
    return sorted(snapshot.gpus, key=lambda g: g.index)[:tp]


def _judge(est: FitEstimate, gpus, per_token: int, reclaimable: Mapping[int, int]):
    """Fill verdict/message from the tightest of the chosen GPUs."""
    params = est.params
    worst = None
    for gpu in gpus:
        budget = int(params.utilization * gpu.total_bytes)
        available = min(gpu.free_bytes + reclaimable.get(gpu.index, 0), gpu.total_bytes)
        slack = min(budget - est.need_bytes, available - budget)
        if worst is None or slack < worst[0]:
            worst = (slack, gpu, budget, available)
    _, gpu, budget, available = worst
    est.gpus = [g.index for g in gpus]
    est.budget_bytes, est.available_bytes = budget, available
    kv_room = budget - est.weights_bytes - est.overhead_bytes
    est.sequences = max(
        kv_room * params.tensor_parallel // (per_token * params.max_model_len), 0
    )
    need = (
        f"weights {_gib(est.weights_bytes)} + KV cache {_gib(est.kv_bytes)} + "
        f"overhead {_gib(est.overhead_bytes)} = {_gib(est.need_bytes)}"
    )
    reserve = (
        f"vLLM reserves {params.utilization:g} x {_gib(gpu.total_bytes)} = "
        f"{_gib(budget)} on GPU {gpu.index}"
    )
    if budget > available:
        est.verdict = Verdict.WONT_FIT
        most = available / gpu.total_bytes
        est.message = (
            f"{reserve} at start but only {_gib(available)} is free: lower "
            f"--gpu-memory-utilization to {most:.2f} or free GPU memory."
        )
    elif est.need_bytes > budget:
        est.verdict = Verdict.WONT_FIT
        est.message = (
            f"{need} is more than the {_gib(budget)} that --gpu-memory-utilization "
            f"{params.utilization:g} gives on GPU {gpu.index}: lower --max-model-len"
            f"{_max_len_hint(est, budget, per_token)} or raise "
            "--gpu-memory-utilization."
        )
    elif (
        est.need_bytes > (1 - TIGHT_MARGIN) * budget
        or budget > (1 - TIGHT_MARGIN) * available
    ):
        est.verdict = Verdict.TIGHT
        est.message = (
            f"Tight: {need} of a {_gib(budget)} budget; {_gib(available)} free on "
            f"GPU {gpu.index}. It may fail if other processes take memory."
        )
    else:
        est.verdict = Verdict.FITS
        est.message = (
            f"Fits: {need} of a {_gib(budget)} budget on GPU {gpu.index} "
            f"({_gib(available)} free); room for about {est.sequences} "
            f"full-length sequences."
        )


def _max_len_hint(est: FitEstimate, budget: int, per_token: int) -> str:
    params = est.params
    room = budget - est.weights_bytes - est.overhead_bytes
    tokens = room * params.tensor_parallel // (per_token * (params.max_num_seqs or 1))
    return f" (to at most {tokens})" if tokens > 0 else ""


def _gib(n: int | None) -> str:
    return "?" if n is None else f"{n / GIB:.1f} GiB"


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
