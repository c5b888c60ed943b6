"""Registry, disk and backends compared: one list of findings (no database).

:func:`build_findings` takes the scan, its attribution to entries, the entries and
what the backends last reported, and returns :class:`FindingData` items, each with
the kind, the entry and path, what is wrong, and the fixes (first = suggested).
Nothing here changes anything; ``docs/reconcile.md`` explains every kind and fix.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .choices import FindingKind, FixKind, UsageState
from .scan import WEIGHT_SUFFIXES, ScanResult, is_within
from .usage import Attribution, EntryRef, Usage, holders_of

EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
LISTED = 5  # paths named in one message


@dataclass
class FindingData:
    kind: str
    message: str
    entry: str = ""
    path: str = ""
    size_bytes: int | None = None
    fixes: list[str] = field(default_factory=list)
    hint: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.kind, self.entry, self.path, str(self.details.get("other", "")))

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "entry": self.entry or None,
            "path": self.path or None,
            "message": self.message,
            "size_bytes": self.size_bytes,
            "fixes": self.fixes,
            "hint": self.hint,
        }


@dataclass(frozen=True)
class OllamaServer:
    """One Ollama endpoint as the last health check saw it."""

    url: str
    installed: tuple[dict, ...] | None  # ({tag, digest, size}, ...); None = unknown
    entries: dict[str, dict]  # entry name -> {tag, installed}


@dataclass(frozen=True)
class VllmServed:
    """The running vLLM server as the last health check saw it."""

    logical_name: str
    served_models: tuple[str, ...]
    roots: dict[str, str | None]
    status: str
    checked_at: str = ""


@dataclass
class BackendState:
    ollama: list[OllamaServer] = field(default_factory=list)
    vllm: VllmServed | None = None


def human_bytes(n: int | None) -> str:
    """Like Django's ``filesizeformat`` (1024-based, one decimal), without settings."""
    size = float(n or 0)
    if size < 1024:
        return f"{int(size)} bytes"
    for unit in ("KB", "MB", "GB", "TB"):
        size /= 1024
        if size < 1024 or unit == "TB":
            return f"{size:.1f} {unit}"
    return f"{n} bytes"


def _listed(paths: list[str], base: str = "") -> str:
    shown = [os.path.relpath(p, base) if base else p for p in paths[:LISTED]]
    text = ", ".join(shown)
    if len(paths) > LISTED:
        text += f" (+{len(paths) - LISTED} more)"
    return text


def same_digest(a: str, b: str) -> bool:
    """Ollama digests compare without ``sha256:`` and case; a 12+ char prefix matches."""
    a = a.strip().lower().removeprefix("sha256:").removeprefix("sha256-")
    b = b.strip().lower().removeprefix("sha256:").removeprefix("sha256-")
    if not a or not b:
        return True
    short, long_ = sorted((a, b), key=len)
    return len(short) >= 12 and long_.startswith(short)


# --------------------------------------------------------------------------------------
# Disk findings
# --------------------------------------------------------------------------------------


def _orphans(result: ScanResult, att: Attribution) -> Iterable[FindingData]:
    for folder, u in sorted(att.orphans.items()):
        partial = (
            f"; {len(u.partials)} unfinished download file(s)" if u.partials else ""
        )
        yield FindingData(
            kind=FindingKind.ORPHAN_FOLDER,
            path=folder,
            size_bytes=u.size_bytes,
            message=(
                f"No entry's model path or download path points to this folder "
                f"({u.files} files, {human_bytes(u.size_bytes)}{partial})"
            ),
            fixes=[FixKind.IMPORT, FixKind.RECLAIM],
            hint=(
                "Give it an entry through the import wizard (downloads the "
                "downloader recorded are listed there), or move it to the trash "
                "with a reclaim plan."
            ),
            details={
                "files": u.files,
                "freed_bytes": u.exclusive_bytes + _freed_alone(u),
                "exclusive_bytes": u.exclusive_bytes,
                "shared": [s.as_json() for s in u.shared],
                "partials": [p.path for p in u.partials[:50]],
                "root": result.root_of(folder) or "",
            },
        )


def _freed_alone(u: Usage) -> int:
    return sum(s.size for s in u.shared if s.links >= s.nlink)


