"""The ``imageworks-models`` command line: outputs and exit codes.

Most tests run ``main([...])`` in-process (capsys); one runs the installed console
script in a real subprocess against a throwaway SQLite database.
"""

from __future__ import annotations

import ast
import gc
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from django.test import override_settings

from imageworks_site.cli import main
from registry import layers
from registry.choices import Action, Source
from registry.models import ActionLog, ModelEntry
from tests.utils import FIXTURES_DIR, REPO_DIR, shared_fixtures_available

# The console script installed beside this interpreter (a venv's bin/, or the
# system's), whatever the environment is called.
SCRIPT = Path(sys.executable).with_name("imageworks-models")
FILES = (layers.CURATED_FILE, layers.DISCOVERED_FILE, layers.SNAPSHOT_FILE)


def _entry(name: str, **extra) -> dict:
    return {"name": name, "backend": "vllm", **extra}


@pytest.fixture
def registry_dir(tmp_path):
    folder = tmp_path / "configs"
    folder.mkdir()
    with override_settings(
        IMAGEWORKS_REGISTRY_DIR=folder, IMAGEWORKS_STAGING_DIR=tmp_path / "_staging"
    ):
        yield folder


def _write(folder: Path, file_name: str, items) -> None:
    (folder / file_name).write_text(json.dumps(items, indent=2) + "\n")


@pytest.fixture
def small(registry_dir):
    _write(
        registry_dir,
        layers.CURATED_FILE,
        [
            _entry(
                "qwen-vl",
                roles=["caption"],
                capabilities={"text": True, "vl": True},
            ),
            _entry("llama", backend="ollama"),
            _entry("testmodel-x"),
        ],
    )
    _write(
        registry_dir,
        layers.DISCOVERED_FILE,
        [
            _entry(
                "qwen-vl",
                version_lock={"locked": True},
                artifacts={"aggregate_sha256": "ab" * 32},
            )
        ],
    )
    return registry_dir


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


EVERY_COMMAND = (
    "list",
    "show",
    "sync",
    "export",
    "verify",
    "lock",
    "unlock",
    "activate-model",
    "current-model",
    "import",
    "show-backends",
    "reconcile",
    "preflight",
    "bulk",
)


def test_help_lists_every_command(capsys):
    """Commands of every app are there: one broken import would drop them silently."""
    code, out, _ = run(capsys, "--help")
    assert code == 0
    listed = re.findall(r"^    (\S+)", out, re.MULTILINE)
    assert sorted(listed) == sorted(EVERY_COMMAND), out


def test_readme_lists_every_command():
    """README's "Command line" block names every command ``--help`` lists."""
    readme = (REPO_DIR / "README.md").read_text()
    block = readme.split("## Command line", 1)[1].split("```text", 1)[1]
    block = block.split("```", 1)[0]
    missing = [
        cmd
        for cmd in EVERY_COMMAND
        if not re.search(rf"(?<![\w-]){re.escape(cmd)}(?![\w-])", block)
    ]
    assert missing == [], f"README's command list lacks {missing}"


def test_a_plugin_that_cannot_be_imported_fails_loudly(monkeypatch):
    from imageworks_site import cli

    monkeypatch.setattr(cli, "PLUGINS", (*cli.PLUGINS, "registry.cli.no_such_module"))
    with pytest.raises(ModuleNotFoundError, match="registry.cli.no_such_module"):
        cli.build_parser()


