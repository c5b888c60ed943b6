"""``imageworks-models``: the registry console's command line.

Runs the same services as the site (``registry.services.sync``, ``registry.services.writeback``, ...)
with :meth:`registry.audit.Actor.cli` (the OS user) as the operator. Every command
first syncs the database mirror with the JSON layer files (a cheap stat no-op when
nothing changed), so the CLI never answers from a stale mirror.

Commands of other apps plug in through ``add_subcommands(subparsers)`` functions in
:data:`PLUGINS` (modules of installed apps: an import error fails loudly).
A plugin command sets ``func`` (called with the parsed args, returns the exit code).

Exit codes: 0 success, 1 an error the user can fix (unknown name, unreadable registry
file, write refused), 2 usage errors (argparse), 3 database unreachable or not
migrated. Errors go to stderr as one line, never as a traceback.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

#: Modules providing ``add_subcommands(subparsers)``. They are
#: imported before Django starts (``--help`` stays instant): import models and
#: services inside the command functions, not at module level.
PLUGINS = (
    "registry.cli.verify",  # verify, lock, unlock
    "registry.cli.importing",  # import
    "registry.cli.bulk",  # bulk verify|lock|unlock
    "backends.cli",  # activate-model, current-model, preflight, show-backends
    "inventory.cli",  # reconcile
)

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_DATABASE = 3


class CliError(Exception):
    """A user-facing failure: printed on stderr, exits with ``code``."""

    def __init__(self, message: str, code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.code = code


def _err(message: str) -> None:
    print(message, file=sys.stderr)


# --------------------------------------------------------------------------------------
# Shared steps
# --------------------------------------------------------------------------------------


def _actor():
    from registry.audit import Actor

    return Actor.cli()


def presync(*, strict: bool = True):
    """Bring the mirror up to date before answering (no audit row when unchanged).

    With ``strict`` a registry that cannot be read is an error (the command must not
    answer from a stale mirror); otherwise a warning on stderr.
    """
    from registry.services.sync import sync_registry

    result = sync_registry(_actor(), explicit=False)
    if not result.ok:
        if strict:
            # A broken registry file is the user's input to fix: exit 2, as main() does.
            raise CliError(result.error, EXIT_USAGE if result.broken else EXIT_ERROR)
        _err(f"warning: {result.error}")
    return result


def _report_problems(result) -> None:
    for problem in result.problems:
        index = problem.get("index", -1)
        where = f"{problem['file']}[{index}]" if index >= 0 else problem["file"]
        name = f" {problem['name']!r}" if problem.get("name") else ""
        _err(f"skipped {where}{name}: {problem['reason']}")


# --------------------------------------------------------------------------------------
# list
# --------------------------------------------------------------------------------------


def list_rows(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The original's ``list`` rows for the mirror, filtered like the Models page."""
    from registry.models import ModelEntry

    qs = ModelEntry.objects.order_by("name")
    if args.backend:
        qs = qs.filter(backend__iexact=args.backend)
    if args.locked is not None:
        qs = qs.filter(locked=args.locked)
    if not args.all:
        qs = qs.filter(testing=bool(args.testing))
    rows = []
    for entry in qs.only(
        "name", "backend", "locked", "cap_vision", "roles", "aggregate_sha256"
    ):
        roles = list(entry.roles or [])
        if args.role and args.role not in roles:
            continue
        rows.append(
            {
                "name": entry.name,
                "backend": entry.backend,
                "locked": entry.locked,
                "vision": entry.cap_vision,
                "roles": roles,
                "hash": (entry.aggregate_sha256 or "")[:12],
            }
        )
    return rows


