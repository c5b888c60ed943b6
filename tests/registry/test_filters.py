from __future__ import annotations

from django.test import TestCase
from django.urls import reverse

from registry.filtersets import ModelEntryFilterSet
from registry.models import ModelEntry
from tests.base import PersonaMixin
from tests.registry.page_fixtures import VISIBLE_BY_DEFAULT, seed_scenario

LIST = reverse("registry:modelentry_list")


def names(data) -> set[str]:
    fs = ModelEntryFilterSet(data, queryset=ModelEntry.objects.all())
    assert fs.is_valid(), fs.errors
    return set(fs.qs.values_list("name", flat=True))


class ModelEntryFilterSetTests(TestCase):
    @classmethod
    def setUpTestData(cls):
        seed_scenario()

    def test_it_hides_testing_and_deprecated_by_default(self):
        self.assertEqual(len(names(None)), VISIBLE_BY_DEFAULT)
        self.assertEqual(len(names({})), VISIBLE_BY_DEFAULT)
        self.assertNotIn("testmodel-alpha", names({}))
        self.assertNotIn("llava-1.5-7b_(old)", names({}))

    def test_it_counts_the_hidden_testing_entries(self):
        fs = ModelEntryFilterSet({}, queryset=ModelEntry.objects.all())
        self.assertEqual(fs.hidden_testing, 2)
        self.assertEqual(fs.counts, (VISIBLE_BY_DEFAULT, 2))
        self.assertEqual(fs.counts[0], fs.qs.count())

    def test_it_counts_nothing_hidden_when_testing_entries_are_shown(self):
        fs = ModelEntryFilterSet({"testing": "1"}, queryset=ModelEntry.objects.all())
        self.assertIsNone(fs.hidden_testing)
        self.assertIsNone(fs.counts)

    def test_it_includes_testing_entries_when_asked(self):
        result = names({"testing": "1"})
        self.assertEqual(len(result), VISIBLE_BY_DEFAULT + 2)
        self.assertIn("lab-experiment_(FP8)", result)

    def test_it_shows_deprecated_when_asked(self):
        self.assertIn("llava-1.5-7b_(old)", names({"deprecated": "1"}))

    def test_it_filters_by_one_role(self):
        self.assertEqual(
            names({"role": ["caption"]}),
            {"qwen2.5-vl-7b-instruct_(AWQ)", "florence-2-large_(FP16)"},
        )

    def test_it_filters_by_any_of_several_roles(self):
        self.assertEqual(
            names({"role": ["chat", "embedding"]}),
            {"gemma3_27.0b_(Q3_K_M)", "siglip-large-patch16-384_(FP32)"},
        )

    def test_it_offers_only_roles_and_backends_in_use(self):
        fs = ModelEntryFilterSet({}, queryset=ModelEntry.objects.all())
        roles = [value for value, _ in fs.form.fields["role"].choices]
        self.assertIn("object_detection", roles)
        self.assertNotIn("ocr", roles)
        backends = [value for value, _ in fs.form.fields["backend"].choices]
        self.assertEqual(backends, ["", "lmdeploy", "ollama", "vllm"])

    def test_it_filters_by_backend(self):
        self.assertEqual(names({"backend": "ollama"}), {"gemma3_27.0b_(Q3_K_M)"})

    def test_it_rejects_an_unknown_backend(self):
        fs = ModelEntryFilterSet({"backend": "nope"}, queryset=ModelEntry.objects.all())
        self.assertFalse(fs.is_valid())

    def test_it_filters_locked_entries(self):
        self.assertEqual(names({"lock": "locked"}), {"siglip-large-patch16-384_(FP32)"})

    def test_it_filters_unlocked_entries(self):
        self.assertEqual(len(names({"lock": "unlocked"})), VISIBLE_BY_DEFAULT - 1)

    def test_it_filters_by_installed_state(self):
        self.assertEqual(names({"installed": "no"}), {"gemma3_27.0b_(Q3_K_M)"})
        self.assertEqual(
            names({"installed": "unknown"}),
            {"qwen3-vl-8b-instruct_(FP8)", "gpt-oss-20b_(MXFP4)"},
        )
        self.assertEqual(len(names({"installed": "yes"})), 3)

    def test_it_combines_filters_and_search(self):
        self.assertEqual(
            names({"backend": "vllm", "q": "qwen", "lock": "unlocked"}),
            {"qwen2.5-vl-7b-instruct_(AWQ)", "qwen3-vl-8b-instruct_(FP8)"},
        )


class FilterViewTests(PersonaMixin, TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.make_personas()
        seed_scenario()

    def rows(self, query: str) -> list[str]:
        response = self.client_for(self.viewer).get(LIST + query)
        return [row.record.name for row in response.context["table"].page.object_list]

    def test_it_applies_each_filter_from_the_url(self):
        self.assertEqual(self.rows("?backend=ollama"), ["gemma3_27.0b_(Q3_K_M)"])
        self.assertEqual(self.rows("?lock=locked"), ["siglip-large-patch16-384_(FP32)"])
        self.assertEqual(len(self.rows("?role=caption&role=chat")), 3)
        self.assertEqual(len(self.rows("?testing=1")), VISIBLE_BY_DEFAULT + 2)
        self.assertIn("llava-1.5-7b_(old)", self.rows("?deprecated=1"))

    def test_it_sorts_by_a_column(self):
        rows = self.rows("?sort=-name")
        self.assertEqual(rows, sorted(rows, reverse=True))

    def test_it_shows_the_testing_badge_when_included(self):
        html = self.client_for(self.viewer).get(LIST + "?testing=1").content.decode()
        self.assertIn('<span class="tag tag-testing">testing</span>', html)
        self.assertNotIn("testing models hidden", html)
