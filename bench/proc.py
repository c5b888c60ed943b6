"""``manage.py`` for the benches: run in the repository with the bench's environment."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PY = sys.executable


def manage(env: dict, *args: str, timeout: float = 600) -> str:
    """Run ``manage.py ARGS`` and return its stdout; exit the bench with both
    streams when it fails."""
    out = subprocess.run(
        [PY, "manage.py", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if out.returncode != 0:
        raise SystemExit(
            f"manage.py {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}"
        )
    return out.stdout