def _entry_state(ref: EntryRef, u: Usage, has_roots: bool) -> Iterable[FindingData]:
    if u.state == UsageState.MISSING:
        yield FindingData(
            kind=FindingKind.PATH_MISSING,
            entry=ref.name,
            path=u.path,
            message="The model path does not exist",
            fixes=[FixKind.EDIT, FixKind.MARK_DEPRECATED],
            hint="Correct the model path (Edit), download the model again, or "
            "mark the entry deprecated.",
        )
    elif u.state == UsageState.EMPTY:
        yield FindingData(
            kind=FindingKind.PATH_EMPTY,
            entry=ref.name,
            path=u.path,
            size_bytes=0,
            message="The model folder holds no files",
            fixes=[FixKind.EDIT, FixKind.MARK_DEPRECATED],
            hint="Download the model into it, correct the path, or mark the "
            "entry deprecated.",
        )
    elif u.state == UsageState.OUTSIDE and has_roots:
        yield FindingData(
            kind=FindingKind.OUTSIDE_ROOTS,
            entry=ref.name,
            path=u.path,
            message="The model path is outside IMAGEWORKS_MODEL_ROOTS: it was not "
            "scanned (and verify refuses it)",
            fixes=[FixKind.SETTING, FixKind.EDIT],
            hint="Add its folder to IMAGEWORKS_MODEL_ROOTS, or move the files into "
            "a root and edit the path.",
        )
    if u.partials and u.state in (UsageState.OK, UsageState.EMPTY):
        yield FindingData(
            kind=FindingKind.PARTIAL_DOWNLOAD,
            entry=ref.name,
            path=u.path,
            size_bytes=sum(p.size for p in u.partials),
            message=_partials_message(u),
            fixes=[FixKind.VERIFY, FixKind.COMMAND],
            hint="Finish (resume) the download, then Verify the entry to record "
            "the hash of the complete files.",
            details={"partials": [[p.path, p.size, p.reason] for p in u.partials]},
        )


def _partials_message(u: Usage) -> str:
    names = _listed([p.path for p in u.partials], u.path)
    zero = sum(1 for p in u.partials if p.size == 0 and "zero-byte" in p.reason)
    text = f"Unfinished download: {names}"
    if zero:
        text += f" ({zero} zero-byte weight shard{'s' if zero > 1 else ''})"
    return text


def _stray_partials(result: ScanResult, att: Attribution) -> Iterable[FindingData]:
    """Unfinished downloads that belong to no entry and no orphan folder."""
    folders = [u.path for u in (*att.usage.values(), *att.orphans.values()) if u.path]
    for partial in result.partials:
        if any(is_within(partial.path, f) for f in folders):
            continue
        yield FindingData(
            kind=FindingKind.PARTIAL_DOWNLOAD,
            path=partial.path,
            size_bytes=partial.size,
            message=f"Unfinished download ({partial.reason}), no entry uses it",
            fixes=[FixKind.COMMAND],
            hint="Resume the download, or remove the file (Ollama removes "
            "unreferenced partial blobs itself when it starts).",
        )


def _link_findings(result: ScanResult, att: Attribution) -> Iterable[FindingData]:
    grouped: dict[tuple[str, str], list] = {}
    for problem in result.link_problems:
        holder = _holder_of(att, problem.path)
        grouped.setdefault((problem.reason, holder), []).append(problem)
    for (reason, holder), problems in sorted(grouped.items()):
        entry = holder if holder in att.usage else ""
        where = holder or os.path.dirname(problems[0].path)
        sample = "; ".join(f"{p.path} -> {p.target}" for p in problems[:LISTED])
        if reason == "outside":
            yield FindingData(
                kind=FindingKind.LINK_OUTSIDE,
                entry=entry,
                path=att.usage[entry].path if entry else where,
                message=f"{len(problems)} symlink(s) point out of the model roots "
                f"and were not followed: {sample}",
                fixes=[FixKind.SETTING],
                hint="Add the target's folder to IMAGEWORKS_MODEL_ROOTS if the files "
                "belong to the library; their size is not counted until then.",
            )
        else:
            yield FindingData(
                kind=FindingKind.BROKEN_LINK,
                entry=entry,
                path=att.usage[entry].path if entry else where,
                message=f"{len(problems)} symlink(s) point to nothing: {sample}",
                fixes=[FixKind.VERIFY] if entry else [FixKind.NONE],
                hint="Download the missing files again (the link targets are gone), "
                "then Verify.",
            )


def _holder_of(att: Attribution, path: str) -> str:
    found = holders_of(att, path)
    return found[0] if found else ""


def _unreadable(result: ScanResult) -> Iterable[FindingData]:
    if result.errors:
        paths = [f"{p} ({why})" for p, why in result.errors]
        yield FindingData(
            kind=FindingKind.UNREADABLE,
            path=result.errors[0][0],
            message=f"{len(paths)} path(s) could not be read: {_listed(paths)}",
            fixes=[FixKind.SETTING],
            hint="Give the site's user read access to the model roots.",
        )


