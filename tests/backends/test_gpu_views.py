"""Will it fit? The drawer's estimate and measured figure, and the GPU panel, against
the fake nvidia-smi (issue 13 §3). The fake vLLM shows itself on the fake GPU once
ready, like a real server, so the activate job's last step measures real figures."""

from __future__ import annotations

import os

from django.test import override_settings
from django.urls import reverse

from backends.models import MemoryMeasurement
from backends.vllm import service
from registry.audit import Actor
from registry.choices import JobStatus
from registry.models import Job
from tests.backends.activation_fixtures import FakeVllmMixin, make_entry
from tests.backends.model_files import fake_gpus, nvidia_smi_command
from tests.base import BaseTestCase

HTMX = {"HTTP_HX_REQUEST": "true"}
MIB = 2**20
XORG = {
    "pid": 1,
    "gpu_uuid": "GPU-fake-0",
    "process_name": "/usr/lib/Xorg",
    "used_memory": 300,
}


class GpuViewTests(FakeVllmMixin, BaseTestCase):
    def setUp(self):
        super().setUp()
        self.gpu_state = self.tmp / "gpus.json"
        fake_gpus(self.gpu_state, processes=[XORG])
        os.environ["FAKE_NVIDIA_SMI_STATE"] = str(self.gpu_state)
        self.addCleanup(os.environ.pop, "FAKE_NVIDIA_SMI_STATE", None)
        over = override_settings(IMAGEWORKS_NVIDIA_SMI=nvidia_smi_command())
        over.enable()
        self.addCleanup(over.disable)
        self.entry = make_entry("model-a", self.weights)

    def fit(self, user=None):
        return self.client_for(user or self.viewer).get(
            reverse("backends:fit", args=[self.entry.pk]), **HTMX
        )

    def test_fit_fits_tight_and_wont_fit_with_the_numbers(self):
        fits = self.fit()
        self.assertContains(fits, 'data-verdict="fits"')
        self.assertContains(
            fits,
            "Fits: weights 0.0 GiB + KV cache 1.0 GiB + overhead 2.0 GiB = 3.0 GiB of a 18.0 GiB budget on GPU 0",
        )
        self.assertContains(
            fits, "<dt>Needs per GPU</dt><dd><strong>3.0 GiB</strong></dd>", html=True
        )
        self.assertNotContains(fits, 'data-testid="fit-measured"')

        fake_gpus(self.gpu_state, used_mib=5000)  # 18.4 of 24 GiB free
        tight = self.fit()
        self.assertContains(tight, 'data-verdict="tight"')
        self.assertContains(tight, "Tight:")

        fake_gpus(self.gpu_state, used_mib=20000)
        wont = self.fit()
        self.assertContains(wont, 'data-verdict="won&#x27;t fit"')
        self.assertContains(
            wont, "only 4.5 GiB is free: lower --gpu-memory-utilization to 0.19"
        )

    def test_a_missing_model_folder_is_one_sentence(self):
        import shutil

        shutil.rmtree(self.entry.model_dir)
        text = self.fit().content.decode()
        self.assertIn("No estimate: Model files not found:", text)
        self.assertIn("does not exist.", text)
        self.assertNotIn("..", text.replace("...", ""))

    def test_unknown_gpus_say_why(self):
        fake_gpus(
            self.gpu_state,
            fail="NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.",
        )
        response = self.fit()
        self.assertContains(response, 'data-verdict="unknown"')
        self.assertContains(response, "GPUs unknown")
        self.assertContains(
            response, "couldn&#x27;t communicate with the NVIDIA driver"
        )
        panel = self.client_for(self.viewer).get(reverse("backends:gpus"), **HTMX)
        self.assertContains(panel, 'data-testid="gpu-unknown"')
        self.assertContains(panel, "Unknown")

    def test_the_activate_job_measures_memory_and_the_drawer_shows_it_first(self):
        self.fake_env(gpu_state=self.gpu_state, gpu_mib=17000)
        with self.captureOnCommitCallbacks(execute=True):
            self.client_for(self.operator).post(
                reverse("backends:activate", args=[self.entry.pk]), **HTMX
            )
        job = Job.objects.get(kind="activate")
        self.assertEqual(job.status, JobStatus.SUCCEEDED, job.error)
        self.assertEqual(job.result["memory"], "Holds 16.6 GiB of GPU memory.")
        row = MemoryMeasurement.objects.get()
        self.assertEqual(
            (row.measured_bytes, row.per_gpu), (17000 * MIB, {"0": 17000 * MIB})
        )

        response = self.fit()

        self.assertContains(response, 'data-testid="fit-measured"')
        self.assertRegex(
            response.content.decode(),
            r"Measured 16\.6 GiB on GPU 0 \(.*\); the formula says 18\.0 GiB \(\+8%\)\.",
        )
        # measured first, then the estimate
        text = response.content.decode()
        self.assertLess(text.index("fit-measured"), text.index("fit-estimate"))

        panel = self.client_for(self.viewer).get(reverse("backends:gpus"), **HTMX)
        self.assertContains(panel, "17.0 GiB used of 24.0 GiB")  # 400 + 17000 MiB
        self.assertContains(panel, 'data-testid="gpu-ours"')
        self.assertContains(
            panel,
            '<span class="badge ok">our model</span> <strong class="mono">model-a</strong>',
            html=False,
        )
        self.assertContains(panel, "Xorg")
        self.assertContains(panel, "pid 1")
        service.stop(Actor.system("tester"))

    def test_gpu_card_on_the_models_page_and_panel_on_the_backends_page(self):
        models = self.client_for(self.viewer).get(reverse("registry:modelentry_list"))
        self.assertContains(models, 'hx-get="/backends/gpus/?card=1"')
        health = self.client_for(self.viewer).get(reverse("health:overview"))
        self.assertContains(health, 'hx-get="/backends/gpus/"')
        card = self.client_for(self.viewer).get(
            reverse("backends:gpus") + "?card=1", **HTMX
        )
        self.assertContains(card, 'data-testid="gpu-card"')
        self.assertContains(card, "NVIDIA GeForce RTX 4090")
        self.assertContains(
            card, "0.4 GiB used of 24.0 GiB, <strong>23.6 GiB free</strong>"
        )
        outsider = self.client_for(self.outsider).get(
            reverse("registry:modelentry_list")
        )
        self.assertNotContains(outsider, "gpu-card", status_code=outsider.status_code)
