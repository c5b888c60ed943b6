"""Preflight inside every activation and on demand (issue 13 §2): each way a model
fails to load is refused with its own message through the service, the drawer
and the CLI; an operator may override with a reason, which the audit log records.

Real files (safetensors written by the library), a real listening socket, the
fake nvidia-smi, the fake vLLM for the activations that go ahead.
"""

from __future__ import annotations

import io
import json
import os
import socket
from contextlib import ExitStack, redirect_stderr, redirect_stdout

from django.contrib.messages import get_messages
from django.test import override_settings
from django.urls import reverse

from backends import cli
from backends.choices import ActivationState, RequestOutcome
from backends.models import Activation
from backends.vllm import service
from backends.vllm.preflight import CheckId
from registry.audit import Actor
from registry.choices import Action, Outcome
from registry.fingerprint import FINGERPRINT_KEY, fast_fingerprint
from registry.models import ActionLog, Job
from tests.backends.activation_fixtures import FakeVllmMixin, make_entry
from tests.backends.model_files import fake_gpus, nvidia_smi_command, truncate
from tests.backends.vllm_helpers import fake_processes
from tests.base import BaseTestCase

HTMX = {"HTTP_HX_REQUEST": "true"}
ACTOR = Actor.system("tester")

#: Each failure of the issue's "Done when", the check that catches it and a piece
#: of its own message.
SCENARIOS = {
    "truncated shard": (
        CheckId.SAFETENSORS,
        "model-00001-of-00002.safetensors is truncated",
    ),
    "missing shard": (
        CheckId.INDEX,
        "names model-00002-of-00002.safetensors, which do not exist",
    ),
    "missing tokenizer": (CheckId.TOKENIZER, "No tokenizer files"),
    "max_model_len too long": (
        CheckId.MAX_MODEL_LEN,
        "--max-model-len 32000 is above the model's own limit of 8192",
    ),
    "taken port": (CheckId.PORT, "is in use by PID"),
    "duplicated served id": (CheckId.SERVED_ID, "'shared-id' is also used by"),
    "changed locked file": (CheckId.FINGERPRINT, "Files changed since the lock"),
}


def run_cli(*argv):
    import argparse

    parser = argparse.ArgumentParser()
    cli.add_subcommands(parser.add_subparsers())
    args = parser.parse_args(argv)
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = args.func(args)
    return code, out.getvalue(), err.getvalue()


class PreflightSetup(FakeVllmMixin):
    """A fake GPU that fits everything and a helper per failure scenario."""

    def setUp(self):
        super().setUp()
        self.gpu_state = self.tmp / "gpus.json"
        fake_gpus(self.gpu_state)
        os.environ["FAKE_NVIDIA_SMI_STATE"] = str(self.gpu_state)
        self.addCleanup(os.environ.pop, "FAKE_NVIDIA_SMI_STATE", None)
        over = override_settings(
            IMAGEWORKS_NVIDIA_SMI=nvidia_smi_command(),
            IMAGEWORKS_MODEL_ROOTS=[str(self.weights)],
            IMAGEWORKS_VLLM_MAX_MODEL_LEN="",
        )
        over.enable()
        self.addCleanup(over.disable)
        self.stack = ExitStack()
        self.addCleanup(self.stack.close)

    def scenario(self, kind: str):
        """A fresh entry that fails exactly one check, the ``kind`` one."""
        name = kind.replace(" ", "-")
        extra = {}
        if kind == "max_model_len too long":
            extra["extra_args"] = ["--max-model-len", "32k"]
        if kind == "duplicated served id":
            make_entry(
                "first-with-shared-id", self.weights, served_model_id="shared-id"
            )
            extra["served_model_id"] = "shared-id"
        entry = make_entry(name, self.weights, shards=2, **extra)
        folder = self.weights / name
        if kind == "truncated shard":
            truncate(folder / "model-00001-of-00002.safetensors", by=512)
        elif kind == "missing shard":
            (folder / "model-00002-of-00002.safetensors").unlink()
        elif kind == "missing tokenizer":
            (folder / "tokenizer.json").unlink()
        elif kind == "taken port":
            sock = self.stack.enter_context(socket.socket())
            sock.bind(("127.0.0.1", self.port))
            sock.listen()
        elif kind == "changed locked file":
            lock = {"locked": True, FINGERPRINT_KEY: fast_fingerprint(folder)}
            entry.curated_raw = {**entry.curated_raw, "version_lock": lock}
            entry.locked = True
            entry.save()
            cfg = folder / "config.json"  # same mtime, another size: only the
            st = cfg.stat()  # fingerprint (not the lock gate) can tell
            cfg.write_text(cfg.read_text() + " ")
            os.utime(cfg, ns=(st.st_atime_ns, st.st_mtime_ns))
        return entry


