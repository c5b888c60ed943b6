"""Measured GPU memory of a ready server (fake vLLM + fake nvidia-smi), keyed by launch."""

from __future__ import annotations

import os

import psutil
from django.test import TransactionTestCase, override_settings

from backends.models import MemoryMeasurement
from backends.vllm import memory, service
from registry.audit import Actor
from tests.backends.activation_fixtures import FakeVllmMixin
from tests.backends.model_files import fake_gpus, nvidia_smi_command, write_model
from tests.backends.test_preflight import entry_for
from tests.backends.vllm_helpers import wait_until

MIB = 2**20


class MeasuredMemoryTests(FakeVllmMixin, TransactionTestCase):
    def setUp(self):
        super().setUp()
        self.gpu_state = self.tmp / "gpus.json"
        fake_gpus(self.gpu_state, count=2)
        os.environ["FAKE_NVIDIA_SMI_STATE"] = str(self.gpu_state)
        self.addCleanup(os.environ.pop, "FAKE_NVIDIA_SMI_STATE", None)
        over = override_settings(IMAGEWORKS_NVIDIA_SMI=nvidia_smi_command())
        over.enable()
        self.addCleanup(over.disable)

    def test_measured_figure_is_recorded_and_shown_first(self):
        self.fake_env(workers=1)
        entry = entry_for(write_model(self.weights / "m", shards=2), "m")
        act = service.activate(entry, Actor.system("tester"))
        server = psutil.Process(act.pid)
        self.assertTrue(wait_until(lambda: len(server.children()) == 1))
        worker = server.children()[0].pid
        fake_gpus(
            self.gpu_state,
            count=2,
            used_mib=17500,
            processes=[  # the server and its worker, one per GPU, plus a stranger
                {
                    "pid": act.pid,
                    "gpu_uuid": "GPU-fake-0",
                    "process_name": "python",
                    "used_memory": 17000,
                },
                {
                    "pid": worker,
                    "gpu_uuid": "GPU-fake-1",
                    "process_name": "python",
                    "used_memory": 16000,
                },
                {
                    "pid": 1,
                    "gpu_uuid": "GPU-fake-0",
                    "process_name": "Xorg",
                    "used_memory": 500,
                },
            ],
        )

        row = memory.record_measurement(act)

        self.assertEqual(row.measured_bytes, 17000 * MIB)
        self.assertEqual(row.per_gpu, {"0": 17000 * MIB, "1": 16000 * MIB})
        self.assertEqual(row.source, "nvidia-smi")
        budget = int(0.75 * 24564 * MIB)  # vLLM reserves utilization x total
        self.assertEqual(row.estimated_bytes, budget)
        view = memory.memory_view("m", act.command)
        self.assertEqual(view.measured_bytes, 17000 * MIB)
        self.assertAlmostEqual(view.error_then, (budget - 17000 * MIB) / (17000 * MIB))
        self.assertRegex(
            view.text,
            r"^Measured 16\.6 GiB on GPU 0, GPU 1 \(.*\); the formula says 18\.0 GiB \(\+8%\)\.$",
        )
        # Same launch on another port: same key. Other memory flags: not the same launch.
        moved = [a if a != str(self.port) else "9999" for a in act.command]
        self.assertIsNotNone(memory.memory_view("m", moved))
        self.assertIsNone(
            memory.memory_view("m", [*act.command, "--max-model-len", "4096"])
        )

    def test_nothing_measurable_records_nothing(self):
        entry = entry_for(write_model(self.weights / "m", shards=1), "m")
        act = service.activate(entry, Actor.system("tester"))
        self.assertIsNone(memory.record_measurement(act))  # no process on any GPU
        fake_gpus(self.gpu_state, fail="NVIDIA-SMI has failed")
        self.assertIsNone(memory.record_measurement(act))  # GPUs unknown
        self.assertEqual(MemoryMeasurement.objects.count(), 0)
