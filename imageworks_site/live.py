"""Live panels: one cheap poll tells every open page what changed (issue 15 item 2).

The one event path is **polling with an ETag**. Every signed-in page polls
``GET /live/`` every few seconds (``site.js``) with ``If-None-Match: <token>``. The
token is built from a few constant-cost reads, whoever made the change (site, CLI,
API, a sync of files edited by hand, the task cluster):

``r``  the registry version (``registry.version``: bumped with every row change:
       sync, edit, import, verify, lock)
``a``  the newest audit row and the audit rows still running (every state-changing
       service call writes one: verify, lock, edit, import, activate, stop)
``h``  the health results (newest check time and number of endpoints)

Nothing changed: ``304 Not Modified``, no body. Something changed: ``200`` with the
new token and the events to fire on ``document.body``: ``entryChanged`` (the Models
table, the drawer, the backend cards, the "Last layer changes" panel),
``actionsChanged`` (Recent actions on the Models page and the Dashboard, the drawer's
history) and ``healthChanged`` (the health cards, the vLLM card, the Dashboard's
active model). The panels already listen for these (``hx-trigger="... from:body"``),
so a browser that made the change and one that did not refresh the same way.

Why polling and not server-sent events: the site runs under runserver and gunicorn's
sync or threaded workers (docs/deploy.md), where every open SSE stream would hold a
worker or a thread for as long as the page is open; a 304 costs a few indexed
queries and no rendering, and works through any proxy.
"""

from __future__ import annotations

import hashlib

from django.db.models import Count, Max

from registry.choices import Outcome
from registry.models import ActionLog
from registry.version import registry_version

#: Token part -> the events the page fires when that part moved.
EVENTS = {
    "r": ["entryChanged"],
    "a": ["actionsChanged"],
    "h": ["healthChanged"],
}


def _health_part() -> str:
    from backends.models import BackendEndpoint

    agg = BackendEndpoint.objects.aggregate(checked=Max("last_checked"), n=Count("pk"))
    checked = agg["checked"].isoformat() if agg["checked"] else "-"
    return f"{checked}/{agg['n']}"


def _actions_part() -> str:
    newest = ActionLog.objects.order_by("-pk").values_list("pk", flat=True).first()
    running = ActionLog.objects.filter(outcome=Outcome.RUNNING).order_by("pk")
    ids = ",".join(str(pk) for pk in running.values_list("pk", flat=True)[:50])
    return f"{newest or 0}/{ids}"


def parts() -> dict[str, str]:
    """Each watched part's current value (four indexed queries, whatever the size)."""
    return {
        "r": registry_version(fresh=True),
        "a": _actions_part(),
        "h": _health_part(),
    }


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:10]


def token(values: dict[str, str]) -> str:
    """``r.<hash>-a.<hash>-h.<hash>``: which part moved can be told from two tokens."""
    return "-".join(f"{key}.{_digest(values[key])}" for key in EVENTS)


def changed_events(old: str, new: str) -> list[str]:
    """The events to fire when the token moved from ``old`` to ``new``."""
    before = dict(p.split(".", 1) for p in old.split("-") if "." in p)
    after = dict(p.split(".", 1) for p in new.split("-") if "." in p)
    events: list[str] = []
    for key, names in EVENTS.items():
        if before.get(key) != after.get(key):
            events.extend(names)
    return events