@pytest.mark.django_db
class TestList:
    def test_json_rows_like_the_original(self, small, capsys):
        code, out, err = run(capsys, "list", "--json")
        assert code == 0, err
        rows = json.loads(out)
        assert rows == [
            {
                "name": "llama",
                "backend": "ollama",
                "locked": False,
                "vision": False,
                "roles": [],
                "hash": "",
            },
            {
                "name": "qwen-vl",
                "backend": "vllm",
                "locked": True,
                "vision": True,
                "roles": ["caption"],
                "hash": "ab" * 6,
            },
        ]

    def test_in_process_call_leaves_the_garbage_collector_as_it_was(
        self, small, capsys
    ):
        """main() pauses and freezes the collector for start-up; a caller gets it back."""
        assert gc.isenabled() and gc.get_freeze_count() == 0
        assert run(capsys, "list")[0] == 0
        assert gc.isenabled() and gc.get_freeze_count() == 0
        gc.disable()
        try:
            assert run(capsys, "current-model")[0] == 0
            assert not gc.isenabled() and gc.get_freeze_count() == 0
        finally:
            gc.enable()

    def test_filters(self, small, capsys):
        def names(*args):
            code, out, _ = run(capsys, "list", "--json", *args)
            assert code == 0
            return [r["name"] for r in json.loads(out)]

        assert names("--backend", "ollama") == ["llama"]
        assert names("--role", "caption") == ["qwen-vl"]
        assert names("--role", "capt") == []
        assert names("--locked") == ["qwen-vl"]
        assert names("--unlocked") == ["llama"]
        assert names("--testing") == ["testmodel-x"]
        assert names("--no-testing") == ["llama", "qwen-vl"]
        assert names("--all") == ["llama", "qwen-vl", "testmodel-x"]

    def test_table(self, small, capsys):
        code, out, _ = run(capsys, "list")
        assert code == 0
        lines = out.splitlines()
        assert lines[0].split() == [
            "NAME",
            "BACKEND",
            "LOCKED",
            "VISION",
            "ROLES",
            "HASH",
        ]
        assert lines[2].split() == ["llama", "ollama", "no", "no", "-", "-"]
        assert "2 entries" in out
        code, out, _ = run(capsys, "list", "--backend", "triton")
        assert (code, out.strip()) == (0, "No entries match.")

    def test_usage_error_exit_2(self, small, capsys):
        code, _, err = run(capsys, "list", "--locked", "--unlocked")
        assert code == 2
        assert "not allowed with" in err
        code, _, _ = run(capsys, "frobnicate")
        assert code == 2

    def test_every_command_syncs_first(self, small, capsys):
        run(capsys, "list", "--json")
        _write(small, layers.DISCOVERED_FILE, [_entry("newcomer")])
        code, out, _ = run(capsys, "list", "--json", "--all")
        assert code == 0
        assert "newcomer" in [r["name"] for r in json.loads(out)]


@pytest.mark.django_db
class TestShow:
    def test_merged_entry(self, small, capsys):
        code, out, _ = run(capsys, "show", "qwen-vl")
        assert code == 0
        entry = json.loads(out)
        assert entry["version_lock"] == {"locked": True}
        assert entry["roles"] == ["caption"]
        code, out, _ = run(capsys, "show", "qwen-vl", "--layers")
        data = json.loads(out)
        assert data["curated"]["roles"] == ["caption"]
        assert data["discovered"]["version_lock"] == {"locked": True}
        assert data["fingerprint"] == ModelEntry.objects.get(name="qwen-vl").fingerprint

    def test_unknown_name(self, small, capsys):
        code, out, err = run(capsys, "show", "no/such (model)")
        assert code == 1
        assert out == ""
        assert err.strip() == "Model 'no/such (model)' not found in registry"


