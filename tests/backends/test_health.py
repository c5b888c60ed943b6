"""The health service against real local fake servers: endpoints, transitions,
concurrency, Ollama reconciliation, the autostart map, schedules and the CLI."""

from __future__ import annotations

import io
import json
import os
import socket
import threading
import time
from contextlib import contextmanager, redirect_stdout
from types import SimpleNamespace
from unittest import mock

from django.test import TestCase, override_settings

from backends import cli as backends_cli
from backends import clients, health
from backends.choices import HealthStatus
from backends.health import tasks as health_tasks
from backends.models import BackendEndpoint
from registry.models import ModelEntry
from tests.fakes.fake_ollama import FakeOllama
from tests.fakes.fake_openai import FakeOpenAI
from tests.fakes.fake_triton import FakeTriton
from tests.utils import create_model_entry

TIMEOUT = 0.5


def dead_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def ollama_entry(name: str, tag: str, url: str):
    host, port = url.removeprefix("http://").split(":")
    return create_model_entry(
        name,
        backend="ollama",
        served_model_id=tag,
        backend_config={
            "port": int(port),
            "model_path": f"ollama:/{tag}",
            "host": host,
        },
    )


class FakeTestCase(TestCase):
    """Starts fakes and stops them after the test."""

    def start(self, fake):
        fake.start()
        self.addCleanup(fake.stop)
        return fake


@override_settings(IMAGEWORKS_HEALTH_TIMEOUT=TIMEOUT, IMAGEWORKS_OLLAMA_URL="")
class EndpointListTests(TestCase):
    def test_endpoints_from_settings_and_entries_are_deduplicated(self):
        create_model_entry(
            "gemma",
            backend="ollama",
            served_model_id="gemma3:27b",
            backend_config={"port": 11434, "host": "imageworks-ollama"},
        )
        create_model_entry(
            "llama",
            backend="ollama",
            served_model_id="None",
            backend_config={
                "model_path": "ollama:/Llama3.1-local",
                "host": "imageworks-ollama",
            },
        )
        create_model_entry(
            "lm", backend="lmdeploy", served_model_id="internvl", backend_config={}
        )
        create_model_entry(
            "tri",
            backend="triton",
            served_model_id="resnet",
            backend_config={"base_url": "http://gpu1:8000/v1/"},
        )
        create_model_entry(
            "other", backend="sglang", backend_config={"host": "https://x.local/v1"}
        )
        create_model_entry("big", backend="vllm", backend_config={"port": 24002})
        create_model_entry(
            "old", backend="lmdeploy", deprecated=True, backend_config={"port": 1}
        )
        with override_settings(
            IMAGEWORKS_OLLAMA_URL="http://imageworks-ollama:11434/",
            IMAGEWORKS_TRITON_URL="http://gpu1:8000",
        ):
            endpoints = {ep.key: ep for ep in health.build_endpoints()}
        self.assertEqual(
            sorted(endpoints),
            sorted(
                [
                    "vllm:active",
                    "ollama:http://imageworks-ollama:11434",
                    "lmdeploy:http://127.0.0.1:24001",
                    "triton:http://gpu1:8000",
                    "openai:https://x.local",
                ]
            ),
        )
        ollama = endpoints["ollama:http://imageworks-ollama:11434"]
        self.assertEqual(ollama.entries, ["gemma", "llama"])
        self.assertEqual(ollama.expected, ["gemma3:27b", "llama3.1-local:latest"])
        self.assertEqual(
            ollama.sources, ["IMAGEWORKS_OLLAMA_URL", "entry:gemma", "entry:llama"]
        )
        self.assertEqual(endpoints["triton:http://gpu1:8000"].expected, ["resnet"])
        self.assertEqual(
            endpoints["vllm:active"].fixed_status, HealthStatus.NOT_CONFIGURED
        )

    def test_resolve_entry_url_uses_the_originals_default_ports(self):
        r = health.resolve_entry_url
        self.assertEqual(r("vllm", {}), "http://127.0.0.1:24001")
        self.assertEqual(r("ollama", {"port": 0}), "http://127.0.0.1:11434")
        self.assertEqual(r("lmdeploy", {"port": "bad"}), "http://127.0.0.1:24001")
        self.assertEqual(r("triton", None), "http://127.0.0.1:9000")
        self.assertEqual(r("foo", {"host": "box", "port": "8010"}), "http://box:8010")
        self.assertEqual(r("foo", {}), "http://127.0.0.1:8000")
        self.assertEqual(
            r("foo", {"base_url": "https://e.local/v1", "port": 0}), "https://e.local"
        )

    def test_nothing_configured_reports_not_configured(self):
        report = health.check_all()
        self.assertEqual([row.key for row in report.endpoints], ["vllm:active"])
        self.assertEqual(report.endpoints[0].status, HealthStatus.NOT_CONFIGURED)
        summary = health.kind_summary("ollama")
        self.assertEqual(summary["status"], HealthStatus.NOT_CONFIGURED)
        self.assertIn("Not configured", summary["note"])
        self.assertEqual(health.kind_summary("vllm")["note"], "No model is active.")


