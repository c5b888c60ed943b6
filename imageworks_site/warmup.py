"""Warm a web process before it takes requests, then freeze what start-up built.

A fresh gunicorn worker pays for its first Models page, drawer and search: the URL
resolver imports every view module (~250 ms), each template is compiled on first
use (~60 ms for all of them), the search index and filter choices are built from
10,000 rows (~100 ms), and the first request to a backend builds an SSL context.
Without a warm-up the first users after every start or restart pay those costs,
one worker at a time.

``warm()`` does that work once, at start, before the process serves anything. Then
``gc.freeze()`` moves everything start-up built into the collector's permanent
generation. Modules, templates and the index live for the whole process. Without
the freeze, every full collection walks ~150,000 such objects again, which takes
30-60 ms at a random request's expense.

Each step is best-effort: a failure is logged and the process starts anyway. The
page then pays on first use, as it would without the warm-up.
``IMAGEWORKS_WARM_UP=0`` turns it off.
"""

from __future__ import annotations

import gc
import logging
import time
from pathlib import Path

logger = logging.getLogger(__name__)


def _urls() -> None:
    from django.urls import get_resolver

    # Reading the reverse map populates the resolver, which imports every
    # URLconf and so every view module.
    get_resolver().reverse_dict  # noqa: B018


def _templates() -> int:
    """Compile the project's own templates (the cached loader keeps them)."""
    from django.conf import settings
    from django.template.loader import get_template

    count = 0
    for engine in settings.TEMPLATES:
        for folder in engine.get("DIRS", []):
            root = Path(folder)
            for path in sorted(root.rglob("*.html")):
                get_template(path.relative_to(root).as_posix())
                count += 1
    return count


def _registry_data() -> None:
    """The values every Models page and search derive from all rows."""
    from registry.filtersets import ModelEntryFilterSet
    from registry.models import ModelEntry
    from registry.search import search_index

    ModelEntryFilterSet({})
    search_index(ModelEntry)


def _http_client() -> None:
    """The backends' shared SSL context and httpx's lazy imports (~0.2 s): the first
    health card, status check or stop of a process would pay for them."""
    from backends.clients import warm_up

    warm_up()


STEPS = (
    ("urls", _urls),
    ("templates", _templates),
    ("registry data", _registry_data),
    ("http client", _http_client),
)


def warm() -> dict[str, float]:
    """Run every warm-up step, then freeze; the milliseconds each step took."""
    from django.db import connections

    took: dict[str, float] = {}
    for name, step in STEPS:
        started = time.perf_counter()
        try:
            step()
        except Exception:  # noqa: BLE001 - a warm-up must never stop the server
            logger.warning("warm-up step %r failed; it runs on first use", name)
            logger.debug("warm-up step %r failed", name, exc_info=True)
        took[name] = round((time.perf_counter() - started) * 1000, 1)
    # A connection opened here must not outlive the warm-up (gunicorn --preload
    # would share it across forked workers).
    connections.close_all()
    gc.collect()
    gc.freeze()
    logger.info(
        "warm-up done: %s", ", ".join(f"{k} {v:.0f} ms" for k, v in took.items())
    )
    return took
