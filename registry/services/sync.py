"""Sync: make the ``ModelEntry`` mirror match the JSON layer files.

The NetBox ``DataSource.sync`` pattern: load the files, index existing rows by
name, bulk-create new entries, bulk-update changed ones, delete the ones that are
gone (their history and audit rows keep the name). A stat of the three files
comes first, so a sync when nothing changed costs three ``stat`` calls and one
query. Per-entry changes are recorded as ``EntryChange`` rows (changed keys only).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from .. import layers, normalize
from ..audit import Actor, record
from ..choices import Action, ChangeKind, Layer, Outcome, Provenance
from ..diffing import diff_entries
from ..models import ActionLog, EntryChange, LayerFile, ModelEntry
from ..version import bump as bump_registry_version
from ..version import listing_changed

logger = logging.getLogger(__name__)

LAYER_KEYS = (layers.CURATED, layers.DISCOVERED, layers.SNAPSHOT)
# Fields recomputed from the files on every sync (everything but `installed` for
# entries whose installed state comes from a server, and bookkeeping).
SYNCED_FIELDS = [
    "display_name",
    "backend",
    "roles",
    "roles_key",
    "capabilities",
    "cap_text",
    "cap_vision",
    "cap_embedding",
    "cap_audio",
    "cap_thinking",
    "cap_tools",
    "served_model_id",
    "aliases",
    "search_text",
    "backend_config",
    "download_path",
    "download_size_bytes",
    "aggregate_sha256",
    "locked",
    "expected_sha256",
    "last_verified",
    "last_verified_at",
    "deprecated",
    "testing",
    "in_curated",
    "in_discovered",
    "provenance",
    "field_sources",
    "curated_raw",
    "discovered_raw",
    "fingerprint",
    "synced_at",
]


@dataclass
class SyncResult:
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0
    problems: list[dict] = field(default_factory=list)
    no_change: bool = False
    error: str = ""
    #: the error is a broken registry file (``LayerParseError``), not an I/O failure
    broken: bool = False
    migrated: bool = False
    action: ActionLog | None = None
    history_ids: list[int] = field(default_factory=list, repr=False)
    #: with ``no_change``: the ``LayerFile`` rows that showed it (pages reuse them)
    layer_files: list[LayerFile] | None = field(default=None, repr=False)
    #: a row came or went, or a name, search text, backend or roles changed
    listing_moved: bool = field(default=False, repr=False)

    @property
    def ok(self) -> bool:
        return not self.error

    @property
    def changed_anything(self) -> bool:
        return bool(self.added or self.changed or self.removed)

    def summary(self) -> str:
        if self.error:
            return f"Registry not reloaded: {self.error}"
        if self.no_change:
            return "No registry file changed since the last reload."
        parts = [
            f"{len(self.added)} added",
            f"{len(self.changed)} changed",
            f"{len(self.removed)} removed",
            f"{self.unchanged} unchanged",
        ]
        text = "Registry reloaded: " + ", ".join(parts) + "."
        if self.problems:
            text += f" {len(self.problems)} entries skipped as unreadable (see Layer files)."
        if self.migrated:
            text += " The legacy single-file registry was split into curated and discovered layers."
        return text

    def as_dict(self) -> dict:
        return {
            "added": self.added,
            "changed": self.changed,
            "removed": self.removed,
            "unchanged": self.unchanged,
            "problems": self.problems,
            "no_change": self.no_change,
            "error": self.error,
        }


def registry_dir() -> Path:
    return Path(settings.IMAGEWORKS_REGISTRY_DIR)


def test_patterns():
    return normalize.compile_patterns(settings.IMAGEWORKS_TEST_MODEL_PATTERNS)


def layer_bytes() -> int:
    """Total size of the three registry files (a stat each)."""
    return sum(
        sig[1] for sig in layers.layer_signatures(registry_dir()).values() if sig
    )


def files_unchanged() -> bool:
    """True when the three files look exactly as the last sync saw them (3 stats, 1 query)."""
    return unchanged_layer_files() is not None


def unchanged_layer_files() -> list[LayerFile] | None:
    """The ``LayerFile`` rows when the three files look exactly as the last sync saw
    them, else None (3 stats, 1 query): a page that shows the rows reuses them."""
    signatures = layers.layer_signatures(registry_dir())
    rows = list(LayerFile.objects.all())
    seen = {lf.layer: lf for lf in rows}
    if set(seen) != set(LAYER_KEYS):
        return None
    for key, sig in signatures.items():
        lf = seen[key]
        if sig is None:
            if lf.exists:
                return None
        elif (
            not lf.exists
            or (lf.mtime_ns, lf.size) != sig
            or lf.path != str(_file_path(key))
        ):
            return None
    return rows


def _file_path(key: str) -> Path:
    files = {
        layers.CURATED: layers.CURATED_FILE,
        layers.DISCOVERED: layers.DISCOVERED_FILE,
        layers.SNAPSHOT: layers.SNAPSHOT_FILE,
    }
    return registry_dir() / files[key]


def sync_registry(
    actor: Actor | None = None,
    *,
    force: bool = False,
    explicit: bool = True,
    action: ActionLog | None = None,
) -> SyncResult:
    """Bring the mirror in line with the files.

    ``explicit`` syncs (Reload button, CLI, task) always write one audit row;
    implicit ones (page load) write a row only when something changed. ``action``
    attributes the recorded entry changes to a write-back's audit row instead.
    A file that cannot be read leaves the last good mirror in place.
    """
    actor = actor or Actor.system()
    with layers.gc_paused():
        return _sync(actor, force, explicit, action)


def _sync(
    actor: Actor, force: bool, explicit: bool, action: ActionLog | None
) -> SyncResult:
    if not force:
        rows = unchanged_layer_files()
        if rows is not None:
            return no_change(actor, rows, explicit=explicit and action is None)
    try:
        registry = layers.load_registry(registry_dir())
    except layers.RegistryError as exc:
        result = SyncResult(
            error=str(exc), broken=isinstance(exc, layers.LayerParseError)
        )
        _record_file_error(exc)
        # Implicit (page-load) syncs stay silent on errors: the page shows the
        # error banner, and a broken file must not add an audit row per page view.
        if action is None and explicit:
            result.action = record(
                actor,
                Action.SYNC,
                outcome=Outcome.FAILED,
                message=result.summary(),
                details=result.as_dict(),
            )
        logger.warning("sync failed: %s", exc)
        return result
    with transaction.atomic():
        _serialise_syncs()
        # Caches keyed on the version see this commit. Bumped before any entry row is
        # touched: every writer locks the version row first, then entry rows
        # (``record_entry_write`` too), so two writers never wait on each other in a
        # circle (PostgreSQL reported a deadlock when this ran after ``_apply``).
        bump_registry_version(listing=False)
        result = _apply(registry, actor, action)
        if result.listing_moved:
            # Names, search texts, backends or roles changed: a new listing version,
            # and its search index written before any web process can see it.
            bump_registry_version()
            # Imported here: the search index pulls in rapidfuzz, which a CLI command
            # that syncs nothing new (``list``, ``current-model``) need not load.
            from .. import search_share

            search_share.prebuild(ModelEntry)
        snapshot_current = _snapshot_current(registry, result)
        _save_layer_files(registry, snapshot_current)
        if action is None and (explicit or result.changed_anything):
            result.action = record(
                actor, Action.SYNC, message=result.summary(), details=result.as_dict()
            )
            if result.history_ids:
                EntryChange.objects.filter(pk__in=result.history_ids).update(
                    action=result.action
                )
    if registry.snapshot is not None and not snapshot_current:
        # After the commit: no transaction around file I/O. A page load does not wait
        # for a busy lock: its holder is a writer, which rewrites the snapshot too.
        repair_snapshot(
            actor, wait=REPAIR_LOCK_TIMEOUT if explicit else 0, loaded=registry
        )
    return result


def no_change(actor: Actor, rows: list[LayerFile], *, explicit: bool) -> SyncResult:
    """The result of a sync that found every file as the last one left it (*rows*:
    the ``LayerFile`` rows that showed it); an explicit sync still writes its audit row."""
    result = SyncResult(no_change=True, layer_files=rows)
    if explicit:
        result.action = record(
            actor, Action.SYNC, message=result.summary(), details=result.as_dict()
        )
    return result


#: The PostgreSQL advisory lock key of mirror updates ("IWSY").
SYNC_LOCK_KEY = 0x49575359


def _serialise_syncs() -> None:
    """One mirror update at a time, in the caller's transaction (released at commit).

    SQLite needs nothing: its IMMEDIATE transactions take the write lock at BEGIN.
    On PostgreSQL (READ COMMITTED) two syncs (page loads, writes catching up) would
    both read the rows, both miss a new entry and both insert it: the second one
    failed on the unique name (a 500). With the lock the second reads the rows the
    first committed.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [SYNC_LOCK_KEY])


