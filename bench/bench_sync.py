"""Benchmark: sync a realistic 10,000-entry registry into a throwaway database.

Usage::

    .venv/bin/python bench/bench_sync.py [--entries 10000] [--rounds 3] [--keep]
        [--profile STEP] [--database-url postgresql://postgres@127.0.0.1:5432/postgres]

Builds both layers with N entries each (copies of the real fixture entries with
varied names, hashes, sizes and metadata; the sample registry's shapes when the
shared fixtures are missing) in a temp dir and migrates a temp SQLite database (or,
with ``--database-url``, a database the bench creates on that server and drops at
the end). Then, ``--rounds`` times, every step runs right after one sample of the
plain-stdlib baseline (json.load both layers + the merge): cold sync, no-change
re-sync, forced re-sync (files re-read, nothing changed), one-entry-changed re-sync,
one ``change_entry`` edit (splice path; after an outside change: catch-up sync +
splice; with a stale snapshot: the full path). Prints each step's median, spread
and its median ratio to the baseline sample taken just before it, the history
stored for the one-entry change and peak memory.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from bench.owned import own_pg_database  # noqa: E402

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


STEPS = (
    ("cold", "cold sync (empty DB)"),
    ("no-change", "no-change re-sync (stat check)"),
    ("forced", "forced re-sync (files re-read, nothing changed)"),
    ("changed", "one-entry-changed re-sync"),
    ("edit", "one change_entry edit (splice + one-row update + audit)"),
    ("edit-catch-up", "same, after an outside change (catch-up sync + splice)"),
    ("edit-full", "same, stale snapshot (full path: both files rewritten)"),
    ("verify", "one verify of a 3-file model (read, hash, write-back, audit)"),
)
#: Every step can be profiled (``--profile``).
PROFILE_STEPS = tuple(key for key, _label in STEPS)


class Steps:
    """The measured operations; each call is one sample and asserts its outcome."""

    def __init__(self, reg: Path, entries: int):
        from registry.audit import Actor
        from registry.models import ActionLog, EntryChange, LayerFile, ModelEntry

        self.reg = reg
        self.entries = entries
        self.actor = Actor.system("bench")
        self.tables = (EntryChange, ActionLog, ModelEntry, LayerFile)
        self.round = 0
        self.history_bytes = 0
        self.history_rows = 0
        self.only = {key for key, _ in STEPS}

    def before(self, step: str) -> None:
        """Untimed preparation of one sample."""
        from registry import layers

        if step == "cold":
            # Our own throwaway database: empty its registry tables.
            for model in self.tables:
                model.objects.all().delete()
        elif step == "changed":
            from registry.models import EntryChange

            self.items = outside_change(
                self.reg, self.entries // 2, 31337 + 10 * self.round
            )
            self.history_before = EntryChange.objects.count()
        elif step == "edit-catch-up":
            outside_change(self.reg, 30, 31338 + 10 * self.round)
        elif step == "verify" and not hasattr(self, "verify_name"):
            self.verify_name = self.model_to_verify()
        elif step == "edit-full":
            # A snapshot that does not equal the merge of the layers (another tool
            # left it stale): nothing may be spliced into it.
            snap_path = self.reg / layers.SNAPSHOT_FILE
            snap_items = json.loads(snap_path.read_text())
            snap_items[40]["display_name"] = f"stale snapshot copy {self.round}"
            snap_path.write_text(json.dumps(snap_items, indent=2) + "\n")

    def run(self, step: str):
        from registry.services.sync import sync_registry

        if step == "cold":
            result = sync_registry(self.actor)
            assert result.ok and len(result.added) == self.entries, result.summary()
        elif step == "no-change":
            assert sync_registry(self.actor).no_change
        elif step == "forced":
            result = sync_registry(self.actor, force=True)
            assert result.unchanged == self.entries and not result.changed
        elif step == "changed":
            result = sync_registry(self.actor)
            target = self.items[self.entries // 2]["name"]
            assert result.changed == [target], result.summary()
        elif step == "verify":
            from registry.services import verify

            outcome = verify.verify(self.verify_name, self.actor)
            assert outcome.files == 3, outcome
        else:
            index = {"edit": 10, "edit-catch-up": 20, "edit-full": 50}[step]
            assert self.edit(index, f"{step} {self.round}").changed

    def after(self, step: str) -> None:
        if step == "changed" and self.round == 0:
            from registry.models import EntryChange

            new = EntryChange.objects.count() - self.history_before
            rows = list(EntryChange.objects.order_by("-pk")[:new])
            self.history_rows = len(rows)
            self.history_bytes = sum(len(json.dumps(h.changes)) for h in rows)

    def model_to_verify(self) -> str:
        """Untimed: three small files in the bench's own folder, recorded as one
        entry's model path (an edit); the verify step hashes and records them."""
        from registry import layers
        from registry.choices import Action
        from registry.services.writeback import change_entry

        folder = self.reg.parent / "bench-model"
        folder.mkdir()
        for i, size in enumerate((70_000, 4_000, 300)):
            (folder / f"part-{i}.bin").write_bytes(bytes([i]) * size)
        name = _name_at(self.reg, 60)

        def point_at_folder(raw):
            raw = dict(raw or {"name": name})
            config = dict(raw.get("backend_config") or {})
            config["model_path"] = str(folder)
            return {**raw, "backend": "vllm", "backend_config": config}

        change_entry(self.actor, Action.EDIT, name, layers.CURATED, point_at_folder)
        return name

    def edit(self, index: int, label: str):
        from registry import layers
        from registry.choices import Action
        from registry.models import ModelEntry
        from registry.services.writeback import change_entry

        name = f"{_name_at(self.reg, index)}"
        fingerprint = ModelEntry.objects.get(name=name).fingerprint
        return change_entry(
            self.actor,
            Action.EDIT,
            name,
            layers.CURATED,
            lambda raw: {**raw, "display_name": f"edited by the bench ({label})"},
            expected_fingerprint=fingerprint,
        )


