from __future__ import annotations

from unittest import mock

from django.db import connection
from django.test import TestCase
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from registry.choices import Action, Layer
from registry.models import ActionLog, EntryChange, ModelEntry
from tests.base import BaseTestCase, PermissionMatrixMixin
from tests.registry.page_fixtures import HASH_A, bulk_entries, seed_scenario
from tests.utils import create_model_entry

LIST = reverse("registry:modelentry_list")
HX = {"HTTP_HX_REQUEST": "true"}


class ModelsPageTests(PermissionMatrixMixin, TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.make_personas()
        cls.rows = seed_scenario()
        cls.qwen = cls.rows["qwen"]

    def test_it_requires_login_and_view_permission(self):
        urls = [
            LIST,
            reverse("registry:modelentry_detail", args=[self.qwen.pk]),
            reverse("registry:modelentry_json", args=[self.qwen.pk]),
            reverse("registry:registry_diff"),
            reverse("registry:backend_card", args=["vllm"]),
            reverse("registry:recent_actions"),
            LIST + "?_export=csv",
        ]
        for url in urls:
            with self.subTest(url=url):
                self.assert_get_matrix(
                    url,
                    allowed=[self.viewer, self.operator, self.editor, self.admin],
                    forbidden=[self.outsider],
                )

    def test_it_renders_the_columns_and_hides_testing_and_deprecated(self):
        response = self.client_for(self.viewer).get(LIST)
        html = response.content.decode()
        for header in (
            "Logical Name",
            "Display Name",
            "Backend",
            "Roles",
            "Capabilities",
            "Lock",
            "Hash",
            "Installed?",
            "Active?",
        ):
            self.assertIn(header, html)
        self.assertIn("qwen2.5-vl-7b-instruct_(AWQ)", html)
        self.assertNotIn("testmodel-alpha", html)
        self.assertNotIn("llava-1.5-7b_(old)", html)
        self.assertIn("2 testing models hidden", html)
        self.assertIn(HASH_A[:12] + "</button>", html)
        self.assertIn(f'title="{HASH_A} (click to copy)"', html)
        self.assertIn('title="vision"', html)
        self.assertIn('<span class="sr-only">Locked</span>', html)

    def test_it_returns_only_the_table_partial_for_htmx(self):
        response = self.client_for(self.viewer).get(LIST + "?backend=ollama", **HX)
        html = response.content.decode()
        self.assertNotIn("<html", html)
        self.assertIn('id="models-table"', html)
        self.assertIn("gemma3_27.0b_(Q3_K_M)", html)
        self.assertNotIn("florence-2-large_(FP16)", html)
        self.assertIn("HX-Request", response["Vary"])

    def test_it_keeps_real_hrefs_on_sort_and_page_links(self):
        bulk_entries(200)
        html = self.client_for(self.viewer).get(LIST + "?backend=vllm").content.decode()
        self.assertIn('href="/models/?backend=vllm&amp;sort=name"', html)
        self.assertIn('href="/models/?backend=vllm&amp;page=2"', html)
        self.assertIn('hx-get="/models/?backend=vllm&amp;page=2"', html)

    def test_it_offers_only_the_listed_page_sizes(self):
        bulk_entries(120)
        client = self.client_for(self.viewer)
        table = client.get(LIST + "?per_page=100").context["table"]
        self.assertEqual(table.paginator.per_page, 100)
        table = client.get(LIST + "?per_page=100000").context["table"]
        self.assertEqual(table.paginator.per_page, 50)

    def test_it_escapes_hostile_display_names(self):
        create_model_entry("evil", display_name="<script>alert(1)</script>")
        html = self.client_for(self.viewer).get(LIST + "?q=evil").content.decode()
        self.assertNotIn("<script>alert(1)</script>", html)
        self.assertIn("&lt;script&gt;alert(1)&lt;/script&gt;", html)
        evil = ModelEntry.objects.get(name="evil")
        drawer = self.client_for(self.viewer).get(
            reverse("registry:modelentry_detail", args=[evil.pk]), **HX
        )
        self.assertNotIn("<script>alert(1)</script>", drawer.content.decode())

    def test_it_explains_an_empty_registry(self):
        ModelEntry.objects.all().delete()
        html = self.client_for(self.operator).get(LIST).content.decode()
        self.assertIn("No registry entries yet", html)
        self.assertIn("Reload registry", html)

    def test_it_explains_no_matches(self):
        html = self.client_for(self.viewer).get(LIST + "?q=zzzzqqqq").content.decode()
        self.assertIn("No models match these filters", html)
        self.assertIn("Clear all filters", html)


class DrawerTests(PermissionMatrixMixin, TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.make_personas()
        cls.rows = seed_scenario()
        cls.qwen = cls.rows["qwen"]
        cls.qwen.field_sources = {
            "display_name": "curated",
            "download_path": "discovered",
        }
        cls.qwen.curated_raw = {
            "name": cls.qwen.name,
            "display_name": cls.qwen.display_name,
            "download_path": "/models/qwen",
            "backend_config": {"port": 24001},
        }
        cls.qwen.save()
        action = ActionLog.objects.create(
            user_name="alice", action=Action.VERIFY, entry=cls.qwen, outcome="succeeded"
        )
        EntryChange.objects.create(
            entry=cls.qwen,
            entry_name=cls.qwen.name,
            layer=Layer.CURATED,
            kind="changed",
            changes=[
                {
                    "path": "display_name",
                    "op": "changed",
                    "before": "Old",
                    "after": "New",
                }
            ],
            action=action,
            user_name="alice",
        )
        cls.url = reverse("registry:modelentry_detail", args=[cls.qwen.pk])

    def test_it_renders_the_full_page_with_the_drawer_open(self):
        response = self.client_for(self.viewer).get(self.url)
        html = response.content.decode()
        self.assertIn("<html", html)
        self.assertIn('class="models-layout has-drawer"', html)
        self.assertIn(f'data-entry-pk="{self.qwen.pk}"', html)
        self.assertIn('aria-selected="true"', html)

    def test_it_returns_only_the_drawer_for_htmx(self):
        html = self.client_for(self.viewer).get(self.url, **HX).content.decode()
        self.assertNotIn("<html", html)
        self.assertNotIn('id="models-table"', html)
        self.assertIn("Provenance", html)
        self.assertIn("download_path", html)
        self.assertIn('class="badge prov-discovered"', html)
        self.assertIn("http://127.0.0.1:24001/v1", html)  # endpoint: the site vLLM port
        self.assertIn("Copy registry entry", html)
        self.assertIn(f'id="entry-json-{self.qwen.pk}"', html)
        self.assertIn(
            '<span class="diff-line diff-add">+ display_name: &quot;New&quot;', html
        )
        self.assertIn(
            '<span class="diff-line diff-del">- display_name: &quot;Old&quot;', html
        )
        self.assertIn("Verify", html)

    def test_it_explains_a_missing_download_path(self):
        gemma = self.rows["gemma"]
        url = reverse("registry:modelentry_detail", args=[gemma.pk])
        html = self.client_for(self.viewer).get(url, **HX).content.decode()
        self.assertIn("No download path", html)

    def test_it_serves_the_entry_json(self):
        url = reverse("registry:modelentry_json", args=[self.qwen.pk])
        data = self.client_for(self.viewer).get(url).json()
        self.assertEqual(data["display_name"], self.qwen.display_name)

    def test_it_refuses_unknown_entries(self):
        self.assertEqual(
            self.client_for(self.viewer).get("/models/999999/").status_code, 404
        )


class PanelTests(PermissionMatrixMixin, TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.make_personas()
        cls.rows = seed_scenario()

    def test_it_counts_per_backend_under_the_testing_filter(self):
        client = self.client_for(self.viewer)
        counts = client.get(reverse("registry:backend_card", args=["vllm"])).context[
            "counts"
        ]
        # vllm, not testing, not deprecated: qwen, florence, siglip, qwen3
        self.assertEqual(counts["total"], 4)
        self.assertEqual(counts["installed"], 3)
        self.assertEqual(counts["unknown"], 1)
        self.assertEqual(counts["locked"], 1)
        counts = client.get(
            reverse("registry:backend_card", args=["vllm"]) + "?testing=1"
        ).context["counts"]
        self.assertEqual(counts["total"], 6)
        ollama = client.get(reverse("registry:backend_card", args=["ollama"])).context[
            "counts"
        ]
        self.assertEqual((ollama["installed"], ollama["not_installed"]), (0, 1))

    def test_it_loads_each_card_on_its_own(self):
        html = self.client_for(self.viewer).get(LIST).content.decode()
        for backend in ("vllm", "ollama", "lmdeploy"):
            self.assertIn(
                f'hx-get="{reverse("registry:backend_card", args=[backend])}"', html
            )
        self.assertIn('hx-trigger="load"', html)

    def test_it_says_when_nothing_changed_since_the_last_reload(self):
        url = reverse("registry:registry_diff")
        html = self.client_for(self.viewer).get(url).content.decode()
        self.assertIn("No changes recorded for this layer yet", html)
        self.assertIn("press <kbd>r</kbd>", html)
        EntryChange.objects.create(
            entry_name="x", layer=Layer.DISCOVERED, kind="added", changes=[]
        )
        ActionLog.objects.create(
            user_name="alice", action=Action.SYNC, outcome="succeeded"
        )
        ActionLog.objects.filter(action=Action.SYNC).update(
            time=EntryChange.objects.get().time
            + __import__("datetime").timedelta(minutes=5)
        )
        html = self.client_for(self.viewer).get(url).content.decode()
        self.assertIn("No changes since the last reload", html)

    def test_it_lists_recent_actions_newest_first(self):
        ActionLog.objects.create(
            user_name="alice", action=Action.LOCK, outcome="succeeded"
        )
        ActionLog.objects.create(
            user_name="bob", action=Action.VERIFY, outcome="failed"
        )
        html = (
            self.client_for(self.viewer)
            .get(reverse("registry:recent_actions"))
            .content.decode()
        )
        self.assertLess(html.index("bob"), html.index("alice"))


class ReloadTests(PermissionMatrixMixin, TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.make_personas()

    def test_it_is_a_permission_checked_post(self):
        url = reverse("registry:registry_reload")
        with mock.patch("registry.services.sync.sync_registry") as sync:
            sync.return_value = mock.Mock(
                error="", problems=[], summary=lambda: "Registry reloaded: 1 added."
            )
            self.assert_post_matrix(
                url,
                allowed=[self.operator, self.editor, self.admin],
                forbidden=[self.viewer, self.outsider],
                ok=(302,),
            )

    def test_it_reports_what_changed_and_returns_to_the_filtered_view(self):
        with mock.patch("registry.services.sync.sync_registry") as sync:
            sync.return_value = mock.Mock(
                error="",
                problems=[],
                layer_files=None,
                summary=lambda: "Registry reloaded: 2 added.",
            )
            response = self.client_for(self.operator).post(
                reverse("registry:registry_reload"),
                {"next": "/models/?backend=vllm"},
                follow=True,
            )
        self.assertEqual(response.redirect_chain[-1][0], "/models/?backend=vllm")
        self.assertContains(response, "Registry reloaded: 2 added.")
        # The Reload button forces a sync; the page it returns to runs the cheap
        # implicit one (no audit row unless something changed).
        self.assertEqual(
            sync.call_args_list[0].kwargs, {"force": True, "explicit": True}
        )
        self.assertEqual(
            sync.call_args_list[-1].kwargs, {"force": False, "explicit": False}
        )

    def test_it_ignores_an_offsite_next(self):
        with mock.patch("registry.services.sync.sync_registry") as sync:
            sync.return_value = mock.Mock(error="", problems=[], summary=lambda: "ok")
            response = self.client_for(self.operator).post(
                reverse("registry:registry_reload"), {"next": "https://evil.example/"}
            )
        self.assertEqual(response["Location"], LIST)


class QueryCountTests(PermissionMatrixMixin, TestCase):
    """The page, its partials and the export cost the same queries at 5 or 200 rows."""

    @classmethod
    def setUpTestData(cls):
        cls.make_personas()

    def count_queries(self, url, **extra) -> int:
        client = self.client_for(self.viewer)
        client.get(url, **extra)  # warm the session and caches
        with CaptureQueriesContext(connection) as ctx:
            response = client.get(url, **extra)
        self.assertEqual(response.status_code, 200)
        return len(ctx.captured_queries)

    def assert_constant(self, url_for, **extra):
        bulk_entries(5, prefix="small")
        small = self.count_queries(url_for(), **extra)
        bulk_entries(195, prefix="large")
        large = self.count_queries(url_for(), **extra)
        self.assertEqual(small, large, f"{url_for()}: {small} vs {large} queries")
        self.assertLessEqual(large, 16)

    def test_it_keeps_the_full_page_constant(self):
        self.assert_constant(lambda: LIST + "?per_page=200")

    def test_it_keeps_the_filtered_partial_constant(self):
        self.assert_constant(
            lambda: LIST + "?backend=vllm&role=caption&lock=unlocked&per_page=200", **HX
        )

    def test_it_keeps_the_search_partial_constant(self):
        self.assert_constant(lambda: LIST + "?q=bulk+model&per_page=200", **HX)

    def test_it_keeps_the_drawer_constant(self):
        self.assert_constant(
            lambda: reverse(
                "registry:modelentry_detail", args=[ModelEntry.objects.last().pk]
            ),
            **HX,
        )

    def choose_columns(self):
        from registry.models import TableConfig

        TableConfig.objects.create(
            user=self.viewer,
            table="models",
            columns=["installed", "roles", "locked", "active"],
        )

    def test_it_keeps_the_page_constant_with_a_column_choice(self):
        self.choose_columns()
        self.assert_constant(lambda: LIST + "?per_page=200")

    def test_it_keeps_the_partial_constant_with_a_column_choice(self):
        self.choose_columns()
        self.assert_constant(lambda: LIST + "?backend=vllm&per_page=200", **HX)

    def test_it_keeps_the_export_constant(self):
        self.assert_constant(lambda: LIST + "?_export=csv")

    def test_it_keeps_the_not_modified_answer_constant(self):
        client = self.client_for(self.viewer)
        url = LIST + "?backend=vllm&per_page=200"

        def count() -> int:
            etag = client.get(url, **HX)["ETag"]
            with CaptureQueriesContext(connection) as ctx:
                response = client.get(url, HTTP_IF_NONE_MATCH=etag, **HX)
            self.assertEqual(response.status_code, 304)
            return len(ctx.captured_queries)

        bulk_entries(5, prefix="small")
        small = count()
        bulk_entries(195, prefix="large")
        self.assertEqual(count(), small)


class ViolatedLockInTheTableTests(BaseTestCase):
    """A locked entry whose last verify was a lock violation: a red padlock that says why."""

    def setUp(self):
        from datetime import timedelta

        from django.utils import timezone

        from registry.audit import Actor, record
        from registry.choices import Action, Outcome
        from registry.version import bump

        now = timezone.now()
        self.entry = create_model_entry(
            "locked-model", locked=True, last_verified_at=now - timedelta(hours=1)
        )
        self.other = create_model_entry("fine-model", locked=True, last_verified_at=now)
        row = record(
            Actor.cli(),
            Action.VERIFY,
            entry=self.entry,
            outcome=Outcome.FAILED,
            message="Lock violation: expected " + "a" * 64 + " got " + "b" * 64,
            details={"violation": True},
        )
        assert row.time > self.entry.last_verified_at
        bump(listing=False)

    def test_the_violated_lock_is_red_with_a_tooltip(self):
        html = self.client_for(self.viewer).get(reverse("registry:modelentry_list"))
        html = html.content.decode()
        self.assertEqual(html.count('data-testid="lock-violated"'), 1)
        row = html[html.index(f'data-pk="{self.entry.pk}"') :][:3000]
        self.assertIn('class="lock is-violated" title="Lock violated', row)
        url = reverse("registry:modelentry_detail", args=[self.entry.pk])
        drawer = self.client_for(self.viewer).get(url, **HX).content.decode()
        self.assertIn('data-testid="drawer-lock-violated"', drawer)
        url = reverse("registry:modelentry_detail", args=[self.other.pk])
        drawer = self.client_for(self.viewer).get(url, **HX).content.decode()
        self.assertNotIn('data-testid="drawer-lock-violated"', drawer)

    def test_a_later_good_verify_clears_it(self):
        from django.utils import timezone

        ModelEntry.objects.filter(pk=self.entry.pk).update(
            last_verified_at=timezone.now()
        )
        from registry.version import bump

        bump(listing=False)
        html = self.client_for(self.viewer).get(reverse("registry:modelentry_list"))
        self.assertNotIn('data-testid="lock-violated"', html.content.decode())


class DiskUseWiringTests(BaseTestCase):
    """Issue 19 on the Models page: size on disk as a sortable column, size and last
    activated in the drawer, the total per backend on the cards (inventory's last scan)."""

    def setUp(self):
        from inventory.choices import UsageState
        from inventory.models import EntryUsage

        self.big = create_model_entry("big-model")
        self.small = create_model_entry("small-model")
        self.unscanned = create_model_entry("unscanned-model")
        for entry, size in ((self.big, 7 * 2**30), (self.small, 300 * 2**20)):
            EntryUsage.objects.create(
                entry=entry,
                state=UsageState.OK,
                size_bytes=size,
                owned_bytes=size,
                disk_bytes=size,
            )

    def test_the_table_shows_and_sorts_by_size(self):
        client = self.client_for(self.viewer)
        html = client.get(LIST + "?sort=-disk_size").content.decode()
        self.assertIn("7.0\xa0GB", html)
        self.assertIn("300.0\xa0MB", html)
        order = [html.index(f'data-name="{n}"') for n in ("big-model", "small-model")]
        self.assertLess(order[0], order[1])
        html = client.get(LIST + "?sort=disk_size").content.decode()
        self.assertLess(
            html.index('data-name="small-model"'), html.index('data-name="big-model"')
        )

    def test_the_drawer_says_size_and_last_activated(self):
        url = reverse("registry:modelentry_detail", args=[self.big.pk])
        html = self.client_for(self.viewer).get(url, **HX).content.decode()
        self.assertIn('data-testid="drawer-disk">7.0\xa0GB', html)
        self.assertIn("Last activated", html)
        url = reverse("registry:modelentry_detail", args=[self.unscanned.pk])
        html = self.client_for(self.viewer).get(url, **HX).content.decode()
        self.assertIn("not scanned", html)

    def test_the_backend_card_has_the_total(self):
        url = reverse("registry:backend_card", args=["vllm"])
        html = self.client_for(self.viewer).get(url, **HX).content.decode()
        self.assertIn('data-testid="card-disk-vllm"', html)
        self.assertIn("7.3\xa0GB", html)  # 7 GiB + 300 MiB, each file counted once
