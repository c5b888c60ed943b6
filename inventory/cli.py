"""``imageworks-models reconcile [--json] [--kind KIND] [--cached] [--no-refresh]``.

Runs the same scan as the site (``inventory.services.scanning.run_scan``) as
``Actor.cli()``, stores it (the report page then shows it) and prints the findings:
a table, or with ``--json`` an object ``{"scan": {...}, "findings": [...]}``.
``--cached`` prints the last stored scan without scanning. Exit 0 (findings are a
report, not an error); 1 when the scan could not run.
"""

from __future__ import annotations

import json
import sys
import time


class _FindingKinds:
    """``--kind`` choices, read from ``FindingKind`` only when argparse needs them.

    Importing the choices imports Django's ORM; the parser is built for every
    command, ``--help`` included, before Django starts.
    """

    @staticmethod
    def _values() -> list[str]:
        from .choices import FindingKind

        return [k.value for k in FindingKind]

    def __iter__(self):
        return iter(self._values())

    def __contains__(self, value) -> bool:
        return value in self._values()


def _label(kind: str) -> str:
    from .choices import FindingKind

    return FindingKind(kind).label


def add_subcommands(subparsers) -> None:
    p = subparsers.add_parser(
        "reconcile",
        help="compare registry, disk and backends; list the findings",
        description=(
            "Walk IMAGEWORKS_MODEL_ROOTS (metadata only, symlinks out of the roots are "
            "not followed), compare with the registry entries and what Ollama and vLLM "
            "report, store the result and print the findings. Nothing is changed."
        ),
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument(
        "--kind",
        action="append",
        choices=_FindingKinds(),
        metavar="KIND",  # argparse would list the choices while building the parser
        help="only this kind (repeatable): %(choices)s",
    )
    p.add_argument(
        "--cached", action="store_true", help="print the last scan, do not scan"
    )
    p.add_argument(
        "--no-refresh",
        action="store_true",
        help="use the stored backend health instead of asking Ollama/vLLM now",
    )
    p.set_defaults(func=cmd_reconcile)


class _TtyProgress:
    def __init__(self) -> None:
        self.shown = False
        self.last = 0.0

    def __call__(self, fraction: float, message: str, files: int) -> None:
        now = time.monotonic()
        if now - self.last < 0.2 and fraction < 1.0:
            return
        self.last = now
        sys.stderr.write(
            f"\r{int(fraction * 100):3d}%  {files} files  {message[:60]:<60}"
        )
        sys.stderr.flush()
        self.shown = True

    def done(self) -> None:
        if self.shown:
            sys.stderr.write("\n")


def scan_json(run) -> dict:
    return {
        "id": run.pk,
        "started": run.started.isoformat(),
        "finished": run.finished.isoformat() if run.finished else None,
        "roots": run.roots,
        "missing_roots": run.missing_roots,
        "files": run.files,
        "total_bytes": run.total_bytes,
        "elapsed_s": run.elapsed_s,
        "counts": run.counts,
        "notes": run.notes,
    }


def finding_json(f) -> dict:
    return {
        "kind": f.kind,
        "severity": f.severity,
        "entry": f.entry_name or None,
        "path": f.path or None,
        "message": f.message,
        "size_bytes": f.size_bytes,
        "fixes": f.fixes,
        "hint": f.hint,
    }


def cmd_reconcile(args) -> int:
    from imageworks_site.cli import CliError, _actor

    from .scan import ScanCancelled
    from .services.scanning import latest_scan, run_scan

    if args.cached:
        run = latest_scan()
        if run is None:
            raise CliError("No scan stored yet: run `imageworks-models reconcile`.")
    else:
        meter = _TtyProgress() if sys.stderr.isatty() and not args.json else None
        try:
            run = run_scan(
                _actor(), refresh_backends=not args.no_refresh, on_progress=meter
            )
        except (OSError, ScanCancelled) as exc:
            raise CliError(f"Scan failed: {exc}") from None
        finally:
            if meter:
                meter.done()
    findings = run.findings.all()
    if args.kind:
        findings = findings.filter(kind__in=args.kind)
    if args.json:
        payload = {
            "scan": scan_json(run),
            "findings": [finding_json(f) for f in findings],
        }
        print(json.dumps(payload, indent=2))
        return 0
    _print_table(run, list(findings))
    return 0


def _print_table(run, findings) -> None:
    from .reconcile import human_bytes

    for note in run.notes:
        print(f"note: {note}", file=sys.stderr)
    if not findings:
        print(f"No findings ({run.files} files scanned in {run.elapsed_s:.1f} s).")
        return
    current = None
    for f in findings:
        if f.kind != current:
            current = f.kind
            print(f"\n{_label(f.kind)}")
        where = f.entry_name or f.path
        size = f" [{human_bytes(f.size_bytes)}]" if f.size_bytes else ""
        print(f"  {where}{size}: {f.message}")
        if f.entry_name and f.path:
            print(f"    path: {f.path}")
        if f.hint:
            print(f"    fix: {f.hint}")
    print(
        f"\n{len(findings)} finding(s); {run.files} files, "
        f"{human_bytes(run.total_bytes)} scanned in {run.elapsed_s:.1f} s"
    )
