"""Sync: the JSON layer files -> ``ModelEntry`` rows, ``EntryChange`` history.

The real fixture files are copied into a temp folder per test (never into the repo).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from django.test import TestCase, override_settings
from hypothesis import HealthCheck, given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st
from hypothesis.extra.django import TestCase as HypothesisTestCase

from registry import layers, normalize
from registry.audit import Actor
from registry.choices import Action, ChangeKind, Outcome
from registry.diffing import diff_entries
from registry.models import ActionLog, EntryChange, LayerFile, ModelEntry
from registry.services.sync import sync_registry
from tests.utils import FIXTURES_DIR, shared_fixtures_available

FILES = (layers.CURATED_FILE, layers.DISCOVERED_FILE, layers.SNAPSHOT_FILE)


def _entry(name: str, **extra) -> dict:
    return {"name": name, "backend": "vllm", **extra}


class RegistryDirMixin:
    """A fresh registry folder per test, wired in through settings."""

    def setUp(self):
        super().setUp()
        self.tmp = Path(tempfile.mkdtemp(prefix="sync-test-"))
        self.dir = self.tmp / "configs"
        self.dir.mkdir()
        override = override_settings(
            IMAGEWORKS_REGISTRY_DIR=self.dir,
            IMAGEWORKS_STAGING_DIR=self.tmp / "_staging",
        )
        override.enable()
        self.addCleanup(override.disable)
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def write(self, file_name: str, items) -> None:
        (self.dir / file_name).write_text(json.dumps(items, indent=2) + "\n")

    def copy_fixtures(self, *names: str) -> None:
        if not shared_fixtures_available():
            self.skipTest("shared fixtures not available")
        for name in names or FILES:
            shutil.copy(FIXTURES_DIR / name, self.dir / name)

    def sync(self, **kw):
        return sync_registry(Actor.system("test"), **kw)


class RealFixtureSyncTests(RegistryDirMixin, TestCase):
    def test_current_layers_sync_without_losing_a_field(self):
        self.copy_fixtures()
        result = self.sync()
        self.assertTrue(result.ok, result.summary())
        self.assertEqual(result.problems, [])
        snapshot = json.loads((FIXTURES_DIR / layers.SNAPSHOT_FILE).read_text())
        curated = {
            e["name"]: e
            for e in json.loads((FIXTURES_DIR / layers.CURATED_FILE).read_text())
        }
        discovered = {
            e["name"]: e
            for e in json.loads((FIXTURES_DIR / layers.DISCOVERED_FILE).read_text())
        }
        rows = {row.name: row for row in ModelEntry.objects.all()}
        self.assertEqual(set(rows), {e["name"] for e in snapshot})
        self.assertEqual(len(rows), 16)
        for expected in snapshot:
            row = rows[expected["name"]]
            # Key by key, in the same key order (the merged dict is what export writes).
            self.assertEqual(list(row.merged), list(expected), expected["name"])
            for key, value in expected.items():
                self.assertEqual(row.merged[key], value, f"{row.name}.{key}")
            self.assertEqual(row.curated_raw, curated.get(row.name))
            self.assertEqual(row.discovered_raw, discovered.get(row.name))
        florence = rows["florence-2-large_(FP16)"]
        self.assertEqual(florence.provenance, "both")
        self.assertEqual(
            rows["siglip-large-patch16-384_(FP32)"].provenance, "discovered"
        )
        self.assertTrue(rows["siglip-large-patch16-384_(FP32)"].cap_embedding)
        # "None" served ids are unset in the mirror, verbatim in merged.
        none_ids = [
            r for r in rows.values() if r.merged.get("served_model_id") == "None"
        ]
        self.assertTrue(none_ids)
        self.assertTrue(all(r.served_model_id == "" for r in none_ids))
        self.assertEqual(LayerFile.objects.get(layer="curated").entry_count, 14)

    def test_legacy_single_file_migrates_and_syncs(self):
        if not shared_fixtures_available():
            self.skipTest("shared fixtures not available")
        shutil.copy(
            FIXTURES_DIR / layers.LEGACY_BACKUP_FILE, self.dir / layers.SNAPSHOT_FILE
        )
        result = self.sync()
        self.assertTrue(result.ok, result.summary())
        self.assertTrue(result.migrated)
        self.assertEqual(ModelEntry.objects.count(), 31)
        self.assertTrue((self.dir / layers.CURATED_FILE).exists())
        self.assertTrue((self.dir / layers.LEGACY_BACKUP_FILE).exists())
        self.assertEqual(
            set(
                ModelEntry.objects.filter(in_curated=True).values_list(
                    "name", flat=True
                )
            ),
            {"llava-1.5-7b-awq", "qwen2.5-vl-7b-awq"},
        )
        # The four duplicates collapse; testing names are flagged by the original's rule.
        self.assertTrue(
            ModelEntry.objects.get(name="synthetic-test-ollama-gguf").testing
        )
        self.assertIn("legacy", result.summary())

    def test_backup_series_sync(self):
        if not shared_fixtures_available():
            self.skipTest("shared fixtures not available")
        backups = sorted(FIXTURES_DIR.glob("model_registry.discovered.*.bak.json"))
        self.assertGreaterEqual(len(backups), 2)
        for backup in backups:
            shutil.copy(backup, self.dir / layers.DISCOVERED_FILE)
            result = self.sync()
            self.assertTrue(result.ok, f"{backup.name}: {result.summary()}")
            names = {e["name"] for e in json.loads(backup.read_text())}
            self.assertEqual(
                set(ModelEntry.objects.values_list("name", flat=True)),
                names,
                backup.name,
            )

    def test_diff_between_consecutive_backups_is_exactly_the_changed_keys(self):
        if not shared_fixtures_available():
            self.skipTest("shared fixtures not available")
        old_file = FIXTURES_DIR / "model_registry.discovered.20251022-195800.bak.json"
        new_file = FIXTURES_DIR / "model_registry.discovered.20251022-200339.bak.json"
        shutil.copy(old_file, self.dir / layers.DISCOVERED_FILE)
        self.sync()
        first = EntryChange.objects.count()
        shutil.copy(new_file, self.dir / layers.DISCOVERED_FILE)
        result = self.sync()
        self.assertTrue(result.ok)

        # Expected, computed independently: flatten both versions to dotted paths.
        def flat(value, prefix=""):
            out = {}
            for key, item in value.items():
                path = f"{prefix}{key}"
                if isinstance(item, dict) and item:
                    out.update(flat(item, f"{path}."))
                else:
                    out[path] = item
            return out

        old = {e["name"]: e for e in json.loads(old_file.read_text())}
        new = {e["name"]: e for e in json.loads(new_file.read_text())}
        expected: dict[str, set[str]] = {}
        for name in old.keys() | new.keys():
            a, b = flat(old.get(name, {})), flat(new.get(name, {}))
            keys = {
                k
                for k in a.keys() | b.keys()
                if k not in a or k not in b or json.dumps(a[k]) != json.dumps(b[k])
            }
            if keys:
                expected[name] = keys

        def covered(path: str, keys: set[str]) -> set[str]:
            # An added/removed sub-dict is one change covering all its leaves.
            return {k for k in keys if k == path or k.startswith(path + ".")}

        recorded = EntryChange.objects.filter(layer="discovered").order_by("pk")[first:]
        got: dict[str, set[str]] = {}
        for change in recorded:
            leaves: set[str] = set()
            for item in change.changes:
                hit = covered(item["path"], expected.get(change.entry_name, set()))
                self.assertTrue(hit, f"{change.entry_name}: unexpected {item['path']}")
                leaves |= hit
            got[change.entry_name] = leaves
        self.assertEqual(got, expected)
        self.assertEqual(sorted(result.added), sorted(n for n in new if n not in old))
        self.assertEqual(
            sorted(result.changed), sorted(n for n in expected if n in old and n in new)
        )
        # Added entries are recorded as "added", with only their own keys, no file copy.
        for name in result.added:
            change = EntryChange.objects.get(entry_name=name, layer="discovered")
            self.assertEqual(change.kind, ChangeKind.ADDED)


class SyncBehaviourTests(RegistryDirMixin, TestCase):
    def setUp(self):
        super().setUp()
        self.write(
            layers.CURATED_FILE,
            [_entry("alpha", display_name="Alpha", roles=["caption"])],
        )
        self.write(
            layers.DISCOVERED_FILE,
            [
                _entry("alpha", download_path="/nowhere/alpha"),
                _entry("beta", backend="ollama"),
            ],
        )

    def test_no_change_sync_is_cheap(self):
        self.sync()
        # Implicit (page load, CLI pre-sync): the LayerFile stat check only.
        with self.assertNumQueries(1):
            result = self.sync(explicit=False)
        self.assertTrue(result.no_change)
        # Explicit (Reload): + the audit row insert + the staging mirror's read.
        with self.assertNumQueries(3):
            result = self.sync()
        self.assertTrue(result.no_change)
        # Constant: the same with many more entries.
        self.write(
            layers.DISCOVERED_FILE, [_entry(f"bulk-{i:03d}") for i in range(300)]
        )
        self.sync()
        with self.assertNumQueries(1):
            self.assertTrue(self.sync(explicit=False).no_change)

    def test_entries_with_a_nul_character_are_reported_not_stored(self):
        """PostgreSQL text and jsonb refuse NUL: such entries are skipped with a reason
        (found by the sync fuzz test on PostgreSQL), and the rest syncs."""
        self.write(
            layers.DISCOVERED_FILE,
            [
                _entry("\x00bad", backend=[]),
                _entry("gamma", display_name="G\x00", metadata={"k\x00": 1}),
                _entry("beta", backend="ollama"),
            ],
        )
        result = self.sync()
        self.assertTrue(result.ok, result.summary())
        self.assertEqual(
            sorted(ModelEntry.objects.values_list("name", flat=True)),
            ["alpha", "beta"],
        )
        reasons = {p["name"]: p["reason"] for p in result.problems}
        self.assertEqual(set(reasons), {"\\u0000bad", "gamma"})
        for reason in reasons.values():
            self.assertIn("NUL character", reason)
        stored = LayerFile.objects.get(layer=layers.DISCOVERED).problems
        self.assertEqual({p["name"] for p in stored}, {"\\u0000bad", "gamma"})

    def test_verification_times_with_and_without_a_zone_are_stored(self):
        """The original writes ``version_lock.last_verified`` as a naive ISO time (read
        as UTC), a ``Z`` time or one with an offset; a value that is no time is kept
        as text only."""
        self.write(
            layers.DISCOVERED_FILE,
            [
                _entry("alpha", version_lock={"last_verified": "2025-03-04T05:06:07"}),
                _entry(
                    "beta", version_lock={"last_verified": "2025-03-04T05:06:07+02:00"}
                ),
                _entry("gamma", version_lock={"last_verified": "2025-03-04T05:06:07Z"}),
                _entry("delta", version_lock={"last_verified": "last tuesday"}),
            ],
        )
        result = self.sync()
        self.assertTrue(result.ok, result.summary())
        rows = {
            row.name: row
            for row in ModelEntry.objects.only(
                "name", "last_verified", "last_verified_at"
            )
        }
        self.assertEqual(
            rows["alpha"].last_verified_at,
            datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC),
        )
        self.assertEqual(
            rows["beta"].last_verified_at,
            datetime(2025, 3, 4, 3, 6, 7, tzinfo=UTC),
        )
        self.assertEqual(
            rows["gamma"].last_verified_at,
            datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC),
        )
        self.assertIsNone(rows["delta"].last_verified_at)
        self.assertEqual(rows["delta"].last_verified, "last tuesday")

    def test_a_big_first_sync_stores_the_same_rows_as_row_by_row_inserts(self):
        """On PostgreSQL a sync that adds many entries loads them with ``COPY``; the
        rows must be exactly what ``bulk_create`` stores (run the suite with a
        PostgreSQL ``DATABASE_URL`` to cover that path)."""
        from unittest import mock

        from registry import version
        from registry.services import sync as sync_module

        items = [
            _entry(
                f"bulk-{i:03d}",
                display_name=f"Büro «{i}» \u2603",
                capabilities={"vision": i % 2 == 0, "tools": True},
                backend_config={"port": 8000 + i, "extra": [1, 2.5, None, "x"]},
                metadata={"big": 2**63 - 1, "nested": {"a": {"b": [i]}}},
                version_lock={
                    "locked": i % 3 == 0,
                    "last_verified": "2025-01-02T03:04:05",
                },
                download_size_bytes=i * 1000,
                roles=["caption"] if i % 4 == 0 else [],
            )
            for i in range(sync_module.COPY_MIN_ROWS + 20)
        ]
        self.write(layers.DISCOVERED_FILE, items)
        self.write(layers.CURATED_FILE, [])
        columns = [
            f.attname
            for f in ModelEntry._meta.concrete_fields
            if f.attname not in ("id", "created", "last_updated", "synced_at")
        ]

        def rows():
            return list(ModelEntry.objects.order_by("name").values_list(*columns))

        def wipe():
            ModelEntry.objects.all().delete()
            LayerFile.objects.all().delete()
            version.bump()

        wipe()
        self.assertTrue(self.sync(force=True).ok)
        bulk_loaded = rows()
        self.assertEqual(len(bulk_loaded), len(items))
        wipe()
        with mock.patch.object(sync_module, "COPY_MIN_ROWS", 10**9):
            self.assertTrue(self.sync(force=True).ok)
        self.assertEqual(rows(), bulk_loaded)
        entry = ModelEntry.objects.get(name="bulk-003")
        self.assertEqual(entry.merged["metadata"]["big"], 2**63 - 1)
        self.assertTrue(entry.locked)
        self.assertIsNotNone(entry.last_verified_at)
        self.assertIsNotNone(entry.created)

    def test_explicit_no_change_sync_writes_one_audit_row(self):
        self.sync()
        before = ActionLog.objects.count()
        result = self.sync()
        self.assertTrue(result.no_change)
        self.assertEqual(ActionLog.objects.count(), before + 1)
        self.assertEqual(ActionLog.objects.first().action, Action.SYNC)

    def test_removed_entries_go_and_keep_history(self):
        self.sync()
        self.write(layers.DISCOVERED_FILE, [_entry("alpha")])
        result = self.sync()
        self.assertEqual(result.removed, ["beta"])
        self.assertFalse(ModelEntry.objects.filter(name="beta").exists())
        change = EntryChange.objects.get(entry_name="beta")
        self.assertEqual(change.kind, ChangeKind.REMOVED)
        self.assertIsNone(change.entry)
        self.assertEqual({c["path"] for c in change.changes}, {"name", "backend"})

    def test_changed_entry_records_only_changed_keys(self):
        self.sync()
        version = ModelEntry.objects.get(name="beta").version
        self.write(
            layers.DISCOVERED_FILE,
            [
                _entry("alpha", download_path="/nowhere/alpha"),
                _entry("beta", backend="ollama", backend_config={"port": 11434}),
            ],
        )
        result = self.sync()
        self.assertEqual(result.changed, ["beta"])
        self.assertEqual(result.unchanged, 1)
        change = EntryChange.objects.get(entry_name="beta")
        self.assertEqual(
            change.changes,
            [
                {
                    "path": "backend_config",
                    "op": "added",
                    "before": None,
                    "after": {"port": 11434},
                }
            ],
        )
        self.assertEqual(change.action.action, Action.SYNC)
        self.assertEqual(ModelEntry.objects.get(name="beta").version, version + 1)

    def test_bad_entry_is_reported_and_the_rest_load(self):
        self.write(
            layers.DISCOVERED_FILE,
            [
                _entry("alpha"),
                _entry("broken", metadata=["not", "a", "dict"]),
                {"backend": "vllm"},
                "just a string",
            ],
        )
        result = self.sync()
        self.assertTrue(result.ok)
        self.assertEqual(
            set(ModelEntry.objects.values_list("name", flat=True)), {"alpha"}
        )
        reasons = {(p["name"], p["reason"]) for p in result.problems}
        self.assertIn(("broken", "metadata must be an object (found list)"), reasons)
        self.assertTrue(any(r == "missing name" for _, r in reasons))
        self.assertTrue(any("not a JSON object" in r for _, r in reasons))
        stored = LayerFile.objects.get(layer="discovered").problems
        self.assertTrue(any(p["name"] == "broken" for p in stored))
        self.assertIn("skipped", result.summary())

    def test_malformed_json_keeps_the_last_good_mirror(self):
        self.sync()
        names = set(ModelEntry.objects.values_list("name", flat=True))
        (self.dir / layers.CURATED_FILE).write_text('[{"name": "alpha",')
        result = self.sync()
        self.assertFalse(result.ok)
        self.assertIn("The registry file is broken: ", result.error)
        self.assertIn("model_registry.curated.json, not valid JSON", result.error)
        self.assertEqual(set(ModelEntry.objects.values_list("name", flat=True)), names)
        self.assertIn(
            "The registry file is broken", LayerFile.objects.get(layer="curated").error
        )
        row = ActionLog.objects.first()
        self.assertEqual((row.action, row.outcome), (Action.SYNC, Outcome.FAILED))
        # Fixing the file recovers on the next sync (the error cleared).
        self.write(layers.CURATED_FILE, [_entry("alpha", display_name="Alpha 2")])
        self.assertTrue(self.sync().ok)
        self.assertEqual(ModelEntry.objects.get(name="alpha").display_name, "Alpha 2")
        self.assertEqual(LayerFile.objects.get(layer="curated").error, "")

    def test_non_list_file_and_missing_folder_are_errors(self):
        self.write(layers.DISCOVERED_FILE, {"name": "x"})
        result = self.sync()
        self.assertIn("must be a JSON list", result.error)
        shutil.rmtree(self.dir)
        result = self.sync()
        self.assertFalse(result.ok)
        self.assertIn("not found", result.error)

    def test_test_model_patterns_setting_adds_testing_entries(self):
        self.sync()
        self.assertFalse(ModelEntry.objects.get(name="beta").testing)
        with self.settings(IMAGEWORKS_TEST_MODEL_PATTERNS=[r"^bet"]):
            result = self.sync(force=True)
        self.assertEqual(result.changed, [])  # content unchanged...
        self.assertTrue(ModelEntry.objects.get(name="beta").testing)  # ...flag moved
        self.assertFalse(ModelEntry.objects.get(name="alpha").testing)

    def test_forced_resync_of_unchanged_files_changes_nothing(self):
        self.sync()
        before = {r.name: (r.version, r.fingerprint) for r in ModelEntry.objects.all()}
        history = EntryChange.objects.count()
        result = self.sync(force=True)
        self.assertEqual((result.added, result.changed, result.removed), ([], [], []))
        self.assertEqual(
            {r.name: (r.version, r.fingerprint) for r in ModelEntry.objects.all()},
            before,
        )
        self.assertEqual(EntryChange.objects.count(), history)


# ------------------------------------------------------------------ property-based

_json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.text(max_size=4),
    st.just("None"),
    st.just("false"),
)
_json_value = st.recursive(
    _json_leaf,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(st.text(max_size=5), children, max_size=3),
    ),
    max_leaves=6,
)
_FIELDS = [
    "name",
    "backend",
    "capabilities",
    "metadata",
    "version_lock",
    "artifacts",
    "backend_config",
    "roles",
    "model_aliases",
    "served_model_id",
    "deprecated",
    "probes",
    "performance",
    "download_path",
    "download_size_bytes",
]


@st.composite
def _mutated_entry(draw):
    entry = {
        "name": draw(st.sampled_from(["m1", "m2", "m3", " m1 "])),
        "backend": "vllm",
        "capabilities": {"text": True, "vision": False},
        "version_lock": {"locked": False},
        "metadata": {},
    }
    for key in draw(st.lists(st.sampled_from(_FIELDS), max_size=4)):
        if draw(st.booleans()):
            entry[key] = draw(_json_value)
        else:
            entry.pop(key, None)
    return entry if draw(st.integers(0, 9)) else draw(_json_value)


class SyncPropertyTests(RegistryDirMixin, HypothesisTestCase):
    @hyp_settings(
        max_examples=40,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(
        curated=st.lists(_mutated_entry(), max_size=4),
        discovered=st.lists(_mutated_entry(), max_size=4),
    )
    def test_mutated_entries_never_crash_sync(self, curated, discovered):
        self.write(layers.CURATED_FILE, curated)
        self.write(layers.DISCOVERED_FILE, discovered)
        result = self.sync(force=True)
        self.assertTrue(result.ok, result.error)
        valid = set(ModelEntry.objects.values_list("name", flat=True))
        # Mutations may rename an entry (e.g. to "None"): only names present in the
        # input may be mirrored.
        given = {
            item["name"].strip()
            for item in [*curated, *discovered]
            if isinstance(item, dict) and isinstance(item.get("name"), str)
        }
        self.assertLessEqual(valid, given)
        # Every item is either mirrored or reported (with its reason).
        for items, file_name in (
            (curated, layers.CURATED_FILE),
            (discovered, layers.DISCOVERED_FILE),
        ):
            for index, item in enumerate(items):
                name = item.get("name") if isinstance(item, dict) else None
                ok_name = isinstance(name, str) and name.strip() in valid
                reported = any(
                    p["file"] == file_name and p["index"] == index
                    for p in result.problems
                ) or any(
                    p["file"] == file_name and p["name"] == (name or "").strip()
                    for p in result.problems
                    if isinstance(name, str)
                )
                self.assertTrue(ok_name or reported, f"{file_name}[{index}] {item!r}")
        for row in ModelEntry.objects.all():
            self.assertEqual(
                diff_entries(row.merged, row.merged), []
            )  # stored JSON round-trips


_json_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 3), st.sampled_from(["a", "b", ""])
)
_json_value = st.recursive(
    _json_leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from("abcde"), inner, max_size=4),
    ),
    max_leaves=12,
)
_layer_dict = st.dictionaries(st.sampled_from("abcdef"), _json_value, max_size=5)


@hyp_settings(max_examples=400, deadline=None)
@given(
    curated=st.one_of(st.none(), _layer_dict),
    discovered=st.one_of(st.none(), _layer_dict),
    other=_layer_dict,
    mutate=st.sampled_from(["same", "other", "reordered", "built", "deep"]),
    leaf=_json_value,
)
def test_snapshot_check_without_merging_agrees_with_merging(
    curated, discovered, other, mutate, leaf
):
    """``sync.snapshot_matches`` walks snapshot items against the two layers instead
    of merging every entry first; per entry it must answer exactly what comparing
    with the built merge answers (values and top-level key order)."""
    from registry.services.sync import _is_merge

    merged = layers.merged_view(curated, discovered)
    item = {
        "same": merged,
        "other": other,
        "reordered": dict(reversed(list(merged.items()))),
        "built": merged,
        "deep": merged,
    }[mutate]
    item = json.loads(json.dumps(item))  # a parsed snapshot holds its own copies
    if mutate == "deep":  # one value inside the deepest dict replaced (or added)
        inner = item
        while any(isinstance(v, dict) for v in inner.values()):
            inner = next(v for v in inner.values() if isinstance(v, dict))
        inner[next(iter(inner), "z")] = leaf
    entry = layers.MergedEntry("x", curated, discovered, False)
    if mutate == "built":
        entry.merged  # noqa: B018 - the compare must also work with it built
    expected = item == merged and list(item) == list(merged)
    assert _is_merge(item, entry) == expected


_peek_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(-2, 2), st.sampled_from(["", " /m ", "true"])
)
_peek_sub = st.one_of(
    _peek_leaf,
    st.lists(_peek_leaf, max_size=2),
    st.dictionaries(
        st.sampled_from(["testing", "model_path", "other"]),
        st.one_of(_peek_leaf, st.dictionaries(st.just("x"), _peek_leaf, max_size=1)),
        max_size=3,
    ),
)
_peek_layer = st.dictionaries(
    st.sampled_from(["metadata", "backend_config", "download_path", "name"]),
    _peek_sub,
    max_size=4,
)


@hyp_settings(max_examples=400, deadline=None)
@given(
    curated=st.one_of(st.none(), _peek_layer),
    discovered=st.one_of(st.none(), _peek_layer),
)
def test_unchanged_entry_recheck_reads_what_the_merge_holds(curated, discovered):
    """A re-sync re-checks ``testing`` and ``installed`` of every unchanged entry from
    a partial merge; both must come out as from the whole merged entry."""
    from registry.services.sync import _installed, _peek

    entry = layers.MergedEntry("x", curated, discovered, False)
    merged = layers.merged_view(curated, discovered)
    peek = _peek(entry)
    for name in ("x", "test-model"):
        assert normalize.is_testing(name, peek["metadata"]) == normalize.is_testing(
            name, merged.get("metadata")
        )
    assert normalize.model_dir(peek) == normalize.model_dir(merged)
    assert _installed(peek, True) == _installed(merged, True)


class SnapshotRepairReuseTests(RegistryDirMixin, TestCase):
    """A sync that finds the snapshot stale rewrites it from what it already read, and
    reads the files again only when one moved in between."""

    def setUp(self):
        super().setUp()
        self.write(layers.CURATED_FILE, [_entry("alpha", display_name="Alpha")])
        self.write(layers.DISCOVERED_FILE, [_entry("alpha"), _entry("beta")])
        from registry.layers.style import snapshot_bytes

        merged = layers.export_merged(layers.load_registry(self.dir))
        (self.dir / layers.SNAPSHOT_FILE).write_bytes(snapshot_bytes(merged))
        self.sync()
        # Another tool edits the curated layer and leaves the snapshot as it was.
        self.write(layers.CURATED_FILE, [_entry("alpha", display_name="Edited")])

    def snapshot_names(self) -> dict[str, str]:
        items = json.loads((self.dir / layers.SNAPSHOT_FILE).read_text())
        return {item["name"]: item.get("display_name") for item in items}

    def test_the_repair_reuses_the_registry_the_sync_read(self):
        from unittest import mock

        with mock.patch.object(
            layers, "load_registry", wraps=layers.load_registry
        ) as load:
            self.sync()
        self.assertEqual(load.call_count, 1)
        self.assertEqual(self.snapshot_names()["alpha"], "Edited")
        self.assertTrue(
            ActionLog.objects.filter(action=Action.REPAIR).exists(),
            "the repair is still audited",
        )

    def test_a_file_that_moved_after_the_read_is_read_again(self):
        from unittest import mock

        from registry.services import sync as sync_service

        real_repair = sync_service.repair_snapshot

        def edit_then_repair(*args, **kwargs):
            # A writer changes the layer between the sync's read and the repair.
            self.write(layers.CURATED_FILE, [_entry("alpha", display_name="Later")])
            return real_repair(*args, **kwargs)

        with mock.patch.object(sync_service, "repair_snapshot", edit_then_repair):
            self.sync()
        self.assertEqual(self.snapshot_names()["alpha"], "Later")