class ServiceTests(PreflightSetup, BaseTestCase):
    def test_each_failure_is_refused_with_its_own_message_before_anything_runs(self):
        for kind, (cid, fragment) in SCENARIOS.items():
            with self.subTest(kind):
                entry = self.scenario(kind)
                answer = service.request_activation(entry, ACTOR)
                self.assertEqual(answer.outcome, RequestOutcome.REFUSED)
                self.assertEqual([c.id for c in answer.preflight.failed], [cid])
                self.assertIn(fragment, answer.message)
                self.assertTrue(answer.preflight.failed[0].fix)
                self.stack.close()
        self.assertFalse(Job.objects.exists())
        self.assertFalse(Activation.objects.exists())
        self.assertEqual(fake_processes(), [])

    def test_activate_itself_refuses_and_audits_the_failed_checks(self):
        entry = self.scenario("missing tokenizer")
        with self.assertRaises(service.PreflightRefused) as caught:
            service.activate(entry, ACTOR)
        self.assertIn("No tokenizer files", str(caught.exception))
        row = ActionLog.objects.get(action=Action.ACTIVATE)
        self.assertEqual(row.outcome, Outcome.FAILED)
        self.assertIn("Preflight failed for missing-tokenizer", row.message)
        self.assertEqual(row.details["preflight"]["failed"][0]["id"], "tokenizer")
        self.assertFalse(row.details["preflight"]["overridden"])
        self.assertEqual(fake_processes(), [])

    def test_an_override_needs_a_reason_and_is_audited(self):
        entry = self.scenario("missing tokenizer")
        bare = service.SlotOptions(override_preflight=True)
        answer = service.request_activation(entry, ACTOR, options=bare)
        self.assertEqual(answer.outcome, RequestOutcome.REFUSED)
        self.assertIn("needs a reason", answer.message)

        options = service.SlotOptions(
            override_preflight=True, reason="tokenizer comes from --tokenizer later"
        )
        act = service.activate(entry, ACTOR, options=options)

        self.assertEqual(act.state, ActivationState.RUNNING)
        row = ActionLog.objects.get(action=Action.ACTIVATE)
        self.assertEqual(row.outcome, Outcome.SUCCEEDED)
        self.assertTrue(row.details["preflight"]["overridden"])
        self.assertEqual(
            row.details["reason"], "tokenizer comes from --tokenizer later"
        )
        self.assertIn("preflight overridden (Tokenizer failed)", row.message)
        self.assertIn("Reason: tokenizer comes from --tokenizer later", row.message)
        service.stop(ACTOR)


