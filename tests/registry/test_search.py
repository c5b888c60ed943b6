from __future__ import annotations

import random
from unittest import mock

import pytest
from django.db import connection
from django.test import TestCase
from django.test.utils import CaptureQueriesContext
from hypothesis import example, given
from hypothesis import strategies as st
from rapidfuzz import fuzz, utils

from registry import search
from registry.models import ModelEntry
from registry.search import (
    MAX_RESULTS,
    SearchIndex,
    rank,
    rank_prepared,
    search_queryset,
)
from tests.registry.page_fixtures import seed_scenario

CHOICES = [
    (1, "qwen2.5-vl-7b-instruct_(awq)\nqwen2.5-vl 7b (awq)\nqwen-vl"),
    (2, "florence-2-large_(fp16)\nflorence 2 large"),
    (3, "siglip-large-patch16-384_(fp32)\nsiglip large"),
    (4, "gemma3_27.0b_(q3_k_m)\ngemma 3 27b"),
    (5, "qwen3-vl-8b-instruct_(fp8)\nqwen3-vl 8b"),
]


def top(query: str) -> int:
    return rank(query, CHOICES)[0][0]


def test_it_finds_exact_and_prefix_matches_first():
    assert top("siglip") == 3
    assert top("qwen3") == 5
    assert top("florence-2-large_(fp16)") == 2


def test_it_tolerates_typos():
    assert top("florance") == 2
    assert top("sigilp") == 3
    assert top("gemma 27") == 4


def test_it_finds_partial_words_and_aliases():
    assert top("qwen-vl") == 1
    assert top("larg patch") == 3


def test_it_ranks_best_matches_first():
    ranked = [pk for pk, _ in rank("qwen", CHOICES)]
    assert set(ranked[:2]) == {1, 5}
    assert 2 not in ranked


def test_it_returns_nothing_for_nonsense_or_blank():
    assert rank("zzzzqqqq", CHOICES) == []
    assert rank("   ", CHOICES) == []


def test_it_does_not_fuzz_two_letter_queries():
    assert [pk for pk, _ in rank("vl", CHOICES)] == [1, 5]


