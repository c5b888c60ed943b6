"""Hypothesis fuzzing through the database: random layer files -> sync, and random
values -> the edit form's preview view. No crash, no 500, every rejection has a
message next to a field. (The pure parser is fuzzed in tests/registry/test_layers_fuzz.py.)"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from django.test import Client, override_settings
from django.urls import reverse
from django.utils.html import escape
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra.django import TestCase

from registry import layers
from registry.audit import Actor
from registry.forms.edit import ModelEntryEditForm
from registry.models import ModelEntry
from registry.services.sync import sync_registry
from tests.base import PersonaMixin
from tests.hardening.common import edit_post_data, sync_sample

# 200 examples per test keep the suite inside its CI budget on 2 cores; set
# IMAGEWORKS_FUZZ_EXAMPLES=2000 for a deeper run.
FUZZ = settings(
    max_examples=int(os.environ.get("IMAGEWORKS_FUZZ_EXAMPLES") or 200),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=False,
)

text = st.text(max_size=40)
scalars = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | text
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4)
    ),
    max_leaves=12,
)
names = (
    st.sampled_from(["a", "b", "Qwen/x (AWQ)", " spaced ", "", "None", "ä/ö:1"]) | text
)
raw_entries = st.fixed_dictionaries(
    {"name": names | scalars},
    optional={
        "display_name": json_values,
        "backend": st.sampled_from(["vllm", "ollama", "", "VLLM", None]) | json_values,
        "backend_config": st.fixed_dictionaries(
            {},
            optional={
                "port": json_values,
                "model_path": json_values,
                "extra_args": json_values,
            },
        )
        | json_values,
        "roles": json_values,
        "model_aliases": json_values,
        "capabilities": json_values,
        "metadata": json_values,
        "served_model_id": json_values,
        "version_lock": json_values,
        "artifacts": json_values,
        "deprecated": json_values,
    },
)
layer_items = st.lists(raw_entries | json_values, max_size=6)


@pytest.mark.slow
class SyncFuzzTests(TestCase):
    """Random (mostly messy) layer files are mirrored or reported, never a crash."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = Path(tempfile.mkdtemp(prefix="iw-fuzz-"))
        cls.override = override_settings(
            IMAGEWORKS_REGISTRY_DIR=cls.tmp, IMAGEWORKS_STAGING_DIR=cls.tmp / "_st"
        )
        cls.override.enable()
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        cls.override.disable()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    @FUZZ
    @given(curated=layer_items, discovered=layer_items, raw=st.booleans())
    # Found on PostgreSQL: the refusal's JSON path held the NUL key, and the database
    # refused the error message itself (text cannot hold NUL).
    @example(
        curated=[],
        discovered=[{"name": None, "display_name": {"\x00": 2**63}}],
        raw=False,
    )
    def test_sync_survives_any_layer_content(self, curated, discovered, raw):
        for name, items in (
            (layers.CURATED_FILE, curated),
            (layers.DISCOVERED_FILE, discovered),
        ):
            data = json.dumps(items) if not raw else json.dumps(items)[:-1]
            (self.tmp / name).write_text(data if items or not raw else "{not json")
        result = sync_registry(Actor.system("fuzz"), force=True)
        # a file that cannot be read is an error with a message, not an exception
        if not result.ok:
            self.assertTrue(result.summary())
        for problem in result.problems:
            self.assertTrue(problem["reason"], problem)
        for row in ModelEntry.objects.all():
            self.assertTrue(row.name.strip())
            self.assertIsInstance(row.merged, dict)


form_text = st.text(max_size=60) | st.sampled_from(
    [
        "",
        " ",
        "None",
        "0",
        "-1",
        "65536",
        "1e309",
        "NaN",
        "{}",
        "[]",
        '{"a": 1}',
        "null",
        '{"a":',
        "\x00",
        "<b>x</b>",
        "vllm",
        "ollama",
        "9" * 40,
    ]
)
FIELDS = [
    "display_name",
    "backend",
    "served_model_id",
    "roles_extra",
    "aliases",
    "port",
    "host",
    "base_url",
    "model_path",
    "extra_args",
    "gen_stop_sequences",
    "metadata",
    "fingerprint",
]


@pytest.mark.slow
class EditFormFuzzTests(PersonaMixin, TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = Path(tempfile.mkdtemp(prefix="iw-fuzz-edit-"))
        cls.override = override_settings(
            IMAGEWORKS_REGISTRY_DIR=cls.tmp / "configs",
            IMAGEWORKS_STAGING_DIR=cls.tmp / "_st",
        )
        cls.override.enable()
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        cls.override.disable()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    @classmethod
    def setUpTestData(cls):
        cls.make_personas()
        sync_sample(cls.tmp / "configs", cls.tmp / "models")
        cls.entry = ModelEntry.objects.get(name="qwen2.5-vl-7b-instruct_(AWQ)")
        cls.base = edit_post_data(cls.entry)
        cls.gen_fields = [
            n
            for n in ModelEntryEditForm(entry=cls.entry).fields
            if n.startswith("gen_")
        ]

    @FUZZ
    @given(data=st.data())
    def test_the_preview_never_fails_and_every_rejection_has_a_field_message(
        self, data
    ):
        post = dict(self.base)
        chosen = data.draw(
            st.lists(st.sampled_from(FIELDS + self.gen_fields), max_size=5, unique=True)
        )
        for name in chosen:
            post[name] = data.draw(form_text, label=name)
        if data.draw(st.booleans()):
            post["roles"] = data.draw(st.lists(form_text, max_size=3))
        client = Client()
        client.force_login(self.editor)
        url = reverse("registry:entry_edit_preview", args=[self.entry.pk])
        response = client.post(url, post, headers={"HX-Request": "true"})
        self.assertLess(response.status_code, 500, post)
        form = ModelEntryEditForm(post, entry=self.entry)
        if form.is_valid():
            return
        body = response.content.decode()
        for field, messages in form.errors.items():
            self.assertIn(field, form.fields, f"error not next to a field: {messages}")
            for message in messages:
                self.assertTrue(message.strip())
                if field not in ("fingerprint", "preview_digest"):
                    self.assertIn(
                        escape(message), body, f"{field}: {message} not shown"
                    )
