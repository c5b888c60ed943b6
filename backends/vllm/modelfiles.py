"""Read what a model directory declares about itself, cheaply (no hashing, no torch).

* ``read_header``: a safetensors file's header (8-byte little-endian length +
  JSON), checked against the file's real size, so a truncated download is found
  in microseconds instead of after minutes of loading.
* ``read_index`` / ``index_problems``: ``model.safetensors.index.json`` names only
  files that exist, covers every numbered shard, and each tensor it places in a
  shard is in that shard's header.
* ``read_config``: ``config.json`` (with the text sub-config multimodal models
  nest), and ``model_max_len``: the context limit vLLM derives from it.

Pure functions over the filesystem; used by preflight and the memory estimate.
"""

from __future__ import annotations

import json
import math
import os
import re
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Bits per element of every dtype the safetensors format defines.
DTYPE_BITS = {
    "BOOL": 8,
    "U8": 8,
    "I8": 8,
    "F8_E5M2": 8,
    "F8_E4M3": 8,
    "F8_E8M0": 8,
    "I16": 16,
    "U16": 16,
    "F16": 16,
    "BF16": 16,
    "I32": 32,
    "U32": 32,
    "F32": 32,
    "I64": 64,
    "U64": 64,
    "F64": 64,
    "C64": 64,
    "F4": 4,
    "F6_E2M3": 6,
    "F6_E3M2": 6,
}
#: The format allows up to 100 MB of header; more means a corrupt length field.
MAX_HEADER_BYTES = 100 * 1024 * 1024
INDEX_FILE = "model.safetensors.index.json"
SHARD_RE = re.compile(r"^(?P<stem>.+)-(?P<n>\d+)-of-(?P<total>\d+)\.safetensors$")


class HeaderError(ValueError):
    """A safetensors file whose header is unreadable or disagrees with the file."""


@dataclass(frozen=True)
class TensorInfo:
    dtype: str
    shape: tuple[int, ...]
    nbytes: int


