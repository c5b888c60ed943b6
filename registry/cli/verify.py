"""``imageworks-models verify NAME``, ``lock NAME [--set-expected]``, ``unlock NAME``.

``imageworks_site/cli.py`` calls :func:`add_subcommands`; each parser's ``func`` is
called with the parsed args and returns the exit code. The commands run the same
services as the site (``registry.services.verify``) synchronously, as ``Actor.cli()``.

Outputs and exit codes follow the original (reference 6.2):

* ``verify`` prints ``{name, aggregate_sha256, last_verified, locked}`` as JSON, exit 0;
  1 for an unknown name or any other failure (missing files, Ollama tag, ...);
  2 for a lock violation, with ``Lock violation: ...`` on stderr.
  Progress goes to stderr when stderr is a terminal.
* ``lock`` prints ``Locked NAME``; ``unlock`` prints ``Unlocked NAME``; 1 when unknown.
  ``lock`` follows the drawer's rule (``verify.request_lock``): refused (1) while a
  verify job of the entry runs; with ``--set-expected``, an entry already locked with
  an expected hash is left alone (exit 0, a note on stderr) and an Ollama tag is
  refused (1).
"""

from __future__ import annotations

import json
import sys
import time

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_LOCK_VIOLATION = 2


def add_subcommands(subparsers) -> None:
    p = subparsers.add_parser(
        "verify",
        help="hash a model's files and record the result (exit 2 on a lock violation)",
        description=(
            "Hash every file under the model directory (algorithm A, in parallel), "
            "store the aggregate and per-file hashes in the discovered layer, and "
            "enforce the version lock: a locked entry whose files hash differently "
            "is a lock violation (exit 2, nothing written)."
        ),
    )
    p.add_argument("name", metavar="NAME")
    p.set_defaults(func=cmd_verify)

    p = subparsers.add_parser(
        "lock",
        help="lock a model version",
        description=(
            "Set version_lock.locked. With --set-expected, record the expected hash "
            "(from a verify that is still current, or by verifying first)."
        ),
    )
    p.add_argument("name", metavar="NAME")
    p.add_argument(
        "--set-expected",
        action="store_true",
        help="record the current hash as the expected one (verifies if needed)",
    )
    p.set_defaults(func=cmd_lock)

    p = subparsers.add_parser(
        "unlock", help="unlock a model version (the expected hash is kept)"
    )
    p.add_argument("name", metavar="NAME")
    p.set_defaults(func=cmd_unlock)


def _err(message: str) -> None:
    print(message, file=sys.stderr)


class _TtyProgress:
    """A one-line progress meter on stderr (only when stderr is a terminal)."""

    def __init__(self, name: str):
        self.name = name
        self.started = time.monotonic()
        self.shown = False

    def __call__(self, done: int, total: int) -> None:
        elapsed = max(time.monotonic() - self.started, 1e-6)
        pct = 100 * done / total if total else 100
        rate = done / elapsed / 1e6
        sys.stderr.write(
            f"\rHashing {self.name}: {pct:5.1f}%  "
            f"{done / 1e6:,.1f}/{total / 1e6:,.1f} MB  {rate:,.0f} MB/s"
        )
        sys.stderr.flush()
        self.shown = True

    def close(self) -> None:
        if self.shown:
            sys.stderr.write("\n")
            sys.stderr.flush()


def _progress(name: str) -> _TtyProgress | None:
    try:
        return _TtyProgress(name) if sys.stderr.isatty() else None
    except (AttributeError, ValueError):
        return None


def _actor():
    from registry.audit import Actor

    return Actor.cli()


def cmd_verify(args) -> int:
    from registry.services import verify as svc

    name = args.name.strip()
    meter = _progress(name)
    try:
        outcome = svc.verify(name, _actor(), on_progress=meter)
    except svc.LockViolation as exc:
        _close(meter)
        _err(str(exc))
        return EXIT_LOCK_VIOLATION
    except svc.EntryNotFound as exc:
        _close(meter)
        _err(str(exc))
        return EXIT_ERROR
    except svc.VerifyError as exc:
        _close(meter)
        _err(str(exc))
        return EXIT_ERROR
    except KeyboardInterrupt:
        _close(meter)
        raise
    _close(meter)
    print(json.dumps(outcome.as_json(), indent=2))
    return EXIT_OK


def cmd_lock(args) -> int:
    """The same rule as the drawer's Lock (``verify.request_lock``), run inline."""
    from registry.choices import LockRequestStatus
    from registry.services import verify as svc

    name = args.name.strip()
    meter = _progress(name) if args.set_expected else None
    try:
        result = svc.request_lock(
            name,
            _actor(),
            set_expected=args.set_expected,
            background=False,
            on_progress=meter,
        )
    finally:
        _close(meter)
    if result.error:
        _err(result.message)
        return EXIT_ERROR
    outcome = result.outcome
    if result.status == LockRequestStatus.ALREADY_LOCKED or (
        outcome is not None
        and outcome.action is not None
        and (outcome.action.details or {}).get("no_change")
    ):
        _err(outcome.message if outcome is not None else result.message)
    print(f"Locked {name}")
    return EXIT_OK


def cmd_unlock(args) -> int:
    from registry.services import verify as svc

    name = args.name.strip()
    try:
        svc.unlock(name, _actor())
    except (svc.EntryNotFound, svc.VerifyError) as exc:
        _err(str(exc))
        return EXIT_ERROR
    print(f"Unlocked {name}")
    return EXIT_OK


def _close(meter: _TtyProgress | None) -> None:
    if meter is not None:
        meter.close()
