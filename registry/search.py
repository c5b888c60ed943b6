"""Fuzzy search over logical names, display names and aliases (RapidFuzz).

``ModelEntry.search_text`` holds the lower-cased name, display name and aliases, one per
line, kept by sync. Scoring keeps each entry's best line:

* a plain substring or prefix hit is lifted above any fuzzy score, so typing the exact
  start of a name always puts that model first;
* ``fuzz.partial_ratio`` (weighted 0.95) runs over every line and finds partial words
  and typos inside long names ("larg patch", "florance");
* ``fuzz.WRatio`` copes with word order and mixed typos ("qwen vl 7b awq"). It is the
  expensive scorer, so it only scores *candidate* lines: lines that share at least a
  third of the query's character trigrams. A line sharing none of them cannot reach the
  cutoff with WRatio's token scorers; ``partial_ratio`` still sees it.

Speed at 10,000 entries (~30,000 lines): the processed lines are built
once per *registry version* (row count, highest pk and the latest update/sync time: one
aggregate query) and kept in Django's cache and in a per-process memo, so a search does
not re-read or re-process 10,000 ``search_text`` values. The rows the other filters left
come from one ``values_list("pk")`` query. The best ``MAX_RESULTS`` matches come back
ordered by score (ties by name) through a ``StrIndex`` annotation (the pk's position in
the ranked list), so a later explicit sort (a column header) still wins.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass

from django.core.cache import cache
from django.db.models import CharField, Count, Max, QuerySet, Value
from django.db.models.functions import Cast, Concat, StrIndex
from rapidfuzz import fuzz, process, utils

#: Scores below this (0-100) are not matches.
SCORE_CUTOFF = 72
#: Never return more than this many matches (a search is for finding, not listing).
MAX_RESULTS = 500
#: Short queries only match as substrings: two letters fuzzy-match almost anything.
MIN_FUZZY_LENGTH = 3
#: Weight of partial_ratio against WRatio (a partial match is a little less certain).
PARTIAL_WEIGHT = 0.95
CACHE_PREFIX = "registry:search-choices:"
CACHE_SECONDS = 3600


@dataclass
class Choices:
    """Processed search lines: ``lines[i]`` belongs to entry ``owners[i]``.

    ``order`` is each pk's position in the input (name order): the tie-breaker.
    """

    lines: list[str]
    owners: list[int]
    order: dict[int, int]

    @classmethod
    def build(cls, choices: list[tuple[int, str]]) -> Choices:
        lines: list[str] = []
        owners: list[int] = []
        for pk, text in choices:
            for line in (text or "").splitlines():
                line = utils.default_process(line)
                if line:
                    lines.append(line)
                    owners.append(pk)
        return cls(
            lines=lines,
            owners=owners,
            order={pk: i for i, (pk, _text) in enumerate(choices)},
        )


def _trigrams(query: str) -> set[str]:
    return {query[i : i + 3] for i in range(len(query) - 2)}


def _line_scores(query: str, lines: list[str]) -> dict[int, float]:
    """Line index -> best score of *query* against that line (processed query)."""
    scores: dict[int, float] = {}  # line index -> score

    def keep(index: int, score: float) -> None:
        if score > scores.get(index, 0):
            scores[index] = score

    # Exact, prefix and substring hits rank above every fuzzy score.
    for i, line in enumerate(lines):
        if query in line:
            keep(
                i, 110.0 if line == query else 100.0 if line.startswith(query) else 99.0
            )
    if len(query) >= MIN_FUZZY_LENGTH:
        for _line, score, index in process.extract(
            query,
            lines,
            scorer=fuzz.partial_ratio,
            processor=None,
            score_cutoff=SCORE_CUTOFF / PARTIAL_WEIGHT,
            limit=None,
        ):
            keep(index, score * PARTIAL_WEIGHT)
        # WRatio only for lines sharing a third of the query's trigrams (C-level `in`).
        grams = _trigrams(query)
        hits: Counter[int] = Counter()
        for gram in grams:
            hits.update([i for i, line in enumerate(lines) if gram in line])
        need = max(1, len(grams) // 3)
        candidates = [i for i, n in hits.items() if n >= need]
        if candidates:
            subset = [lines[i] for i in candidates]
            for _line, score, pos in process.extract(
                query,
                subset,
                scorer=fuzz.WRatio,
                processor=None,
                score_cutoff=SCORE_CUTOFF,
                limit=None,
            ):
                keep(candidates[pos], score)
    return scores


def rank_prepared(
    query: str, prepared: Choices, allowed: set[int] | None = None
) -> list[tuple[int, float]]:
    """Score prepared choices against ``query``; best first, ties by input order.

    ``allowed`` limits the result to those pks (the other filters' rows).
    """
    query = utils.default_process(query or "")
    if not query or not prepared.lines:
        return []
    scores = _line_scores(query, prepared.lines)
    best: dict[int, float] = {}
    owners = prepared.owners
    for index, score in scores.items():
        pk = owners[index]
        if allowed is not None and pk not in allowed:
            continue
        if score > best.get(pk, 0):
            best[pk] = score
    order = prepared.order
    ranked = sorted(best.items(), key=lambda item: (-item[1], order[item[0]]))
    return ranked[:MAX_RESULTS]


def rank(query: str, choices: list[tuple[int, str]]) -> list[tuple[int, float]]:
    """Score ``(pk, search_text)`` pairs against ``query``; best first, ties by input order."""
    return rank_prepared(query, Choices.build(choices))


# --- cached choices -------------------------------------------------------------

_memo_lock = threading.Lock()
_memo: dict[str, Choices] = {}


def registry_version(model) -> str:
    """Changes whenever a row is added, removed, saved or re-synced (one query)."""
    agg = model.objects.aggregate(
        n=Count("pk"), top=Max("pk"), upd=Max("last_updated"), syn=Max("synced_at")
    )
    stamp = lambda v: v.isoformat() if v else "-"  # noqa: E731
    return f"{agg['n']}:{agg['top']}:{stamp(agg['upd'])}:{stamp(agg['syn'])}"


def cached_choices(model) -> Choices:
    """Every entry's processed search lines for the current registry version."""
    key = CACHE_PREFIX + registry_version(model)
    with _memo_lock:
        hit = _memo.get(key)
    if hit is not None:
        return hit
    prepared = cache.get(key)
    if prepared is None:
        rows = list(model.objects.order_by("name").values_list("pk", "search_text"))
        prepared = Choices.build(rows)
        cache.set(key, prepared, CACHE_SECONDS)
    with _memo_lock:
        _memo.clear()  # one version at a time per process
        _memo[key] = prepared
    return prepared


def search_queryset(queryset: QuerySet, query: str) -> QuerySet:
    """Narrow ``queryset`` to fuzzy matches of ``query``, best match first."""
    query = (query or "").strip()
    if not query:
        return queryset
    prepared = cached_choices(queryset.model)
    allowed = set(queryset.order_by().values_list("pk", flat=True))
    ranked = rank_prepared(query, prepared, allowed)
    if not ranked:
        return queryset.none()
    pks = [pk for pk, _score in ranked]
    # Rank = where ",<pk>," sits in ",p1,p2,...,": one expression (INSTR / STRPOS)
    # instead of a 500-branch CASE that Django would build and compile twice.
    order = "," + ",".join(str(pk) for pk in pks) + ","
    position = StrIndex(
        Value(order, output_field=CharField()),
        Concat(Value(","), Cast("pk", output_field=CharField()), Value(",")),
    )
    return (
        queryset.filter(pk__in=pks)
        .annotate(search_rank=position)
        .order_by("search_rank")
    )