@pytest.mark.django_db
class TestSync:
    def test_summary_and_audit(self, small, capsys):
        code, out, _ = run(capsys, "sync")
        assert code == 0
        assert out.startswith("Registry reloaded: 3 added")
        row = ActionLog.objects.first()
        assert (row.action, row.source) == (Action.SYNC, Source.CLI)
        code, out, _ = run(capsys, "sync")
        assert out.strip() == "No registry file changed since the last reload."
        code, out, _ = run(capsys, "sync", "--force", "-v")
        assert "0 added, 0 changed, 0 removed, 3 unchanged" in out

    def test_problems_on_stderr(self, small, capsys):
        _write(small, layers.DISCOVERED_FILE, [_entry("ok"), {"backend": "vllm"}])
        code, out, err = run(capsys, "sync")
        assert code == 0
        assert "skipped model_registry.discovered.json[1]: missing name" in err

    def test_malformed_json(self, small, capsys):
        run(capsys, "sync")
        (small / layers.CURATED_FILE).write_text("[{oops")
        for argv in (["sync"], ["list"], ["show", "llama"], ["export"]):
            code, out, err = run(capsys, *argv)
            assert code == 2, argv
            assert "The registry file is broken: " in err
            assert "model_registry.curated.json, not valid JSON" in err
            assert "Traceback" not in err
        # The last good mirror stays.
        assert ModelEntry.objects.filter(name="llama").exists()

    def test_missing_registry(self, registry_dir, capsys):
        code, _, err = run(capsys, "sync")
        assert code == 1
        assert "No registry files found" in err


@pytest.mark.django_db
class TestExport:
    def test_real_fixtures_byte_for_byte(self, registry_dir, capsys, tmp_path):
        if not shared_fixtures_available():
            pytest.skip("shared fixtures not available")
        for name in FILES:
            shutil.copy(FIXTURES_DIR / name, registry_dir / name)
        expected = (FIXTURES_DIR / layers.SNAPSHOT_FILE).read_text()
        code, out, _ = run(capsys, "export")
        assert code == 0
        assert out == expected
        target = tmp_path / "out" / "export.json"
        code, out, err = run(capsys, "export", "--output", str(target))
        assert code == 0
        assert target.read_text() == expected
        assert "Exported 16 entries" in err

    def test_export_layers_without_snapshot(self, small, capsys):
        code, out, _ = run(capsys, "export")
        assert code == 0
        data = json.loads(out)
        # Discovered order first, then curated-only names; curated wins.
        assert [e["name"] for e in data] == ["qwen-vl", "llama", "testmodel-x"]
        assert data[0]["roles"] == ["caption"]
        assert data[0]["version_lock"] == {"locked": True}
        assert out.endswith("]\n")

    def test_unwritable_output(self, small, capsys, tmp_path):
        folder = tmp_path / "ro"
        folder.mkdir()
        folder.chmod(0o555)
        try:
            if os.access(folder, os.W_OK):
                pytest.skip("running as root: directory permissions are not enforced")
            code, _, err = run(capsys, "export", "-o", str(folder / "x.json"))
        finally:
            folder.chmod(0o755)
        assert code == 1
        assert "Could not write" in err


def test_database_unreachable(tmp_path):
    """No tables / no database: one clear line and exit 3, not a traceback."""
    env = _subprocess_env(tmp_path)
    env["IMAGEWORKS_SQLITE_PATH"] = str(tmp_path / "missing-dir" / "db.sqlite3")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "imageworks_site.cli",
            "list",
        ],
        env=env,
        cwd=REPO_DIR,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 3, proc.stderr
    assert "Cannot reach the database" in proc.stderr
    assert "Traceback" not in proc.stderr


def _subprocess_env(tmp_path: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "IMAGEWORKS_", "DATABASE_URL"))
    }
    env.update(
        {
            "IMAGEWORKS_VAR_DIR": str(tmp_path / "var"),
            "IMAGEWORKS_SQLITE_PATH": str(tmp_path / "cli.sqlite3"),
            "IMAGEWORKS_REGISTRY_DIR": str(tmp_path / "reg"),
            "IMAGEWORKS_STAGING_DIR": str(tmp_path / "_staging"),
            "LOG_LEVEL": "WARNING",
        }
    )
    return env


def _loaded_modules(
    command: list[str], modules: list[str], env: dict[str, str], cwd: Path
) -> tuple[subprocess.CompletedProcess, list[str] | None]:
    """Run the CLI's ``main(command)`` in a new interpreter: which of ``modules`` it loaded."""
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from imageworks_site.cli import main;"
            f" code = main({command!r});"
            f" print(sorted(m for m in {modules!r} if m in sys.modules));"
            " raise SystemExit(code)",
        ],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = proc.stdout.splitlines()
    return proc, (ast.literal_eval(lines[-1]) if lines else None)


