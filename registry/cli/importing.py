"""``imageworks-models import``: import discovered entries from the command line.

    imageworks-models import NAME... --role R [--role R2] --backend B
                      [--served-id S] [--display-name D] [--from-file F.json|F.csv]
                      [--dry-run]

Values not given are filled with the same suggestions as the wizard (existing values,
roles from capabilities, served id from the HF id or the Ollama tag), then checked with
the wizard's rules. ``--dry-run`` prints the plan and writes nothing. Exit codes: 0 all
imported, 1 some entries refused, 2 bad input (nothing written).

A file holds one row per entry: JSON (a list of objects, or ``{"entries": [...]}``) or
CSV with a header; columns ``name, roles, backend, served_model_id (or served_id),
display_name``; roles as a list or separated by ``,`` / ``;``. Flags apply to every
entry and override the file.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path
from typing import Any, TextIO


class ImportInputError(Exception):
    """Bad command-line input or file; nothing was written."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "names", nargs="*", metavar="NAME", help="logical names to import"
    )
    parser.add_argument(
        "--role",
        action="append",
        dest="roles",
        default=[],
        metavar="R",
        help="role of the imported entries (repeatable)",
    )
    parser.add_argument("--backend", default=None, help="backend (vllm, ollama, ...)")
    parser.add_argument(
        "--served-id", dest="served_id", default=None, help="served model id"
    )
    parser.add_argument("--display-name", dest="display_name", default=None)
    parser.add_argument(
        "--from-file",
        dest="from_file",
        type=Path,
        default=None,
        metavar="FILE",
        help="JSON or CSV file of field values, one row per entry",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="print the plan, write nothing"
    )


def add_subcommands(subparsers) -> argparse.ArgumentParser:
    """Register ``import`` on the CLI's subparsers; its handler is ``args.func``."""
    parser = subparsers.add_parser(
        "import",
        help="import discovered entries into the curated registry",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    parser.set_defaults(func=run)
    return parser


def _split_roles(value: Any) -> list[str]:
    if isinstance(value, list):
        parts = value
    else:
        parts = str(value or "").replace(";", ",").split(",")
    return [str(p).strip() for p in parts if str(p).strip()]


def read_rows(path: Path) -> list[dict[str, Any]]:
    """Rows of a JSON or CSV file of field values (see module docstring)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise ImportInputError(f"Cannot read {path}: {exc.strerror or exc}") from None
    if path.suffix.lower() == ".csv":
        rows = list(csv.DictReader(text.splitlines()))
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ImportInputError(f"Invalid JSON in {path}: {exc}") from None
        if isinstance(data, dict):
            data = data.get("entries", data)
        rows = data if isinstance(data, list) else [data]
    out = []
    for index, row in enumerate(rows):
        if not isinstance(row, dict) or not str(row.get("name") or "").strip():
            raise ImportInputError(f"{path.name} row {index + 1}: a name is required")
        out.append({str(k).strip(): v for k, v in row.items() if k is not None})
    return out


def build_items(args) -> list:
    """ImportItems from names, flags and file rows, validated like the wizard."""
    from ..forms.edit import ImportRowForm
    from ..models import ModelEntry
    from ..services.importing import ImportItem, suggest_fields

    rows: list[dict[str, Any]] = read_rows(args.from_file) if args.from_file else []
    rows += [{"name": name} for name in args.names]
    if not rows:
        raise ImportInputError("Name at least one entry (NAME... or --from-file).")
    if len(rows) > 1 and (args.served_id or args.display_name):
        raise ImportInputError("--served-id and --display-name need exactly one entry.")
    items, errors = [], []
    for row in rows:
        name = str(row["name"]).strip()
        entry = ModelEntry.objects.filter(name=name).first()
        values = suggest_fields(entry) if entry else {"name": name, "roles": []}
        for key, column in (
            ("roles", "roles"),
            ("backend", "backend"),
            ("served_model_id", "served_model_id"),
            ("served_model_id", "served_id"),
            ("display_name", "display_name"),
        ):
            if str(row.get(column) or "").strip() or isinstance(row.get(column), list):
                values[key] = row[column]
        if args.roles:
            values["roles"] = args.roles
        for key in ("backend", "served_id", "display_name"):
            flag = getattr(args, key)
            if flag:
                values["served_model_id" if key == "served_id" else key] = flag
        data = {
            "name": name,
            "display_name": values.get("display_name") or name,
            "backend": values.get("backend") or "",
            "served_model_id": values.get("served_model_id") or "",
            "roles": ", ".join(_split_roles(values.get("roles"))),
        }
        form = ImportRowForm(data)
        if not form.is_valid():
            for field, messages in form.errors.items():
                label = "" if field == "__all__" else f"{field}: "
                errors.extend(f"{name}: {label}{m}" for m in messages)
            continue
        items.append(
            ImportItem(
                name=name,
                roles=form.cleaned_data["roles"],
                backend=form.cleaned_data["backend"],
                served_model_id=form.cleaned_data["served_model_id"],
                display_name=form.cleaned_data["display_name"],
            )
        )
    if errors:
        raise ImportInputError("\n".join(errors))
    return items


def _say(stream: TextIO, text: str) -> None:
    stream.write(text + "\n")


def run(args, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    """Plan (and unless ``--dry-run`` apply) the import; returns the exit code."""
    from .. import layers
    from ..audit import Actor
    from ..services.importing import apply_import, plan_import
    from ..services.sync import sync_registry

    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    actor = Actor.cli()
    sync_registry(actor, explicit=False)
    try:
        items = build_items(args)
    except ImportInputError as exc:
        _say(stderr, f"error: {exc}")
        return 2
    try:
        plan = plan_import(items)
    except layers.RegistryError as exc:
        _say(stderr, f"error: {exc}")
        return 2
    if args.dry_run:
        _say(stdout, "Dry run: nothing written.")
        _say(stdout, plan.describe())
        return 1 if plan.refused else 0
    if not plan.entries:
        _say(stdout, plan.describe())
        _say(stderr, "error: nothing to import")
        return 1
    try:
        result = apply_import(plan, actor)
    except layers.RegistryError as exc:
        _say(stderr, f"error: {exc}")
        return 2
    _say(stdout, result.message)
    for name in result.imported:
        _say(stdout, f"  + {name}")
    for name, reason in result.refused:
        _say(stderr, f"  ! {name}: {reason}")
    return 1 if result.refused else 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (Django must be set up by the caller)."""
    parser = argparse.ArgumentParser(prog="imageworks-models import")
    add_arguments(parser)
    return run(parser.parse_args(argv))