def _table(rows: list[dict[str, Any]]) -> str:
    headers = ["NAME", "BACKEND", "LOCKED", "VISION", "ROLES", "HASH"]
    cells = [
        [
            r["name"],
            r["backend"],
            "yes" if r["locked"] else "no",
            "yes" if r["vision"] else "no",
            ",".join(r["roles"]) or "-",
            r["hash"] or "-",
        ]
        for r in rows
    ]
    widths = [max([len(h), *(len(c[i]) for c in cells)]) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        return "  ".join(
            v.ljust(w) for v, w in zip(values, widths, strict=True)
        ).rstrip()

    out = [line(headers), line(["-" * w for w in widths])]
    out.extend(line(c) for c in cells)
    return "\n".join(out)


def cmd_list(args: argparse.Namespace) -> int:
    presync()
    rows = list_rows(args)
    if args.json:
        print(json.dumps(rows, indent=2))
    elif rows:
        print(_table(rows))
        print(f"\n{len(rows)} entries")
    else:
        print("No entries match.")
    return EXIT_OK


# --------------------------------------------------------------------------------------
# show
# --------------------------------------------------------------------------------------


def cmd_show(args: argparse.Namespace) -> int:
    from registry.models import ModelEntry

    presync()
    entry = ModelEntry.objects.filter(name=args.name.strip()).first()
    if entry is None:
        raise CliError(f"Model '{args.name}' not found in registry")
    if args.layers:
        from backends.serving import served_endpoint

        served = served_endpoint(entry)
        payload: Any = {
            "name": entry.name,
            "endpoint": {"url": served.url, "source": served.source_label},
            "fingerprint": entry.fingerprint,
            "provenance": entry.provenance,
            "testing": entry.testing,
            "installed": entry.installed,
            "merged": entry.merged,
            "curated": entry.curated_raw,
            "discovered": entry.discovered_raw,
        }
    else:
        payload = entry.merged
    print(json.dumps(payload, indent=2))
    return EXIT_OK


# --------------------------------------------------------------------------------------
# sync
# --------------------------------------------------------------------------------------


def cmd_sync(args: argparse.Namespace) -> int:
    from registry.services.sync import sync_registry

    result = sync_registry(_actor(), force=args.force)
    if not result.ok:
        raise CliError(result.summary(), EXIT_USAGE if result.broken else EXIT_ERROR)
    print(result.summary())
    if args.verbose:
        for label, names in (
            ("added", result.added),
            ("changed", result.changed),
            ("removed", result.removed),
        ):
            for name in names:
                print(f"  {label}: {name}")
    _report_problems(result)
    return EXIT_OK


# --------------------------------------------------------------------------------------
# export
# --------------------------------------------------------------------------------------


def export_bytes() -> bytes:
    """The merged snapshot exactly as the original writes ``model_registry.json``.

    Built from the layer files themselves (just synced, so the mirror agrees): the
    entry order (discovered file order, snapshot adoptions, then curated-only names)
    is a property of the files that the database does not keep.
    """
    from registry import layers
    from registry.services.sync import registry_dir

    registry = layers.load_registry(registry_dir())
    return (json.dumps(layers.export_merged(registry), indent=2) + "\n").encode()


def cmd_export(args: argparse.Namespace) -> int:
    presync()
    data = export_bytes()
    if args.output in (None, "-"):
        sys.stdout.write(data.decode())
        sys.stdout.flush()
        return EXIT_OK
    target = Path(args.output)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, target)
    except OSError as exc:
        raise CliError(f"Could not write {target}: {exc.strerror or exc}") from None
    count = len(json.loads(data))
    _err(f"Exported {count} entries to {target}")
    return EXIT_OK


# --------------------------------------------------------------------------------------
# Parser and entry point
# --------------------------------------------------------------------------------------


OWN_COMMANDS = (cmd_list, cmd_show, cmd_sync, cmd_export)


def _load_plugins(subparsers) -> list[str]:
    """Call each plugin's ``add_subcommands``; return the loaded names.

    Every plugin belongs to an installed app: one that cannot be imported is a bug
    and fails here, loudly, rather than silently dropping its commands.
    """
    for module_name in PLUGINS:
        importlib.import_module(module_name).add_subcommands(subparsers)
    return list(PLUGINS)


