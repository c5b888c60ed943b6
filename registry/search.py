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

Speed at 10,000 entries (~30,000 lines): the :class:`SearchIndex` (distinct processed
lines, one text per line with its index for substring scans, trigram -> lines filled on
demand) is built once per listing version (``registry.version``: one primary-key
lookup), kept per process and shared with the host's other processes through a file
(``registry.search_share``). Each scorer runs with the cutoff the best
``MAX_RESULTS`` entries so far already beat (a query that matches hundreds of names
as a substring scores no fuzzy line below that), and the index remembers its last
rankings per query and allowed rows (shared through Django's cache with Redis, and
carried over to the next version's index for the entries that did not change).
The rows the other filters left come from one ``values_list("pk")`` query. The best
``MAX_RESULTS`` matches come back ordered by score (ties by name) through a ``StrIndex``
annotation (the pk's position in the ranked list), so a later explicit sort (a column
header) still wins.
"""

from __future__ import annotations

import hashlib
import heapq
import re
import threading
from array import array
from collections import Counter, OrderedDict
from collections.abc import Iterable

from django.db.models import CharField, QuerySet, Value
from django.db.models.functions import Cast, Concat, StrIndex
from rapidfuzz import fuzz, process, utils

from .version import last_value, per_version

#: Scores below this (0-100) are not matches.
SCORE_CUTOFF = 72
#: Never return more than this many matches (a search is for finding, not listing).
MAX_RESULTS = 500
#: Short queries only match as substrings: two letters fuzzy-match almost anything.
MIN_FUZZY_LENGTH = 3
#: Weight of partial_ratio against WRatio (a partial match is a little less certain).
PARTIAL_WEIGHT = 0.95


class SearchIndex:
    """Every entry's processed search lines, built once per registry version.

    ``texts`` are the distinct processed lines (an entry's name and display name
    often process to the same line; entries share display names), ``owners[i]`` the
    pks that have ``texts[i]``, ``order`` each pk's position in name order (the
    tie-breaker). ``blob`` holds every text with its index, one per line: a
    substring search is one regular-expression scan in C (:meth:`containing`)
    instead of a Python loop over every line. Trigram -> lines is filled lazily, one
    trigram at a time, and kept with the index.
    """

    MAX_GRAMS = 4096
    #: Rankings kept per index (query x allowed rows): paging, sorting and refreshing
    #: a search, or many users searching the same names, cost no scoring.
    MAX_RANKINGS = 64

    def __init__(self, texts: list[str], owners: list[list[int]], order: dict):
        self.texts = texts
        self.owners = owners
        self.order = order
        # "text\x01<index>\n" per line: processed text holds neither separator.
        self.blob = "".join([f"{text}\x01{i}\n" for i, text in enumerate(texts)])
        self._grams: dict[str, list[int]] = {}
        self._rankings: OrderedDict[tuple, list[tuple[int, float]]] = OrderedDict()
        self._lock = threading.Lock()
        #: Rankings shared with other processes (``get(key)``/``set(key, ranked)``),
        #: set by ``registry.search_share`` when a shared cache is configured.
        self.shared = None

    @classmethod
    def build(cls, rows: Iterable[tuple[int, str]]) -> SearchIndex:
        """From ``(pk, search_text)`` pairs in name order."""
        position: dict[str, int] = {}
        owners: list[list[int]] = []
        order: dict[int, int] = {}
        process_line = utils.default_process
        for pk, text in rows:
            order[pk] = len(order)
            seen: set[str] = set()
            for raw in (text or "").splitlines():
                line = process_line(raw)
                if not line or line in seen:
                    continue
                seen.add(line)
                index = position.get(line)
                if index is None:
                    position[line] = len(owners)
                    owners.append([pk])
                else:
                    owners[index].append(pk)
        return cls(list(position), owners, order)

    def containing(self, needle: str) -> list[int]:
        """Indices of the texts that contain ``needle`` (a processed string).

        One regular-expression scan of the blob: each match runs from ``needle`` to
        the end of its line and captures the line's index, so the scan goes on at
        the next line (one hit per line) and the indices come from C, not from a
        Python loop per hit. The match may not cross a newline, so a needle found
        in an index's digits never reports the next line.
        """
        pattern = re.compile(re.escape(needle) + r"[^\x01\n]*\x01(\d+)")
        return list(map(int, pattern.findall(self.blob)))

    def with_trigram(self, gram: str) -> list[int]:
        hit = self._grams.get(gram)
        if hit is None:
            if len(self._grams) >= self.MAX_GRAMS:
                self._grams.clear()
            hit = self._grams[gram] = self.containing(gram)
        return hit

    def ranking(self, query: str, allowed: set[int] | None) -> list[tuple[int, float]]:
        """``rank_prepared`` for this index, remembered for the last few calls
        (and, through ``shared``, for the other processes)."""
        if allowed is None:
            rows = b"*"
        else:
            rows = hashlib.blake2b(array("q", sorted(allowed)).tobytes()).digest()
        key = (query, rows)
        with self._lock:
            hit = self._rankings.get(key)
            if hit is not None:
                self._rankings.move_to_end(key)
                return hit
        ranked = self.shared.get(key) if self.shared is not None else None
        if ranked is None:
            ranked = rank_prepared(query, self, allowed)
            if self.shared is not None:
                self.shared.set(key, ranked)
        with self._lock:
            self._rankings[key] = ranked
            if len(self._rankings) > self.MAX_RANKINGS:
                self._rankings.popitem(last=False)
        return ranked

    def changed_since(self, previous: SearchIndex) -> set[int]:
        """The pks a ranking must score again after ``previous``: their lines came,
        went or changed, or their place in name order (the tie-breaker) moved.

        Lines are compared through each line's owners (dict and set work, no loop
        over every entry). A rename that changes only case or punctuation keeps the
        processed lines but may move the entry in name order; the entries whose
        place differs, once the line-changed ones are left out, count as changed.
        """
        old = dict(zip(previous.texts, previous.owners, strict=True))
        new = dict(zip(self.texts, self.owners, strict=True))
        changed: set[int] = set()
        for text in old.keys() ^ new.keys():  # a line that came or went
            changed.update(old.get(text, ()), new.get(text, ()))
        for text in old.keys() & new.keys():
            before, after = old[text], new[text]
            if before != after:  # other owners (or the same in another order)
                changed.update(set(before).symmetric_difference(after))
        # ``order`` is filled in name order, so iterating it gives that order.
        was = [pk for pk in previous.order if pk not in changed and pk in self.order]
        now = [pk for pk in self.order if pk not in changed and pk in previous.order]
        if was != now:
            for a, b in zip(was, now, strict=True):
                if a != b:
                    changed.update((a, b))
        return changed

    def lines_of(self, pks: set[int]) -> dict[int, list[str]]:
        """The lines of just these pks."""
        lines: dict[int, list[str]] = {}
        for text, owners in zip(self.texts, self.owners, strict=True):
            for pk in owners:
                if pk in pks:
                    lines.setdefault(pk, []).append(text)
        return lines

    #: Above this many changed entries a new index ranks afresh.
    MAX_CARRIED_CHANGES = 200

    def carry_rankings(self, previous: SearchIndex) -> int:
        """Take over ``previous``'s remembered plain-search rankings, re-scoring only
        the entries whose lines differ between the two indexes. Returns how many.

        A reload that renames one entry makes a new index; without this, every
        query users had asked is ranked again from scratch. A carried ranking is
        what ranking afresh would give: an entry whose lines did not change keeps
        its score, and the changed ones are scored by the same code on an index of
        just their lines. A full ranking (``MAX_RESULTS`` entries) that held a
        changed entry is not carried: what was below its cut is unknown.
        """
        with previous._lock:
            remembered = [
                (key, ranked)
                for key, ranked in previous._rankings.items()
                if key[1] == b"*"  # plain search; a filtered one's rows may differ
            ]
        if not remembered:
            return 0
        changed = self.changed_since(previous)
        if len(changed) > self.MAX_CARRIED_CHANGES:
            return 0
        order = self.order
        lines = self.lines_of(changed)
        # In this index's name order, so ties break (and the cut falls) the same way.
        just_changed = SearchIndex.build(
            (pk, "\n".join(lines[pk])) for pk in sorted(lines, key=order.__getitem__)
        )
        carried = 0
        for key, ranked in remembered:
            if len(ranked) >= MAX_RESULTS and any(pk in changed for pk, _ in ranked):
                continue
            merged = [item for item in ranked if item[0] not in changed]
            merged += rank_prepared(key[0], just_changed)
            merged.sort(key=lambda item: (-item[1], order[item[0]]))
            self._rankings[key] = merged[:MAX_RESULTS]
            carried += 1
        return carried


def _trigrams(query: str) -> set[str]:
    return {query[i : i + 3] for i in range(len(query) - 2)}


class _Ranking:
    """Each allowed entry's best score so far, and the score to beat for a place."""

    def __init__(self, index: SearchIndex, allowed: set[int] | None):
        self.owners = index.owners
        self.allowed = allowed
        self.best: dict[int, float] = {}

    def add(self, line: int, score: float) -> None:
        best, allowed = self.best, self.allowed
        for pk in self.owners[line]:
            if (allowed is None or pk in allowed) and score > best.get(pk, 0):
                best[pk] = score

    def floor(self) -> float:
        """The ``MAX_RESULTS``-th best score (0 while fewer entries matched).

        A line scoring below it cannot place any entry in the result, so the next
        scorer may use it as its cutoff: same result, far fewer lines scored when a
        query matches many names as a substring.
        """
        if len(self.best) < MAX_RESULTS:
            return 0.0
        return heapq.nlargest(MAX_RESULTS, self.best.values())[-1]


