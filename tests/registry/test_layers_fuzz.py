"""Property tests: whatever JSON a layer holds, reading and merging never crash.

Only file-level damage may raise (LayerParseError); everything per entry becomes an
EntryProblem. Each example writes real files in a fresh temp folder.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from registry.layers import (
    CURATED_FILE,
    DISCOVERED_FILE,
    SNAPSHOT_FILE,
    LayerParseError,
    RegistryNotFound,
    detect_style,
    dumps,
    export_merged,
    load_registry,
    read_layer,
    write_layer_entries,
)
from registry.normalize import (
    aliases,
    canonical_flags,
    is_testing,
    model_dir,
    resolve_endpoint,
    roles,
    served_id,
    to_bool,
)
from tests.registry.test_layers import sample_entry

KNOWN_KEYS = [
    "name",
    "backend",
    "backend_config",
    "capabilities",
    "metadata",
    "roles",
    "model_aliases",
    "served_model_id",
    "deprecated",
    "version_lock",
    "performance",
    "probes",
    "artifacts",
    "download_path",
    "chat_template",
]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["", "None", "none", "false", "true", "0", "ollama://None", "é–’"]),
    st.text(max_size=12),
)
keys = st.sampled_from(KNOWN_KEYS) | st.text(max_size=6)
# Two explicit levels instead of st.recursive: much cheaper to generate, and deep
# enough for null sub-objects, wrong types and nested junk.
shallow = st.one_of(
    scalars,
    st.lists(scalars, max_size=3),
    st.dictionaries(keys, scalars, max_size=3),
)
json_values = st.one_of(
    shallow,
    st.lists(shallow, max_size=3),
    st.dictionaries(keys, shallow, max_size=3),
)


@st.composite
def mutated_entry(draw):
    """A realistic entry with random keys replaced, nulled or retyped, or junk."""
    if draw(st.integers(0, 9)) == 0:
        return draw(json_values)  # a non-dict (or nameless) item
    name = draw(st.sampled_from(["a", "b", "c", " a ", "qwen3_8b_(Q4_K_M)"]))
    entry = sample_entry(name.strip() or "x")
    entry["name"] = name
    for key in draw(st.lists(st.sampled_from(KNOWN_KEYS), max_size=4)):
        entry[key] = draw(json_values)
    for key in draw(st.lists(st.sampled_from(list(entry)), max_size=2)):
        entry.pop(key, None)
    return entry


layer_items = st.lists(mutated_entry(), max_size=4)


def _write(folder: Path, name: str, items) -> None:
    (folder / name).write_bytes(dumps(items))


def _denormalise(merged: dict) -> None:
    """What the sync code does with a merged entry: none of it may raise."""
    canonical_flags(merged.get("capabilities"))
    served_id(merged.get("served_model_id"))
    aliases(merged.get("model_aliases"))
    roles(merged.get("roles"))
    to_bool(merged.get("deprecated"))
    model_dir(merged)
    resolve_endpoint(merged)
    is_testing(merged.get("name"), merged.get("metadata"))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(curated=layer_items, discovered=layer_items, snapshot=st.none() | layer_items)
def test_load_registry_never_crashes(curated, discovered, snapshot):
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        _write(folder, CURATED_FILE, curated)
        _write(folder, DISCOVERED_FILE, discovered)
        if snapshot is not None:
            _write(folder, SNAPSHOT_FILE, snapshot)
        registry = load_registry(folder)
        for entry in registry.entries.values():
            assert entry.name and entry.name == entry.name.strip()
            assert isinstance(entry.merged, dict)
            _denormalise(entry.merged)
        json.dumps(export_merged(registry))
        for problem in registry.problems:
            assert problem.reason and problem.file in (CURATED_FILE, DISCOVERED_FILE)
        # A no-op write on any such registry leaves the layer bytes alone.
        before = (folder / DISCOVERED_FILE).read_bytes()
        write_layer_entries(folder, "discovered", {})
        assert (folder / DISCOVERED_FILE).read_bytes() == before


@settings(max_examples=300, deadline=None)
@given(st.one_of(json_values, st.binary(max_size=40), st.text(max_size=40)))
def test_read_layer_raises_only_layer_parse_error(content):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / CURATED_FILE
        if isinstance(content, bytes):
            path.write_bytes(content)
        elif isinstance(content, str):
            path.write_text(content, encoding="utf-8")
        else:
            path.write_bytes(dumps(content))
        try:
            layer = read_layer(path, "curated")
        except LayerParseError as exc:
            assert CURATED_FILE in str(exc)
        else:
            assert isinstance(layer.items, list)
        try:
            load_registry(tmp)
        except (LayerParseError, RegistryNotFound):
            pass


@settings(max_examples=200, deadline=None)
@given(
    items=st.lists(json_values, max_size=4),
    indent=st.sampled_from([None, 1, 2, 4, "\t"]),
    ensure_ascii=st.booleans(),
    newline=st.booleans(),
)
def test_style_detection_round_trips(items, indent, ensure_ascii, newline):
    data = json.dumps(items, indent=indent, ensure_ascii=ensure_ascii)
    data += "\n" if newline else ""
    raw = data.encode()
    assert dumps(json.loads(raw), detect_style(raw)) == raw
