"""``imageworks-models verify|lock|unlock``: outputs and exit codes (reference 6.2)."""

from __future__ import annotations

import argparse
import contextlib
import getpass
import io
import json

from django.test import TestCase

from registry.choices import JobStatus
from registry.cli import verify as cli_verify
from registry.models import ActionLog, Job
from tests.registry.test_verify import (
    FLORENCE,
    GEMMA,
    SIGLIP,
    TESTMODEL,
    WORKED_EXAMPLE,
    SampleRegistryMixin,
)

try:
    from imageworks_site.cli import main as cli_main
except ImportError:  # the lead's CLI not there yet: our own parser
    cli_main = None


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        if cli_main is not None:
            code = cli_main(list(argv))
        else:
            parser = argparse.ArgumentParser(prog="imageworks-models")
            cli_verify.add_subcommands(parser.add_subparsers(dest="command"))
            args = parser.parse_args(list(argv))
            code = args.func(args)
    return code, out.getvalue(), err.getvalue()


class VerifyCliTests(SampleRegistryMixin, TestCase):
    def setUp(self):
        self.setup_registry()

    def test_verify_prints_the_original_json(self):
        code, out, err = run("verify", TESTMODEL)
        self.assertEqual(code, 0, err)
        data = json.loads(out)
        self.assertEqual(
            list(data), ["name", "aggregate_sha256", "last_verified", "locked"]
        )
        self.assertEqual(data["name"], TESTMODEL)
        self.assertEqual(data["aggregate_sha256"], WORKED_EXAMPLE)
        self.assertFalse(data["locked"])
        self.assertEqual(err, "")  # no progress when stderr is not a terminal
        row = ActionLog.objects.get(action="verify")
        self.assertEqual((row.source, row.user_name), ("cli", getpass.getuser()))

    def test_unknown_name_exits_1(self):
        code, out, err = run("verify", "no-such-model")
        self.assertEqual((code, out), (1, ""))
        self.assertIn("Model 'no-such-model' not found in registry", err)
        for cmd in ("lock", "unlock"):
            code, _, err = run(cmd, "no-such-model")
            self.assertEqual(code, 1, cmd)
            self.assertIn("not found", err)

    def test_lock_violation_exits_2(self):
        (self.model_dir(SIGLIP) / "model.safetensors").write_bytes(b"tampered")
        code, out, err = run("verify", SIGLIP)
        self.assertEqual((code, out), (2, ""))
        self.assertTrue(err.startswith("Lock violation: expected "), err)
        self.assertIn("changed: model.safetensors", err)

    def test_missing_files_and_ollama_exit_1(self):
        import shutil

        shutil.rmtree(self.model_dir(FLORENCE))
        code, _, err = run("verify", FLORENCE)
        self.assertEqual(code, 1)
        self.assertIn("model files not found at", err)
        code, _, err = run("verify", GEMMA)
        self.assertEqual(code, 1)
        self.assertIn("Verify does not apply to Ollama tags", err)

    def test_lock_set_expected_verify_again_unlock(self):
        code, out, err = run("lock", FLORENCE, "--set-expected")
        self.assertEqual((code, out.strip()), (0, f"Locked {FLORENCE}"), err)
        code, out, err = run("verify", FLORENCE)
        self.assertEqual(code, 0, err)
        self.assertTrue(json.loads(out)["locked"])
        code, out, err = run("verify", FLORENCE)  # the original fails here
        self.assertEqual(code, 0, err)
        code, out, _ = run("unlock", FLORENCE)
        self.assertEqual((code, out.strip()), (0, f"Unlocked {FLORENCE}"))
        self.assertFalse(self.entry(FLORENCE).locked)
        self.assertTrue(self.entry(FLORENCE).expected_sha256)

    def test_plain_lock_keeps_expected_empty_until_the_next_verify(self):
        code, out, _ = run("lock", FLORENCE)
        self.assertEqual((code, out.strip()), (0, f"Locked {FLORENCE}"))
        self.assertEqual(self.entry(FLORENCE).expected_sha256, "")
        run("verify", FLORENCE)
        entry = self.entry(FLORENCE)
        self.assertEqual(entry.expected_sha256, entry.aggregate_sha256)

    def test_lock_follows_the_drawers_rule(self):
        """``verify.request_lock``: the same refusals as the site's Lock button."""
        Job.objects.create(
            kind="verify",
            entry_name=FLORENCE,
            status=JobStatus.RUNNING,
            user_name="bob",
        )
        for argv in (("lock", FLORENCE), ("lock", FLORENCE, "--set-expected")):
            code, out, err = run(*argv)
            self.assertEqual((code, out), (1, ""), argv)
            self.assertIn(f"A verify job is already running for {FLORENCE} by bob", err)
        self.assertFalse(self.entry(FLORENCE).locked)
        code, out, err = run("lock", GEMMA, "--set-expected")
        self.assertEqual((code, out), (1, ""))
        self.assertIn("Lock does not apply to Ollama tags", err)
        before = ActionLog.objects.count()
        code, out, err = run("lock", SIGLIP, "--set-expected")  # locked, with a hash
        self.assertEqual((code, out.strip()), (0, f"Locked {SIGLIP}"))
        self.assertIn("already locked", err)
        self.assertEqual(ActionLog.objects.count(), before, "nothing written")
