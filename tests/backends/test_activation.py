"""The activation service end to end against real fake-vLLM processes."""

from __future__ import annotations

import json
import threading
import time
from unittest import mock

from django.db import connection
from django.test import TransactionTestCase

from backends.choices import ActivationState
from backends.models import Activation
from backends.vllm import process, server, service, statefile
from registry.audit import Actor
from registry.models import ActionLog, Job
from registry.services.verify import GateResult
from tests.backends.activation_fixtures import FakeVllmMixin, make_entry
from tests.backends.vllm_helpers import FAKE_VLLM, fake_processes, wait_until

ACTOR = Actor.system("tester")


class ActivateStopTests(FakeVllmMixin, TransactionTestCase):
    def test_activate_becomes_running_and_writes_state_file(self):
        self.fake_env(ready_delay=0.3)
        entry = make_entry("org/model-a (FP8)", self.weights)
        act = service.activate(entry, ACTOR)
        self.assertEqual(act.state, ActivationState.RUNNING)
        self.assertTrue(act.pid and act.create_time and act.cmdline_hash)
        self.assertEqual(act.port, self.port)
        self.assertGreaterEqual(act.time_to_ready_s, 0.3)
        self.assertIn(str(FAKE_VLLM), act.command)
        self.assertTrue(
            act.log_path.endswith(".log") and "/vllm/org_model-a_FP8-" in act.log_path
        )
        data = json.loads(self.state_path.read_text())
        self.assertEqual(list(data), list(statefile.FIELDS))
        self.assertEqual(
            {k: data[k] for k in ("logical_name", "served_model_id", "port", "pid")},
            {
                "logical_name": entry.name,
                "served_model_id": entry.name,
                "port": self.port,
                "pid": act.pid,
            },
        )
        self.assertEqual(service.current(), data)
        rows = ActionLog.objects.filter(action="activate")
        self.assertEqual(rows.count(), 1)
        self.assertEqual(rows[0].outcome, "succeeded")
        self.assertIn("Active: org/model-a (FP8)", rows[0].message)

    def test_stop_leaves_no_process_in_group(self):
        self.fake_env(workers=2)
        act = service.activate(make_entry("a", self.weights), ACTOR)
        self.assertTrue(wait_until(lambda: len(process.group_members(act.pgid)) == 3))
        stopped = service.stop(ACTOR)
        self.assertEqual(stopped.state, ActivationState.STOPPED)
        self.assertEqual(process.group_members(act.pgid), [])
        self.assertFalse(self.state_path.exists())
        self.assertIsNone(service.current())
        stop_rows = ActionLog.objects.filter(action="stop")
        self.assertEqual(stop_rows.count(), 1)
        self.assertIn("Stopped a", stop_rows[0].message)

    def test_stop_with_nothing_active_says_so(self):
        self.assertIsNone(service.stop(ACTOR))
        row = ActionLog.objects.get(action="stop")
        self.assertEqual(row.message, "No vLLM model was active.")

    def test_crash_during_start_reported_fast_with_exit_code(self):
        self.fake_env(crash_during_start=9, crash_delay=0.3)
        entry = make_entry("crashy", self.weights)
        t0 = time.monotonic()
        with self.assertRaises(service.ActivationFailed) as info:
            service.activate(entry, ACTOR)
        self.assertLess(time.monotonic() - t0, 2.5)
        self.assertIn("exited early (code 9)", str(info.exception))
        act = Activation.objects.get(logical_name="crashy")
        self.assertEqual((act.state, act.exit_code), (ActivationState.FAILED, 9))
        self.assertIn("CUDA error", act.error)
        self.assertFalse(self.state_path.exists())
        self.assertEqual(ActionLog.objects.get(action="activate").outcome, "failed")

    def test_orphan_on_port_blocks_activation_with_clear_message(self):
        import subprocess
        import sys

        orphan = subprocess.Popen(
            [
                sys.executable,
                str(FAKE_VLLM),
                "--model",
                "x",
                "--served-model-name",
                "orphan",
                "--port",
                str(self.port),
            ],
            start_new_session=True,
        )
        try:
            self.assertTrue(
                wait_until(lambda: not process.port_is_free("127.0.0.1", self.port))
            )
            with self.assertRaises(service.ActivationRefused) as info:
                service.activate(make_entry("b", self.weights), ACTOR)
            self.assertIn(
                f"port {self.port} is in use by PID {orphan.pid} (", str(info.exception)
            )
            self.assertFalse(Activation.objects.exists())
        finally:
            orphan.kill()
            orphan.wait()

    def test_sigterm_ignoring_server_killed_after_grace(self):
        self.fake_env(ignore_sigterm=1)
        act = service.activate(make_entry("stubborn", self.weights), ACTOR)
        t0 = time.monotonic()
        stopped = service.stop(ACTOR)
        self.assertGreaterEqual(time.monotonic() - t0, self.stop_grace * 0.9)
        self.assertEqual(stopped.exit_code, -9)
        self.assertEqual(process.group_members(act.pgid), [])
        self.assertIn("SIGKILL", ActionLog.objects.get(action="stop").message)

    def test_switch_models_validates_b_before_stopping_a(self):
        a = service.activate(make_entry("a", self.weights), ACTOR)
        broken = make_entry("broken", self.weights)
        broken.curated_raw["backend_config"]["model_path"] = str(self.tmp / "missing")
        broken.save()
        with self.assertRaises(service.ActivationRefused) as info:
            service.activate(broken, ACTOR)
        self.assertIn("Model files not found", str(info.exception))
        a.refresh_from_db()
        self.assertEqual(a.state, ActivationState.RUNNING, a.error)  # A still serving
        self.assertTrue(server.identity(a).is_alive())
        b = service.activate(make_entry("b", self.weights), ACTOR)
        a.refresh_from_db()
        self.assertEqual(a.state, ActivationState.STOPPED)
        self.assertIn("Replaced by b", a.error)
        self.assertFalse(server.identity(a).is_alive())
        self.assertEqual(json.loads(self.state_path.read_text())["logical_name"], "b")
        self.assertEqual(len(fake_processes()), 1)
        self.assertEqual(service.current()["pid"], b.pid)

    def test_same_model_twice_is_reused(self):
        a1 = service.activate(make_entry("a", self.weights), ACTOR)
        a2 = service.activate(a1.entry, ACTOR)
        self.assertEqual(a1.pk, a2.pk)
        self.assertIn(
            "already active",
            ActionLog.objects.filter(action="activate").first().message,
        )

    def test_non_vllm_and_lock_gate_refused(self):
        with self.assertRaisesMessage(
            service.ActivationRefused, "Only vLLM models can be activated"
        ):
            service.activate(make_entry("o", self.weights, backend="ollama"), ACTOR)
        with (
            mock.patch(
                "backends.vllm.prepare.lock_gate",
                return_value=GateResult(False, "hash mismatch"),
            ),
            self.assertRaisesMessage(service.ActivationRefused, "hash mismatch"),
        ):
            service.activate(make_entry("locked", self.weights), ACTOR)

    def test_crash_after_ready_is_noticed_and_state_cleaned(self):
        self.fake_env(crash_after_ready=0.5)
        act = service.activate(make_entry("flaky", self.weights), ACTOR)
        self.assertTrue(self.state_path.exists())
        self.assertTrue(
            wait_until(lambda: not server.identity(act).is_alive(), timeout=5)
        )
        self.assertIsNone(service.current())
        act.refresh_from_db()
        self.assertEqual(act.state, ActivationState.FAILED)
        self.assertFalse(self.state_path.exists())
        self.assertIn(
            "no longer running", ActionLog.objects.get(action="reconcile").message
        )

    def test_stop_during_start_cancels_it(self):
        self.fake_env(ready_delay=30)
        entry = make_entry("slow", self.weights)
        errors = []

        def run():
            try:
                service.activate(entry, ACTOR)
            except service.ActivationError as exc:
                errors.append(str(exc))
            finally:
                connection.close()

        t = threading.Thread(target=run)
        t.start()
        self.assertTrue(
            wait_until(
                lambda: (
                    Activation.objects.filter(state="starting")
                    .exclude(pid=None)
                    .exists()
                )
            )
        )
        stopped = service.stop(Actor.system("bob"))
        t.join(10)
        self.assertFalse(t.is_alive())
        self.assertEqual(stopped.state, ActivationState.STOPPED)
        self.assertIn("cancelled", errors[0])
        self.assertEqual(fake_processes(), [])
        self.assertFalse(self.state_path.exists())