#: How long a sync waits for a writer before leaving a stale snapshot to it.
REPAIR_LOCK_TIMEOUT = 10.0


def repair_snapshot(
    actor: Actor,
    wait: float = REPAIR_LOCK_TIMEOUT,
    *,
    loaded: layers.Registry | None = None,
) -> bool:
    """Rewrite ``model_registry.json`` when it is not the merge of the layers (a
    writer killed between its layer write and its snapshot write); True if it did.

    Under the registry lock (taking it also removes the temp files dead writers left,
    ``layers.remove_dead_temps``), the files are read again: a writer that held the
    lock has finished, and its own snapshot is not mistaken for a stale one. The
    registry the caller *loaded* is reused instead when none of the three files moved
    since it was read (same size and modification time), as after most syncs. The
    rewrite is audited as a repair. A read-only folder, a busy lock or a broken file
    leave the snapshot as it is (the next sync or write tries again); never raises.
    """
    from ..layers.style import snapshot_bytes

    folder = registry_dir()
    try:
        with layers.registry_lock(folder, wait):
            registry = (
                loaded
                if loaded is not None and _still_as_read(loaded, folder)
                else layers.load_registry(folder)
            )
            if registry.snapshot is None or layers.snapshot_matches(registry):
                return False
            data = snapshot_bytes([entry.merged for entry in registry.entries.values()])
            path = folder / layers.SNAPSHOT_FILE
            layers.atomic_write(path, data, keep_backups=0)
            info = path.stat()
    except (layers.RegistryError, OSError) as exc:
        logger.warning("stale %s not repaired: %s", layers.SNAPSHOT_FILE, exc)
        return False
    LayerFile.objects.filter(layer=layers.SNAPSHOT).update(
        exists=True,
        mtime_ns=info.st_mtime_ns,
        size=info.st_size,
        sha256=hashlib.sha256(data).hexdigest(),
        entry_count=len(registry.entries),
        error="",
    )
    record(
        actor,
        Action.REPAIR,
        message=f"Repaired {layers.SNAPSHOT_FILE}: it was not the merge of the "
        "layer files (a write was interrupted); rewritten from them.",
        details={"file": str(path), "entries": len(registry.entries)},
    )
    return True


