"""Attribute a scan to registry entries: size per entry, shared bytes, orphan folders.

Pure functions over :class:`inventory.scan.ScanResult` and :class:`EntryRef` (no
database). Rules, also in ``docs/reconcile.md``:

* An entry's files are those below its model directory (``backend_config.model_path``,
  else ``download_path``), plus what its symlinks point to inside the roots; an
  Ollama entry's files are the blobs of its tag's manifest.
* **Each inode is counted once** per entry and once in every total.
* **Ownership.** A file used by several entries (hard links, symlinks, Ollama blobs
  shared by tags, two entries on one folder) is *owned* by one of them: the first by
  name among the entries that hold a real link to it (not only a symlink), else the
  first by name. ``owned_bytes`` summed over entries is the disk use counted once;
  the backend totals use it.
* **Freed bytes.** Removing a set of folders frees an inode only when every one of
  its hard links (``st_nlink``) is inside the set; files also linked from elsewhere
  stay. ``exclusive_bytes`` is what removing the entry's folder alone would free.
* **Orphan folders** are model folders (:func:`inventory.scan.model_folders`) that
  no entry's model path or download path is at, inside, or above.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from .choices import UsageState
from .scan import Key, Partial, ScanResult, folder_size, is_within, model_folders


@dataclass(frozen=True)
class EntryRef:
    """What the scan and the findings need of one registry entry (plain data)."""

    name: str
    backend: str
    model_dir: str  # as recorded ("" = none; "ollama:/tag" = an Ollama tag)
    download_path: str = ""
    ollama_tag: str = ""  # normalised tag for Ollama entries
    pk: int | None = None
    served_model_id: str = ""  # "" = unset (the name is served)
    locked: bool = False
    deprecated: bool = False
    #: ``artifacts.files`` recorded by verify: ((relative path, sha256), ...)
    artifact_files: tuple[tuple[str, str], ...] = ()
    aggregate_sha256: str = ""
    #: The Ollama digest the entry expects (``metadata.ollama_digest``), if any.
    ollama_digest: str = ""

    @property
    def local_paths(self) -> list[str]:
        """Recorded local paths (model dir, download path), ``~`` expanded."""
        out = []
        for raw in (self.model_dir, self.download_path):
            if raw and not raw.startswith("ollama:"):
                path = os.path.expanduser(raw)
                if path not in out:
                    out.append(path)
        return out


@dataclass
class SharedFile:
    """One inode a holder uses that is not exclusively its own."""

    key: Key
    size: int
    nlink: int
    links: int  # hard links inside this holder's folder (0 = through a symlink)
    holders: list[str]  # every holder using it (entry names, orphan folder paths)
    owner: str

    def as_json(self) -> dict:
        return {
            "key": f"{self.key[0]}:{self.key[1]}",
            "size": self.size,
            "nlink": self.nlink,
            "links": self.links,
            "with": self.holders,
            "owner": self.owner,
        }


@dataclass
class Usage:
    """Disk use of one entry (or one orphan folder)."""

    name: str
    state: str = UsageState.UNKNOWN
    path: str = ""  # the real path that was measured
    files: int = 0
    size_bytes: int = 0
    disk_bytes: int = 0
    owned_bytes: int = 0
    exclusive_bytes: int = 0
    shared: list[SharedFile] = field(default_factory=list)
    partials: list[Partial] = field(default_factory=list)
    keys: dict[Key, int] = field(default_factory=dict)  # inode -> links inside
    via_links: set[Key] = field(default_factory=set)

    @property
    def shared_bytes(self) -> int:
        return sum(s.size for s in self.shared if len(s.holders) > 1)

    @property
    def shared_with(self) -> list[str]:
        names = {h for s in self.shared for h in s.holders if h != self.name}
        return sorted(names)


@dataclass
class Attribution:
    usage: dict[str, Usage]  # entry name -> usage
    orphans: dict[str, Usage]  # orphan folder path -> usage
    # real folder -> holders using exactly that folder (entry names or the orphan path)
    folder_holders: dict[str, list[str]]


def _measure_folder(result: ScanResult, usage: Usage, real: str) -> None:
    if os.path.isfile(real):
        key = result.files.get(real)
        usage.keys = {key: 1} if key else {}
    else:
        usage.keys, usage.via_links = result.resolve_keys(real)
    usage.partials = result.partials_under(real)
    if not usage.keys and not usage.via_links:
        usage.state = UsageState.EMPTY
    else:
        usage.state = UsageState.OK


def _measure_entry(result: ScanResult, ref: EntryRef) -> Usage:
    usage = Usage(name=ref.name)
    if ref.ollama_tag:
        store = result.ollama
        if store is None:
            usage.state = UsageState.UNKNOWN
            return usage
        manifest = store.manifests.get(ref.ollama_tag)
        if manifest is None:
            usage.state = UsageState.OLLAMA_ABSENT
            return usage
        usage.state = UsageState.OLLAMA
        usage.path = manifest.path
        usage.keys = {result.files[b]: 1 for b in manifest.blobs if b in result.files}
        return usage
    paths = ref.local_paths
    if not paths:
        usage.state = UsageState.NO_PATH
        return usage
    raw = paths[0]
    real = os.path.realpath(raw)
    usage.path = real
    if not os.path.lexists(raw) or not os.path.exists(real):
        usage.state = UsageState.MISSING
        return usage
    if not result.inside_roots(real):
        usage.state = UsageState.OUTSIDE
        return usage
    _measure_folder(result, usage, real)
    return usage


def _covered(folder: str, entry_paths: list[str]) -> bool:
    return any(is_within(folder, p) or is_within(p, folder) for p in entry_paths)


def find_orphans(result: ScanResult, refs: list[EntryRef]) -> list[str]:
    """Model folders no entry's model path or download path covers."""
    entry_paths = sorted({os.path.realpath(p) for ref in refs for p in ref.local_paths})
    return [f for f in model_folders(result) if not _covered(f, entry_paths)]