# --------------------------------------------------------------------------------------
# Backends
# --------------------------------------------------------------------------------------


def _ollama(
    refs: list[EntryRef], state: BackendState, result: ScanResult
) -> Iterable[FindingData]:
    known = {r.ollama_tag for r in refs if r.ollama_tag}
    by_name = {r.name: r for r in refs}
    seen_unknown: set[str] = set()
    installed_digest: dict[str, str] = {}
    for server in state.ollama:
        for model in server.installed or ():
            tag = model.get("tag") or ""
            installed_digest.setdefault(tag, model.get("digest") or "")
            if tag and tag not in known and tag not in seen_unknown:
                seen_unknown.add(tag)
                yield FindingData(
                    kind=FindingKind.OLLAMA_UNREGISTERED,
                    path=f"ollama:/{tag}",
                    size_bytes=model.get("size"),
                    message=f"Ollama at {server.url} has {tag}; no registry entry "
                    "uses it",
                    fixes=[FixKind.IMPORT],
                    hint="Import the tag through the import wizard (it lists "
                    "Ollama tags without an entry).",
                    details={"tag": tag, "digest": model.get("digest") or ""},
                )
        for name, info in sorted(server.entries.items()):
            ref = by_name.get(name)
            if ref is None or info.get("installed") is not False:
                continue
            yield _not_installed(ref, f"Ollama at {server.url} does not have")
    servers_know = {
        name
        for server in state.ollama
        for name, info in server.entries.items()
        if info.get("installed") is not None
    }
    store = result.ollama
    for ref in refs:
        if not ref.ollama_tag:
            continue
        on_disk = store.manifests.get(ref.ollama_tag) if store else None
        if store is not None and ref.name not in servers_know and on_disk is None:
            yield _not_installed(ref, f"The Ollama store {store.path} has no")
        have = installed_digest.get(ref.ollama_tag) or (
            on_disk.digest if on_disk else ""
        )
        if ref.ollama_digest and have and not same_digest(ref.ollama_digest, have):
            yield FindingData(
                kind=FindingKind.OLLAMA_DIGEST,
                entry=ref.name,
                path=f"ollama:/{ref.ollama_tag}",
                message=f"The registry expects digest {ref.ollama_digest[:12]}, "
                f"Ollama has {have[:12]} for {ref.ollama_tag}",
                fixes=[FixKind.EDIT, FixKind.COMMAND],
                hint="If the new version is wanted, record its digest "
                "(metadata.ollama_digest, Edit); otherwise pull the expected one.",
                details={"expected": ref.ollama_digest, "installed": have},
            )


def _not_installed(ref: EntryRef, where: str) -> FindingData:
    return FindingData(
        kind=FindingKind.OLLAMA_NOT_INSTALLED,
        entry=ref.name,
        path=f"ollama:/{ref.ollama_tag}",
        message=f"{where} {ref.ollama_tag}",
        fixes=[FixKind.COMMAND, FixKind.MARK_DEPRECATED],
        hint=f"Pull it (ollama pull {ref.ollama_tag}) or mark the entry deprecated.",
        details={"command": ["ollama", "pull", ref.ollama_tag]},
    )


def _vllm(refs: list[EntryRef], state: BackendState) -> Iterable[FindingData]:
    served = state.vllm
    if served is None or not served.logical_name:
        return
    ref = next((r for r in refs if r.name == served.logical_name), None)
    if ref is None:
        yield FindingData(
            kind=FindingKind.VLLM_MISMATCH,
            entry="",
            path="",
            message=f"vLLM serves {served.logical_name}, which is no registry entry",
            fixes=[FixKind.COMMAND],
            hint="Stop it, or restore its registry entry.",
        )
        return
    expected = ref.served_model_id or ref.name
    problems = []
    if served.served_models and expected not in served.served_models:
        problems.append(
            f"serves {', '.join(served.served_models)}, the registry's served id is "
            f"{expected}"
        )
    root = served.roots.get(expected) or next(
        (r for r in served.roots.values() if r), ""
    )
    local = ref.model_dir if not ref.model_dir.startswith("ollama:") else ""
    if root and local and not _same_location(root, local):
        problems.append(f"loaded {root}, the registry's model path is {local}")
    if problems:
        yield FindingData(
            kind=FindingKind.VLLM_MISMATCH,
            entry=ref.name,
            path=local,
            message="The running vLLM " + "; ".join(problems),
            fixes=[FixKind.COMMAND, FixKind.EDIT],
            hint="Activate the entry again so the server matches the registry, or "
            "edit the entry if the server is right.",
            details={
                "served_models": list(served.served_models),
                "roots": served.roots,
                "expected_served_id": expected,
                "registry_path": local,
                "checked_at": served.checked_at,
            },
        )