class ConcurrencyTests(FakeVllmMixin, TransactionTestCase):
    def test_ten_concurrent_threads_leave_exactly_one_server(self):
        if connection.vendor == "sqlite" and connection.is_in_memory_db():
            # Shared-cache in-memory SQLite answers concurrent writers with
            # "table is locked" (no busy timeout); the cross-process test below
            # covers SQLite with a real file database instead.
            self.skipTest(
                "needs a database with concurrent writers (file SQLite/PostgreSQL)"
            )
        self.fake_env(ready_delay=0.2)
        entries = [make_entry(f"model-{i}", self.weights) for i in range(10)]
        barrier = threading.Barrier(10)
        outcomes: dict[str, str] = {}

        def run(entry):
            try:
                barrier.wait()
                service.activate(entry, Actor.system(f"user-{entry.name}"))
                outcomes[entry.name] = "ok"
            except service.ActivationBusy as exc:
                outcomes[entry.name] = f"busy: {exc}"
            except service.ActivationError as exc:
                outcomes[entry.name] = f"error: {exc}"
            finally:
                connection.close()

        threads = [threading.Thread(target=run, args=(e,)) for e in entries]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        self.assertEqual(len(outcomes), 10, outcomes)
        self.assertFalse(
            [o for o in outcomes.values() if o.startswith("error")], outcomes
        )
        busy = [o for o in outcomes.values() if o.startswith("busy")]
        self.assertTrue(busy, outcomes)
        # Refused because of the one slot: while the winner starts, or (a thread that
        # a slow host ran late, after the 0.2 s start) because it is now active.
        self.assertTrue(
            all(
                "is already activating" in o or " is active (started by" in o
                for o in busy
            ),
            busy,
        )
        live = Activation.objects.filter(state__in=ActivationState.live())
        self.assertEqual(live.count(), 1)
        running = live.get()
        self.assertEqual(running.state, ActivationState.RUNNING)
        servers = fake_processes()
        self.assertEqual([p.pid for p in servers], [running.pid])
        state = json.loads(self.state_path.read_text())
        self.assertEqual(
            (state["logical_name"], state["pid"]), (running.logical_name, running.pid)
        )
        self.assertEqual(ActionLog.objects.filter(action="activate").count(), 10)


