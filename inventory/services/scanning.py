"""Run the reconcile scan and store what it found (views, tasks and the CLI call this).

:func:`run_scan` syncs the registry mirror, optionally refreshes the Ollama/vLLM
health data, walks the model roots (:mod:`inventory.scan`), attributes the files to
entries (:mod:`inventory.usage`), builds the findings (:mod:`inventory.reconcile`)
and stores ``ScanRun`` + ``Finding`` + ``EntryUsage`` rows in one transaction, with
one ``reconcile`` audit row (``details.op = "scan"``). Nothing on disk is changed.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from registry.audit import Actor, audited
from registry.choices import Action
from registry.models import Job, ModelEntry

from .. import reconcile, scan, sources, trash, usage
from ..choices import FindingKind, InventoryOp, ScanStatus
from ..models import EntryUsage, Finding, ScanRun

MAX_SHARED_RECORDS = 5000  # per entry; beyond that plans are approximate (flagged)
USAGE_FIELDS = [
    "scan",
    "state",
    "path",
    "files",
    "size_bytes",
    "disk_bytes",
    "owned_bytes",
    "exclusive_bytes",
    "shared_bytes",
    "shared_with",
    "shared",
    "shared_truncated",
    "partial_files",
    "linked_from",
    "scanned_at",
]


def trash_setting() -> str:
    return str(getattr(settings, "IMAGEWORKS_TRASH_DIR", "") or "")


def trash_dirs(real_roots: list[str] | None = None) -> list[str]:
    if real_roots is None:
        real_roots, _missing = scan.real_roots(sources.model_roots())
    return trash.all_trash_dirs(real_roots, trash_setting())


def keep_runs() -> int:
    return max(1, int(getattr(settings, "IMAGEWORKS_RECONCILE_KEEP", 10)))


def run_scan(
    actor: Actor,
    *,
    job: Job | None = None,
    refresh_backends: bool = True,
    on_progress: Callable[[float, str, int], None] | None = None,
    cancel: threading.Event | None = None,
) -> ScanRun:
    """Scan now and store the result; returns the finished ``ScanRun``.

    Raises ``scan.ScanCancelled`` when ``cancel`` is set (the run is marked failed).
    """
    roots = [str(r) for r in sources.model_roots()]
    run = ScanRun.objects.create(
        user_name=actor.name[:150],
        job=job,
        roots=roots,
        ollama_dir=sources.ollama_models_dir(),
    )
    with audited(
        actor, Action.RECONCILE, job=job, details={"op": InventoryOp.SCAN}
    ) as audit:
        try:
            notes = _prepare(actor, refresh_backends)
            real, _missing = scan.real_roots(roots)
            result = scan.scan(
                roots,
                ollama_dir=run.ollama_dir or None,
                exclude=trash_dirs(real),
                progress=on_progress,
                cancel=cancel,
            )
            entries = list(ModelEntry.objects.order_by("name"))
            refs = sources.entry_refs(entries)
            att = usage.attribute(result, refs)
            found = reconcile.build_findings(result, att, refs, sources.backend_state())
            _store(run, result, att, found, entries, notes)
        except BaseException as exc:
            ScanRun.objects.filter(pk=run.pk).update(
                status=ScanStatus.FAILED,
                finished=timezone.now(),
                error=str(exc) or exc.__class__.__name__,
            )
            raise
        audit.message = summary(run)
        audit.details = {**audit.details, "scan": run.pk, "counts": run.counts}
    prune_runs()
    return run


def _prepare(actor: Actor, refresh_backends: bool) -> list[str]:
    notes = []
    error = sources.sync_before_scan(actor)
    if error:
        notes.append(f"Registry not reloaded (the last good version was used): {error}")
    if refresh_backends:
        error = sources.refresh_backends()
        if error:
            notes.append(error)
    if not sources.model_roots():
        notes.append("IMAGEWORKS_MODEL_ROOTS is not set: no folder was scanned.")
    return notes


def summary(run: ScanRun) -> str:
    total = sum(run.counts.values())
    return (
        f"Scanned {run.files} files in {run.elapsed_s:.1f} s: {total} finding"
        f"{'' if total == 1 else 's'}"
    )


@transaction.atomic
def _store(run, result, att, found, entries, notes) -> None:
    by_name = {e.name: e for e in entries}
    links_in = usage.symlinks_into(result, att)
    for f in found:
        if f.kind == FindingKind.ORPHAN_FOLDER:
            f.details["linked_from"] = sorted(links_in.get(f.path, ()))
    Finding.objects.bulk_create(
        Finding(
            scan=run,
            kind=f.kind,
            severity=FindingKind(f.kind).severity,
            entry=by_name.get(f.entry),
            entry_name=f.entry,
            path=f.path,
            message=f.message,
            size_bytes=f.size_bytes,
            fixes=[str(x) for x in f.fixes],
            hint=f.hint,
            details=f.details,
        )
        for f in found
    )
    now = timezone.now()
    rows = [
        _usage_row(run, by_name[name], u, links_in.get(name, set()), now)
        for name, u in att.usage.items()
        if name in by_name
    ]
    EntryUsage.objects.bulk_create(
        rows,
        update_conflicts=True,
        unique_fields=["entry"],
        update_fields=USAGE_FIELDS,
        batch_size=500,
    )
    run.status = ScanStatus.SUCCEEDED
    run.finished = now
    run.files = result.file_count
    run.dirs = result.dir_count
    run.total_bytes = result.total_bytes
    run.disk_bytes = result.total_disk_bytes
    run.elapsed_s = round(result.elapsed_s, 3)
    run.missing_roots = result.missing_roots
    run.counts = dict(Counter(str(f.kind) for f in found))
    run.notes = notes
    run.save()


def _usage_row(run, entry, u: usage.Usage, linked_from, now) -> EntryUsage:
    measured = u.state in ("ok", "empty", "ollama")
    shared = [s.as_json() for s in u.shared]
    return EntryUsage(
        entry=entry,
        scan=run,
        state=u.state,
        path=u.path,
        files=u.files,
        size_bytes=u.size_bytes if measured else None,
        disk_bytes=u.disk_bytes if measured else None,
        owned_bytes=u.owned_bytes if measured else None,
        exclusive_bytes=u.exclusive_bytes if measured else None,
        shared_bytes=u.shared_bytes,
        shared_with=u.shared_with,
        shared=shared[:MAX_SHARED_RECORDS],
        shared_truncated=len(shared) > MAX_SHARED_RECORDS,
        partial_files=len(u.partials),
        linked_from=sorted(linked_from),
        scanned_at=now,
    )


def prune_runs() -> int:
    """Keep the newest ``IMAGEWORKS_RECONCILE_KEEP`` finished runs (findings cascade)."""
    keep = list(
        ScanRun.objects.order_by("-started", "-pk").values_list("pk", flat=True)[
            : keep_runs()
        ]
    )
    recent = timezone.now() - timedelta(days=1)
    old = ScanRun.objects.exclude(pk__in=keep).exclude(
        status=ScanStatus.RUNNING, started__gte=recent
    )
    deleted, _ = old.delete()
    return deleted


def latest_scan() -> ScanRun | None:
    return ScanRun.objects.filter(status=ScanStatus.SUCCEEDED).first()
