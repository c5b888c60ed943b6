from __future__ import annotations

import time

from django.test import TestCase

from registry.models import ModelEntry
from registry.search import MAX_RESULTS, rank, search_queryset
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


def test_it_is_fast_at_ten_thousand_entries():
    choices = [
        (i, f"vendor{i % 97}-model-{i}_(q4_k_m)\nvendor {i % 97} model {i}\nalias-{i}")
        for i in range(10_000)
    ]
    start = time.perf_counter()
    result = rank("vendr12 modl", choices)
    elapsed = time.perf_counter() - start
    assert result
    assert len(result) <= MAX_RESULTS
    assert elapsed < 1.5, elapsed


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