class RestartTests(FakeVllmMixin, TransactionTestCase):
    def test_restart_recognises_running_server_and_can_stop_it(self):
        act = service.activate(make_entry("a", self.weights), ACTOR)
        server._POPENS.clear()  # a new web process/worker: no in-memory handles
        self.state_path.unlink()  # and the file got lost
        self.assertIn("Rewrote the state file", service.adopt_or_clean()[0])
        self.assertEqual(service.current()["pid"], act.pid)
        stopped = service.stop(ACTOR)
        self.assertEqual(stopped.state, ActivationState.STOPPED)
        self.assertEqual(process.group_members(act.pgid), [])

    def test_server_started_elsewhere_is_adopted_from_state_file(self):
        entry = make_entry("ext", self.weights)
        spec = service.prepare(entry)
        sp = process.spawn(
            spec.argv,
            log_path=self.tmp / "ext.log",
            env=process.build_env(["PATH", "FAKE_VLLM_OWNER"]),
        )
        cfg = service.config()
        from backends import clients

        process.wait_ready(
            lambda t: clients.vllm_ready(cfg.base_url(spec.port), "ext", timeout=t),
            timeout=10,
            exited=lambda: process.exit_status(sp.popen, sp.identity),
        )
        statefile.write_state(
            self.state_path,
            statefile.make_state(
                logical_name="ext",
                served_model_id="ext",
                port=self.port,
                pid=sp.popen.pid,
                started_at=time.time(),
            ),
        )
        state = service.current()
        self.assertEqual(state["pid"], sp.popen.pid)
        act = Activation.objects.get(state="running")
        self.assertEqual(
            (act.user_name, act.entry_id, act.pgid),
            ("(adopted)", entry.pk, sp.identity.pgid),
        )
        self.assertIn(
            "Adopted running vLLM ext",
            ActionLog.objects.get(action="reconcile").message,
        )
        service.stop(ACTOR)
        self.assertEqual(fake_processes(), [])

    def test_stale_and_corrupt_state_files_are_removed_with_reason(self):
        statefile.write_state(
            self.state_path,
            statefile.make_state(
                logical_name="gone",
                served_model_id="gone",
                port=self.port,
                pid=999999,
                started_at=1.0,
            ),
        )
        self.assertIsNone(service.current())
        self.assertFalse(self.state_path.exists())
        row = ActionLog.objects.get(action="reconcile")
        self.assertIn(
            "Removed stale state file for gone: pid 999999 is not running", row.message
        )
        self.state_path.write_text('{"logical_name": "x"')
        self.assertIsNone(service.current())
        self.assertFalse(self.state_path.exists())
        self.assertIn(
            "corrupt", ActionLog.objects.filter(action="reconcile").first().message
        )


