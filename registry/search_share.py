"""The search index, shared by the processes of one host through a file.

Every web worker needs the search index of the current listing version. Building it
from the rows costs ~120 ms at 10,000 entries (every row's search text fetched,
30,000 lines processed); reading it from a file costs ~6 ms. Without sharing, each
worker rebuilt it after every reload that changed a name, while users waited.

So the index is written once per listing version, as
``SEARCH_INDEX_DIR/<model>-<listing stamp>.json``, and the other processes load it:

* the sync that moved the listing writes it inside its own transaction
  (:func:`prebuild`), so the file is there before any worker can see that version;
* otherwise (a write-back from the web, a file lost) the first worker that needs it
  builds it from the rows and writes it (:func:`shared_index`), but only when the
  version was the same before and after its read, so a file never holds rows of
  another version.

With a shared cache (Redis), the rankings of each query are shared too
(:class:`SharedRankings`): after a reload, each search is ranked once, not once per
web worker.

The file is a cache and nothing more: missing, unreadable or malformed means
"build from the rows". A listing stamp is a fresh uuid per bump, never reused,
even by a rolled-back transaction. The ``initial`` version (no version row yet)
is never shared, because different sets of rows share it.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import orjson
from django.conf import settings
from django.core.cache import cache

from . import layers
from .search import SearchIndex
from .version import INITIAL, listing_version

logger = logging.getLogger(__name__)


def _folder() -> Path:
    return Path(settings.SEARCH_INDEX_DIR)


def _prefix(model) -> str:
    return model._meta.label_lower.replace(".", "-") + "-"


def _path(model, stamp: str) -> Path:
    return _folder() / f"{_prefix(model)}{stamp}.json"


def _shareable(stamp: str) -> bool:
    return stamp != INITIAL[1] and stamp.isalnum()


def from_rows(model) -> SearchIndex:
    """Build the index from every row (name order: the ranking's tie-breaker)."""
    with layers.gc_paused():
        return SearchIndex.build(
            model.objects.order_by("name").values_list("pk", "search_text").iterator()
        )


def load(model, stamp: str) -> SearchIndex | None:
    """The index another process wrote for ``stamp``, or ``None``."""
    if not _shareable(stamp):
        return None
    try:
        body = _path(model, stamp).read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        logger.warning("cannot read the shared search index for %s: %s", stamp, exc)
        return None
    try:
        with layers.gc_paused():
            data = orjson.loads(body)
            texts, owners, names = data["texts"], data["owners"], data["order"]
            if len(texts) != len(owners):
                raise ValueError("texts and owners differ in length")
            return SearchIndex(texts, owners, {pk: n for n, pk in enumerate(names)})
    except (ValueError, KeyError, TypeError) as exc:
        logger.warning("ignoring the shared search index for %s: %s", stamp, exc)
        return None


def save(model, stamp: str, index: SearchIndex) -> None:
    """Write ``index`` as ``stamp``'s file (``layers.atomic_write``: never torn) and
    remove the files of older versions. A folder that cannot be written only
    costs the other processes a build."""
    if not _shareable(stamp):
        return
    folder = _folder()
    order = sorted(index.order, key=index.order.__getitem__)
    body = orjson.dumps({"texts": index.texts, "owners": index.owners, "order": order})
    target = _path(model, stamp)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        layers.atomic_write(target, body, keep_backups=0)
        for old in folder.glob(f"{_prefix(model)}*.json"):
            if old != target:
                old.unlink(missing_ok=True)
    except (OSError, layers.RegistryWriteError) as exc:
        logger.warning("could not share the search index in %s: %s", folder, exc)


class SharedRankings:
    """One listing version's rankings in Django's cache (Redis: every process of
    every host), so a query one web worker ranked is not ranked again by the others.

    A ranking is a pure function of the index, the query and the allowed rows, and
    the key holds the listing stamp, so a value never goes stale; old versions' keys
    expire. The cache being down only costs the ranking.
    """

    TIMEOUT = 3600

    def __init__(self, model, stamp: str):
        self.prefix = f"search-ranking:{model._meta.label_lower}:{stamp}:"

    def _key(self, key: tuple[str, bytes]) -> str:
        query, rows = key
        return self.prefix + hashlib.blake2b(query.encode() + b"\0" + rows).hexdigest()

    def get(self, key: tuple[str, bytes]) -> list | None:
        try:
            return cache.get(self._key(key))
        except Exception as exc:  # noqa: BLE001 - any cache backend's failure
            logger.warning("shared search rankings unavailable: %s", exc)
            return None

    def set(self, key: tuple[str, bytes], ranked: list) -> None:
        try:
            cache.set(self._key(key), ranked, self.TIMEOUT)
        except Exception as exc:  # noqa: BLE001
            logger.warning("shared search rankings unavailable: %s", exc)


def shared_index(model, previous: SearchIndex | None = None) -> SearchIndex:
    """The index of the current listing version: loaded when another process
    wrote it, else built from the rows and written for the others. It takes over
    the rankings of ``previous`` (this process's index of an earlier version)."""
    stamp = listing_version()
    index = load(model, stamp)
    if index is None:
        index = from_rows(model)
        # Written only when no sync committed while the rows were read.
        if listing_version(fresh=True) == stamp:
            save(model, stamp, index)
        else:
            return index  # a mix of versions: shares nothing
    if previous is not None:
        index.carry_rankings(previous)
    if settings.SHARED_CACHE and _shareable(stamp):
        index.shared = SharedRankings(model, stamp)
    return index


def prebuild(model) -> None:
    """Write the index of the listing version this transaction just bumped to.

    Call it inside that transaction, after the rows changed: other processes see the
    version only once it commits, and by then the file exists. If the transaction
    rolls back, the file names a version nobody will ever see.
    """
    save(model, listing_version(fresh=True), from_rows(model))
