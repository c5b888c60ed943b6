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
    out: list[FixOption] = []
    for kind in finding.fixes:
        build = BUILDERS.get(kind)
        option = build(finding, finding.entry, user) if build else None
        if option is not None:
            out.append(option)
    return out


def _linked(kind, title, text, url, user, perm, **extra) -> FixOption:
    ok, why = _perm(user, perm)
    return FixOption(kind, title, text, url=url, allowed=ok, why_not=why, **extra)


def _import(finding: Finding, entry, user) -> FixOption:
    query = (finding.details or {}).get("tag") or os.path.basename(
        finding.path.rstrip("/")
    )
    return _linked(
        FixKind.IMPORT,
        "Import through the import wizard",
        f"Opens the wizard searching for “{query}”: pick the entry or Ollama tag, "
        "fill its fields, review the curated-file diff, confirm. A folder with no "
        "discovered entry is not listed there until the downloader has recorded it.",
        sources.import_url(query),
        user,
        "registry.import_entry",
    )


def _edit(finding: Finding, entry, user) -> FixOption | None:
    if entry is None:
        return None
    return _linked(
        FixKind.EDIT,
        "Edit the entry",
        "Opens the editor (model path, served id, metadata) with a diff preview "
        "before anything is written.",
        sources.edit_url(entry.pk),
        user,
        "registry.edit_entry",
    )


def _verify(finding: Finding, entry, user) -> FixOption | None:
    if entry is None:
        return None
    return _linked(
        FixKind.VERIFY,
        "Verify the files",
        "After the download is complete, hash the files and record the result "
        "(from the entry's drawer, or the command below).",
        sources.entry_url(entry.pk),
        user,
        "registry.verify_entry",
        command=shlex.join(sources.verify_command(entry.name)),
    )


def _reclaim(finding: Finding, entry, user) -> FixOption:
    key = entry_key(entry) if entry is not None else folder_key(finding.path)
    return _linked(
        FixKind.RECLAIM,
        "Plan a reclaim",
        "Opens the reclaim plan with this item selected: it shows what would be "
        "freed, what references it and what would break before anything moves. "
        "Folders go to the trash (restorable), nothing is deleted.",
        f"{reverse('inventory:reclaim')}?{urlencode({'select': key})}",
        user,
        "inventory.reclaim_space",
    )


def _setting(finding: Finding, entry, user) -> FixOption:
    return FixOption(
        FixKind.SETTING, "Change a setting", finding.hint or "See docs/reconcile.md."
    )


def _command_option(finding: Finding, entry: ModelEntry | None, user=None) -> FixOption:
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


def _deprecate(finding: Finding, entry, user) -> FixOption | None:
    return deprecate_option(entry, user) if entry is not None else None


BUILDERS = {
    FixKind.IMPORT: _import,
    FixKind.EDIT: _edit,
    FixKind.VERIFY: _verify,
    FixKind.MARK_DEPRECATED: _deprecate,
    FixKind.RECLAIM: _reclaim,
    FixKind.COMMAND: _command_option,
    FixKind.SETTING: _setting,
}


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