@override_settings(IMAGEWORKS_HEALTH_TIMEOUT=TIMEOUT, IMAGEWORKS_OLLAMA_URL="")
class TransitionTests(FakeTestCase):
    def test_transitions_are_recorded_once_not_per_poll(self):
        fake = self.start(FakeOpenAI(models=["internvl"]))
        create_model_entry(
            "lm",
            backend="lmdeploy",
            served_model_id="internvl",
            backend_config={"base_url": fake.url + "/v1"},
        )
        key = f"lmdeploy:{fake.url}"
        for _ in range(3):
            health.check_all(["lmdeploy"])
        row = BackendEndpoint.objects.get(key=key)
        self.assertEqual(row.status, HealthStatus.ONLINE)
        first_since = row.since
        self.assertEqual(row.transitions.count(), 1)  # unknown -> online
        fake.stop()
        for _ in range(3):
            health.check_all(["lmdeploy"])
        row.refresh_from_db()
        self.assertEqual(row.status, HealthStatus.OFFLINE)
        self.assertGreater(row.since, first_since)
        self.assertIn("refused", row.last_error)
        transitions = list(row.transitions.order_by("time", "pk"))
        self.assertEqual(
            [(t.old_status, t.new_status) for t in transitions],
            [("unknown", "online"), ("online", "offline")],
        )
        self.assertIn("refused", transitions[-1].reason)
        fake.start()
        health.check_all(["lmdeploy"])
        self.assertEqual(row.transitions.count(), 3)
        self.assertEqual(
            BackendEndpoint.objects.get(key=key).status, HealthStatus.ONLINE
        )

    def test_statuses_for_slow_500_malformed_and_wrong_model(self):
        fake = self.start(FakeOpenAI(models=["something-else"]))
        create_model_entry(
            "lm",
            backend="lmdeploy",
            served_model_id="internvl",
            backend_config={"host": "127.0.0.1", "port": fake.port},
        )
        key = f"lmdeploy:{fake.url}"

        def check():
            health.check_all(["lmdeploy"])
            return BackendEndpoint.objects.get(key=key)

        row = check()
        self.assertEqual(row.status, HealthStatus.DEGRADED)
        self.assertEqual(row.last_error, "serves something-else, expected internvl")
        fake.configure(mode="error")
        self.assertEqual(check().status, HealthStatus.ERROR)
        fake.configure(mode="malformed")
        row = check()
        self.assertEqual(row.status, HealthStatus.ERROR)
        self.assertIn("malformed JSON from", row.last_error)
        fake.configure(mode="slow", delay=5)
        start = time.monotonic()
        row = check()
        self.assertLess(time.monotonic() - start, TIMEOUT + 1.0)
        self.assertEqual(row.status, HealthStatus.OFFLINE)
        self.assertIn("timed out after 0.5s", row.last_error)
        # unknown->degraded->error (500, then malformed: no new row)->offline
        self.assertEqual(row.transitions.count(), 3)

    def test_removed_endpoint_becomes_not_configured(self):
        fake = self.start(FakeTriton(ready_models=["resnet"]))
        entry = create_model_entry(
            "tri",
            backend="triton",
            served_model_id="resnet",
            backend_config={"base_url": fake.url},
        )
        health.check_all(["triton"])
        self.assertEqual(health.kind_summary("triton")["status"], HealthStatus.ONLINE)
        entry.delete()
        health.check_all(["triton"])
        row = BackendEndpoint.objects.get(key=f"triton:{fake.url}")
        self.assertEqual(row.status, HealthStatus.NOT_CONFIGURED)
        self.assertEqual(health.kind_summary("triton")["endpoints"], [])


