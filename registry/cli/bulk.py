"""``imageworks-models bulk verify|lock|unlock NAME... [--dry-run]``.

The Models page's bulk actions from the command line: the same rule
(``registry.services.bulk``), run inline as ``Actor.cli()`` (verifies hash in the
foreground, a lock without a current verify verifies first). One line per entry on
stdout: ``NAME<TAB>STATE<TAB>message``. Exit 0 when every entry was done or had
nothing to do, 1 when any entry was refused, failed or is unknown.
"""

from __future__ import annotations

import sys

EXIT_OK = 0
EXIT_ERROR = 1


def add_subcommands(subparsers) -> None:
    p = subparsers.add_parser(
        "bulk",
        help="verify, lock or unlock many models at once",
        description=(
            "Apply one action to every NAME in turn, with the rules of the "
            "single-entry commands; one entry's failure does not stop the rest. "
            "--dry-run prints what would happen and writes nothing."
        ),
    )
    p.add_argument("action", choices=("verify", "lock", "unlock"))
    p.add_argument("names", metavar="NAME", nargs="+")
    p.add_argument(
        "--dry-run", action="store_true", help="show what would happen, change nothing"
    )
    p.set_defaults(func=cmd_bulk)


def cmd_bulk(args) -> int:
    from registry.audit import Actor
    from registry.services import bulk

    actor = Actor.cli()
    try:
        entries, missing = bulk.resolve_entries(names=args.names)
    except bulk.BulkError as exc:
        print(exc, file=sys.stderr)
        return EXIT_ERROR
    for name in missing:
        print(f"Model '{name}' not found in registry", file=sys.stderr)
    if args.dry_run:
        items = bulk.plan_bulk(args.action, entries, actor).items
    else:
        items = bulk.run_bulk(
            args.action,
            entries,
            actor,
            on_item=lambda _i, item: print(
                f"{item.name}\t{item.state}\t{item.message}", flush=True
            ),
        )
    if args.dry_run:
        for item in items:
            print(f"{item.name}\t{item.state}\t{item.message}")
    bad = missing or [i for i in items if i.state in (bulk.REFUSED, bulk.FAILED)]
    return EXIT_ERROR if bad else EXIT_OK
