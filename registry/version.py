"""The registry version: an O(1) key for everything derived from the mirror.

``bump()`` runs inside the transaction of every sync and write-back that changes
``ModelEntry`` rows; ``registry_version()`` reads the one ``RegistryVersion`` row by
primary key, once per request (the ETag, the filter choices and the search all ask).
``per_version(name, build)`` keeps one value per name (the search index, the filter
choices) in this process until the *listing* moves: a write-back that changes no
name, search text, backend or roles (a verify recording a hash, a lock) bumps the
version with ``listing=False`` and leaves those values valid.

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
#: The version before the first bump (no row yet, e.g. a flushed database).
INITIAL = ("0-initial", "initial")
#: The ``ModelEntry`` fields the per-version values are built from.
LISTING_FIELDS = ("name", "search_text", "backend", "roles_key")

_lock = threading.Lock()
_memo: dict[str, tuple[str, object]] = {}
#: name -> the lock held while that name's value is built (single flight)
_building: dict[str, threading.Lock] = {}
#: Per thread (and async task): inside a request, the version read first.
_scope = Local()


def bump(*, listing: bool = True) -> None:
    """A new version, in the caller's transaction (call it where rows change).

    ``listing=False`` when no row came or went and no ``LISTING_FIELDS`` changed.
    """
    with transaction.atomic():
        stamp = uuid.uuid4().hex
        changes = {"counter": F("counter") + 1, "stamp": stamp}
        if listing:
            changes["listing_stamp"] = stamp
        updated = RegistryVersion.objects.filter(pk=ROW).update(
            **changes, changed_at=timezone.now()
        )
        if not updated:
            RegistryVersion.objects.update_or_create(
                pk=ROW, defaults={"counter": 1, "stamp": stamp, "listing_stamp": stamp}
            )
    _scope.version = None


def listing_changed(row, fields: dict) -> bool:
    """Would writing ``fields`` over ``row`` change what the listing values hold?"""
    return any(
        getattr(row, name) != fields[name] for name in LISTING_FIELDS if name in fields
    )


def _read(fresh: bool) -> tuple[str, str]:
    """(version, listing version): one primary-key lookup, reused within a request
    (until this thread bumps) so one page sees one version."""
    if not fresh:
        known = getattr(_scope, "version", None)
        if known is not None:
            return known
    row = (
        RegistryVersion.objects.filter(pk=ROW)
        .values_list("counter", "stamp", "listing_stamp")
        .first()
    )
    versions = (f"{row[0]}-{row[1]}", row[2]) if row else INITIAL
    if getattr(_scope, "in_request", False):
        _scope.version = versions
    return versions


def registry_version(*, fresh: bool = False) -> str:
    """The current version as a cache-key fragment; moves with every bump."""
    return _read(fresh)[0]


def listing_version(*, fresh: bool = False) -> str:
    """Moves when rows come or go or their ``LISTING_FIELDS`` change."""
    return _read(fresh)[1]


def request_started(**kwargs) -> None:
    """``request_started`` receiver: this request may reuse the version it reads."""
    _scope.in_request = True
    _scope.version = None


def request_finished(**kwargs) -> None:
    """``request_finished`` receiver: outside requests, every call asks."""
    _scope.in_request = False
    _scope.version = None


def per_version(name: str, build: Callable[[], T]) -> T:
    """``build()``'s value for the current listing version, built once per process.

    ``build`` may only read ``LISTING_FIELDS`` and which rows exist. The version is
    read before and after building: when a sync committed in between, the value is
    used for this call but not kept (it may mix versions).
    """
    version = listing_version()
    with _lock:
        hit = _memo.get(name)
        gate = _building.setdefault(name, threading.Lock())
    if hit is not None and hit[0] == version:
        return hit[1]  # type: ignore[return-value]
    # One build at a time per name in this process: after a sync, the requests that
    # arrive together on a threaded worker wait for the first one's value instead of
    # each building the same index (and fighting over the GIL while they do).
    with gate:
        with _lock:
            hit = _memo.get(name)
        if hit is not None and hit[0] == version:
            return hit[1]  # type: ignore[return-value]
        value = build()
        if listing_version(fresh=True) == version:
            with _lock:
                _memo[name] = (version, value)
    return value


def last_value(name: str) -> object | None:
    """The value ``per_version`` keeps for *name*, of whatever version (or ``None``):
    what a new version's value may carry over from the last one."""
    with _lock:
        hit = _memo.get(name)
    return hit[1] if hit is not None else None


#: ``per_registry_version`` values of the current version (bounded; key -> value).
_by_key: dict[object, object] = {}
_by_key_version: list[str] = [""]
BY_KEY_MAX = 256


def per_registry_version(key: object, build: Callable[[], T]) -> T:
    """``build()``'s value for *key* at the current registry version (every bump,
    listing or not, starts afresh), kept in this process for at most ``BY_KEY_MAX``
    keys. For values derived from any column (counts under filters), where
    :func:`per_version` would be too coarse. Same rule: not kept when a sync
    committed while it was built.
    """
    version = registry_version()
    with _lock:
        if _by_key_version[0] == version and key in _by_key:
            return _by_key[key]  # type: ignore[return-value]
    value = build()
    if registry_version(fresh=True) == version:
        with _lock:
            if _by_key_version[0] != version:
                _by_key.clear()
                _by_key_version[0] = version
            if len(_by_key) >= BY_KEY_MAX:
                _by_key.pop(next(iter(_by_key)))
            _by_key[key] = value
    return value


def forget() -> None:
    """Drop every per-version value of this process (tests)."""
    with _lock:
        _memo.clear()
        _by_key.clear()
        _by_key_version[0] = ""