@override_settings(IMAGEWORKS_OLLAMA_URL="")
class ConcurrencyTests(FakeTestCase):
    def test_ten_backends_one_hanging_finish_within_timeout_plus_margin(self):
        fakes = [self.start(FakeOpenAI(models=[f"m{i}"])) for i in range(9)]
        hanging = self.start(FakeOpenAI(models=["m9"], mode="slow", delay=30))
        for i, fake in enumerate([*fakes, hanging]):
            create_model_entry(
                f"lm{i}",
                backend="lmdeploy",
                served_model_id=f"m{i}",
                backend_config={"base_url": fake.url},
            )
        timeout = 1.0
        start = time.monotonic()
        report = health.check_all(["lmdeploy"], timeout=timeout)
        elapsed = time.monotonic() - start
        statuses = {row.key: row.status for row in report.endpoints}
        self.assertEqual(len(statuses), 10)
        self.assertEqual(statuses.pop(f"lmdeploy:{hanging.url}"), HealthStatus.OFFLINE)
        self.assertEqual(set(statuses.values()), {HealthStatus.ONLINE})
        self.assertLess(elapsed, timeout + health.CHECK_MARGIN_S + 0.5, elapsed)
        # The healthy ones answered fast: one hung server delays nobody else.
        for fake in fakes:
            self.assertLess(report.results[f"lmdeploy:{fake.url}"].latency_ms, 500)

    def test_a_probe_that_never_returns_is_cut_off(self):
        create_model_entry(
            "lm", backend="lmdeploy", backend_config={"base_url": "http://h:1"}
        )
        release = threading.Event()
        self.addCleanup(release.set)

        def stuck(*args, **kwargs):  # e.g. a DNS lookup that ignores timeouts
            release.wait(10)

        with (
            mock.patch.object(clients, "probe_openai_compatible", side_effect=stuck),
            override_settings(IMAGEWORKS_HEALTH_HOSTS=["h"]),
        ):
            start = time.monotonic()
            report = health.check_all(["lmdeploy"], timeout=0.3)
            elapsed = time.monotonic() - start
        self.assertLess(elapsed, 0.3 + health.CHECK_MARGIN_S + 0.3)
        self.assertEqual(report.endpoints[0].status, HealthStatus.OFFLINE)
        self.assertIn("no answer", report.endpoints[0].last_error)