def _still_as_read(registry: layers.Registry, folder: Path) -> bool:
    """True when the three files have the size and modification time they had when
    *registry* was read from *folder* (so reading them again would give the same)."""
    if registry.migrated or registry.dir != folder:
        return False
    read = {
        layers.CURATED: registry.curated,
        layers.DISCOVERED: registry.discovered,
        layers.SNAPSHOT: registry.snapshot,
    }
    for key, sig in layers.layer_signatures(folder).items():
        layer = read[key]
        was = (
            (layer.mtime_ns, layer.size) if layer is not None and layer.exists else None
        )
        if sig != was:
            return False
    return True


def _apply(
    registry: layers.Registry, actor: Actor, action: ActionLog | None
) -> SyncResult:
    """Bring the rows in line with *registry*: create, update, delete, record history."""
    now = timezone.now()
    result = SyncResult(migrated=registry.migrated)
    result.problems = [
        {"file": p.file, "index": p.index, "name": p.name, "reason": p.reason}
        for p in registry.problems
        if getattr(p, "skipped", True)
    ]
    existing = {
        name: (pk, fingerprint, testing, installed)
        for name, pk, fingerprint, testing, installed in ModelEntry.objects.values_list(
            "name", "pk", "fingerprint", "testing", "installed"
        )
    }
    to_create, changed_fields = _compare(registry, existing, result, now)
    result.removed = [name for name in existing if name not in registry.entries]
    user_name = actor.name if action is not None else ""
    history, result.listing_moved = _update_rows(changed_fields, now, action, user_name)
    result.listing_moved |= bool(to_create or result.removed)
    history += _create_rows(to_create, not existing, now, action, user_name)
    history += _delete_rows(result.removed, now, action, user_name)
    if history:
        EntryChange.objects.bulk_create(history, batch_size=500)
        result.history_ids = [h.pk for h in history if h.pk]
    return result