@dataclass
class SafetensorsHeader:
    path: Path
    file_size: int
    header_len: int
    tensors: dict[str, TensorInfo] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def data_bytes(self) -> int:
        return sum(t.nbytes for t in self.tensors.values())

    def bytes_by_dtype(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for t in self.tensors.values():
            out[t.dtype] = out.get(t.dtype, 0) + t.nbytes
        return out


def read_header(path: str | os.PathLike) -> SafetensorsHeader:
    """Parse one safetensors header and check it against the file size.

    Raises ``HeaderError`` with one sentence a person understands: too short,
    an impossible header length, JSON that does not parse, a tensor whose byte
    range does not match its dtype x shape, or a file shorter (truncated
    download) or longer than the header declares.
    """
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size < 8:
                raise HeaderError(
                    f"{path.name} is {size} bytes, too short to be a safetensors file"
                )
            (length,) = struct.unpack("<Q", fh.read(8))
            if length > MAX_HEADER_BYTES or length > size - 8:
                raise HeaderError(
                    f"{path.name}: header length {length} bytes is impossible for a "
                    f"{size}-byte file (truncated or not a safetensors file)"
                )
            raw = fh.read(length)
    except OSError as exc:
        raise HeaderError(f"cannot read {path.name}: {exc.strerror or exc}")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise HeaderError(f"{path.name}: the header is not valid JSON")
    if not isinstance(data, dict):
        raise HeaderError(f"{path.name}: the header is not a JSON object")
    header = SafetensorsHeader(path=path, file_size=size, header_len=length)
    meta = data.pop("__metadata__", None)
    if isinstance(meta, dict):
        header.metadata = {str(k): str(v) for k, v in meta.items()}
    end = 0
    for name, spec in data.items():
        info, stop = _tensor(path.name, name, spec)
        header.tensors[name] = info
        end = max(end, stop)
    declared = 8 + length + end
    if size < declared:
        raise HeaderError(
            f"{path.name} is truncated: its header declares {declared} bytes, "
            f"the file has {size} ({declared - size} missing)"
        )
    if size > declared:
        raise HeaderError(
            f"{path.name} has {size - declared} bytes more than its header declares "
            f"({declared}); the file is damaged"
        )
    return header


def _tensor(fname: str, name: str, spec: Any) -> tuple[TensorInfo, int]:
    try:
        dtype = str(spec["dtype"])
        shape = tuple(int(d) for d in spec["shape"])
        begin, stop = (int(x) for x in spec["data_offsets"])
    except (TypeError, KeyError, ValueError):
        raise HeaderError(f"{fname}: tensor {name!r} has a malformed header entry")
    if dtype not in DTYPE_BITS:
        raise HeaderError(f"{fname}: tensor {name!r} has unknown dtype {dtype}")
    if begin < 0 or stop < begin or any(d < 0 for d in shape):
        raise HeaderError(f"{fname}: tensor {name!r} has an impossible byte range")
    nbytes = math.prod(shape) * DTYPE_BITS[dtype] // 8
    if stop - begin != nbytes:
        raise HeaderError(
            f"{fname}: tensor {name!r} ({dtype} {list(shape)}) needs {nbytes} bytes "
            f"but its header gives it {stop - begin}"
        )
    return TensorInfo(dtype, shape, nbytes), stop


def safetensors_files(model_dir: str | os.PathLike) -> list[Path]:
    """The ``*.safetensors`` files directly in the model directory, sorted."""
    try:
        with os.scandir(model_dir) as it:
            return sorted(
                Path(e.path)
                for e in it
                if e.name.endswith(".safetensors") and e.is_file()
            )
    except OSError:
        return []


# --- index --------------------------------------------------------------------


def read_index(model_dir: str | os.PathLike) -> dict[str, str] | None:
    """The index's ``weight_map`` (tensor -> file), None without an index.

    Raises ``HeaderError`` when the index exists but cannot be used.
    """
    path = Path(model_dir) / INDEX_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise HeaderError(f"{INDEX_FILE} cannot be read: {exc}")
    weight_map = data.get("weight_map") if isinstance(data, dict) else None
    if not isinstance(weight_map, dict) or not all(
        isinstance(v, str) for v in weight_map.values()
    ):
        raise HeaderError(f"{INDEX_FILE} has no usable weight_map")
    return {str(k): v for k, v in weight_map.items()}


def missing_numbered_shards(names: Iterable[str]) -> list[str]:
    """``model-00003-of-00010.safetensors`` style names absent from ``names``."""
    present = set(names)
    missing: list[str] = []
    series: dict[tuple[str, str], int] = {}
    for name in present:
        m = SHARD_RE.match(name)
        if m:
            series[(m["stem"], m["total"])] = int(m["total"])
    for (stem, total_txt), total in series.items():
        width = len(total_txt)
        for i in range(1, total + 1):
            name = f"{stem}-{i:0{width}d}-of-{total_txt}.safetensors"
            if name not in present:
                missing.append(name)
    return sorted(missing)


def index_problems(
    model_dir: str | os.PathLike,
    weight_map: Mapping[str, str],
    headers: Mapping[str, SafetensorsHeader],
) -> list[str]:
    """Why the index and the shards disagree (empty: consistent).

    ``headers`` maps file names to the parsed headers (files whose header failed
    are simply absent; their own check reports them).
    """
    model_dir = Path(model_dir)
    named = set(weight_map.values())
    on_disk = {p.name for p in safetensors_files(model_dir)}
    problems = []
    absent = sorted(n for n in named if n not in on_disk)
    if absent:
        problems.append(f"names {few(absent)}, which do not exist")
    uncovered = sorted(
        n for n in on_disk - named if SHARD_RE.match(n) or n.startswith("model")
    )
    if uncovered:
        problems.append(f"does not cover {few(uncovered)}")
    misplaced = [
        f"{tensor} (in {fname})"
        for tensor, fname in weight_map.items()
        if fname in headers and tensor not in headers[fname].tensors
    ]
    if misplaced:
        problems.append(
            f"places tensors where the shard's header does not have them: {few(misplaced)}"
        )
    return problems


def few(items: list[str], limit: int = 3) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


# --- config.json ----------------------------------------------------------------

#: Keys vLLM reads the context limit from (the smallest present wins).
MAX_LEN_KEYS = (
    "max_position_embeddings",
    "n_positions",
    "max_seq_len",
    "seq_length",
    "model_max_length",
    "max_sequence_length",
    "max_seq_length",
    "seq_len",
)


def read_config(model_dir: str | os.PathLike) -> dict[str, Any]:
    """``config.json`` as a dict; ``HeaderError`` when missing or not a JSON object."""
    path = Path(model_dir) / "config.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise HeaderError("config.json is missing")
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise HeaderError(f"config.json does not parse: {exc}")
    if not isinstance(data, dict):
        raise HeaderError("config.json is not a JSON object")
    return data


def text_config(config: Mapping[str, Any]) -> Mapping[str, Any]:
    """The language model's config (nested as ``text_config`` / ``llm_config`` in VLMs)."""
    for key in ("text_config", "llm_config", "language_config"):
        sub = config.get(key)
        if isinstance(sub, Mapping) and sub:
            return sub
    return config


def model_max_len(config: Mapping[str, Any]) -> int | None:
    """The longest context the model supports, as vLLM derives it (None: unknown).

    The smallest of ``MAX_LEN_KEYS`` present in the text config, times the rope
    scaling factor (for ``yarn`` applied to ``original_max_position_embeddings``;
    ``su``/``longrope``/``llama3`` already include it), like vLLM's
    ``_get_and_verify_max_len``.
    """
    cfg = text_config(config)
    values = [int(cfg[k]) for k in MAX_LEN_KEYS if isinstance(cfg.get(k), int | float)]
    if not values:
        return None
    derived = float(min(values))
    rope = cfg.get("rope_scaling")
    if isinstance(rope, Mapping):
        kind = rope.get("rope_type", rope.get("type"))
        factor = rope.get("factor")
        if kind not in ("su", "longrope", "llama3", "mrope", "default") and isinstance(
            factor, int | float
        ):
            if kind == "yarn" and isinstance(
                rope.get("original_max_position_embeddings"), int
            ):
                derived = float(rope["original_max_position_embeddings"])
            derived *= float(factor)
    return int(derived)
