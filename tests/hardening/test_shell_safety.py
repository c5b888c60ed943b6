"""Hostile names and ``extra_args`` never reach a shell; model paths outside
``IMAGEWORKS_MODEL_ROOTS`` are refused for verify and activation."""

from __future__ import annotations

import ast
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psutil
import pytest
from django.test import TestCase, override_settings

from backends.vllm import process
from backends.vllm.command import LaunchRefused, VllmConfig, build_launch
from registry.services.verify import OutsideModelRoots, check_model_root
from tests.backends.vllm_helpers import FAKE_ENV, FAKE_VLLM, free_port, kill_fakes

REPO = Path(__file__).resolve().parents[2]
SCANNED = ("registry", "backends", "imageworks_site")


def _hostile_args(marker: Path) -> list[str]:
    return [
        f"; touch {marker}",
        f"$(touch {marker})",
        f"`touch {marker}`",
        f"| touch {marker}",
        f"&& touch {marker}",
        f"x\ntouch {marker}",
        "--max-num-seqs",
        "4",
        "'quoted' \"double\" $HOME ${PATH} *",
        "; rm -rf /",
    ]


def _config(tmp: Path, port: int, **kw) -> VllmConfig:
    return VllmConfig(
        launcher=(sys.executable, str(FAKE_VLLM)),
        host="127.0.0.1",
        port=port,
        start_timeout=10.0,
        stop_grace=2.0,
        staging_dir=tmp / "_staging",
        log_dir=tmp / "logs",
        env_allowlist=("PATH", *FAKE_ENV),
        **kw,
    )


def _merged(name: str, model: Path, extra) -> dict:
    return {
        "name": name,
        "backend": "vllm",
        "backend_config": {
            "port": 24002,
            "model_path": str(model),
            "extra_args": extra,
        },
        "served_model_id": f"{name} $(touch /tmp/x)",
    }


def test_hostile_extra_args_arrive_verbatim_as_separate_argv_items(tmp_path):
    marker = tmp_path / f"pwned-{uuid.uuid4().hex}"
    model = tmp_path / "weights" / "m"
    model.mkdir(parents=True)
    (model / "config.json").write_text("{}")
    name = f"evil; touch {marker} $(touch {marker}) `touch {marker}`"
    extra = _hostile_args(marker)
    cfg = _config(tmp_path, free_port())
    spec = build_launch(_merged(name, model, extra), cfg)
    assert spec.argv[-len(extra) :] == extra
    assert spec.served_model_id == f"{name} $(touch /tmp/x)"
    log_path = process.new_log_path(cfg.log_dir, name)
    assert (
        ";" not in log_path.name
        and "$" not in log_path.name
        and "`" not in log_path.name
    )
    spawned = process.spawn(
        spec.argv, log_path=log_path, env=process.build_env(cfg.env_allowlist)
    )
    try:
        deadline = time.monotonic() + 5
        cmdline: list[str] = []
        while time.monotonic() < deadline:
            try:
                cmdline = psutil.Process(spawned.popen.pid).cmdline()
            except psutil.Error:
                break
            if cmdline[1:2] == [str(FAKE_VLLM)]:
                break
            time.sleep(0.05)
        assert cmdline == spec.argv, "argv changed on its way to the process"
        time.sleep(0.5)  # a shell would have run the touch by now
        assert not marker.exists(), "a shell interpreted the arguments"
    finally:
        process.stop_group(spawned.identity, grace=1.0, popen=spawned.popen)
        kill_fakes()
    assert not marker.exists()


def test_a_string_extra_args_is_split_without_a_shell(tmp_path):
    marker = tmp_path / "pwned"
    model = tmp_path / "m"
    model.mkdir()
    spec = build_launch(
        _merged("m", model, f"--max-num-seqs 4 '$(touch {marker})'"),
        _config(tmp_path, 24001),
    )
    assert spec.argv[-3:] == ["--max-num-seqs", "4", f"$(touch {marker})"]


def test_spawn_refuses_a_string_command(tmp_path):
    with pytest.raises(TypeError):
        process.spawn("echo hi", log_path=tmp_path / "x.log", env={})


# --- no shell anywhere in the code ---------------------------------------------------


def _python_files():
    for top in SCANNED:
        for path in sorted((REPO / top).rglob("*.py")):
            if "migrations" not in path.parts:
                yield path


def _is_stringy(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        or isinstance(node, ast.JoinedStr | ast.BinOp)
    )


SUBPROCESS_CALLS = {
    "run",
    "call",
    "check_call",
    "check_output",
    "Popen",
    "getoutput",
    "getstatusoutput",
}


def test_no_module_uses_a_shell():
    problems = []
    files = list(_python_files())
    assert len(files) > 20
    for path in files:
        tree = ast.parse(path.read_text(), filename=str(path))
        rel = path.relative_to(REPO)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            dotted = ast.unparse(func)
            for kw in node.keywords:
                if kw.arg == "shell" and not (
                    isinstance(kw.value, ast.Constant) and kw.value.value is False
                ):
                    problems.append(f"{rel}:{node.lineno}: shell= in {dotted}()")
            if dotted in (
                "os.system",
                "os.popen",
                "system",
                "popen",
            ) or dotted.endswith(
                ("create_subprocess_shell", "os.exec", "commands.getoutput")
            ):
                problems.append(f"{rel}:{node.lineno}: {dotted}()")
            if (
                dotted.startswith("subprocess.")
                and dotted.split(".")[-1] in SUBPROCESS_CALLS
            ):
                name = dotted.split(".")[-1]
                if name in ("getoutput", "getstatusoutput"):
                    problems.append(f"{rel}:{node.lineno}: {dotted}() runs a shell")
                elif node.args and _is_stringy(node.args[0]):
                    problems.append(
                        f"{rel}:{node.lineno}: {dotted}() with a string command"
                    )
    assert problems == [], "\n".join(problems)