@override_settings(IMAGEWORKS_HEALTH_TIMEOUT=TIMEOUT)
class OllamaReconciliationTests(FakeTestCase):
    def setUp(self):
        self.fake = self.start(
            FakeOllama(
                installed=["qwen3:8b", "llama3.1-local:latest", "mystery:7b"],
                loaded=["qwen3:8b"],
            )
        )
        self.settings_override = override_settings(IMAGEWORKS_OLLAMA_URL=self.fake.url)
        self.settings_override.enable()
        self.addCleanup(self.settings_override.disable)
        self.qwen = ollama_entry("qwen3_8b_(Q4_K_M)", "qwen3:8b", self.fake.url)
        self.llama = ollama_entry("llama", "Llama3.1-local", self.fake.url)
        self.gone = ollama_entry("gemma", "gemma3:27b", self.fake.url)

    def test_installed_and_active_follow_the_server(self):
        health.check_all(["ollama"])
        installed = dict(ModelEntry.objects.values_list("name", "installed"))
        self.assertEqual(
            installed, {"qwen3_8b_(Q4_K_M)": True, "llama": True, "gemma": False}
        )
        flags = health.runtime_flags()
        self.assertTrue(flags["qwen3_8b_(Q4_K_M)"]["active"])
        self.assertFalse(flags["llama"]["active"])
        # Unloaded outside the site: Active clears at the next check.
        self.fake.configure(loaded=["llama3.1-local"])
        health.check_all(["ollama"])
        flags = health.runtime_flags()
        self.assertFalse(flags["qwen3_8b_(Q4_K_M)"]["active"])
        self.assertTrue(flags["llama"]["active"])
        row = BackendEndpoint.objects.get(key=f"ollama:{self.fake.url}")
        self.assertEqual(row.details["version"], "0.12.6")
        self.assertEqual([m["name"] for m in row.details["loaded"]], ["llama3.1-local"])
        self.assertEqual(row.transitions.count(), 1)

    def test_missing_and_unknown_tags_are_reported(self):
        health.check_all(["ollama"])
        self.assertEqual(
            [(m["entry"], m["tag"]) for m in health.missing_ollama_tags()],
            [("gemma", "gemma3:27b")],
        )
        unknown = health.unknown_ollama_tags()
        self.assertEqual([m["name"] for m in unknown], ["mystery:7b"])
        self.assertEqual(len(unknown[0]["digest"]), 64)
        self.assertEqual(unknown[0]["url"], self.fake.url)

    def test_unknown_ollama_tags_fresh_checks_first(self):
        self.assertEqual(health.unknown_ollama_tags(), [])
        self.assertEqual(len(health.unknown_ollama_tags(fresh=True)), 1)

    def test_installed_becomes_unknown_while_the_server_is_down(self):
        health.check_all(["ollama"])
        self.fake.stop()
        health.check_all(["ollama"])
        self.assertEqual(
            set(ModelEntry.objects.values_list("installed", flat=True)), {None}
        )
        self.assertEqual(health.kind_summary("ollama")["status"], HealthStatus.OFFLINE)

    def test_tags_failing_but_version_answering_is_degraded(self):
        with mock.patch.object(
            clients,
            "_ollama_ps",
            side_effect=clients.ProbeFailure("error", "HTTP 500 from ps"),
        ):
            health.check_all(["ollama"])
        row = BackendEndpoint.objects.get(key=f"ollama:{self.fake.url}")
        self.assertEqual(row.status, HealthStatus.DEGRADED)
        self.assertIn("HTTP 500 from ps", row.last_error)
        self.assertTrue(ModelEntry.objects.get(name="llama").installed)