def _compare(
    registry: layers.Registry, existing: dict, result: SyncResult, now
) -> tuple[list[ModelEntry], dict[str, dict]]:
    """New rows to create and ``name -> column values`` of rows to update.

    Fills ``result.added`` / ``changed`` / ``unchanged``. An entry whose raw content
    is unchanged (same fingerprint) is only re-denormalised when an
    environment-derived column moved (testing patterns, files appearing on disk).
    """
    patterns = test_patterns()
    to_create: list[ModelEntry] = []
    changed_fields: dict[str, dict] = {}
    caps_cache: dict = {}
    for name, merged_entry in registry.entries.items():
        current = existing.get(name)
        if current is None:
            fields = entry_fields(merged_entry, patterns, now, caps_cache)
            to_create.append(
                ModelEntry(
                    name=name, installed=_installed(merged_entry.merged), **fields
                )
            )
            result.added.append(name)
            continue
        _pk, fingerprint, testing, installed = current
        if fingerprint == merged_entry.fingerprint:
            result.unchanged += 1
            # Checked without denormalising the whole entry.
            peek = _peek(merged_entry)
            new_testing = normalize.is_testing(name, peek["metadata"], patterns)
            new_installed = _installed(peek, installed)
            if new_testing == testing and new_installed == installed:
                continue
            fields = entry_fields(merged_entry, patterns, now, caps_cache)
            changed_fields[name] = {**fields, "installed": new_installed}
            continue
        fields = entry_fields(merged_entry, patterns, now, caps_cache)
        changed_fields[name] = {
            **fields,
            "installed": _installed(merged_entry.merged, installed),
        }
        result.changed.append(name)
    return to_create, changed_fields


def _update_row(
    row: ModelEntry, fields: dict, now, action: ActionLog | None, user_name: str
) -> list[EntryChange]:
    """Apply new column values to one mirror row (the caller saves it).

    The one place a mirror row changes: a sync's bulk update and a spliced write
    (:func:`record_entry_write`) both call it, so the two cannot drift apart.
    Returns the (unsaved) history of the layers whose raw content changed.
    """
    history: list[EntryChange] = []
    if row.fingerprint != fields["fingerprint"]:
        history = _history(
            row, row.curated_raw, row.discovered_raw, fields, now, action, user_name
        )
    for key, value in fields.items():
        setattr(row, key, value)
    row.version += 1
    return history


#: Every column :func:`_update_row` may change.
MIRROR_UPDATE_FIELDS = [*SYNCED_FIELDS, "installed", "version"]


def _update_rows(
    changed_fields: dict[str, dict], now, action: ActionLog | None, user_name: str
) -> tuple[list[EntryChange], bool]:
    """Update the rows; their history, and whether a ``LISTING_FIELDS`` value moved."""
    if not changed_fields:
        return [], False
    rows = ModelEntry.objects.in_bulk(list(changed_fields), field_name="name")
    history: list[EntryChange] = []
    listing = False
    for name, fields in changed_fields.items():
        row = rows[name]
        listing = listing or listing_changed(row, fields)
        history += _update_row(row, fields, now, action, user_name)
    ModelEntry.objects.bulk_update(
        list(rows.values()), MIRROR_UPDATE_FIELDS, batch_size=500
    )
    return history, listing


def _create_rows(
    to_create: list[ModelEntry],
    first_sync: bool,
    now,
    action: ActionLog | None,
    user_name: str,
) -> list[EntryChange]:
    """Insert new rows; after the first sync each one gets an "added" history row."""
    if not to_create:
        return []
    insert_entries(to_create)
    if first_sync:
        return []
    created = ModelEntry.objects.in_bulk([e.name for e in to_create], field_name="name")
    history: list[EntryChange] = []
    for entry in created.values():
        history += _history(
            entry, None, None, _raw_fields(entry), now, action, user_name
        )
    return history


#: From this many new rows on, PostgreSQL gets them through ``COPY``.
COPY_MIN_ROWS = 200