def attribute(result: ScanResult, refs: list[EntryRef]) -> Attribution:
    """Usage for every entry and orphan folder, with ownership of shared inodes."""
    usage = {ref.name: _measure_entry(result, ref) for ref in refs}
    orphans: dict[str, Usage] = {}
    for folder in find_orphans(result, refs):
        u = Usage(name=folder, path=folder)
        _measure_folder(result, u, folder)
        orphans[folder] = u
    holders: dict[str, Usage] = {**usage, **orphans}
    refs_by_key: dict[Key, list[tuple[str, int]]] = {}
    for name, u in holders.items():
        for key, links in u.keys.items():
            refs_by_key.setdefault(key, []).append((name, links))
        for key in u.via_links:
            refs_by_key.setdefault(key, []).append((name, 0))
    is_entry = set(usage)
    owners: dict[Key, str] = {}
    sharers: dict[Key, list[str]] = {}  # only inodes with more than one holder
    for key, refs_ in refs_by_key.items():
        if len(refs_) == 1:
            owners[key] = refs_[0][0]
            continue
        ranked = sorted(
            refs_, key=lambda r: (r[0] not in is_entry, r[1] == 0, r[0].lower())
        )
        owners[key] = ranked[0][0]
        sharers[key] = sorted({h for h, _ in refs_})
    for name, u in holders.items():
        _totals(result, u, name, owners, sharers)
    folder_holders: dict[str, list[str]] = {}
    for name, u in sorted(holders.items()):
        if u.path:
            folder_holders.setdefault(u.path, []).append(name)
    return Attribution(usage=usage, orphans=orphans, folder_holders=folder_holders)


def _totals(result, u: Usage, name: str, owners, sharers) -> None:
    inodes = result.inodes
    every = list(u.keys.items()) + [(k, 0) for k in u.via_links]
    u.files = len(every)
    for key, links in every:
        size, blocks, nlink = inodes[key]
        u.size_bytes += size
        u.disk_bytes += blocks * 512
        if owners[key] == name:
            u.owned_bytes += size
        holders = sharers.get(key)
        if holders is None and links >= nlink:
            u.exclusive_bytes += size
            continue
        u.shared.append(
            SharedFile(
                key=key,
                size=size,
                nlink=nlink,
                links=links,
                holders=holders or [name],
                owner=owners[key],
            )
        )


def freed_bytes(exclusive: dict[str, int], shared: dict[str, list[dict]]) -> int:
    """Bytes freed by removing the holders' folders together.

    ``exclusive``: holder -> exclusive bytes; ``shared``: holder -> its
    :meth:`SharedFile.as_json` records. A shared inode is freed when the hard links
    the selected holders hold add up to its link count.
    """
    total = sum(exclusive.values())
    links: dict[str, list[int]] = {}
    for records in shared.values():
        for rec in records:
            size_links = links.setdefault(rec["key"], [rec["size"], rec["nlink"], 0])
            size_links[2] += int(rec.get("links") or 0)
    total += sum(size for size, nlink, held in links.values() if held >= nlink)
    return total


def orphan_size(result: ScanResult, folder: str) -> tuple[int, int, int]:
    """``(bytes, files, freed)`` of an orphan folder (see :func:`scan.folder_size`)."""
    return folder_size(result, folder)


def symlinks_into(result: ScanResult, attribution: Attribution) -> dict[str, set[str]]:
    """holder -> other holders whose symlinks point into its folder (they would break)."""
    out: dict[str, set[str]] = {}
    for link, target in result.links.items():
        targets = holders_of(attribution, target)
        linkers = holders_of(attribution, link)
        for holder in targets:
            out.setdefault(holder, set()).update(h for h in linkers if h not in targets)
    return {k: v for k, v in out.items() if v}


def holders_of(attribution: Attribution, path: str) -> list[str]:
    """The holders of the innermost holder folder at or above ``path`` (O(depth))."""
    folders = attribution.folder_holders
    while True:
        found = folders.get(path)
        if found:
            return found
        parent = os.path.dirname(path)
        if parent == path:
            return []
        path = parent