class AutostartMapTests(TestCase):
    def test_env_map_is_parsed(self):
        raw = json.dumps({"llava-13b": {"command": ["ollama", "run", "llava:13b"]}})
        with mock.patch.dict(os.environ, {"CHAT_PROXY_AUTOSTART_MAP": raw}):
            amap = health.load_autostart_map()
            self.assertEqual(
                health.autostart_for("llava-13b"), ["ollama", "run", "llava:13b"]
            )
            self.assertIsNone(health.autostart_for("other"))
        self.assertEqual(amap.error, "")
        self.assertEqual(amap.source, "env CHAT_PROXY_AUTOSTART_MAP")

    def test_malformed_json_is_reported(self):
        with mock.patch.dict(
            os.environ, {"CHAT_PROXY_AUTOSTART_MAP": "vllm:qlora-prod,ollama:x"}
        ):
            amap = health.load_autostart_map()
        self.assertEqual(amap.commands, {})
        self.assertIn("not valid JSON", amap.error)

    def test_wrong_shapes_are_reported_valid_items_kept(self):
        raw = json.dumps(
            {"ok": {"command": ["a"]}, "bad": {"command": "a b"}, "worse": ["x"]}
        )
        amap = health.parse_autostart_map(raw, "test")
        self.assertEqual(amap.commands, {"ok": ["a"]})
        self.assertIn("'bad'", amap.error)
        self.assertIn("'worse'", amap.error)
        self.assertIn(
            "must be a JSON object", health.parse_autostart_map("[1]", "t").error
        )

    def test_toml_config(self):
        import tempfile
        from pathlib import Path

        folder = Path(tempfile.mkdtemp())
        good = folder / "chat_proxy.toml"
        good.write_text(
            '[autostart]\nautostart_map_raw = \'{"m": {"command": ["run", "m"]}}\'\n'
        )
        bad = folder / "bad.toml"
        bad.write_text('[autostart]\nautostart_map_raw = "{not json"\n')
        broken = folder / "broken.toml"
        broken.write_text("[autostart\n")
        env = {k: v for k, v in os.environ.items() if k != "CHAT_PROXY_AUTOSTART_MAP"}
        with mock.patch.dict(os.environ, env, clear=True):
            with override_settings(IMAGEWORKS_CHAT_PROXY_CONFIG=str(good)):
                self.assertEqual(health.autostart_for("m"), ["run", "m"])
            with override_settings(IMAGEWORKS_CHAT_PROXY_CONFIG=str(bad)):
                self.assertIn("not valid JSON", health.load_autostart_map().error)
            with override_settings(IMAGEWORKS_CHAT_PROXY_CONFIG=str(broken)):
                self.assertIn("cannot read", health.load_autostart_map().error)
            with override_settings(
                IMAGEWORKS_CHAT_PROXY_CONFIG=str(folder / "nope.toml")
            ):
                self.assertIn("not found", health.load_autostart_map().error)
            with override_settings(IMAGEWORKS_CHAT_PROXY_CONFIG=""):
                self.assertFalse(health.load_autostart_map().configured)

    @override_settings(IMAGEWORKS_HEALTH_TIMEOUT=TIMEOUT)
    def test_autostart_error_is_shown_with_the_ollama_results(self):
        fake = FakeOllama(installed=["qwen3:8b"]).start()
        self.addCleanup(fake.stop)
        ollama_entry("qwen", "qwen3:8b", fake.url)
        with (
            override_settings(IMAGEWORKS_OLLAMA_URL=fake.url),
            mock.patch.dict(os.environ, {"CHAT_PROXY_AUTOSTART_MAP": "{broken"}),
        ):
            report = health.check_all(["ollama"])
        self.assertIn("not valid JSON", report.autostart.error)
        self.assertIn("not valid JSON", report.endpoints[0].details["autostart_error"])


@override_settings(IMAGEWORKS_HEALTH_TIMEOUT=TIMEOUT, IMAGEWORKS_OLLAMA_URL="")
class VllmTests(FakeTestCase):
    def write_state(self, **state):
        from django.conf import settings

        path = health.state_file_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(state, indent=2))
        self.addCleanup(path.unlink, missing_ok=True)
        self.assertTrue(str(path).startswith(str(settings.IMAGEWORKS_STAGING_DIR)))

    @contextmanager
    def no_service(self):
        """The activation service fails: health falls back to the state file."""
        down = RuntimeError("activation service unavailable")
        with (
            mock.patch("backends.health.active.current", side_effect=down),
            mock.patch("backends.health.active.adopt_or_clean", side_effect=down),
        ):
            yield

    def test_active_model_from_state_file(self):
        fake = self.start(FakeOpenAI(models=["gpt-oss-20b"]))
        self.write_state(
            logical_name="gpt-oss-20b_(MXFP4)",
            served_model_id="gpt-oss-20b",
            port=fake.port,
            pid=os.getpid(),
            started_at="2026-01-01T00:00:00Z",
        )
        with self.no_service():
            report = health.check_all(["vllm"])
            row = report.endpoints[0]
            self.assertEqual(row.status, HealthStatus.ONLINE, row.last_error)
            self.assertEqual(row.details["served_models"], ["gpt-oss-20b"])
            self.assertTrue(health.runtime_flags()["gpt-oss-20b_(MXFP4)"]["active"])
            fake.configure(models=["other"])
            row = health.check_all(["vllm"]).endpoints[0]
        self.assertEqual(row.status, HealthStatus.DEGRADED)
        self.assertEqual(row.last_error, "serves other, expected gpt-oss-20b")

    def test_dead_pid_is_named(self):
        self.write_state(
            logical_name="m",
            served_model_id="None",
            port=int(dead_url().rsplit(":", 1)[1]),
            pid=2**22 + 7,
        )
        with self.no_service():
            row = health.check_all(["vllm"]).endpoints[0]
        self.assertEqual(row.status, HealthStatus.OFFLINE)
        self.assertIn("is not running", row.last_error)

    def test_service_current_and_reconcile_are_used(self):
        fake = self.start(FakeOpenAI(models=["served"]))
        calls = []
        service = SimpleNamespace(
            current=lambda: {
                "logical_name": "x",
                "served_model_id": "served",
                "port": fake.port,
                "state": "running",
            },
            reconcile=lambda: calls.append("reconcile"),
        )
        with (
            mock.patch(
                "backends.health.active.current", side_effect=lambda: service.current()
            ),
            mock.patch(
                "backends.health.active.adopt_or_clean",
                side_effect=lambda: service.reconcile(),
            ),
        ):
            row = health.check_all(["vllm"]).endpoints[0]
            self.assertEqual(calls, ["reconcile"])
            self.assertEqual(row.status, HealthStatus.ONLINE)
            fake.stop()
            service.current = lambda: {
                "logical_name": "x",
                "served_model_id": "served",
                "port": fake.port,
                "state": "starting",
            }
            row = health.check_all(["vllm"]).endpoints[0]
            self.assertEqual(row.status, HealthStatus.STARTING)
            service.current = lambda: None
            row = health.check_all(["vllm"]).endpoints[0]
        self.assertEqual(row.status, HealthStatus.NOT_CONFIGURED)
        self.assertEqual(
            [t.new_status for t in row.transitions.order_by("time", "pk")],
            ["online", "starting", "not_configured"],
        )