def insert_entries(entries: list[ModelEntry]) -> None:
    """Insert new mirror rows: ``bulk_create``, or on PostgreSQL (many rows) ``COPY``.

    Both send what the model's fields prepare (``pre_save`` + ``get_db_prep_save``:
    the ORM's own conversion, e.g. ``OrderedJSONField``'s orjson text), so a row is
    the same either way. ``COPY`` streams the rows in one statement instead of
    psycopg splitting ~380,000 placeholders of a 10,000-entry cold sync. The rows'
    primary keys are not read back (callers look rows up by name).
    """
    from django.db import connection

    if connection.vendor != "postgresql" or len(entries) < COPY_MIN_ROWS:
        ModelEntry.objects.bulk_create(entries, batch_size=500)
        return
    from psycopg import sql

    fields = [f for f in ModelEntry._meta.concrete_fields if not f.primary_key]
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(ModelEntry._meta.db_table),
        sql.SQL(", ").join(sql.Identifier(f.column) for f in fields),
    )
    with connection.cursor() as cursor, cursor.cursor.copy(statement) as copy:
        for entry in entries:
            copy.write_row(
                [
                    f.get_db_prep_save(f.pre_save(entry, True), connection)
                    for f in fields
                ]
            )


def _delete_rows(
    gone: list[str], now, action: ActionLog | None, user_name: str
) -> list[EntryChange]:
    """Delete rows whose entry left both layers; their history keeps the name."""
    if not gone:
        return []
    history: list[EntryChange] = []
    for old in ModelEntry.objects.filter(name__in=gone).values(
        "name", "curated_raw", "discovered_raw"
    ):
        history += _history(
            ModelEntry(name=old["name"]),
            old["curated_raw"],
            old["discovered_raw"],
            {"curated_raw": None, "discovered_raw": None},
            now,
            action,
            user_name,
        )
    ModelEntry.objects.filter(name__in=gone).delete()
    return history


def _raw_fields(entry: ModelEntry) -> dict:
    return {"curated_raw": entry.curated_raw, "discovered_raw": entry.discovered_raw}


def _history(
    row, old_curated, old_discovered, fields, now, action, user_name
) -> list[EntryChange]:
    out = []
    pairs = (
        (Layer.CURATED, old_curated, fields["curated_raw"]),
        (Layer.DISCOVERED, old_discovered, fields["discovered_raw"]),
    )
    for layer, before, after in pairs:
        if before == after:
            continue
        changes = diff_entries(before, after)
        if not changes:
            continue
        kind = (
            ChangeKind.ADDED
            if before is None
            else ChangeKind.REMOVED
            if after is None
            else ChangeKind.CHANGED
        )
        out.append(
            EntryChange(
                time=now,
                entry=row if row.pk else None,
                entry_name=row.name,
                layer=layer,
                kind=kind,
                changes=changes,
                action=action,
                user_name=user_name,
            )
        )
    return out


#: The merged values an unchanged entry is re-checked with: what ``is_testing`` and
#: ``_installed`` read (``metadata.testing``, ``backend_config.model_path``).
_PEEKED = (("metadata", "testing"), ("backend_config", "model_path"))


def _peek(entry: layers.MergedEntry) -> dict:
    """The part of ``entry.merged`` that ``is_testing`` and ``_installed`` read: for
    ``metadata`` and ``backend_config``, the merged value itself when it is not an
    object, else an object holding only the one key they read (merging both whole
    objects per unchanged entry was a tenth of a one-entry re-sync)."""
    peek = {"download_path": _merged_value(entry, "download_path")}
    for key, sub in _PEEKED:
        cur = (entry.curated or {}).get(key)
        disc = (entry.discovered or {}).get(key)
        if not (isinstance(cur, dict) and isinstance(disc, dict)):
            value = disc if cur is None else cur
            if isinstance(value, dict):
                value = {sub: value[sub]} if sub in value else {}
            peek[key] = value
            continue
        part = {sub: disc[sub]} if sub in disc else {}
        overlay = {sub: cur[sub]} if sub in cur else {}
        peek[key] = layers.merge_entry_dicts(part, overlay)
    return peek


def _merged_value(entry: layers.MergedEntry, key: str):
    """One top-level key of the merged entry, without merging the whole entry."""
    cur = (entry.curated or {}).get(key)
    disc = (entry.discovered or {}).get(key)
    if cur is None:
        return disc
    if isinstance(cur, dict) and isinstance(disc, dict):
        return layers.merge_entry_dicts(disc, cur)
    return cur


