"""Benchmark: sync a realistic 10,000-entry registry into a throwaway SQLite DB.

Usage::

    .venv/bin/python bench/bench_sync.py [--entries 10000] [--keep]
        [--profile cold|forced|changed|edit|edit-catch-up|edit-full] [--database-url URL]

Builds both layers with N entries each (copies of the real fixture entries with
varied names, hashes, sizes and metadata; the sample registry's shapes when the
shared fixtures are missing) in a temp dir, migrates a temp SQLite DB and prints:
cold sync, no-change re-sync, forced re-sync (files re-read, nothing changed),
one-entry-changed re-sync, one ``change_entry`` edit (splice path; after an outside
change: catch-up sync + splice; with a stale snapshot: the full path), the history
stored for the one-entry change, peak memory, and the plain-stdlib baseline
(json.load both layers + the merge), all in the same run. ``--database-url`` runs
the same steps against PostgreSQL.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import resource
import shutil
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
FIXTURES = REPO.parent / "shared" / "fixtures" / "imageworks-registry"


def _seed_entries() -> tuple[list[dict], dict[str, dict]]:
    """(discovered entries, curated entries by name) to copy from."""
    if (FIXTURES / "model_registry.discovered.json").exists():
        discovered = json.loads(
            (FIXTURES / "model_registry.discovered.json").read_text()
        )
        curated = json.loads((FIXTURES / "model_registry.curated.json").read_text())
        return discovered, {e["name"]: e for e in curated}
    from registry import sample

    tmp = Path(tempfile.mkdtemp(prefix="bench-seed-"))
    sample.write_sample_registry(tmp / "reg", tmp / "models", force=True)
    discovered = json.loads(
        (tmp / "reg" / "model_registry.discovered.json").read_text()
    )
    curated = json.loads((tmp / "reg" / "model_registry.curated.json").read_text())
    shutil.rmtree(tmp, ignore_errors=True)
    return discovered, {e["name"]: e for e in curated}


def _hex(i: int, salt: str) -> str:
    import hashlib

    return hashlib.sha256(f"{salt}-{i}".encode()).hexdigest()


def build_registry(folder: Path, count: int) -> None:
    """Both layers with *count* entries each (same names: every entry is in both)."""
    from registry import layers

    seeds, curated_seeds = _seed_entries()
    discovered_out, curated_out = [], []
    for i in range(count):
        seed = seeds[i % len(seeds)]
        name = f"{seed['name']}-{i:05d}"
        disc = copy.deepcopy(seed)
        disc["name"] = name
        disc["display_name"] = f"{seed.get('display_name') or seed['name']} #{i}"
        if isinstance(disc.get("artifacts"), dict) and disc["artifacts"].get(
            "aggregate_sha256"
        ):
            disc["artifacts"]["aggregate_sha256"] = _hex(i, "agg")
        if disc.get("download_size_bytes"):
            disc["download_size_bytes"] = int(disc["download_size_bytes"]) + i
        if disc.get("download_path") and not str(disc["download_path"]).startswith(
            "ollama:"
        ):
            # Not on this machine: installed=False, like most rows of a big registry.
            disc["download_path"] = f"/nonexistent/bench/{name}"
        disc.setdefault("metadata", {})
        if isinstance(disc["metadata"], dict):
            disc["metadata"]["bench_index"] = i
        discovered_out.append(disc)
        cur_seed = curated_seeds.get(seed["name"])
        if cur_seed is None:
            cur_seed = {k: v for k, v in seed.items() if k not in layers.DYNAMIC_KEYS}
        cur = copy.deepcopy(cur_seed)
        cur["name"] = name
        cur["display_name"] = disc["display_name"]
        if i % 7 == 0:
            cur["roles"] = ["caption", "keywords"]
        curated_out.append(cur)

    # The merged snapshot, as the original materializes it after every save.
    curated_by_name = {e["name"]: e for e in curated_out}
    snapshot = [
        layers.merge_entry_dicts(e, curated_by_name[e["name"]]) for e in discovered_out
    ]
    for file_name, items in (
        ("model_registry.discovered.json", discovered_out),
        ("model_registry.curated.json", curated_out),
        ("model_registry.json", snapshot),
    ):
        (folder / file_name).write_text(json.dumps(items, indent=2) + "\n")


def baseline(folder: Path) -> float:
    """json.load both layers and merge them with a plain deep merge."""

    def merge(base: dict, overlay: dict) -> dict:
        out = dict(base)
        for key, value in overlay.items():
            if value is None:
                continue
            if isinstance(value, dict) and isinstance(out.get(key), dict):
                out[key] = merge(out[key], value)
            else:
                out[key] = value
        return out

    start = time.perf_counter()
    with open(folder / "model_registry.curated.json") as fh:
        curated = json.load(fh)
    with open(folder / "model_registry.discovered.json") as fh:
        discovered = json.load(fh)
    merged = {e["name"]: e for e in discovered}
    for entry in curated:
        merged[entry["name"]] = merge(merged.get(entry["name"], {}), entry)
    elapsed = time.perf_counter() - start
    assert merged
    return elapsed


PROFILE_STEPS = ("cold", "forced", "changed", "edit", "edit-catch-up", "edit-full")


def outside_change(reg: Path, index: int, port: int) -> list:
    """What a download tool does: rewrite the discovered layer with one entry changed,
    then, like the original, the merged snapshot. Returns the discovered items."""
    from registry import layers

    path = reg / layers.DISCOVERED_FILE
    items = json.loads(path.read_text())
    target = items[index]
    target["backend_config"]["port"] = port
    target.setdefault("metadata", {})["notes"] = f"changed by the bench ({port})"
    path.write_text(json.dumps(items, indent=2) + "\n")
    snap_path = reg / layers.SNAPSHOT_FILE
    snap_items = json.loads(snap_path.read_text())
    cur_items = json.loads((reg / layers.CURATED_FILE).read_text())
    cur_target = next((e for e in cur_items if e["name"] == target["name"]), None)
    snap_items[index] = layers.merge_entry_dicts(target, cur_target or {})
    snap_path.write_text(json.dumps(snap_items, indent=2) + "\n")
    return items


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=10_000)
    parser.add_argument("--keep", action="store_true", help="keep the temp dir")
    parser.add_argument(
        "--profile",
        choices=PROFILE_STEPS,
        help="cProfile one step and print its top 30 functions",
    )
    parser.add_argument(
        "--database-url",
        help="run against this database instead of a temp SQLite file (its registry "
        "tables are emptied first), e.g. postgresql://postgres@127.0.0.1:5432/bench",
    )
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-sync-"))
    reg = tmp / "configs"
    reg.mkdir()
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "imageworks_site.settings",
            "IMAGEWORKS_VAR_DIR": str(tmp / "var"),
            "IMAGEWORKS_SQLITE_PATH": str(tmp / "bench.sqlite3"),
            "IMAGEWORKS_REGISTRY_DIR": str(reg),
            "IMAGEWORKS_STAGING_DIR": str(tmp / "_staging"),
            "LOG_LEVEL": "WARNING",
        }
    )
    if args.database_url:
        os.environ["DATABASE_URL"] = args.database_url
    else:
        os.environ.pop("DATABASE_URL", None)
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from registry import layers
    from registry.audit import Actor
    from registry.choices import Action
    from registry.models import ActionLog, EntryChange, LayerFile, ModelEntry
    from registry.services.sync import sync_registry
    from registry.services.writeback import change_entry

    call_command("migrate", verbosity=0)
    for model in (EntryChange, ActionLog, ModelEntry, LayerFile):
        model.objects.all().delete()
    t0 = time.perf_counter()
    build_registry(reg, args.entries)
    build_s = time.perf_counter() - t0
    sizes = {
        p.name: p.stat().st_size / 1e6 for p in sorted(reg.glob("model_registry*.json"))
    }
    actor = Actor.system("bench")
    figures: list[tuple[str, str]] = []

    def timed(label, func, step=None):
        prof = None
        if step is not None and step == args.profile:
            import cProfile

            prof = cProfile.Profile()
            prof.enable()
        start = time.perf_counter()
        value = func()
        elapsed = time.perf_counter() - start
        if prof is not None:
            import pstats

            prof.disable()
            pstats.Stats(prof).sort_stats("cumulative").print_stats(30)
        figures.append((label, f"{elapsed:8.3f} s"))
        return value, elapsed

    base_times = [baseline(reg) for _ in range(3)]
    figures.append(
        (
            "stdlib baseline: json.load x2 + merge (best of 3)",
            f"{min(base_times):8.3f} s",
        )
    )
    rss_before = rss_mb()
    result, cold = timed(
        "cold sync (empty DB)", lambda: sync_registry(actor), step="cold"
    )
    assert result.ok and len(result.added) == args.entries, result.summary()
    rss_cold = rss_mb()
    res, _ = timed("no-change re-sync (stat check)", lambda: sync_registry(actor))
    assert res.no_change
    res, _ = timed(
        "forced re-sync (files re-read, nothing changed)",
        lambda: sync_registry(actor, force=True),
        step="forced",
    )
    assert res.unchanged == args.entries and not res.changed, res.summary()
    # Memory only (tracemalloc slows every allocation, so this run is not timed).
    tracemalloc.start()
    sync_registry(actor, force=True)
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    # One entry changed by an outside tool (the whole file rewritten, as tools do).
    items = outside_change(reg, args.entries // 2, 31337)
    target = items[args.entries // 2]
    history_before = EntryChange.objects.count()
    res, _ = timed(
        "one-entry-changed re-sync", lambda: sync_registry(actor), step="changed"
    )
    assert res.changed == [target["name"]], res.summary()
    new_history = list(
        EntryChange.objects.order_by("-pk")[
            : EntryChange.objects.count() - history_before
        ]
    )
    history_bytes = sum(len(json.dumps(h.changes)) for h in new_history)

    name = items[10]["name"]
    fingerprint = ModelEntry.objects.get(name=name).fingerprint

    def edit():
        return change_entry(
            actor,
            Action.EDIT,
            name,
            layers.CURATED,
            lambda raw: {**raw, "display_name": "edited by the bench"},
            expected_fingerprint=fingerprint,
        )

    res_edit, _ = timed(
        "one change_entry edit (write + re-sync + audit)", edit, step="edit"
    )
    assert res_edit.changed

    def edit_other(index: int, label: str):
        other = items[index]["name"]
        other_fp = ModelEntry.objects.get(name=other).fingerprint
        return lambda: change_entry(
            actor,
            Action.EDIT,
            other,
            layers.CURATED,
            lambda raw: {**raw, "display_name": f"edited by the bench ({label})"},
            expected_fingerprint=other_fp,
        )

    # The same edit just after a download tool rewrote the discovered layer and the
    # snapshot: the edit first catches up (a sync), then splices.
    outside_change(reg, 30, 31338)
    res_catch, _ = timed(
        "one change_entry edit after an outside change (catch-up sync + splice)",
        edit_other(20, "catch-up"),
        step="edit-catch-up",
    )
    assert res_catch.changed

    # When the snapshot does not equal the merge of the layers (another tool left it
    # stale), nothing may be spliced into it: the full path re-writes the layer and
    # the snapshot whole and re-syncs everything.
    snap_path = reg / layers.SNAPSHOT_FILE
    snap_items = json.loads(snap_path.read_text())
    snap_items[40]["display_name"] = "stale snapshot copy"
    snap_path.write_text(json.dumps(snap_items, indent=2) + "\n")
    del snap_items
    res_full, _ = timed(
        "one change_entry edit, full path (stale snapshot)",
        edit_other(50, "full"),
        step="edit-full",
    )
    assert res_full.changed
    rss_end = rss_mb()

    print(f"Registry: {args.entries} entries in each layer; built in {build_s:.1f} s")
    for file_name, mb in sizes.items():
        print(f"  {file_name}: {mb:.1f} MB")
    print(f"Database: {connection.vendor} {connection.settings_dict['NAME']}")
    print()
    width = max(len(label) for label, _ in figures)
    for label, value in figures:
        print(f"{label.ljust(width)}  {value}")
    print()
    print(
        f"history for the one-entry change: {len(new_history)} EntryChange row(s), "
        f"{history_bytes} bytes of JSON (layer file: {sizes[layers.DISCOVERED_FILE]:.1f} MB)"
    )
    print(
        f"peak RSS (ru_maxrss): before sync {rss_before:.0f} MB, after cold sync "
        f"{rss_cold:.0f} MB, end {rss_end:.0f} MB"
    )
    print(
        f"tracemalloc peak during a forced re-sync (separate, untimed run): "
        f"{traced_peak / 1e6:.0f} MB"
    )
    print(f"cold sync / baseline: {cold / min(base_times):.1f}x")
    if args.keep:
        print(f"kept {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