class ScheduleTests(TestCase):
    def test_plan(self):
        self.assertEqual(health_tasks.schedule_plan(30), [(1, 0), (1, 30)])
        self.assertEqual(health_tasks.schedule_plan(10), [(1, 0), (1, 30)])
        self.assertEqual(health_tasks.schedule_plan(20), [(1, 0), (1, 30)])
        self.assertEqual(health_tasks.schedule_plan(45), [(1, 0)])
        self.assertEqual(health_tasks.schedule_plan(60), [(1, 0)])
        self.assertEqual(health_tasks.schedule_plan(300), [(5, 0)])

    def test_setup_schedules_is_idempotent(self):
        from django.core.management import call_command
        from django_q.models import Schedule

        call_command("setup_schedules", stdout=io.StringIO())
        first = list(
            Schedule.objects.values_list("name", "minutes", "next_run", "func")
        )
        call_command("setup_schedules", stdout=io.StringIO())
        self.assertEqual(
            list(Schedule.objects.values_list("name", "minutes", "next_run", "func")),
            first,
        )
        self.assertEqual(len(first), 2)
        self.assertEqual({f[3] for f in first}, {health_tasks.TASK})
        gap = (first[1][2] - first[0][2]).total_seconds()
        self.assertAlmostEqual(gap, 30, delta=1)
        call_command("setup_schedules", "--interval", "120", stdout=io.StringIO())
        self.assertEqual(
            list(Schedule.objects.values_list("name", "minutes")),
            [("backend-health-checks-0", 2)],
        )

    @override_settings(IMAGEWORKS_OLLAMA_URL="")
    def test_task_runs_a_check(self):
        result = health_tasks.run_health_checks()
        self.assertEqual(result["statuses"], {"vllm:active": "not_configured"})