class ViewTests(PreflightSetup, BaseTestCase):
    def post(self, user, url, data=None, **extra):
        with self.captureOnCommitCallbacks(execute=True):
            return self.client_for(user).post(url, data or {}, **extra)

    def test_check_button_lists_each_failure_with_its_fix(self):
        for kind, (cid, fragment) in SCENARIOS.items():
            with self.subTest(kind):
                entry = self.scenario(kind)
                response = self.client_for(self.viewer).get(
                    reverse("backends:preflight", args=[entry.pk]), **HTMX
                )
                self.assertContains(response, 'data-ok="false"')
                self.assertContains(response, "1 check failed")
                self.assertContains(
                    response, f'data-check="{cid}" data-status="fail"', html=False
                )
                self.assertContains(response, fragment.replace("'", "&#x27;"))
                self.assertContains(response, "Fix: ")
                self.stack.close()

    def test_a_good_model_passes_and_the_dialog_offers_no_override(self):
        entry = make_entry("good", self.weights)
        response = self.client_for(self.viewer).get(
            reverse("backends:preflight", args=[entry.pk])
        )
        self.assertContains(response, 'data-ok="true"')
        self.assertContains(response, "Preflight passed")
        checks = self.client_for(self.operator).get(
            reverse("backends:activate_checks", args=[entry.pk])
        )
        self.assertContains(checks, "Preflight passed")
        self.assertNotContains(checks, "override_preflight")
        self.assertNotContains(checks, 'name="reason"')

    def test_activate_is_refused_with_the_report_then_overridden_with_a_reason(self):
        entry = self.scenario("truncated shard")
        url = reverse("backends:activate", args=[entry.pk])
        checks = self.client_for(self.operator).get(
            reverse("backends:activate_checks", args=[entry.pk])
        )
        self.assertContains(checks, 'name="override_preflight"')
        self.assertContains(checks, "(512 missing)")

        refused = self.post(self.operator, url, **HTMX)
        self.assertEqual(refused["HX-Retarget"], f"#preflight-{entry.pk}")
        self.assertContains(refused, "Activation was refused")
        self.assertContains(refused, "(512 missing)")
        self.assertFalse(Job.objects.exists())

        no_reason = self.post(self.operator, url, {"override_preflight": "1"}, **HTMX)
        self.assertEqual(no_reason.status_code, 422)
        self.assertFalse(Job.objects.exists())

        response = self.post(
            self.operator,
            url,
            {"override_preflight": "1", "reason": "re-download running, test now"},
            **HTMX,
        )
        self.assertEqual(response.status_code, 202)
        job = Job.objects.get(kind="activate")
        self.assertEqual(job.status, "succeeded", job.error)
        self.assertEqual(
            job.params,
            {"override_preflight": True, "reason": "re-download running, test now"},
        )
        row = ActionLog.objects.get(action=Action.ACTIVATE)
        self.assertEqual(row.user_name, "alice")
        self.assertEqual(row.details["reason"], "re-download running, test now")
        self.assertTrue(row.details["preflight"]["overridden"])
        service.stop(ACTOR)

    def test_non_htmx_refusal_redirects_with_the_message(self):
        entry = self.scenario("missing tokenizer")
        response = self.post(
            self.operator, reverse("backends:activate", args=[entry.pk])
        )
        self.assertEqual(response.status_code, 302)
        texts = [str(m) for m in get_messages(response.wsgi_request)]
        self.assertEqual(len(texts), 1)
        self.assertIn("No tokenizer files", texts[0])
        self.assertFalse(Job.objects.exists())


class CliTests(PreflightSetup, BaseTestCase):
    def test_preflight_command_for_each_failure(self):
        for kind, (cid, fragment) in SCENARIOS.items():
            with self.subTest(kind):
                entry = self.scenario(kind)
                code, out, _ = run_cli("preflight", entry.name)
                self.assertEqual(code, 1, out)
                self.assertIn(f"Preflight for {entry.name}: 1 of", out)
                failed = [ln for ln in out.splitlines() if ln.startswith("  FAIL")]
                self.assertEqual(len(failed), 1, out)
                self.assertIn(fragment, failed[0])
                self.assertIn("fix: ", out)
                code, out, _ = run_cli("preflight", entry.name, "--json")
                data = json.loads(out)
                self.assertEqual(
                    [c["id"] for c in data["checks"] if c["status"] == "fail"], [cid]
                )
                self.stack.close()

    def test_preflight_exit_codes(self):
        make_entry("good", self.weights)
        make_entry("llava", self.weights, backend="ollama")
        code, out, _ = run_cli("preflight", "good")
        self.assertEqual(code, 0, out)
        self.assertIn("every check passed", out)
        self.assertEqual(
            run_cli("preflight", "nope")[::2],
            (2, "Model 'nope' not found in registry\n"),
        )
        self.assertEqual(run_cli("preflight", "llava")[0], 2)

    def test_activate_model_refuses_then_overrides_with_a_reason(self):
        entry = self.scenario("missing tokenizer")
        code, out, err = run_cli("activate-model", entry.name)
        self.assertEqual((code, out), (1, ""))
        self.assertIn("Activation refused: preflight failed", err)
        self.assertIn("No tokenizer files", err)
        self.assertIn("--override-preflight --reason TEXT", err)
        code, _, err = run_cli("activate-model", entry.name, "--override-preflight")
        self.assertEqual(code, 2)
        self.assertIn("needs a reason", err)

        code, out, err = run_cli(
            "activate-model", entry.name, "--override-preflight", "--reason", "lab test"
        )

        self.assertEqual(code, 0, err)
        self.assertEqual(json.loads(out)["logical_name"], entry.name)
        row = ActionLog.objects.filter(action=Action.ACTIVATE).first()
        self.assertEqual((row.source, row.details["reason"]), ("cli", "lab test"))
        self.assertTrue(row.details["preflight"]["overridden"])
        run_cli("activate-model", "--stop")
