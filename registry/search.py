"""Fuzzy search over logical names, display names and aliases (RapidFuzz).

``ModelEntry.search_text`` holds the lower-cased name, display name and aliases, one per
line, kept by sync. A search loads ``(pk, search_text)`` for the rows the other filters
left (one query, two narrow columns), scores every line with RapidFuzz in C and keeps
each entry's best line:

* ``fuzz.WRatio`` copes with typos and word order ("qwen vl 7b awq", "florance");
* ``fuzz.partial_ratio`` (weighted 0.95) finds partial words ("larg patch");
* a plain substring or prefix hit is lifted above any fuzzy score, so typing the exact
  start of a name always puts that model first.

The best ``MAX_RESULTS`` matches come back ordered by score (ties by name) through a
``Case/When`` annotation, so a later explicit sort (a column header) still wins. At
10,000 entries (~30,000 lines) scoring takes a few tens of milliseconds.
"""

from __future__ import annotations

from django.db.models import Case, IntegerField, QuerySet, Value, When
from rapidfuzz import fuzz, process, utils

#: Scores below this (0-100) are not matches.
SCORE_CUTOFF = 72
#: Never return more than this many matches (a search is for finding, not listing).
MAX_RESULTS = 500
#: Short queries only match as substrings: two letters fuzzy-match almost anything.
MIN_FUZZY_LENGTH = 3


def rank(query: str, choices: list[tuple[int, str]]) -> list[tuple[int, float]]:
    """Score ``(pk, search_text)`` pairs against ``query``; best first, ties by input order."""
    query = utils.default_process(query or "")
    if not query:
        return []
    lines: list[str] = []
    owners: list[int] = []
    for pk, text in choices:
        for line in (text or "").splitlines():
            line = utils.default_process(line)
            if line:
                lines.append(line)
                owners.append(pk)
    scores: dict[int, float] = {}  # line index -> score

    def keep(index: int, score: float) -> None:
        if score > scores.get(index, 0):
            scores[index] = score

    # Exact, prefix and substring hits rank above every fuzzy score.
    for index, line in enumerate(lines):
        if query in line:
            keep(
                index,
                110.0 if line == query else 100.0 if line.startswith(query) else 99.0,
            )
    if len(query) >= MIN_FUZZY_LENGTH:
        # Both scorers run in RapidFuzz's C loop over all lines.
        for scorer, weight in ((fuzz.WRatio, 1.0), (fuzz.partial_ratio, 0.95)):
            for _line, score, index in process.extract(
                query,
                lines,
                scorer=scorer,
                processor=None,
                score_cutoff=SCORE_CUTOFF / weight,
                limit=None,
            ):
                if score * weight >= SCORE_CUTOFF:
                    keep(index, score * weight)
    best: dict[int, float] = {}
    for index, score in scores.items():
        pk = owners[index]
        if score > best.get(pk, 0):
            best[pk] = score
    order = {pk: i for i, (pk, _text) in enumerate(choices)}
    ranked = sorted(best.items(), key=lambda item: (-item[1], order[item[0]]))
    return ranked[:MAX_RESULTS]


def search_queryset(queryset: QuerySet, query: str) -> QuerySet:
    """Narrow ``queryset`` to fuzzy matches of ``query``, best match first."""
    query = (query or "").strip()
    if not query:
        return queryset
    choices = list(queryset.order_by("name").values_list("pk", "search_text"))
    ranked = rank(query, choices)
    if not ranked:
        return queryset.none()
    pks = [pk for pk, _score in ranked]
    position = Case(
        *[When(pk=pk, then=Value(i)) for i, pk in enumerate(pks)],
        output_field=IntegerField(),
    )
    return (
        queryset.filter(pk__in=pks)
        .annotate(search_rank=position)
        .order_by("search_rank")
    )
