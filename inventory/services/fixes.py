"""Fix previews for findings, and the "mark deprecated" edit.

Fixes are the existing workflows where they fit (the import wizard, the entry
editor, verify, activation) plus :func:`mark_deprecated`; each :class:`FixOption`
says what it would do before anything happens. Nothing here deletes anything.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass, field
from urllib.parse import urlencode

from django.urls import reverse

from registry.audit import Actor
from registry.models import ModelEntry

from .. import sources
from ..choices import FindingKind, FixKind
from ..models import Finding
from .reclaim import entry_key, folder_key


@dataclass
class FixOption:
    kind: str
    title: str
    description: str
    url: str = ""  # a page that continues the fix (GET)
    command: str = ""  # a shell command to run (shown, never run by the site)
    diff: str = ""  # the change a POST would write (mark deprecated)
    post_url: str = ""
    post_fields: dict = field(default_factory=dict)
    allowed: bool = True
    why_not: str = ""


def _perm(user, perm: str) -> tuple[bool, str]:
    if user.has_perm(perm):
        return True, ""
    return False, "Your role does not allow this"


def fix_options(finding: Finding, user) -> list[FixOption]:
    """The fixes of a finding, best first, with what each would do."""
    entry = finding.entry
    out: list[FixOption] = []
    for kind in finding.fixes:
        option = _option(finding, entry, kind, user)
        if option is not None:
            out.append(option)
    return out


def _option(finding: Finding, entry: ModelEntry | None, kind: str, user):
    name = finding.entry_name
    if kind == FixKind.IMPORT:
        query = (finding.details or {}).get("tag") or os.path.basename(
            finding.path.rstrip("/")
        )
        ok, why = _perm(user, "registry.import_entry")
        return FixOption(
            kind,
            "Import through the import wizard",
            "Opens the wizard searching for "
            f"“{query}”: pick the entry or Ollama tag, fill its fields, review the "
            "curated-file diff, confirm. A folder with no discovered entry is not "
            "listed there until the downloader has recorded it.",
            url=sources.import_url(query),
            allowed=ok,
            why_not=why,
        )
    if kind == FixKind.EDIT and entry is not None:
        ok, why = _perm(user, "registry.edit_entry")
        return FixOption(
            kind,
            "Edit the entry",
            "Opens the editor (model path, served id, metadata) with a diff preview "
            "before anything is written.",
            url=sources.edit_url(entry.pk),
            allowed=ok,
            why_not=why,
        )
    if kind == FixKind.VERIFY and entry is not None:
        ok, why = _perm(user, "registry.verify_entry")
        return FixOption(
            kind,
            "Verify the files",
            "After the download is complete, hash the files and record the result "
            "(from the entry's drawer, or the command below).",
            url=sources.entry_url(entry.pk),
            command=shlex.join(sources.verify_command(name)),
            allowed=ok,
            why_not=why,
        )
    if kind == FixKind.MARK_DEPRECATED and entry is not None:
        return deprecate_option(entry, user)
    if kind == FixKind.RECLAIM:
        key = entry_key(entry) if entry is not None else folder_key(finding.path)
        ok, why = _perm(user, "inventory.reclaim_space")
        return FixOption(
            kind,
            "Plan a reclaim",
            "Opens the reclaim plan with this item selected: it shows what would be "
            "freed, what references it and what would break before anything moves. "
            "Folders go to the trash (restorable), nothing is deleted.",
            url=f"{reverse('inventory:reclaim')}?{urlencode({'select': key})}",
            allowed=ok,
            why_not=why,
        )
    if kind == FixKind.COMMAND:
        return _command_option(finding, entry)
    if kind == FixKind.SETTING:
        return FixOption(
            kind,
            "Change a setting",
            finding.hint or "See docs/reconcile.md.",
        )
    return None


def _command_option(finding: Finding, entry: ModelEntry | None) -> FixOption:
    details = finding.details or {}
    argv = details.get("command") or []
    if finding.kind == FindingKind.VLLM_MISMATCH and entry is not None:
        argv = sources.activate_command(entry.name)
    return FixOption(
        FixKind.COMMAND,
        "Run a command",
        finding.hint,
        command=shlex.join(argv) if argv else "",
    )


def deprecate_option(entry: ModelEntry, user) -> FixOption:
    if entry.deprecated:
        return FixOption(
            FixKind.MARK_DEPRECATED,
            "Mark the entry deprecated",
            "Already deprecated.",
            allowed=False,
            why_not="Already deprecated",
        )
    ok, why = _perm(user, "registry.edit_entry")
    preview = sources.deprecate_preview(entry, True)
    return FixOption(
        FixKind.MARK_DEPRECATED,
        "Mark the entry deprecated",
        f"Writes deprecated: true into the curated layer ({preview['file']}), file "
        "first, audited. Deprecated entries are hidden on the Models page by default; "
        "nothing on disk changes.",
        diff=preview["diff"],
        post_url=reverse("inventory:mark_deprecated", args=[entry.pk]),
        post_fields={"fingerprint": entry.fingerprint},
        allowed=ok,
        why_not=why,
    )


def mark_deprecated(
    entry: ModelEntry, actor: Actor, fingerprint: str | None, reason: str = ""
):
    """Set the curated ``deprecated`` flag (``sources.EditRefused`` on conflicts)."""
    return sources.set_deprecated(
        actor,
        entry.name,
        True,
        expected_fingerprint=fingerprint or None,
        reason=reason or "reconcile report",
    )
