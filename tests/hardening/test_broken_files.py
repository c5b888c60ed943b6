"""Malformed layer files through every surface a user has (issue 17, section 1).

Each case of ``broken.CASES`` is written over the curated or the discovered layer of a
synced sample registry, then one surface is used: the Reload button, the Models page,
the drawer, the editor (open, preview, confirm), lock, unlock, the import wizard, and
the CLI's ``list``, ``sync`` and ``unlock`` (the installed console script, as a
subprocess). What the user must see:

* no 5xx and no traceback; the CLI exits 2 with one error line on stderr;
* nothing written: every file of the registry folder byte-identical afterwards;
* the Models table still shows what the last good sync mirrored;
* the message "the registry file is broken: <file>, <what>, <where>".

The first three are ``test_*_is_refused_safely``; the wording is ``test_*_message``
(one assertion family each, so a failure says exactly what is missing).
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import pytest
from django.test import Client

from tests.hardening.broken import (
    BROKEN_RE,
    CASES,
    LAYER_FILES,
    corrupt,
    describe_difference,
    folder_state,
    form_fields,
    page_text,
)

REPO = Path(__file__).resolve().parents[2]
QWEN = "qwen2.5-vl-7b-instruct_(AWQ)"  # unlocked vLLM entry in both layers
SIGLIP = "siglip-large-patch16-384_(FP32)"  # locked vLLM entry
IMPORTABLE = "gpt-oss-20b_(MXFP4)"  # discovered only
LAYERS = ("curated", "discovered")


# ----------------------------------------------------------------------- the web


@dataclass
class Seen:
    """What one use of a surface left for the user to see."""

    status: int
    text: str
    before: dict
    after: dict
    table_before: str
    table_after: str
    page_after_status: int
    page_after_text: str
    notes: list[str] = field(default_factory=list)


def _client(user) -> Client:
    client = Client(raise_request_exception=False)
    client.force_login(user)
    return client


def _pk(name: str) -> int:
    from registry.models import ModelEntry

    return ModelEntry.objects.values_list("pk", flat=True).get(name=name)


def _table(client: Client) -> str:
    """The Models table as an htmx refresh shows it (no sync: the mirror as it is)."""
    response = client.get("/models/?testing=on", HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    return page_text(response.content)


def _edit_data(client: Client, pk: int) -> dict:
    page = client.get(f"/models/{pk}/edit/")
    assert page.status_code == 200, page.status_code
    data = form_fields(page.content, "/edit/preview/")
    data["display_name"] = ["Edited while the file was broken"]
    return data


def _prepare_confirm(client: Client, pk: int) -> dict:
    data = _edit_data(client, pk)
    preview = client.post(f"/models/{pk}/edit/preview/", data)
    assert preview.status_code == 200, preview.status_code
    confirmed = form_fields(preview.content, "/edit/preview/")
    assert confirmed.get("preview_digest", [""])[0], "the preview has no digest"
    return confirmed


def _prepare_import(client: Client) -> dict:
    start = client.get("/models/import/")
    assert start.status_code == 200
    step2 = client.post("/models/import/fields/", {"names": [IMPORTABLE]})
    assert step2.status_code == 200
    review = client.post("/models/import/review/", form_fields(step2.content, "review"))
    assert review.status_code == 200
    return form_fields(review.content, "/import/confirm/")


def _lock(client: Client, pk: int, capture):
    # Lock needs a verify first: the job is queued on commit and runs inline in tests.
    with capture(execute=True):
        return client.post(f"/models/{pk}/lock/", HTTP_HX_REQUEST="true")


#: surface -> (prepare while the file is good, act once it is broken, message shown)
SURFACES = {
    "reload": (
        None,
        lambda c, p, s, cap: c.post(
            "/models/reload/", {"next": "/models/"}, follow=True
        ),
        True,
    ),
    "models-page": (None, lambda c, p, s, cap: c.get("/models/"), True),
    "drawer-page": (None, lambda c, p, s, cap: c.get(f"/models/{p}/"), True),
    "drawer-htmx": (
        None,
        lambda c, p, s, cap: c.get(f"/models/{p}/", HTTP_HX_REQUEST="true"),
        False,  # a partial of the mirror: it only has to keep working
    ),
    "edit-open": (None, lambda c, p, s, cap: c.get(f"/models/{p}/edit/"), True),
    "edit-preview": (
        lambda c, p: _edit_data(c, p),
        lambda c, p, s, cap: c.post(f"/models/{p}/edit/preview/", s),
        True,
    ),
    "edit-confirm": (
        _prepare_confirm,
        lambda c, p, s, cap: c.post(f"/models/{p}/edit/confirm/", s),
        True,
    ),
    "lock": (None, lambda c, p, s, cap: _lock(c, p, cap), True),
    "unlock": (
        None,
        lambda c, p, s, cap: c.post(
            f"/models/{_pk(SIGLIP)}/unlock/", HTTP_HX_REQUEST="true"
        ),
        True,
    ),
    "import-start": (None, lambda c, p, s, cap: c.get("/models/import/"), True),
    "import-confirm": (
        lambda c, p: _prepare_import(c),
        lambda c, p, s, cap: c.post("/models/import/confirm/", s, follow=True),
        True,
    ),
}


@pytest.fixture
def synced_registry(settings, tmp_path):
    from django.core.management import call_command

    from registry.sample import write_sample_registry

    registry = tmp_path / "configs"
    settings.IMAGEWORKS_REGISTRY_DIR = registry
    settings.IMAGEWORKS_STAGING_DIR = tmp_path / "_staging"
    settings.IMAGEWORKS_MODEL_ROOTS = []
    write_sample_registry(registry, tmp_path / "models", force=True)
    call_command("registry_sync", "--force", stdout=open(os.devnull, "w"))  # noqa: SIM115
    return registry


_SEEN: dict[tuple[str, str, str], Seen] = {}


def _use(case, layer, surface, registry, capture) -> Seen:
    """Corrupt *layer* with *case*, use *surface* as a superuser, record what shows."""
    from tests.base import make_user

    key = (case, layer, surface)
    if key in _SEEN:
        return _SEEN[key]
    prepare, act, _message = SURFACES[surface]
    client = _client(make_user("root", superuser=True))
    pk = _pk(QWEN)
    state = prepare(client, pk) if prepare else None
    table_before = _table(client)
    corrupt(registry / LAYER_FILES[layer], case)
    before = folder_state(registry)
    logger = logging.getLogger("django.request")
    level = logger.level
    logger.setLevel(logging.CRITICAL)  # the 500s of today log full tracebacks
    try:
        response = act(client, pk, state, capture)
        after = folder_state(registry)
        table_after = _table(client)
        page = client.get("/models/")
    finally:
        logger.setLevel(level)
    seen = Seen(
        status=response.status_code,
        text=page_text(response.content),
        before=before,
        after=after,
        table_before=table_before,
        table_after=table_after,
        page_after_status=page.status_code,
        page_after_text=page_text(page.content),
    )
    _SEEN[key] = seen
    return seen


#: The fast lane (``./scripts/test``) runs every case on these cells; the full lane
#: (``--all``, CI) runs the whole matrix (~15 minutes on two cores).
FAST_CELLS = {("curated", "models-page"), ("discovered", "edit-confirm")}


def _marked(params):
    out = []
    for values in params:
        marks = []
        if tuple(values[1:]) not in FAST_CELLS:
            marks.append(pytest.mark.slow)
        out.append(pytest.param(*values, marks=marks, id="-".join(values)))
    return out


WEB_MATRIX = [(c, layer, s) for c in CASES for layer in LAYERS for s in SURFACES]


@pytest.mark.django_db
@pytest.mark.parametrize("case,layer,surface", _marked(WEB_MATRIX))
def test_web_is_refused_safely(
    case, layer, surface, synced_registry, django_capture_on_commit_callbacks
):
    seen = _use(
        case, layer, surface, synced_registry, django_capture_on_commit_callbacks
    )
    assert not web_problems(seen, layer), (
        f"{web_problems(seen, layer)}: {seen.text[:300]}"
    )


def web_problems(seen: Seen, layer: str) -> list[str]:
    """Everything the user would notice, as short labels (all of them, not the first)."""
    problems = []
    if seen.status >= 500:
        problems.append(f"answers {seen.status}")
    if "Traceback" in seen.text:
        problems.append("shows a traceback")
    if seen.after != seen.before:
        problems.append("writes: " + describe_difference(seen.before, seen.after))
    if seen.page_after_status != 200:
        problems.append(f"the Models page then answers {seen.page_after_status}")
    if seen.table_after != seen.table_before:
        problems.append("the mirror changed")
    if LAYER_FILES[layer] not in seen.page_after_text:
        problems.append("the Models page then shows no error for the file")
    return problems


@pytest.mark.django_db
@pytest.mark.parametrize(
    "case,layer,surface",
    _marked([m for m in WEB_MATRIX if SURFACES[m[2]][2]]),
)
def test_web_message(
    case, layer, surface, synced_registry, django_capture_on_commit_callbacks
):
    seen = _use(
        case, layer, surface, synced_registry, django_capture_on_commit_callbacks
    )
    match = BROKEN_RE.search(seen.text)
    assert match, f"no 'the registry file is broken' message: {seen.text[:400]}"
    assert match["file"].strip().endswith(LAYER_FILES[layer]), match.group(0)


# ----------------------------------------------------------------------- the CLI


def _cli_command() -> list[str]:
    script = Path(sys.executable).with_name("imageworks-models")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "imageworks_site.cli"]


@dataclass
class CliSeen:
    code: int
    stdout: str
    stderr: str
    before: dict
    after: dict


class CliSite:
    """A file SQLite database and a synced sample registry, for the console script."""

    def __init__(self, root: Path):
        from registry.sample import write_sample_registry

        self.root = root
        self.registry = root / "configs"
        self.env = {
            k: v
            for k, v in os.environ.items()
            if k
            not in {"DATABASE_URL", "DJANGO_SETTINGS_MODULE", "IMAGEWORKS_REDIS_URL"}
            and not k.startswith("PYTEST")
        }
        self.env.update(
            DJANGO_SETTINGS_MODULE="imageworks_site.settings",
            SECRET_KEY="broken-files-" + "x" * 40,
            IMAGEWORKS_VAR_DIR=str(root / "var"),
            IMAGEWORKS_SQLITE_PATH=str(root / "db.sqlite3"),
            IMAGEWORKS_REGISTRY_DIR=str(self.registry),
            IMAGEWORKS_STAGING_DIR=str(root / "_staging"),
            IMAGEWORKS_LOG_DIR=str(root / "logs"),
            IMAGEWORKS_OLLAMA_URL="",
            LOG_LEVEL="WARNING",
        )
        write_sample_registry(self.registry, root / "models", force=True)
        self.good = {
            name: (self.registry / name).read_bytes() for name in LAYER_FILES.values()
        }
        migrate = subprocess.run(
            [sys.executable, "manage.py", "migrate", "-v0"],
            cwd=REPO,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert migrate.returncode == 0, migrate.stderr
        synced = self.run("sync", "--force")
        assert synced.returncode == 0, synced.stderr

    def run(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*_cli_command(), *args],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    def restore(self) -> None:
        for name, data in self.good.items():
            path = self.registry / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            path.write_bytes(data)


@pytest.fixture(scope="module")
def cli_site(tmp_path_factory):
    return CliSite(tmp_path_factory.mktemp("broken-cli"))


CLI_COMMANDS = {"list": ("list",), "sync": ("sync",), "unlock": ("unlock", SIGLIP)}


@cache
def _cli_outcome(site: CliSite, case: str, layer: str, command: str) -> CliSeen:
    site.restore()
    corrupt(site.registry / LAYER_FILES[layer], case)
    before = folder_state(site.registry)
    proc = site.run(*CLI_COMMANDS[command])
    after = folder_state(site.registry)
    site.restore()
    return CliSeen(proc.returncode, proc.stdout, proc.stderr, before, after)


CLI_MATRIX = [
    (c, layer, cmd) for c in CASES for layer in LAYERS for cmd in CLI_COMMANDS
]


@pytest.mark.slow
@pytest.mark.parametrize("case,layer,command", _marked(CLI_MATRIX))
def test_cli_is_refused_safely(cli_site, case, layer, command):
    seen = _cli_outcome(cli_site, case, layer, command)
    problems = []
    if "Traceback" in seen.stderr:
        problems.append("prints a traceback")
    if seen.code == 0:
        problems.append("exits 0")
    if seen.after != seen.before:
        problems.append("writes: " + describe_difference(seen.before, seen.after))
    assert not problems, f"{problems}: {seen.stderr[-600:]}"


@pytest.mark.slow
@pytest.mark.parametrize("case,layer,command", _marked(CLI_MATRIX))
def test_cli_message(cli_site, case, layer, command):
    seen = _cli_outcome(cli_site, case, layer, command)
    lines = [line for line in seen.stderr.splitlines() if line.strip()]
    assert seen.code == 2, f"exit {seen.code}: {seen.stderr[-500:]}"
    assert len(lines) == 1, lines
    match = BROKEN_RE.search(lines[0])
    assert match, lines[0]
    assert match["file"].strip().endswith(LAYER_FILES[layer]), lines[0]