# --- model roots -------------------------------------------------------------------


class ModelRootTests(TestCase):
    def setUp(self):
        self.tmp = Path(tempfile.mkdtemp(prefix="iw-roots-"))
        self.root = self.tmp / "models"
        self.inside = self.root / "org" / "good"
        self.inside.mkdir(parents=True)
        (self.inside / "config.json").write_text("{}")
        self.outside = self.tmp / "elsewhere" / "secret"
        self.outside.mkdir(parents=True)
        (self.outside / "config.json").write_text("{}")
        self.sibling = self.tmp / "models-evil"  # same prefix, not inside
        self.sibling.mkdir()
        (self.sibling / "config.json").write_text("{}")
        self.link = self.root / "escape"
        os.symlink(self.outside, self.link)
        self.roots = override_settings(IMAGEWORKS_MODEL_ROOTS=[self.root])
        self.roots.enable()
        self.addCleanup(self.roots.disable)

    def escaping_paths(self):
        return [
            self.outside,
            self.root / ".." / "elsewhere" / "secret",
            self.inside / ".." / ".." / ".." / "elsewhere" / "secret",
            self.link,
            self.link / ".",
            self.sibling,
            Path("/etc"),
        ]

    def test_verify_refuses_paths_outside_the_roots(self):
        check_model_root(self.inside)
        check_model_root(self.root / "org" / ".." / "org" / "good")
        for path in self.escaping_paths():
            with self.assertRaises(OutsideModelRoots, msg=str(path)) as ctx:
                check_model_root(path)
            self.assertIn("outside the allowed model roots", str(ctx.exception))
            self.assertIn("IMAGEWORKS_MODEL_ROOTS", str(ctx.exception))

    def test_the_verify_service_refuses_with_a_clear_failed_audit_row(self):
        from registry.audit import Actor
        from registry.models import ActionLog
        from registry.services.verify import verify
        from tests.hardening.common import sync_sample

        registry_dir = self.tmp / "configs"
        with override_settings(
            IMAGEWORKS_REGISTRY_DIR=registry_dir,
            IMAGEWORKS_STAGING_DIR=self.tmp / "_staging",
        ):
            # the sample's model folders live outside the configured root
            sync_sample(registry_dir, self.tmp / "sample-models")
            from registry.models import ModelEntry

            entry = ModelEntry.objects.filter(backend="vllm").first()
            with self.assertRaises(OutsideModelRoots) as ctx:
                verify(entry.name, Actor.system("tests"))
        self.assertIn("outside the allowed model roots", str(ctx.exception))
        row = ActionLog.objects.filter(action="verify").first()
        self.assertEqual(row.outcome, "failed")
        self.assertIn("outside the allowed model roots", row.message)

    def test_activation_refuses_paths_outside_the_roots(self):
        from backends.vllm import service
        from tests.backends.activation_fixtures import make_entry

        cfg = _config(self.tmp, 24001, model_roots=(self.root,))
        ok = _merged("ok", self.inside, [])
        self.assertEqual(build_launch(ok, cfg).model_path, str(self.inside))
        for path in self.escaping_paths():
            with self.assertRaises(LaunchRefused, msg=str(path)) as ctx:
                build_launch(_merged("bad", path, []), cfg)
            self.assertIn("outside the allowed model roots", str(ctx.exception))
        # through the service, as the views and the job call it
        entry = make_entry("outside/model", self.tmp / "elsewhere")
        with self.assertRaises(service.ActivationRefused) as ctx:
            service.prepare(entry)
        self.assertIn("outside the allowed model roots", str(ctx.exception))

    def test_extra_args_cannot_point_vllm_at_another_model(self):
        cfg = _config(self.tmp, 24001, model_roots=(self.root,))
        for extra in (["--model", str(self.outside)], [f"--model={self.outside}"]):
            with self.assertRaises(LaunchRefused) as ctx:
                build_launch(_merged("ok", self.inside, extra), cfg)
            self.assertIn("--model", str(ctx.exception))

    def test_proxy_mode_without_local_files_still_checks_the_roots(self):
        cfg = _config(
            self.tmp,
            24001,
            model_roots=(self.root,),
            admin_url="http://gpu-host:8001",
            admin_check_paths=False,
        )
        remote_ok = self.root / "only" / "on" / "the" / "gpu-host"
        self.assertEqual(
            build_launch(
                _merged("ok", remote_ok, []), cfg, check_paths=False
            ).model_path,
            str(remote_ok),
        )
        for path in (self.root / ".." / "etc", Path("/srv/other")):
            with self.assertRaises(LaunchRefused):
                build_launch(_merged("bad", path, []), cfg, check_paths=False)