class CliTests(FakeVllmMixin, TransactionTestCase):
    def run_cli(self, *argv):
        import argparse
        import io
        from contextlib import redirect_stderr, redirect_stdout

        from backends import cli

        parser = argparse.ArgumentParser()
        cli.add_subcommands(parser.add_subparsers())
        args = parser.parse_args(argv)
        out, err = io.StringIO(), io.StringIO()
        with redirect_stdout(out), redirect_stderr(err):
            code = args.func(args)
        return code, out.getvalue(), err.getvalue()

    def test_activate_current_stop_and_errors(self):
        make_entry("cli-model", self.weights)
        make_entry("an-ollama", self.weights, backend="ollama")
        self.assertEqual(self.run_cli("current-model"), (0, "null\n", ""))
        code, out, _ = self.run_cli("activate-model", "cli-model")
        self.assertEqual(code, 0)
        state = json.loads(out)
        self.assertEqual(state["logical_name"], "cli-model")
        code, out, _ = self.run_cli("current-model")
        self.assertEqual((code, json.loads(out)), (0, state))
        self.assertEqual(
            self.run_cli("activate-model", "--stop")[:2],
            (0, "Stopped active vLLM instance.\n"),
        )
        self.assertEqual(
            self.run_cli("activate-model", "stop")[:2],
            (0, "No vLLM model was active.\n"),
        )
        self.assertEqual(
            self.run_cli("activate-model", "nope")[::2],
            (1, "Model 'nope' not found in registry\n"),
        )
        self.assertEqual(
            self.run_cli("activate-model", "an-ollama")[::2],
            (1, "Model 'an-ollama' is not served by vLLM.\n"),
        )
        self.assertEqual(fake_processes(), [])

    def test_cli_is_refused_while_an_activation_job_is_queued(self):
        make_entry("cli-model", self.weights)
        Job.objects.create(
            kind="activate", status="queued", user_name="bob", entry_name="other"
        )
        code, out, err = self.run_cli("activate-model", "cli-model")
        self.assertEqual((code, out), (1, ""))
        self.assertIn("Activation failed: bob is already activating other.", err)
        self.assertEqual(fake_processes(), [])
        self.assertFalse(Activation.objects.exists())