def _installed(merged: dict, previous: bool | None = None) -> bool | None:
    """Files on disk for local models; Ollama tags keep what the health check found.

    *merged* needs only the merged ``backend_config`` and ``download_path``."""
    path = normalize.model_dir(merged)
    if not path or path.startswith("ollama:"):
        return previous
    try:
        return normalize.local_path(path).is_dir()
    except OSError:
        return False


def _capabilities(raw, cache: dict | None) -> tuple[dict, dict]:
    """``(normalized map, canonical flags)``, memoised per distinct raw map.

    Real registries repeat a handful of 47-key maps thousands of times; normalising
    each one was the largest cost of a 10,000-entry sync. Callers get their own copy.
    """
    key = None
    if cache is not None and isinstance(raw, dict):
        try:
            key = tuple(raw.items())
            hit = cache.get(key)
        except TypeError:  # unhashable values: no caching
            key = hit = None
        if hit is not None:
            return dict(hit[0]), hit[1]
    caps = normalize.normalize_capabilities(raw)
    flags = normalize.canonical_flags(caps)
    if key is not None:
        cache[key] = (dict(caps), flags)
    return caps, flags


def entry_fields(
    entry: layers.MergedEntry, patterns, now, caps_cache: dict | None = None
) -> dict:
    """Denormalise one merged entry into ``ModelEntry`` column values."""
    m = entry.merged
    caps, flags = _capabilities(m.get("capabilities"), caps_cache)
    roles = normalize.roles(m.get("roles"))
    aliases = normalize.aliases(m.get("model_aliases"))
    display = str(m.get("display_name") or entry.name).strip() or entry.name
    backend_config = (
        m.get("backend_config") if isinstance(m.get("backend_config"), dict) else {}
    )
    artifacts = m.get("artifacts") if isinstance(m.get("artifacts"), dict) else {}
    lock = m.get("version_lock") if isinstance(m.get("version_lock"), dict) else {}
    last_verified = str(lock.get("last_verified") or "")
    in_curated = entry.curated is not None
    in_discovered = entry.discovered is not None
    return {
        "display_name": display[:500],
        "backend": str(m.get("backend") or "").strip()[:50],
        "roles": roles,
        "roles_key": ("|" + "|".join(roles) + "|") if roles else "",
        "capabilities": caps,
        "cap_text": flags.get("text", False),
        "cap_vision": flags.get("vision", False),
        "cap_embedding": flags.get("embedding", False),
        "cap_audio": flags.get("audio", False),
        "cap_thinking": flags.get("thinking", False),
        "cap_tools": flags.get("tools", False),
        "served_model_id": normalize.served_id(m.get("served_model_id"))[:500],
        "aliases": aliases,
        "search_text": "\n".join(
            [entry.name.lower(), display.lower(), *(a.lower() for a in aliases)]
        ),
        "backend_config": backend_config,
        "download_path": str(m.get("download_path") or "")[:2000],
        "download_size_bytes": _int_or_none(m.get("download_size_bytes")),
        "aggregate_sha256": str(artifacts.get("aggregate_sha256") or "")[:64],
        "locked": normalize.to_bool(lock.get("locked")),
        "expected_sha256": str(lock.get("expected_aggregate_sha256") or "")[:64],
        "last_verified": last_verified[:64],
        "last_verified_at": _parse_time(last_verified),
        "deprecated": normalize.to_bool(m.get("deprecated")),
        "testing": normalize.is_testing(entry.name, m.get("metadata"), patterns),
        "in_curated": in_curated,
        "in_discovered": in_discovered or entry.from_snapshot,
        "provenance": Provenance.BOTH
        if in_curated and (in_discovered or entry.from_snapshot)
        else Provenance.CURATED
        if in_curated
        else Provenance.DISCOVERED,
        "field_sources": entry.sources,
        "curated_raw": entry.curated,
        "discovered_raw": entry.discovered,
        "fingerprint": entry.fingerprint,
        "synced_at": now,
    }


def _int_or_none(value) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        return int(value) if value is not None and value != "" else None
    except (TypeError, ValueError):
        return None