def _score_lines(query: str, index: SearchIndex, ranking: _Ranking) -> None:
    """Feed ``ranking`` every line's score for ``query`` (already processed)."""
    texts = index.texts
    # Exact, prefix and substring hits rank above every fuzzy score.
    for i in index.containing(query):
        text = texts[i]
        ranking.add(
            i, 110.0 if text == query else 100.0 if text.startswith(query) else 99.0
        )
    if len(query) < MIN_FUZZY_LENGTH:
        return
    # rapidfuzz keeps scores >= cutoff; the epsilon keeps float rounding inclusive.
    cutoff = max(SCORE_CUTOFF, ranking.floor()) / PARTIAL_WEIGHT - 1e-9
    if cutoff <= 100:
        for _text, score, i in process.extract(
            query,
            texts,
            scorer=fuzz.partial_ratio,
            processor=None,
            score_cutoff=cutoff,
            limit=None,
        ):
            ranking.add(i, score * PARTIAL_WEIGHT)
    cutoff = max(SCORE_CUTOFF, ranking.floor())
    if cutoff > 100:
        return
    # WRatio only for lines sharing a third of the query's trigrams.
    grams = _trigrams(query)
    hits: Counter[int] = Counter()
    for gram in grams:
        hits.update(index.with_trigram(gram))
    need = max(1, len(grams) // 3)
    candidates = [i for i, n in hits.items() if n >= need]
    if candidates:
        for _text, score, pos in process.extract(
            query,
            [texts[i] for i in candidates],
            scorer=fuzz.WRatio,
            processor=None,
            score_cutoff=cutoff,
            limit=None,
        ):
            ranking.add(candidates[pos], score)


def rank_prepared(
    query: str, index: SearchIndex, allowed: set[int] | None = None
) -> list[tuple[int, float]]:
    """Score the index against ``query``; best first, ties by name order.

    ``allowed`` limits the result to those pks (the other filters' rows).
    """
    query = utils.default_process(query or "")
    if not query or not index.texts:
        return []
    ranking = _Ranking(index, allowed)
    _score_lines(query, index, ranking)
    order = index.order
    ranked = sorted(ranking.best.items(), key=lambda item: (-item[1], order[item[0]]))
    return ranked[:MAX_RESULTS]


def rank(query: str, choices: list[tuple[int, str]]) -> list[tuple[int, float]]:
    """Score ``(pk, search_text)`` pairs against ``query``; best first, ties by input order."""
    return rank_prepared(query, SearchIndex.build(choices))


def search_index(model) -> SearchIndex:
    """The index of every ``model`` row for the current listing version: kept in
    this process, and shared with the host's other processes through a file
    (``registry.search_share``)."""
    from .search_share import shared_index  # it builds on this module

    name = f"search-index:{model._meta.label}"
    return per_version(name, lambda: shared_index(model, previous=last_value(name)))


def search_queryset(queryset: QuerySet, query: str) -> QuerySet:
    """Narrow ``queryset`` to fuzzy matches of ``query``, best match first."""
    query = (query or "").strip()
    if not query:
        return queryset
    index = search_index(queryset.model)
    # The rows the other filters kept, or None (every row, no query) when nothing
    # narrowed the queryset: a plain search skips fetching all 10,000 pks.
    allowed = (
        set(queryset.order_by().values_list("pk", flat=True))
        if queryset.query.where
        else None
    )
    ranked = index.ranking(query, allowed)
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
