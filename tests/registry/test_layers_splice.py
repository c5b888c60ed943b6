"""The one-entry splice write equals the full rewrite, byte for byte.

``layers.splice_entry_write`` replaces only one item's text in the layer and in the
snapshot; for canonical files the result must be exactly what ``write_layer_entries``
(full re-read, ``json.dumps`` of the whole layer, snapshot re-materialized) writes, and
every byte outside the entry must be untouched.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from registry import layers
from tests.registry.test_layers import sample_entry

FILES = (layers.CURATED_FILE, layers.DISCOVERED_FILE, layers.SNAPSHOT_FILE)

# Any character but NUL and lone surrogates: writes refuse them (the database cannot
# store a NUL, UTF-8 cannot hold a surrogate; test_write_refuses_unwritable_values).
_CHARS = st.characters(exclude_characters="\x00", exclude_categories=("Cs",))
json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(_CHARS, max_size=12),
)
json_value = st.recursive(
    json_leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.text(_CHARS, max_size=6), inner, max_size=3),
    ),
    max_leaves=8,
)
# Keys whose values the reader validates: keep the edited entry clean so the splice
# applies (unclean entries take the full path, covered elsewhere).
_SAFE_KEYS = st.text(_CHARS, max_size=10).filter(
    lambda k: (
        k not in {"name", *layers.REQUIRED_DICTS, "capabilities", "backend"}
        and k not in {"roles", "model_aliases", "deprecated"}
    )
)


def _build(
    folder: Path, count: int, indent, ensure_ascii: bool, prefix: str = "m"
) -> None:
    discovered = [
        sample_entry(f"{prefix}{i}", display_name=f"Modèle {i}") for i in range(count)
    ]
    curated = [
        {"name": f"{prefix}{i}", "display_name": f"Curated – {i}", "roles": ["caption"]}
        for i in range(0, count, 2)
    ]
    for name, items in (
        (layers.CURATED_FILE, curated),
        (layers.DISCOVERED_FILE, discovered),
    ):
        text = json.dumps(items, indent=indent, ensure_ascii=ensure_ascii) + "\n"
        (folder / name).write_text(text, encoding="utf-8")
    registry = layers.load_registry(folder)
    (folder / layers.SNAPSHOT_FILE).write_bytes(
        layers.dumps(layers.export_merged(registry))
    )


def _known(folder: Path, name: str) -> layers.KnownState:
    registry = layers.load_registry(folder)
    entry = registry.entries[name]
    return layers.KnownState(
        sha256={
            layers.CURATED: registry.curated.sha256,
            layers.DISCOVERED: registry.discovered.sha256,
            layers.SNAPSHOT: registry.snapshot.sha256,
        },
        curated=entry.curated,
        discovered=entry.discovered,
        fingerprint=entry.fingerprint,
        snapshot_current=layers.snapshot_matches(registry),
    )


def _files(folder: Path) -> dict[str, bytes]:
    return {name: (folder / name).read_bytes() for name in FILES}


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    count=st.integers(1, 6),
    pick=st.integers(0, 5),
    layer=st.sampled_from([layers.CURATED, layers.DISCOVERED]),
    indent=st.sampled_from([2, 4, "\t"]),
    ensure_ascii=st.booleans(),
    edits=st.dictionaries(_SAFE_KEYS, json_value, max_size=3),
    drop=st.booleans(),
    # Non-ASCII names: the entry is found by its encoded "name" line in the bytes.
    prefix=st.sampled_from(["m", "modèle–𝔁-"]),
)
def test_splice_equals_full_rewrite(
    count, pick, layer, indent, ensure_ascii, edits, drop, prefix
):
    tmp = Path(tempfile.mkdtemp(prefix="splice-test-"))
    try:
        a, b = tmp / "a", tmp / "b"
        a.mkdir()
        _build(a, count, indent, ensure_ascii, prefix)
        shutil.copytree(a, b)
        # Curated holds even names only: an odd pick in curated is "add", full path.
        name = f"{prefix}{(pick % count)}"
        known = _known(a, name)
        old = known.curated if layer == layers.CURATED else known.discovered
        if old is None:
            assert (
                layers.splice_entry_write(
                    a,
                    layer,
                    name,
                    {"name": name},
                    known=known,
                    expected=known.fingerprint,
                )
                is None
            )
            return
        new = dict(old)
        if drop and len(new) > 1:
            new.pop(next(k for k in new if k != "name"))
        new.update(edits)
        before = _files(a)
        spliced = layers.splice_entry_write(
            a, layer, name, new, known=known, expected=known.fingerprint, keep_backups=0
        )
        assert spliced is not None
        full = layers.write_layer_entries(
            b, layer, {name: new}, expected={name: known.fingerprint}, keep_backups=0
        )
        got, want = _files(a), _files(b)
        assert got == want
        assert spliced.write.after == full.after
        assert spliced.write.before == full.before
        assert spliced.write.fingerprints == full.fingerprints
        assert spliced.write.changed == full.changed
        # The new files' hashes (from the kept hash of the bytes before the entry)
        # are the files' real hashes: the mirror's next splice checks against them.
        for key, file_name in (
            (layer, layer_file_name(layer)),
            (layers.SNAPSHOT, layers.SNAPSHOT_FILE),
        ):
            assert (
                spliced.files[key].sha256 == hashlib.sha256(got[file_name]).hexdigest()
            )
            assert spliced.files[key].size == len(got[file_name])
        fresh = layers.load_registry(a).entries[name]
        assert spliced.entry.fingerprint == fresh.fingerprint
        assert spliced.entry.merged == fresh.merged
        assert spliced.entry.sources == fresh.sources
        # Outside the entry's span nothing moved: the old prefix and suffix are kept.
        spans = {
            layer_file_name(layer): (old, _style(before[layer_file_name(layer)])),
            layers.SNAPSHOT_FILE: (
                layers.MergedEntry(name, known.curated, known.discovered, False).merged,
                layers.DEFAULT_STYLE,
            ),
        }
        for file_name, (old_item, style) in spans.items():
            old_data, new_data = before[file_name], got[file_name]
            s0, e0 = layers.find_item_span(old_data, name, old_item, style)
            assert new_data.startswith(old_data[:s0])
            assert new_data.endswith(old_data[e0:])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def layer_file_name(layer: str) -> str:
    return layers.LAYER_FILES[layer]


def _style(data: bytes) -> layers.JsonStyle:
    return layers.detect_style(data)


def _setup(tmp: Path, count: int = 4) -> Path:
    folder = tmp / "reg"
    folder.mkdir()
    _build(folder, count, 2, True)
    return folder


def test_conflict_raises_and_writes_nothing(tmp_path):
    folder = _setup(tmp_path)
    known = _known(folder, "m1")
    before = _files(folder)
    try:
        layers.splice_entry_write(
            folder,
            layers.DISCOVERED,
            "m1",
            {"name": "m1"},
            known=known,
            expected="0" * 64,
        )
    except layers.ConflictError as exc:
        assert exc.current_fingerprint == known.fingerprint
    else:
        raise AssertionError("no conflict")
    assert _files(folder) == before


def test_falls_back_when_the_files_are_not_what_the_caller_knows(tmp_path):
    folder = _setup(tmp_path)
    known = _known(folder, "m1")
    path = folder / layers.CURATED_FILE
    path.write_bytes(path.read_bytes().replace(b"Curated", b"Kurated"))
    before = _files(folder)
    new = {**known.discovered, "display_name": "x"}
    assert (
        layers.splice_entry_write(
            folder,
            layers.DISCOVERED,
            "m1",
            new,
            known=known,
            expected=known.fingerprint,
        )
        is None
    )
    assert _files(folder) == before


def test_falls_back_for_stale_snapshot_non_canonical_file_and_removal(tmp_path):
    folder = _setup(tmp_path)
    known = _known(folder, "m1")
    new = {**known.discovered, "display_name": "x"}
    stale = layers.KnownState(**{**known.__dict__, "snapshot_current": False})
    assert (
        layers.splice_entry_write(
            folder,
            layers.DISCOVERED,
            "m1",
            new,
            known=stale,
            expected=known.fingerprint,
        )
        is None
    )
    assert (
        layers.splice_entry_write(
            folder,
            layers.DISCOVERED,
            "m1",
            None,
            known=known,
            expected=known.fingerprint,
        )
        is None
    )
    # An entry hand-formatted differently: its span does not re-render, full path.
    path = folder / layers.DISCOVERED_FILE
    text = path.read_text().replace('"name": "m1",', '"name":  "m1",')
    path.write_text(text)
    known = _known(folder, "m1")
    assert (
        layers.splice_entry_write(
            folder,
            layers.DISCOVERED,
            "m1",
            new,
            known=known,
            expected=known.fingerprint,
        )
        is None
    )
    # A new copy that the reader would warn about: full path (problems change).
    folder2 = tmp_path / "two"
    folder2.mkdir()
    _build(folder2, 3, 2, True)
    known = _known(folder2, "m1")
    bad = {**known.discovered, "deprecated": "yes"}
    assert (
        layers.splice_entry_write(
            folder2,
            layers.DISCOVERED,
            "m1",
            bad,
            known=known,
            expected=known.fingerprint,
        )
        is None
    )


def test_snapshot_matches(tmp_path):
    folder = _setup(tmp_path)
    assert layers.snapshot_matches(layers.load_registry(folder))
    layers.atomic_write(folder / layers.CURATED_FILE, b"[]\n", keep_backups=0)
    assert not layers.snapshot_matches(layers.load_registry(folder))