def _parse_time(value: str) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if timezone.is_naive(parsed):
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def _snapshot_current(registry: layers.Registry, result: SyncResult) -> bool:
    """Does the snapshot equal the merge of the layers? (see ``_save_layer_files``)

    When the snapshot file is byte-identical to the one the last sync found current
    and no entry was added or removed, only the entries whose layers changed can
    differ: checking just those keeps a re-sync of a big registry from merging
    every entry.
    """
    snap = registry.snapshot
    previous = (
        LayerFile.objects.filter(layer=layers.SNAPSHOT)
        .values_list("sha256", flat=True)
        .first()
    )
    if (
        snap is None
        or not previous
        or previous != snap.sha256
        or result.added
        or result.removed
        or snap.style != layers.DEFAULT_STYLE
    ):
        return snapshot_matches(registry)
    names = list(registry.entries)
    items = snap.items
    if len(items) != len(names) or any(
        not isinstance(item, dict) or item.get("name") != name
        for item, name in zip(items, names, strict=True)
    ):
        return snapshot_matches(registry)
    position = {name: i for i, name in enumerate(names)}
    for name in result.changed:
        merged = registry.entries[name].merged
        item = items[position[name]]
        if item != merged or list(item) != list(merged):
            return False
    return True


def snapshot_matches(registry: layers.Registry) -> bool:
    """``layers.snapshot_matches`` without building every merged entry.

    A re-sync after another tool rewrote the snapshot must check all of it, but
    merging each entry first (copying every dict level of 10,000 entries) was a third
    of the one-entry-changed re-sync. This walks each snapshot item against the
    entry's two layers instead: the same answer (values, and the top-level key order
    the merge produces), no copies. An entry whose merge was already built is
    compared with it directly.
    """
    snap = registry.snapshot
    if snap is None or snap.style != layers.DEFAULT_STYLE:
        return False
    entries = registry.entries.values()
    if len(snap.items) != len(entries):
        return False
    return all(
        _is_merge(item, entry) for item, entry in zip(snap.items, entries, strict=True)
    )


def _is_merge(item, entry: layers.MergedEntry) -> bool:
    """``item == entry.merged`` and the same top-level key order."""
    built = entry._merged
    if built is not None:
        return item == built and list(item) == list(built)
    if not isinstance(item, dict):
        return False
    cur, disc = entry.curated, entry.discovered
    if cur is None or disc is None:
        base = (cur if cur is not None else disc) or {}
        return item == base and list(item) == list(base)
    expected = _merge_like(item, disc, cur)
    return expected is not None and list(item) == list(expected) and item == expected


_ABSENT = object()


def _merge_like(item, base, overlay) -> dict | None:
    """A dict equal to *item* exactly when ``item == layers.merge_entry_dicts(base,
    overlay)``, or None when a nested merge already differs; in the merge's key order.

    Computed without the merge's copies (same rule: ``None`` overlay values are
    skipped, dicts over dicts merge, anything else replaces): a shallow copy of
    *base* with the overlay's values put in, and *item*'s own value at each key where
    two dicts merge, once that value is checked the same way. The caller compares
    it with *item* in one ``==``: the per-key work stays in C, which made the check
    of a rewritten snapshot of 10,000 entries about twice as fast.
    """
    if not isinstance(item, dict):
        return None
    expected = dict(base) if isinstance(base, dict) else {}
    nested = []
    for key, value in overlay.items():
        if value is None:
            continue
        if isinstance(value, dict) and isinstance(expected.get(key), dict):
            nested.append(key)
        else:
            expected[key] = value
    for key in nested:
        sub = item.get(key, _ABSENT)
        inner = _merge_like(sub, expected[key], overlay[key])
        if inner is None or sub != inner:
            return None
        expected[key] = sub
    return expected


def _save_layer_files(registry: layers.Registry, snapshot_current: bool) -> None:
    """Record what this sync read. The snapshot's sha256 is kept only when the
    snapshot equals the merge of the layers (``snapshot_current``): that is what lets
    a write splice one entry into it (``writeback``) instead of rewriting it whole."""
    now = timezone.now()
    for key, layer in (
        (layers.CURATED, registry.curated),
        (layers.DISCOVERED, registry.discovered),
        (layers.SNAPSHOT, registry.snapshot),
    ):
        path = _file_path(key)
        values = {
            "path": str(path),
            "exists": bool(layer and layer.exists),
            "mtime_ns": layer.mtime_ns if layer and layer.exists else None,
            "size": layer.size if layer and layer.exists else None,
            "sha256": layer.sha256
            if layer and (key != layers.SNAPSHOT or snapshot_current)
            else "",
            "entry_count": len(layer.entries) if layer else 0,
            "problems": [
                {
                    "index": p.index,
                    "name": p.name,
                    "reason": p.reason,
                    "skipped": getattr(p, "skipped", True),
                }
                for p in (layer.problems if layer else [])
            ],
            "error": "",
            "synced_at": now,
        }
        LayerFile.objects.update_or_create(layer=key, defaults=values)


