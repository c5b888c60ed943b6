"""Read, merge and write the registry's JSON layers (no Django imports).

A registry folder holds two layers and a derived snapshot (reference §2):

* ``model_registry.curated.json``: hand-maintained entries;
* ``model_registry.discovered.json``: written by download/scan tools;
* ``model_registry.json``: the merged snapshot other tools read.

Reading is forgiving per entry: a bad item is reported as an :class:`EntryProblem` and
skipped, so one broken entry never makes the registry unloadable (the original crashes).
Only file-level damage (bad JSON, a root that is not a list) raises.

The merge is the original's: discovered entries in file order, then curated-only names;
for a name in both layers curated wins for every non-null key, dicts merge recursively and
everything else (lists, ``""``, ``false``, ``0``) replaces.

Writing goes through :func:`write_layer_entries` (or, for one entry of a big canonical
registry, :func:`splice_entry_write`): take the cross-process lock, re-read, refuse the
write if an entry changed since the caller read it (fingerprints), write atomically
(temp file, fsync, rename, timestamped backup), then re-materialize the snapshot. A
crash at any point leaves each file old or new.

Modules, in dependency order: ``constants``, ``errors``, ``style`` (JSON formatting),
``merge`` (the merge rule, fingerprints), ``read`` (one layer file), ``files`` (lock,
atomic write, backups, temp cleanup), ``load`` (a whole folder), ``write``,
``splice``. Callers use the names below (``layers.X``); the modules' other names are
the package's own.
"""

from .constants import (
    CURATED,
    CURATED_FILE,
    DISCOVERED,
    DISCOVERED_FILE,
    DYNAMIC_KEYS,
    LAYER_FILES,
    LEGACY,
    LEGACY_BACKUP_FILE,
    LOCK_FILE,
    READ_ONLY_MESSAGE,
    SNAPSHOT,
    SNAPSHOT_FILE,
)
from .errors import (
    ConflictError,
    FileChangedError,
    LayerParseError,
    LockTimeout,
    RegistryError,
    RegistryNotFound,
    RegistryWriteError,
)
from .files import atomic_write, registry_lock, remove_dead_temps, write_target
from .load import (
    Registry,
    export_merged,
    layer_signatures,
    load_registry,
    snapshot_matches,
)
from .merge import (
    ABSENT_FINGERPRINT,
    MergedEntry,
    entry_fingerprint,
    merge_entry_dicts,
    merged_view,
)
from .read import (
    NUL_REASON,
    REQUIRED_DICTS,
    EntryProblem,
    Layer,
    contains_nul,
    load_legacy_file,
    read_layer,
    unwritable,
)
from .splice import (
    FileState,
    KnownState,
    SpliceResult,
    find_item_span,
    render_item,
    splice_entry_write,
)
from .style import DEFAULT_STYLE, JsonStyle, detect_style, dumps, gc_paused
from .write import WriteResult, ordered_like, write_layer_entries

__all__ = [
    # file and layer names
    "CURATED",
    "CURATED_FILE",
    "DISCOVERED",
    "DISCOVERED_FILE",
    "DYNAMIC_KEYS",
    "LAYER_FILES",
    "LEGACY",
    "LEGACY_BACKUP_FILE",
    "LOCK_FILE",
    "READ_ONLY_MESSAGE",
    "SNAPSHOT",
    "SNAPSHOT_FILE",
    # errors
    "ConflictError",
    "FileChangedError",
    "LayerParseError",
    "LockTimeout",
    "RegistryError",
    "RegistryNotFound",
    "RegistryWriteError",
    # JSON style
    "DEFAULT_STYLE",
    "JsonStyle",
    "detect_style",
    "dumps",
    "gc_paused",
    # reading and merging
    "ABSENT_FINGERPRINT",
    "NUL_REASON",
    "REQUIRED_DICTS",
    "EntryProblem",
    "Layer",
    "MergedEntry",
    "Registry",
    "contains_nul",
    "unwritable",
    "entry_fingerprint",
    "export_merged",
    "layer_signatures",
    "load_legacy_file",
    "load_registry",
    "merge_entry_dicts",
    "merged_view",
    "read_layer",
    "snapshot_matches",
    # lock and atomic writes
    "atomic_write",
    "registry_lock",
    "remove_dead_temps",
    "write_target",
    # write-back
    "WriteResult",
    "ordered_like",
    "write_layer_entries",
    # fast single-entry write
    "FileState",
    "KnownState",
    "SpliceResult",
    "find_item_span",
    "render_item",
    "splice_entry_write",
]