def reference_rank(query, choices, allowed=None):
    """Every line scored by every scorer, no index and no cutoffs: what the index
    must reproduce exactly."""
    query = utils.default_process(query)
    grams = {query[i : i + 3] for i in range(len(query) - 2)}
    best = {}
    for pk, text in choices:
        if allowed is not None and pk not in allowed:
            continue
        for line in filter(None, map(utils.default_process, text.splitlines())):
            scores = [0.0]
            if query in line:
                scores.append(
                    110.0
                    if line == query
                    else 100.0
                    if line.startswith(query)
                    else 99.0
                )
            if len(query) >= search.MIN_FUZZY_LENGTH:
                partial = fuzz.partial_ratio(query, line)
                if partial * search.PARTIAL_WEIGHT >= search.SCORE_CUTOFF:
                    scores.append(partial * search.PARTIAL_WEIGHT)
                if sum(g in line for g in grams) >= max(1, len(grams) // 3):
                    w = fuzz.WRatio(query, line)
                    if w >= search.SCORE_CUTOFF:
                        scores.append(w)
            if max(scores) > best.get(pk, 0):
                best[pk] = max(scores)
    order = {pk: i for i, (pk, _t) in enumerate(choices)}
    ranked = sorted(best.items(), key=lambda item: (-item[1], order[item[0]]))
    return ranked[:MAX_RESULTS]


FAMILIES = [
    ("qwen2.5-vl-{s}b-instruct_({q})", "Qwen2.5-VL {s}B Instruct ({q})"),
    ("florence-2-{v}_({q})", "Florence 2 {v}"),
    ("siglip-{v}-patch{s}-384_({q})", "SigLIP {v}"),
    ("llama_{s}.0b_({q})", "llama {s}.0b {v}"),
    ("gpt-oss-{s}b_({q})", "gpt-oss-{s}b"),
]
QUANTS = ["awq", "fp16", "q4_k_m", "mxfp4", "fp8", "gptq"]
VARIANTS = ["large", "base", "l", "mini", "xl-preview", "tiny"]


def misspelt(word: str, rng: random.Random) -> str:
    """``word`` with 0-3 random one-letter edits (spreads the fuzzy scores)."""
    letters = list(word)
    for _ in range(rng.randrange(4)):
        at = rng.randrange(len(letters))
        edit = rng.choice("dis")
        if edit == "d" and len(letters) > 3:
            del letters[at]
        elif edit == "i":
            letters.insert(at, rng.choice("aeilnorst"))
        else:
            letters[at] = rng.choice("aeilnorst")
    return "".join(letters)


def varied_choices(count: int) -> list[tuple[int, str]]:
    """Names of a few families with varied sizes, quantisations, variants and
    misspellings, so scores spread out around the MAX_RESULTS-th best (where the
    index raises its cutoffs)."""
    rng = random.Random(14)
    choices = []
    for i in range(1, count + 1):
        name, display = FAMILIES[i % len(FAMILIES)]
        fields = {
            "s": (i * 7) % 90 + 1,
            "q": QUANTS[i % len(QUANTS)],
            "v": VARIANTS[(i // 5) % len(VARIANTS)],
        }
        lines = [
            misspelt(name.format(**fields), rng),
            misspelt(display.format(**fields), rng) + f" #{i}",
        ]
        if i % 4 == 0:
            lines.append(f"alias-{i % 11}")
        choices.append((i, "\n".join(lines).lower()))
    return sorted(choices, key=lambda c: c[1])


def test_the_index_ranks_exactly_like_scoring_every_line():
    choices = varied_choices(3000)
    index = SearchIndex.build(choices)
    allowed = {pk for pk, _ in choices if pk % 3}
    queries = (
        "qwen",
        "qwen vl awq",
        "florance",
        "sigilp",
        "larg patch",
        "gpt oss",
        "llama 8b",
        "alias-3",
        "12",
        "zzzz",
        "vl 7b qwen",
        "instruct awq",
    )
    for query in queries:
        for rows in (None, allowed):
            assert rank_prepared(query, index, rows) == reference_rank(
                query, choices, rows
            ), (query, rows is None)


class SearchQuerysetTests(TestCase):
    @classmethod
    def setUpTestData(cls):
        seed_scenario()

    def names(self, query):
        return list(
            search_queryset(ModelEntry.objects.all(), query).values_list(
                "name", flat=True
            )
        )

    def test_it_orders_the_queryset_by_score(self):
        self.assertEqual(self.names("siglip")[0], "siglip-large-patch16-384_(FP32)")
        self.assertEqual(self.names("Florance")[0], "florence-2-large_(FP16)")

    def test_it_matches_display_names_and_aliases(self):
        self.assertEqual(self.names("GPT-OSS")[0], "gpt-oss-20b_(MXFP4)")
        self.assertEqual(self.names("qwen-vl")[0], "qwen2.5-vl-7b-instruct_(AWQ)")

    def test_it_leaves_the_queryset_alone_for_a_blank_query(self):
        self.assertEqual(len(self.names("")), ModelEntry.objects.count())

    def test_it_returns_none_when_nothing_matches(self):
        self.assertEqual(self.names("zzzzqqqq"), [])

    def test_a_plain_search_fetches_no_pks_and_ranks_like_a_narrowed_one(self):
        """Nothing narrowed: every row may match, so the pks are not fetched; the
        result is the one an always-true filter (which does fetch them) gives."""
        for query in ("qwen", "Florance", "siglip", "gpt oss", "llava"):
            with CaptureQueriesContext(connection) as plain_queries:
                plain = list(
                    search_queryset(ModelEntry.objects.all(), query).values_list(
                        "pk", flat=True
                    )
                )
            narrowed = list(
                search_queryset(
                    ModelEntry.objects.filter(pk__gte=0), query
                ).values_list("pk", flat=True)
            )
            self.assertEqual(plain, narrowed, query)
            self.assertTrue(plain, query)
            # The index (built once) aside, one query: the ranked rows themselves.
            fetched = [
                q["sql"]
                for q in plain_queries.captured_queries
                if "search_text" not in q["sql"] and "registryversion" not in q["sql"]
            ]
            self.assertEqual(len(fetched), 1, fetched)

    def test_a_narrowed_search_only_returns_rows_the_filters_kept(self):
        vllm = ModelEntry.objects.filter(backend="vllm")
        names = set(search_queryset(vllm, "qwen").values_list("backend", flat=True))
        self.assertEqual(names, {"vllm"})


_PROCESSED = st.text(alphabet="ab01 9", min_size=0, max_size=12).map(
    utils.default_process
)


@given(texts=st.lists(_PROCESSED, max_size=30), needle=_PROCESSED)
@example(texts=["a", "b", "c"], needle="1")  # "1" is line 1's index, not a text
@example(texts=["a 1", "b"], needle="1")
@example(texts=["ab ab", "ab"], needle="ab")
def test_containing_finds_exactly_the_lines_that_hold_the_needle(texts, needle):
    """The regular-expression scan agrees with ``needle in text`` for every line:
    digits in a needle never match a line's index, two hits on one line count once."""
    index = SearchIndex(texts, [[i] for i in range(len(texts))], {})
    expected = [i for i, text in enumerate(texts) if needle and needle in text]
    found = index.containing(needle) if needle else []
    assert found == expected


def test_containing_ignores_the_digits_of_the_index():
    texts = ["alpha", "beta"] * 6  # line 10 and 11 have two-digit indices
    index = SearchIndex(texts, [[i] for i in range(len(texts))], {})
    assert index.containing("1") == []
    assert index.containing("a") == list(range(12))


_WORDS = st.sampled_from(
    ["qwen", "qwen vl", "llama", "lama 8b", "gemma", "siglip", "vl"]
)
_ENTRIES = st.dictionaries(
    st.integers(1, 40),
    st.lists(_WORDS, min_size=0, max_size=3).map("\n".join),
    max_size=25,
)


@given(
    before=_ENTRIES,
    after=_ENTRIES,
    keep=st.sets(st.integers(1, 40)),
    cut=st.sampled_from([2, 5, MAX_RESULTS]),
)
@example(  # a full ranking that held a changed entry is ranked afresh
    before={1: "qwen", 2: "qwen vl", 3: "qwen"},
    after={1: "llama"},
    keep={2, 3},
    cut=2,
)
@example(  # same lines, another place in name order (a case-only rename)
    before={1: "qwen", 2: "qwen\nqwen vl", 3: "qwen"},
    after={1: "qwen\nqwen", 2: "qwen\nqwen vl", 3: "qwen"},
    keep=set(),
    cut=2,
)
def test_carried_rankings_equal_ranking_afresh(before, after, keep, cut):
    """After a reload, the rankings a new index takes over from the last one are
    exactly what ranking every query again on the new index gives, also when the
    cut (``MAX_RESULTS``) is reached."""
    after = {**{pk: before[pk] for pk in keep if pk in before}, **after}
    queries = ["qwen", "qwen vl", "lama", "gemma 3", "vl"]

    def build(entries):
        return SearchIndex.build(sorted(entries.items(), key=lambda e: (e[1], e[0])))

    with mock.patch.object(search, "MAX_RESULTS", cut):
        old = build(before)
        for query in queries:
            old.ranking(query, None)
        new = build(after)
        new.carry_rankings(old)
        for query in queries:
            carried = new._rankings.get((query, b"*"))
            if carried is not None:
                assert carried == rank_prepared(query, new), query


def test_a_reload_carries_the_rankings_of_unchanged_entries():
    old = SearchIndex.build(CHOICES)
    for query in ("qwen", "siglip", "florence"):
        old.ranking(query, None)
    old.ranking("qwen", {1, 5})  # filtered: its rows may change, never carried
    renamed = [(pk, text.replace("florence", "florentia")) for pk, text in CHOICES]
    new = SearchIndex.build(renamed)
    afresh = {q: rank_prepared(q, new) for q in ("qwen", "siglip", "florence")}
    assert afresh["florence"][0] == (2, pytest.approx(afresh["florence"][0][1]))
    assert new.carry_rankings(old) == 3
    with mock.patch.object(search, "rank_prepared") as ranked:
        for query, expected in afresh.items():
            assert new.ranking(query, None) == expected
    ranked.assert_not_called()