def _record_file_error(exc: layers.RegistryError) -> None:
    """Remember a file-level error (shown on the page); keep the last good mirror."""
    path = str(getattr(exc, "path", "") or "")
    for key in LAYER_KEYS:
        if path and Path(path).name == _file_path(key).name:
            LayerFile.objects.update_or_create(
                layer=key,
                defaults={
                    "path": str(_file_path(key)),
                    "error": str(exc),
                    "mtime_ns": None,
                },
            )
            return


# --------------------------------------------------------------------------------------
# One-entry writes without a full re-sync
# --------------------------------------------------------------------------------------


@dataclass
class MirrorState:
    """The mirror's view of one entry, valid while the files are the ones last synced."""

    row: ModelEntry
    known: layers.KnownState


def _mirrored_files(name: str) -> tuple[list[LayerFile], ModelEntry] | None:
    """The ``LayerFile`` rows and *name*'s mirror row, when that row is the files'
    content right now: the three files look exactly as the last sync saw them (path,
    mtime, size; a missing file still missing), no file had an error and no problem
    was reported for *name*. None otherwise. Call it under the registry lock."""
    files = unchanged_layer_files()
    if files is None:
        return None
    for lf in files:
        if lf.error or any(p.get("name") == name for p in lf.problems or []):
            return None
    row = ModelEntry.objects.filter(name=name).first()
    return None if row is None else (files, row)


def mirror_row(name: str) -> ModelEntry | None:
    """The mirror row of *name* when it is the files' content right now, else None
    (:func:`_mirrored_files`). Unlike :func:`mirror_state` (what a splice needs) the
    snapshot may be missing: a read takes the layers only."""
    mirrored = _mirrored_files(name)
    return None if mirrored is None else mirrored[1]


def mirror_state(name: str) -> MirrorState | None:
    """What the mirror knows about *name*, when it can stand in for a full read.

    Call it under the registry lock. None unless :func:`_mirrored_files` trusts the
    row and all three files exist with the sha256 the last sync recorded
    (``splice_entry_write`` checks the bytes against them).
    """
    mirrored = _mirrored_files(name)
    if mirrored is None:
        return None
    files, row = mirrored
    if not all(lf.exists and lf.sha256 for lf in files):
        return None
    return MirrorState(
        row=row,
        known=layers.KnownState(
            sha256={lf.layer: lf.sha256 for lf in files},
            curated=row.curated_raw,
            discovered=row.discovered_raw,
            fingerprint=row.fingerprint,
            snapshot_current=True,
        ),
    )


def record_entry_write(
    state: MirrorState,
    spliced: layers.SpliceResult,
    actor: Actor,
    action: ActionLog | None,
) -> SyncResult:
    """Update the mirror after ``layers.splice_entry_write``: that one row, its history
    and the written files' signatures; what ``sync_registry`` would have done, without
    re-reading 10,000 entries. Call it under the registry lock that covered the write.
    """
    now = timezone.now()
    result = SyncResult()
    row = state.row
    entry = spliced.entry
    with transaction.atomic():
        if row.fingerprint != entry.fingerprint:
            fields = {
                **entry_fields(entry, test_patterns(), now),
                "installed": _installed(entry.merged, row.installed),
            }
            bump_registry_version(listing=listing_changed(row, fields))
            user_name = actor.name if action is not None else ""
            history = _update_row(row, fields, now, action, user_name)
            ModelEntry.objects.bulk_update([row], MIRROR_UPDATE_FIELDS)
            if history:
                EntryChange.objects.bulk_create(history)
                result.history_ids = [h.pk for h in history if h.pk]
            result.changed.append(row.name)
        result.unchanged = ModelEntry.objects.count() - len(result.changed)
        for key, info in spliced.files.items():
            current = key != layers.SNAPSHOT or spliced.snapshot_current
            LayerFile.objects.filter(layer=key).update(
                mtime_ns=info.mtime_ns,
                size=info.size,
                sha256=info.sha256 if current else "",
                synced_at=now,
            )
    return result