@override_settings(IMAGEWORKS_HEALTH_TIMEOUT=TIMEOUT)
class CliTests(FakeTestCase):
    def run_cli(self, *argv):
        import argparse

        parser = argparse.ArgumentParser(prog="imageworks-models")
        backends_cli.add_subcommands(parser.add_subparsers(dest="command"))
        args = parser.parse_args(["show-backends", *argv])
        out = io.StringIO()
        with redirect_stdout(out):
            code = args.func(args)
        return code, out.getvalue()

    def test_show_backends_json_from_a_fresh_check(self):
        fake = self.start(FakeOllama(installed=["qwen3:8b"], loaded=["qwen3:8b"]))
        ollama_entry("qwen", "qwen3:8b", fake.url)
        with override_settings(
            IMAGEWORKS_OLLAMA_URL=fake.url, IMAGEWORKS_LMDEPLOY_URL=dead_url()
        ):
            code, out = self.run_cli("--json")
        self.assertEqual(code, 0)
        data = json.loads(out)
        by_kind = {b["kind"]: b for b in data["backends"]}
        (ep,) = by_kind["ollama"]["endpoints"]
        self.assertEqual(ep["status"], "online")
        self.assertEqual(ep["serves"]["loaded"][0]["name"], "qwen3:8b")
        self.assertIsNotNone(ep["since"])
        self.assertIsNotNone(ep["latency_ms"])
        self.assertEqual(ep["entries"], ["qwen"])
        self.assertEqual(by_kind["lmdeploy"]["endpoints"][0]["status"], "offline")
        self.assertIn("refused", by_kind["lmdeploy"]["endpoints"][0]["error"])
        self.assertEqual(by_kind["triton"]["status"], "not_configured")
        self.assertEqual(by_kind["vllm"]["endpoints"][0]["note"], "No model is active.")

    def test_show_backends_text_and_strict(self):
        with override_settings(IMAGEWORKS_OLLAMA_URL=dead_url()):
            code, out = self.run_cli("--strict")
        self.assertEqual(code, 1)
        self.assertIn("Ollama: offline", out)
        self.assertIn("error: connection refused", out)


@override_settings(
    IMAGEWORKS_HEALTH_TIMEOUT=TIMEOUT,
    IMAGEWORKS_OLLAMA_URL="",
    IMAGEWORKS_VLLM_HOST="localhost",
    IMAGEWORKS_HEALTH_HOSTS=["localhost"],
)
class ProbeHostTests(FakeTestCase):
    """ "Check now" (any viewer) contacts configured backend endpoints and entry
    endpoints on configured hosts only, never an address an editor typed."""

    def _check_now(self):
        from django.test import Client

        from tests.base import make_user

        if not hasattr(self, "client_"):
            self.client_ = Client()
            self.client_.force_login(make_user("viewer1", "viewer"))
        response = self.client_.post("/health/check/")
        self.assertEqual(response.status_code, 302)

    def test_an_entry_on_an_unconfigured_host_is_not_contacted(self):
        fake = self.start(FakeOpenAI(models=["internvl"]))
        create_model_entry(
            "lm",
            backend="lmdeploy",
            served_model_id="internvl",
            backend_config={"base_url": f"http://127.0.0.1:{fake.port}/v1"},
        )
        self._check_now()
        self.assertEqual(fake.requests, [])
        row = BackendEndpoint.objects.get(key=f"lmdeploy:http://127.0.0.1:{fake.port}")
        self.assertEqual(row.status, HealthStatus.UNKNOWN)
        self.assertIn(
            "127.0.0.1 is not a configured backend host", row.details.get("note", "")
        )
        with override_settings(IMAGEWORKS_HEALTH_HOSTS=["localhost", "127.0.0.1"]):
            self._check_now()
        self.assertTrue(fake.requests)
        row.refresh_from_db()
        self.assertEqual(row.status, HealthStatus.ONLINE)

    def test_configured_urls_and_entries_on_their_hosts_are_checked(self):
        configured = self.start(FakeOpenAI(models=["a"]))
        other_port = self.start(FakeOpenAI(models=["b"]))
        create_model_entry(
            "b",
            backend="triton",
            served_model_id="b",
            backend_config={"host": "127.0.0.1", "port": other_port.port},
        )
        create_model_entry(
            "meta",
            backend="triton",
            backend_config={"base_url": "http://169.254.169.254/latest"},
        )
        with override_settings(IMAGEWORKS_LMDEPLOY_URL=configured.url):
            self._check_now()
        self.assertTrue(configured.requests)  # a backend URL setting
        self.assertTrue(other_port.requests)  # an entry on that setting's host
        meta = BackendEndpoint.objects.get(url__contains="169.254.169.254")
        self.assertEqual(meta.status, HealthStatus.UNKNOWN)
        self.assertIn("not a configured backend host", meta.details.get("note", ""))
