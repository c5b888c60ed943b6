"""Proxy mode: activation and stop through the original's admin service API (fake)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from django.test import TransactionTestCase, override_settings

from backends import clients
from backends.choices import ActivationMode, ActivationState
from backends.models import Activation
from backends.vllm import service
from registry.audit import Actor
from registry.models import ActionLog
from tests.backends.activation_fixtures import FakeVllmMixin, make_entry
from tests.backends.vllm_helpers import (
    FAKE_ADMIN,
    fake_processes,
    free_port,
    wait_until,
)

ACTOR = Actor.system("tester")


class ProxyModeTests(FakeVllmMixin, TransactionTestCase):
    def setUp(self):
        super().setUp()
        self.admin_port = free_port()
        env = {**os.environ, "FAKE_ADMIN_TOKEN": "s3cret", "FAKE_ADMIN_STOP_WAIT": "2"}
        self.admin = subprocess.Popen(
            [sys.executable, str(FAKE_ADMIN), "--port", str(self.admin_port)],
            cwd=self.tmp,
            env=env,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
        )
        self.admin_url = f"http://127.0.0.1:{self.admin_port}"
        self.assertTrue(wait_until(lambda: _answers(self.admin_url), timeout=10))
        self.proxy = override_settings(
            IMAGEWORKS_VLLM_ADMIN_URL=self.admin_url,
            IMAGEWORKS_VLLM_ADMIN_TOKEN="s3cret",
            IMAGEWORKS_VLLM_CONNECT_HOST="127.0.0.1",
        )
        self.proxy.enable()

    def tearDown(self):
        self.proxy.disable()
        self.admin.terminate()
        self.admin.wait(5)
        super().tearDown()

    def test_activate_and_stop_through_admin_service(self):
        self.fake_env(ready_delay=0.3)
        entry = make_entry("remote-model", self.weights)
        act = service.activate(entry, ACTOR)
        self.assertEqual(
            (act.state, act.mode), (ActivationState.RUNNING, ActivationMode.PROXY)
        )
        remote = clients.admin_state(self.admin_url, token="s3cret")
        self.assertEqual(
            (remote["status"], remote["logical_name"], remote["pid"]),
            ("running", "remote-model", act.pid),
        )
        self.assertTrue(remote["log_file"].startswith("logs/vllm/remote-model-"))
        self.assertTrue(
            (self.tmp / remote["log_file"]).exists()
        )  # relative to the admin's cwd
        state = json.loads(self.state_path.read_text())
        self.assertEqual(
            (state["logical_name"], state["pid"], state["port"]),
            ("remote-model", act.pid, self.port),
        )
        self.assertEqual(service.current(), state)

        stopped = service.stop(ACTOR)
        self.assertEqual(stopped.state, ActivationState.STOPPED)
        self.assertEqual(
            clients.admin_state(self.admin_url, token="s3cret")["status"], "stopped"
        )
        self.assertFalse(self.state_path.exists())
        self.assertTrue(wait_until(lambda: fake_processes() == [], timeout=5))
        self.assertEqual(
            list(
                ActionLog.objects.filter(action__in=["activate", "stop"]).values_list(
                    "action", "outcome"
                )
            ),
            [("stop", "succeeded"), ("activate", "succeeded")],
        )

    def test_env_sent_is_the_allow_list_only(self):
        os.environ["SOME_SECRET"] = "nope"
        try:
            act = service.activate(make_entry("m", self.weights), ACTOR)
            import psutil

            env = psutil.Process(act.pid).environ()
            # The fake admin merges over its own environment (like the original), so
            # check our request instead: SOME_SECRET was set after the admin started.
            self.assertNotIn("SOME_SECRET", env)
        finally:
            os.environ.pop("SOME_SECRET", None)
            service.stop(ACTOR)

    def test_remote_crash_during_start_reported_fast(self):
        self.fake_env(crash_during_start=5, crash_delay=0.2)
        t0 = time.monotonic()
        with self.assertRaises(service.ActivationFailed) as info:
            service.activate(make_entry("crashy", self.weights), ACTOR)
        self.assertLess(time.monotonic() - t0, 3.0)
        self.assertIn("exited early (code 5)", str(info.exception))
        self.assertEqual(Activation.objects.get().state, ActivationState.FAILED)
        self.assertFalse(self.state_path.exists())

    def test_unreachable_admin_refused_before_anything_changes(self):
        with (
            override_settings(
                IMAGEWORKS_VLLM_ADMIN_URL=f"http://127.0.0.1:{free_port()}"
            ),
            self.assertRaises(service.ActivationRefused) as info,
        ):
            service.activate(make_entry("m", self.weights), ACTOR)
        self.assertIn("unreachable", str(info.exception))
        self.assertFalse(Activation.objects.exists())

    def test_restart_adopts_model_running_on_admin_service(self):
        act = service.activate(make_entry("m", self.weights), ACTOR)
        Activation.objects.all().delete()  # a fresh site database / lost row
        self.state_path.unlink()
        state = service.current()
        self.assertEqual((state["logical_name"], state["pid"]), ("m", act.pid))
        self.assertEqual(Activation.objects.get().user_name, "(adopted)")
        self.assertIn(
            "Adopted m", ActionLog.objects.filter(action="reconcile").first().message
        )
        service.stop(ACTOR)


def _answers(url: str) -> bool:
    try:
        clients.admin_health(url, timeout=0.5)
        return True
    except clients.AdminError:
        return False