def _ensure_script() -> str | None:
    """The console script must be installed (``pip install -e .``): CI fails without it."""
    if SCRIPT.exists():
        return None
    message = f"the imageworks-models console script is not installed at {SCRIPT}"
    if os.environ.get("CI"):
        pytest.fail(message)
    return message


def test_installed_console_script_subprocess():
    reason = _ensure_script()
    if reason:
        pytest.skip(reason)
    tmp_path = Path(tempfile.mkdtemp(prefix="cli-subprocess-"))
    try:
        env = _subprocess_env(tmp_path)
        reg = tmp_path / "reg"
        reg.mkdir()
        if shared_fixtures_available():
            for name in FILES:
                shutil.copy(FIXTURES_DIR / name, reg / name)
        else:
            _write(reg, layers.CURATED_FILE, [_entry("alpha")])
        python = sys.executable
        subprocess.run(
            [python, "manage.py", "migrate", "-v", "0"],
            env=env,
            cwd=REPO_DIR,
            check=True,
            timeout=300,
        )
        proc = subprocess.run(
            [str(SCRIPT), "list", "--json"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
        rows = json.loads(proc.stdout)
        assert rows and {"name", "backend", "locked", "vision", "roles", "hash"} == set(
            rows[0]
        )
        proc = subprocess.run(
            [str(SCRIPT), "show", "definitely-not-there"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 1
        assert (
            proc.stderr.strip() == "Model 'definitely-not-there' not found in registry"
        )
        for command in (["current-model"], ["show-backends"]):
            proc = subprocess.run(
                [str(SCRIPT), *command],
                env=env,
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert proc.returncode == 0, (command, proc.stderr)
        # The CLI starts without the web-only apps and the job modules (their
        # imports were most of the start-up): nothing of django-tables2,
        # django-filter, django-q2, psycopg, django-ninja/pydantic, httpx, the vLLM
        # service or the hashing code; `--help` does not even load Django's ORM.
        # `current-model` with no state file and no live activation has nothing to
        # reconcile: it does not load the reconcile code, psutil or filelock. A sync
        # that changes no listing does not load the search index (rapidfuzz).
        heavy = (
            "django_tables2 django_filters django_q psycopg ninja pydantic httpx "
            "backends.vllm.service backends.tasks inventory.tasks "
            "registry.services.verify registry.search rapidfuzz"
        )
        reconcile = " backends.vllm.reconcile backends.clients psutil filelock"
        for command, also in (
            (["--help"], " django.db.models"),
            (["list"], reconcile),
            (["current-model"], reconcile),
        ):
            proc, loaded = _loaded_modules(
                command, (heavy + also).split(), env, tmp_path
            )
            assert proc.returncode == 0, (command, proc.stderr)
            assert loaded == [], command
        # A dead server recorded in the state file is still noticed: current-model
        # reconciles (removes the stale file) and answers null.
        state = tmp_path / "_staging" / "active_vllm.json"
        state.parent.mkdir(exist_ok=True)
        state.write_text(
            json.dumps(
                {
                    "logical_name": "gone",
                    "served_model_id": "gone",
                    "port": 9,
                    "pid": 999999,
                    "started_at": 1.0,
                }
            )
        )
        proc, loaded = _loaded_modules(
            ["current-model"], reconcile.split(), env, tmp_path
        )
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.splitlines()[0] == "null"
        assert "backends.vllm.reconcile" in loaded
        assert not state.exists()
        if shared_fixtures_available():
            proc = subprocess.run(
                [str(SCRIPT), "export"],
                env=env,
                cwd=tmp_path,
                capture_output=True,
                timeout=120,
            )
            assert proc.returncode == 0
            assert proc.stdout == (FIXTURES_DIR / layers.SNAPSHOT_FILE).read_bytes()
    finally:
        shutil.rmtree(tmp_path, ignore_errors=True)
