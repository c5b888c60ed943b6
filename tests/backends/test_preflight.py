"""Preflight: each way a model fails to load is caught before activation, with its
own message and fix (issue 13 §2). Real files: safetensors shards written by the
safetensors library, a real listening socket, the fake nvidia-smi."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import tempfile
from pathlib import Path

from django.test import TestCase, TransactionTestCase, override_settings

from backends.vllm import preflight, service
from backends.vllm.preflight import CheckId, Status
from registry.audit import Actor
from registry.fingerprint import FINGERPRINT_KEY, fast_fingerprint
from registry.models import ModelEntry
from tests.backends.activation_fixtures import FakeVllmMixin
from tests.backends.model_files import (
    fake_gpus,
    nvidia_smi_command,
    truncate,
    write_model,
)
from tests.backends.vllm_helpers import free_port


def entry_for(path: Path, name: str = "org/model", **kw) -> ModelEntry:
    extra = kw.pop("extra_args", [])
    bc = {"port": 24002, "model_path": str(path), "extra_args": extra}
    merged = {
        "name": name,
        "backend": "vllm",
        "backend_config": bc,
        "served_model_id": kw.pop("served", "None"),
    }
    merged.update(kw.pop("merged", {}))
    return ModelEntry.objects.create(
        name=name,
        backend="vllm",
        backend_config=bc,
        served_model_id=""
        if merged["served_model_id"] == "None"
        else merged["served_model_id"],
        curated_raw=merged,
        provenance="curated",
        fingerprint=hashlib.sha256(name.encode()).hexdigest(),
        **kw,
    )


class PreflightTests(TestCase):
    def setUp(self):
        self.tmp = Path(tempfile.mkdtemp(prefix="iw-preflight-"))
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.model = write_model(self.tmp / "weights" / "m", shards=4)
        self.gpu_state = self.tmp / "gpus.json"
        fake_gpus(self.gpu_state)
        os.environ["FAKE_NVIDIA_SMI_STATE"] = str(self.gpu_state)
        self.addCleanup(os.environ.pop, "FAKE_NVIDIA_SMI_STATE", None)
        self.port = free_port()
        over = override_settings(
            IMAGEWORKS_VLLM_PORT=self.port,
            IMAGEWORKS_VLLM_ADMIN_URL="",
            IMAGEWORKS_MODEL_ROOTS=[str(self.tmp / "weights")],
            IMAGEWORKS_NVIDIA_SMI=nvidia_smi_command(),
            IMAGEWORKS_VLLM_MAX_MODEL_LEN="",
        )
        over.enable()
        self.addCleanup(over.disable)

    def run_on(self, entry) -> preflight.PreflightReport:
        return preflight.run_preflight(entry)

    def check(self, entry, cid) -> preflight.Check:
        report = self.run_on(entry)
        found = report.get(cid)
        self.assertIsNotNone(found, cid)
        return found

    def assertFails(self, entry, cid, *fragments):
        report = self.run_on(entry)
        self.assertFalse(report.ok)
        failed = {c.id: c for c in report.failed}
        self.assertEqual(list(failed), [cid], [c.message for c in report.failed])
        for fragment in fragments:
            self.assertIn(fragment, failed[cid].message)
        self.assertTrue(failed[cid].fix, "every failure says how to fix it")
        self.assertIn(failed[cid].message, report.refusal())
        return failed[cid]

    def test_a_good_model_passes_every_check(self):
        report = self.run_on(entry_for(self.model))
        self.assertTrue(report.ok, report.refusal())
        self.assertEqual(report.warnings, [])
        statuses = {c.id: c.status for c in report.checks}
        self.assertEqual(statuses[CheckId.FINGERPRINT], Status.SKIP)  # not locked
        self.assertEqual(statuses[CheckId.GPU_FIT], Status.OK)
        self.assertIn("Fits:", report.get(CheckId.GPU_FIT).message)
        data = report.as_dict()
        self.assertEqual(json.loads(json.dumps(data))["ok"], True)
        self.assertEqual(len(data["checks"]), len(CheckId))

    def test_truncated_shard(self):
        truncate(self.model / "model-00003-of-00004.safetensors", by=512)
        c = self.assertFails(
            entry_for(self.model),
            CheckId.SAFETENSORS,
            "model-00003-of-00004.safetensors is truncated",
            "(512 missing)",
        )
        self.assertIn("Download the named file(s) again", c.fix)

    def test_missing_shard(self):
        (self.model / "model-00002-of-00004.safetensors").unlink()
        self.assertFails(
            entry_for(self.model),
            CheckId.INDEX,
            "names model-00002-of-00004.safetensors, which do not exist",
        )
        (self.model / "model.safetensors.index.json").unlink()  # numbering alone
        self.assertFails(
            entry_for(self.model, "b"),
            CheckId.INDEX,
            "Shard(s) missing: model-00002-of-00004",
        )

    def test_missing_tokenizer(self):
        (self.model / "tokenizer.json").unlink()
        self.assertFails(entry_for(self.model), CheckId.TOKENIZER, "No tokenizer files")
        ok = self.check(
            entry_for(self.model, "t", extra_args=["--tokenizer", "/tok"]),
            CheckId.TOKENIZER,
        )
        self.assertEqual(ok.status, Status.OK)

    def test_max_model_len_above_the_models_limit(self):
        entry = entry_for(self.model, extra_args=["--max-model-len", "32k"])
        c = self.assertFails(
            entry, CheckId.MAX_MODEL_LEN, "32000 is above the model's own limit of 8192"
        )
        self.assertEqual(c.fix, "Lower --max-model-len to 8192 or less.")
        with override_settings(
            IMAGEWORKS_VLLM_MAX_MODEL_LEN="16384"
        ):  # the default too
            self.assertFails(
                entry_for(self.model, "b"), CheckId.MAX_MODEL_LEN, "16384 is above"
            )

    def test_taken_port_names_the_holder(self):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", self.port))
            sock.listen()
            c = self.assertFails(
                entry_for(self.model),
                CheckId.PORT,
                f"Port {self.port} is in use by PID {os.getpid()}",
            )
        self.assertIn("IMAGEWORKS_VLLM_PORT", c.fix)

    def test_duplicated_served_id(self):
        entry_for(self.model, "other", served="shared-id")
        self.assertFails(
            entry_for(self.model, "mine", served="shared-id"),
            CheckId.SERVED_ID,
            "'shared-id' is also used by other",
        )
        # an entry whose *name* is the served id counts too (its served id defaults to it)
        entry_for(self.model, "plain")
        self.assertFails(
            entry_for(self.model, "third", served="plain"),
            CheckId.SERVED_ID,
            "also used by plain",
        )
        # ...but a name whose entry serves under another id is free to use
        ok = self.check(
            entry_for(self.model, "fourth", served="other"), CheckId.SERVED_ID
        )
        self.assertEqual(ok.status, Status.OK)

    def test_changed_locked_file(self):
        fp = fast_fingerprint(self.model)
        locked = entry_for(
            self.model,
            locked=True,
            merged={"version_lock": {"locked": True, FINGERPRINT_KEY: fp}},
        )
        self.assertEqual(self.check(locked, CheckId.FINGERPRINT).status, Status.OK)
        cfg = self.model / "config.json"
        st = cfg.stat()
        os.utime(cfg, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
        (self.model / "extra.txt").write_text("x")
        c = self.assertFails(
            locked, CheckId.FINGERPRINT, "changed: config.json", "added: extra.txt"
        )
        self.assertIn("Run Verify", c.fix)
        no_fp = entry_for(self.model, "nofp", locked=True)
        self.assertEqual(
            self.check(no_fp, CheckId.FINGERPRINT).message,
            "no fingerprint was recorded when it was locked",
        )

    def test_extra_args_must_be_a_clean_argv(self):
        cases = [
            (["--port", "9"], "sets --port, which the console sets itself"),
            (["--model=/elsewhere"], "sets --model"),
            (["--max-num-seqs 4"], "'--max-num-seqs 4' is one list item"),
            (
                ["--gpu-memory-utilization", "1.5"],
                "--gpu-memory-utilization 1.5 is out of range",
            ),
            ([1, 2], "not a list of strings"),
        ]
        for i, (args, fragment) in enumerate(cases):
            self.assertFails(
                entry_for(self.model, f"x{i}", extra_args=args),
                CheckId.EXTRA_ARGS,
                fragment,
            )
        dup = self.check(
            entry_for(self.model, "dup", extra_args=["--dtype", "a", "--dtype", "b"]),
            CheckId.EXTRA_ARGS,
        )
        self.assertEqual(
            (dup.status, dup.message),
            (Status.WARN, "--dtype given more than once; vLLM uses the last."),
        )

    def test_path_roots_config_and_architecture(self):
        missing = entry_for(self.tmp / "weights" / "nowhere")
        c = self.assertFails(missing, CheckId.PATH, "does not exist")
        self.assertEqual(self.check(missing, CheckId.SAFETENSORS).status, Status.SKIP)
        outside = write_model(self.tmp / "elsewhere" / "m", shards=1)
        self.assertFails(
            entry_for(outside, "out"), CheckId.ROOTS, "outside the allowed model roots"
        )
        (self.model / "config.json").write_text(
            json.dumps({"model_type": "llama", "max_position_embeddings": 8})
        )
        self.assertFails(
            entry_for(self.model, "arch"), CheckId.ARCHITECTURE, "names no architecture"
        )
        (self.model / "config.json").write_text("{not json")
        self.assertFails(
            entry_for(self.model, "cfg"), CheckId.CONFIG, "config.json does not parse"
        )
        self.assertTrue(c.fix)

    def test_gpu_verdict_and_unknown_gpus(self):
        fake_gpus(self.gpu_state, used_mib=20000)
        entry = entry_for(self.model, extra_args=["--gpu-memory-utilization", "0.75"])
        self.assertFails(
            entry,
            CheckId.GPU_FIT,
            "only 4.5 GiB is free: lower --gpu-memory-utilization to 0.19",
        )
        fake_gpus(
            self.gpu_state,
            fail="NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.",
        )
        c = self.check(entry, CheckId.GPU_FIT)
        self.assertEqual(c.status, Status.SKIP)
        self.assertIn("GPUs unknown", c.message)


class PreflightWithOurServerTests(FakeVllmMixin, TransactionTestCase):
    def test_port_held_by_our_own_server_is_fine(self):
        model = write_model(self.weights / "a", shards=1)
        with override_settings(
            IMAGEWORKS_MODEL_ROOTS=[], IMAGEWORKS_NVIDIA_SMI=str(self.tmp / "none")
        ):
            running = entry_for(model, "running-model")
            service.activate(running, Actor.system("tester"))
            c = preflight.run_preflight(entry_for(model, "next-model")).get(
                CheckId.PORT
            )
        self.assertEqual(c.status, Status.OK, c.message)
        self.assertEqual(
            c.message,
            f"Port {self.port} is held by our own server (running-model), which activation replaces.",
        )