def _name_at(reg: Path, index: int) -> str:
    from registry.models import ModelEntry

    return ModelEntry.objects.order_by("pk").values_list("name", flat=True)[index]


def _spread(values: list[float]) -> str:
    med = statistics.median(values)
    if med <= 0 or len(values) < 2:
        return ""
    return f"{(min(values) - med) / med:+.0%}/{(max(values) - med) / med:+.0%}"


def _profile(func):
    import cProfile
    import pstats

    prof = cProfile.Profile()
    prof.enable()
    try:
        return func()
    finally:
        prof.disable()
        pstats.Stats(prof).sort_stats("cumulative").print_stats(30)


def measure(steps: Steps, reg: Path, rounds: int, profile: str | None) -> dict:
    """``rounds`` x (baseline, step) for every step, interleaved: each step sample is
    paired with the baseline run just before it, so load on the machine hits both."""
    samples: dict[str, list[tuple[float, float]]] = {key: [] for key, _ in STEPS}
    for r in range(rounds):
        steps.round = r
        for key, _label in STEPS:
            if key not in steps.only:
                continue
            steps.before(key)
            base = baseline(reg)
            start = time.perf_counter()
            if profile == key and r == 0:
                _profile(lambda key=key: steps.run(key))
            else:
                steps.run(key)
            samples[key].append((base, time.perf_counter() - start))
            steps.after(key)
        print(f"  round {r + 1}/{rounds} done", flush=True)
    return samples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3, help="samples per step")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir / DB")
    parser.add_argument(
        "--profile",
        choices=PROFILE_STEPS,
        help="cProfile one step (first round) and print its top 30 functions",
    )
    parser.add_argument(
        "--steps",
        help="comma-separated steps to run (default: all), e.g. cold,changed; "
        "'cold' always runs first (it fills the database)",
    )
    parser.add_argument(
        "--database-url",
        help="a PostgreSQL server to run against instead of a temp SQLite file, e.g. "
        "postgresql://postgres@127.0.0.1:5432/postgres: the bench creates its own "
        "database there and drops it at the end",
    )
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be >= 1")
    known = {key for key, _ in STEPS}
    args.only = set(args.steps.split(",")) | {"cold"} if args.steps else known
    if args.only - known:
        parser.error(
            f"unknown --steps {sorted(args.only - known)}; known: {sorted(known)}"
        )
    tmp = Path(tempfile.mkdtemp(prefix="bench-sync-"))
    try:
        if args.database_url:
            with own_pg_database(
                args.database_url, "bench_sync", keep=args.keep
            ) as url:
                return run(args, tmp, url)
        return run(args, tmp, None)
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def run(args, tmp: Path, database_url: str | None) -> int:
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
    if database_url:
        os.environ["DATABASE_URL"] = database_url
    else:
        os.environ.pop("DATABASE_URL", None)
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection, connections

    from registry import layers
    from registry.services.sync import sync_registry

    call_command("migrate", verbosity=0)
    t0 = time.perf_counter()
    build_registry(reg, args.entries)
    build_s = time.perf_counter() - t0
    sizes = {
        p.name: p.stat().st_size / 1e6 for p in sorted(reg.glob("model_registry*.json"))
    }
    steps = Steps(reg, args.entries)
    steps.only = args.only
    rss_before = rss_mb()
    samples = measure(steps, reg, args.rounds, args.profile)
    # Memory only (tracemalloc slows every allocation, so this run is not timed).
    tracemalloc.start()
    sync_registry(steps.actor, force=True)
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss_end = rss_mb()

    print(f"Registry: {args.entries} entries in each layer; built in {build_s:.1f} s")
    for file_name, mb in sizes.items():
        print(f"  {file_name}: {mb:.1f} MB")
    print(f"Database: {connection.vendor} {connection.settings_dict['NAME']}")
    print(
        f"{args.rounds} round(s); in each, every step runs right after its own "
        "baseline sample (json.load x2 + merge, stdlib)."
    )
    print()
    all_base = [b for pairs in samples.values() for b, _ in pairs]
    width = max(len(label) for _, label in STEPS)
    print(f"{'step'.ljust(width)}  {'median s':>9} {'spread':>11} {'vs baseline':>11}")
    print(
        f"{'stdlib baseline: json.load x2 + merge'.ljust(width)}  "
        f"{statistics.median(all_base):9.3f} {_spread(all_base):>11} {'1.0x':>11}"
    )
    for key, label in STEPS:
        if not samples[key]:
            continue
        times = [t for _, t in samples[key]]
        ratio = statistics.median(t / b for b, t in samples[key])
        print(
            f"{label.ljust(width)}  {statistics.median(times):9.3f} "
            f"{_spread(times):>11} {ratio:10.2f}x"
        )
    print()
    print(
        f"history for the one-entry change: {steps.history_rows} EntryChange row(s), "
        f"{steps.history_bytes} bytes of JSON (layer file: "
        f"{sizes[layers.DISCOVERED_FILE]:.1f} MB)"
    )
    print(
        f"peak RSS (ru_maxrss): before the first sync {rss_before:.0f} MB, "
        f"end {rss_end:.0f} MB"
    )
    print(
        f"tracemalloc peak during a forced re-sync (separate, untimed run): "
        f"{traced_peak / 1e6:.0f} MB"
    )
    connections.close_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