def _same_location(root: str, local: str) -> bool:
    if root.startswith(("/", "~")) and local.startswith(("/", "~")):
        a = os.path.realpath(os.path.expanduser(root))
        b = os.path.realpath(os.path.expanduser(local))
        return a == b
    return root.strip().rstrip("/") == local.strip().rstrip("/")


# --------------------------------------------------------------------------------------
# Same files under several entries (verify's per-file hashes)
# --------------------------------------------------------------------------------------


def _weights(ref: EntryRef) -> dict[str, str]:
    """sha256 -> relative path of the entry's weight files (verify's record)."""
    return {
        sha: path
        for path, sha in ref.artifact_files
        if sha and sha != EMPTY_SHA256 and path.lower().endswith(WEIGHT_SUFFIXES)
    }


def _duplicates(
    refs: list[EntryRef], result: ScanResult, att: Attribution
) -> Iterable[FindingData]:
    weights = {r.name: _weights(r) for r in refs if r.artifact_files}
    by_sha: dict[str, list[str]] = {}
    for name, shas in weights.items():
        for sha in shas:
            by_sha.setdefault(sha, []).append(name)
    pairs: dict[tuple[str, str], list[str]] = {}
    for sha, names in by_sha.items():
        names = sorted(set(names))
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                pairs.setdefault((a, b), []).append(sha)
    by_name = {r.name: r for r in refs}
    for (a, b), shas in sorted(pairs.items()):
        twice, once = _stored_twice(result, att, by_name[a], by_name[b], shas)
        identical = bool(
            by_name[a].aggregate_sha256
            and by_name[a].aggregate_sha256 == by_name[b].aggregate_sha256
        )
        what = "identical copies" if identical else f"{len(shas)} weight file(s) alike"
        if twice:
            disk = f"stored twice: {human_bytes(twice)} could be reclaimed"
        elif once:
            disk = "already stored once on disk (hard links or symlinks)"
        else:
            disk = "disk use unknown (not scanned)"
        yield FindingData(
            kind=FindingKind.DUPLICATE_FILES,
            entry=b,
            path=att.usage[b].path if b in att.usage else "",
            size_bytes=twice or None,
            message=f"{a} and {b}: {what} (same sha256 recorded by verify); {disk}",
            fixes=[FixKind.RECLAIM, FixKind.MARK_DEPRECATED],
            hint=f"Keep one: plan a reclaim of {b} (or {a}), or mark one deprecated.",
            details={"other": a, "shas": shas[:20], "identical": identical},
        )


def _stored_twice(result, att, a: EntryRef, b: EntryRef, shas) -> tuple[int, int]:
    """(bytes stored in separate inodes, bytes shared as one inode) for these shas."""
    twice = once = 0
    wa, wb = _weights(a), _weights(b)
    ua, ub = att.usage.get(a.name), att.usage.get(b.name)
    if not ua or not ub or not ua.path or not ub.path:
        return 0, 0
    for sha in shas:
        ka = _key(result, ua.path, wa.get(sha, ""))
        kb = _key(result, ub.path, wb.get(sha, ""))
        if ka is None or kb is None:
            continue
        size = result.inodes[kb].size
        if ka == kb:
            once += size
        else:
            twice += size
    return twice, once


def _key(result: ScanResult, folder: str, rel: str):
    if not rel:
        return None
    path = os.path.join(folder, rel)
    key = result.files.get(path)
    if key is None and path in result.links:
        key = result.files.get(result.links[path])
    return key


# --------------------------------------------------------------------------------------


def build_findings(
    result: ScanResult,
    att: Attribution,
    refs: list[EntryRef],
    backends: BackendState | None = None,
) -> list[FindingData]:
    """Every finding, in a stable order (kind, entry, path)."""
    backends = backends or BackendState()
    found: list[FindingData] = []
    found.extend(_orphans(result, att))
    for ref in refs:
        usage = att.usage.get(ref.name)
        if usage is not None:
            found.extend(_entry_state(ref, usage, bool(result.roots)))
    found.extend(_stray_partials(result, att))
    found.extend(_link_findings(result, att))
    found.extend(_unreadable(result))
    found.extend(_ollama(refs, backends, result))
    found.extend(_vllm(refs, backends))
    found.extend(_duplicates(refs, result, att))
    unique: dict[tuple[str, str, str, str], FindingData] = {}
    for finding in found:
        unique.setdefault(finding.key, finding)
    return sorted(unique.values(), key=lambda f: f.key)
