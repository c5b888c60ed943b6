"""The registry version: an O(1) key for everything derived from the mirror.

``bump()`` runs inside the transaction of every sync and write-back that changes
``ModelEntry`` rows; ``registry_version()`` reads the one ``RegistryVersion`` row by
primary key, once per request (the ETag, the filter choices and the search all ask).
``per_version(name, build)`` keeps one value per name (the search index, the filter
choices) in this process until the version moves.

Writes that bypass sync and write-back (test fixtures, a shell) must call ``bump()``
too, or pages keep serving what they derived from the rows before.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from typing import TypeVar

from asgiref.local import Local
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from .models import RegistryVersion

T = TypeVar("T")
ROW = 1
#: ``registry_version()`` before the first bump (no row yet, e.g. a flushed database).
INITIAL = "0-initial"

_lock = threading.Lock()
_memo: dict[str, tuple[str, object]] = {}
#: Per thread (and async task): inside a request, the version read first.
_scope = Local()


def bump() -> None:
    """A new version, in the caller's transaction (call it where rows change)."""
    with transaction.atomic():
        stamp = uuid.uuid4().hex
        updated = RegistryVersion.objects.filter(pk=ROW).update(
            counter=F("counter") + 1, stamp=stamp, changed_at=timezone.now()
        )
        if not updated:
            RegistryVersion.objects.update_or_create(
                pk=ROW, defaults={"counter": 1, "stamp": stamp}
            )
    _scope.version = None


def registry_version(*, fresh: bool = False) -> str:
    """The current version as a cache-key fragment (one primary-key lookup).

    Within a request the first answer is reused (until this thread bumps), so one
    page sees one version; ``fresh`` always asks the database.
    """
    if not fresh:
        known = getattr(_scope, "version", None)
        if known is not None:
            return known
    row = RegistryVersion.objects.filter(pk=ROW).values_list("counter", "stamp").first()
    version = f"{row[0]}-{row[1]}" if row else INITIAL
    if getattr(_scope, "in_request", False):
        _scope.version = version
    return version


def request_started(**kwargs) -> None:
    """``request_started`` receiver: this request may reuse the version it reads."""
    _scope.in_request = True
    _scope.version = None


def request_finished(**kwargs) -> None:
    """``request_finished`` receiver: outside requests, every call asks."""
    _scope.in_request = False
    _scope.version = None


def per_version(name: str, build: Callable[[], T]) -> T:
    """``build()``'s value for the current version, built once per process.

    The version is read before and after building: when a sync committed in
    between, the value is used for this call but not kept (it may mix versions).
    """
    version = registry_version()
    with _lock:
        hit = _memo.get(name)
    if hit is not None and hit[0] == version:
        return hit[1]  # type: ignore[return-value]
    value = build()
    if registry_version(fresh=True) == version:
        with _lock:
            _memo[name] = (version, value)
    return value


def forget() -> None:
    """Drop every per-version value of this process (tests)."""
    with _lock:
        _memo.clear()