def build_parser() -> argparse.ArgumentParser:
    """The original's sub-commands, in its order, then the plugins' (before Django).

    Long on purpose: a flat list of argparse declarations, a few lines per command.
    """
    parser = argparse.ArgumentParser(
        prog="imageworks-models",
        description=(
            "Browse and manage the ImageWorks model registry (JSON layer files, "
            "mirrored in the console's database)."
        ),
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("list", help="list entries (table or --json)")
    p.add_argument("--json", action="store_true", help="print the rows as JSON")
    p.add_argument("--backend", help="only this backend (vllm, ollama, ...)")
    p.add_argument("--role", help="only entries with this role (exact match)")
    lock = p.add_mutually_exclusive_group()
    lock.add_argument("--locked", dest="locked", action="store_const", const=True)
    lock.add_argument("--unlocked", dest="locked", action="store_const", const=False)
    testing = p.add_mutually_exclusive_group()
    testing.add_argument(
        "--testing",
        dest="testing",
        action="store_const",
        const=True,
        help="only testing entries",
    )
    testing.add_argument(
        "--no-testing",
        dest="testing",
        action="store_const",
        const=False,
        help="hide testing entries (the default)",
    )
    testing.add_argument("--all", action="store_true", help="include testing entries")
    p.set_defaults(func=cmd_list, locked=None, testing=False)

    p = sub.add_parser("show", help="print one merged entry as JSON")
    p.add_argument("name", metavar="NAME")
    p.add_argument(
        "--layers",
        action="store_true",
        help="also print the curated and discovered copies, the fingerprint and where the model is served",
    )
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("sync", help="reload the database mirror from the layer files")
    p.add_argument(
        "--force", action="store_true", help="re-read the files even if unchanged"
    )
    p.add_argument(
        "-v", "--verbose", action="store_true", help="list added/changed/removed names"
    )
    p.set_defaults(func=cmd_sync)

    p = sub.add_parser(
        "export", help="print the merged snapshot (model_registry.json) as JSON"
    )
    p.add_argument(
        "--output", "-o", metavar="FILE", help="write to FILE instead of stdout"
    )
    p.set_defaults(func=cmd_export)

    _load_plugins(sub)
    return parser


def _database_message(exc: Exception) -> str:
    from django.db import connection

    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if "no such table" in text or ("relation" in text and "does not exist" in text):
        return (
            f"The database is not set up ({text}). "
            "Run `python manage.py migrate` first."
        )
    where = connection.settings_dict.get("NAME") or "the database"
    return (
        f"Cannot reach the database ({where}): {text}. "
        "Check DATABASE_URL / IMAGEWORKS_SQLITE_PATH."
    )


def _start(argv: Sequence[str] | None) -> argparse.Namespace | int:
    """Parse the arguments, then start Django (see :func:`main`): the parsed
    arguments, or the exit code of ``--help``, a usage error or a failed start."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help or a usage error
        return int(exc.code or 0) if isinstance(exc.code, int) else EXIT_USAGE
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "imageworks_site.settings.cli")
    import django

    try:
        django.setup()
    except Exception as exc:  # bad settings / environment: no traceback for users
        _err(f"Cannot start: {exc}")
        return EXIT_ERROR
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Console-script entry point; returns the exit code.

    Every failure is one line on stderr, never a traceback: a broken registry file
    (``LayerParseError``: bad JSON, not a list, a directory...) exits 2 like the other
    "fix the input" errors; other registry errors exit 1; anything unexpected is one
    line too, exit 1 (``IMAGEWORKS_CLI_TRACEBACK=1`` shows the traceback).

    The parser is built and the arguments read before Django starts, so ``--help``
    and usage errors answer at once; Django then starts with the CLI's settings
    (``imageworks_site.settings.cli``: the site's, minus the web-only apps) unless
    ``DJANGO_SETTINGS_MODULE`` names others.

    Start-up (the parser, Django, the apps' models) creates a few hundred thousand
    objects that live as long as the process; the cyclic garbage collector is paused
    meanwhile (it walked them again and again) and they are then frozen
    (``gc.freeze()``), so neither later collections nor the one at interpreter exit
    walk them again (~0.1 s of ``current-model``'s CPU). Called with ``argv`` (tests,
    other Python code) rather than as the program, they are unfrozen on return.
    """
    own_process = argv is None  # the console script or ``python -m``: exits after this
    enabled = gc.isenabled()
    gc.disable()
    try:
        started = _start(argv)
    finally:
        gc.freeze()
        if enabled:
            gc.enable()
    try:
        return started if isinstance(started, int) else _run(started)
    finally:
        if not own_process:
            gc.unfreeze()


def _run(args: argparse.Namespace) -> int:
    """Run the parsed command in started Django: its exit code.

    Long on purpose: it is the one place that maps every failure to its exit code
    and message.
    """
    import logging

    from django.db import DatabaseError, InterfaceError

    from registry.layers import LayerParseError, RegistryError

    # sync logs a failed reload as a warning; the CLI prints the same error itself.
    logging.getLogger("registry.services.sync").setLevel(logging.ERROR)
    func: Callable[[argparse.Namespace], int | None] = args.func
    try:
        warning = ""
        if func not in OWN_COMMANDS:
            # Plugin commands run services that re-read the files themselves; a broken
            # registry is their error to report (one line), a warning only when the
            # command works without the registry (show-backends, current-model...).
            from registry.services.sync import sync_registry

            warning = sync_registry(_actor(), explicit=False).error
        code = func(args)
        if warning:
            _err(f"warning: {warning}")
    except CliError as exc:
        _err(str(exc))
        return exc.code
    except LayerParseError as exc:
        _err(str(exc))
        return EXIT_USAGE
    except RegistryError as exc:
        _err(str(exc))
        return EXIT_ERROR
    except (DatabaseError, InterfaceError) as exc:
        _err(_database_message(exc))
        return EXIT_DATABASE
    except KeyboardInterrupt:
        _err("Interrupted.")
        return 130
    except BrokenPipeError:
        # `imageworks-models list | head`: the reader went away; not an error.
        try:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115
        except OSError:
            pass
        return EXIT_OK
    except Exception as exc:  # noqa: BLE001 - the CLI promises one line, no traceback
        if os.environ.get("IMAGEWORKS_CLI_TRACEBACK"):
            raise
        lines = str(exc).strip().splitlines()
        _err(f"Unexpected error ({type(exc).__name__}): {lines[0] if lines else ''}")
        return EXIT_ERROR
    return int(code or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
