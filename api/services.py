"""The API's ONE door into the registry and backends services.

Every call the API makes into ``registry`` or ``backends`` goes through this module,
so a restructure of those apps is re-pointed here and nowhere else. Functions are
thin pass-throughs to the services the site's views, tasks and CLI call; the rules
(one verify per entry, when a lock needs a verify first, what counts as an edit
conflict, one activation at a time) live in those services.
"""

from __future__ import annotations

import time
from typing import Any

from backends import health, serving
from backends.choices import RequestOutcome
from backends.health import check as health_check
from backends.models import Activation
from backends.vllm import service as vllm
from registry import jobs, layers, normalize
from registry.audit import Actor, record
from registry.choices import Outcome, Source
from registry.filtersets import ActionLogFilterSet, ModelEntryFilterSet
from registry.forms.edit import ImportRowForm, ModelEntryEditForm
from registry.models import ActionLog, Job, ModelEntry
from registry.services import editing, importing, verify, writeback
from registry.tasks import request_sync
from registry.version import registry_version

__all__ = [
    "ActionLog",
    "ActionLogFilterSet",
    "Activation",
    "Actor",
    "EntryConflict",
    "ImportRowForm",
    "Job",
    "JobConflict",
    "ModelEntry",
    "ModelEntryEditForm",
    "ModelEntryFilterSet",
    "RegistryError",
    "VerifyError",
]

EntryConflict = writeback.EntryConflict
EntryNotFound = writeback.EntryNotFound
JobConflict = jobs.JobConflict
RegistryError = layers.RegistryError
VerifyError = verify.VerifyError
LockViolation = verify.LockViolation
ActivationRefused = vllm.ActivationRefused
NOT_APPLICABLE_MESSAGE = verify.NOT_APPLICABLE_MESSAGE


# --------------------------------------------------------------------------- audit


def actor(name: str, user, scope: frozenset[str] | None = None) -> Actor:
    """The actor of an API call (``alice (token ci-bot)``, linked to alice), limited to
    the token's *scope*: services that check ``actor.may(perm)`` get both ceilings."""
    return Actor(name=name, source=Source.API, user=user, scope=scope)


def record_refusal(who: Actor, action: str, entry_name: str, message: str) -> None:
    """One failed audit row for a state-changing call the API refused."""
    record(
        who,
        action,
        entry=ModelEntry.objects.filter(name=entry_name).first()
        if entry_name
        else None,
        entry_name=entry_name,
        outcome=Outcome.FAILED,
        message=message,
        details={"refused_by": "api"},
    )


# --------------------------------------------------------------------------- registry reads


def implicit_sync(who: Actor) -> None:
    """The cheap "did a layer file change?" sync the Models page does on load."""
    request_sync(who, explicit=False)


def reload_registry(who: Actor):
    """An explicit reload: ``(SyncResult, None)`` or ``(None, Job)`` for big registries."""
    return request_sync(who, force=True)


def filter_entries(params, queryset=None) -> ModelEntryFilterSet:
    """The Models page's filters and fuzzy search over ``params`` (a QueryDict)."""
    return ModelEntryFilterSet(params, queryset=queryset)


def filter_actions(params, queryset=None) -> ActionLogFilterSet:
    return ActionLogFilterSet(params, queryset=queryset)


def version_token() -> str:
    """Changes whenever any entry row changes (one aggregate query)."""
    return registry_version()


def resolve_endpoint(merged: dict) -> str:
    """The OpenAI-style base URL where ``merged`` is served (``served_endpoint``)."""
    return serving.served_endpoint(merged).url


def normalize_capabilities(raw: Any) -> dict[str, bool]:
    return normalize.normalize_capabilities(raw)


def canonical_flags(raw: Any) -> dict[str, bool]:
    return normalize.canonical_flags(raw)


# --------------------------------------------------------------------------- verify / lock


def enqueue_verify(entry: ModelEntry, who: Actor) -> Job:
    """Queue a verify job (``verify.request_verify``); ``JobConflict`` carries the live
    job (or none) when it is refused."""
    req = verify.request_verify(entry, who)
    if req.refusal:
        raise jobs.JobConflict(req.job, req.refusal)
    return req.job


def live_verify_job(entry: ModelEntry) -> Job | None:
    return verify.live_verify_job(entry.name)


def request_lock(entry: ModelEntry, who: Actor) -> verify.LockRequest:
    """The site's Lock rule (``verify.request_lock``): may queue verify-then-lock."""
    return verify.request_lock(entry, who)


def unlock(entry: ModelEntry, who: Actor):
    return verify.unlock(entry.name, who)


# --------------------------------------------------------------------------- edit


def edit_form(entry: ModelEntry, data: dict | None = None) -> ModelEntryEditForm:
    return ModelEntryEditForm(data, entry=entry)


def check_edit_conflict(
    entry: ModelEntry, fingerprint: str, who: Actor
) -> writeback.EntryConflict | None:
    """An ``EntryConflict`` when the files or the mirror moved past ``fingerprint``."""
    return editing.check_conflict(entry, fingerprint, who)


def preview_edit(entry: ModelEntry, form: ModelEntryEditForm) -> editing.Preview:
    return editing.preview_edit(entry, form.cleaned_data, form.initial_values)


def save_edit(entry: ModelEntry, who: Actor, form: ModelEntryEditForm):
    return editing.save_edit(
        entry,
        who,
        form.cleaned_data,
        form.cleaned_data["fingerprint"],
        form.initial_values,
    )


def unified_diff(before: Any, after: Any, label: str) -> str:
    return editing.unified_diff(before, after, label)


def diff_rows(changes: list[dict]) -> list[dict]:
    return editing.diff_rows(changes)


CURATED_FILE = layers.CURATED_FILE


# --------------------------------------------------------------------------- import


def importable_entries(query: str = ""):
    return importing.importable_entries(query)


def import_suggestion(entry: ModelEntry) -> dict:
    return importing.suggest_fields(entry)


def import_summary(entry: ModelEntry) -> dict:
    return importing.entry_summary(entry)


def import_item(cleaned: dict) -> importing.ImportItem:
    return importing.ImportItem(
        name=cleaned["name"],
        roles=list(cleaned["roles"]),
        backend=cleaned["backend"],
        served_model_id=cleaned.get("served_model_id") or "",
        display_name=cleaned.get("display_name") or "",
        ollama_tag=cleaned.get("ollama_tag") or "",
    )


def plan_import(items: list) -> importing.ImportPlan:
    return importing.plan_import(items)


def import_diff(plan: importing.ImportPlan) -> str:
    return importing.curated_file_diff(plan)


def apply_import(plan: importing.ImportPlan, who: Actor) -> importing.ImportResult:
    return importing.apply_import(plan, who)


# --------------------------------------------------------------------------- jobs


def job_control_permission(job: Job) -> str:
    """The permission that may cancel ``job`` (its kind's job spec)."""
    return jobs.cancel_permission(job.kind)


def cancel_job(job: Job) -> bool:
    return jobs.cancel(job)


def wait_for_job(job: Job, timeout: float, poll: float = 0.25) -> Job:
    """Poll ``job`` until it is terminal or ``timeout`` seconds have passed."""
    deadline = time.monotonic() + timeout
    job.refresh_from_db()
    while not job.is_terminal and time.monotonic() < deadline:
        time.sleep(poll)
        job.refresh_from_db()
    return job


# --------------------------------------------------------------------------- vLLM


def slot_status():
    """The vLLM slot as the status partial shows it (database only)."""
    return vllm.status()


def live_activation() -> Activation | None:
    return vllm.live_activation()


def serving_activation() -> Activation | None:
    """The live activation's address fields only (the select hot path: no entry join)."""
    return serving.serving_activation()


def activation_state(act: Activation) -> dict[str, Any]:
    return vllm.state_dict(act)


def served_endpoint(entry, *, live=serving._UNSET) -> serving.ServedEndpoint:
    """Where ``entry`` is (or would be) served, and which source says so."""
    return serving.served_endpoint(entry, live=live)


def activation_url(act: Activation) -> str:
    """Where a live activation answers (its recorded base URL, else this host's)."""
    return serving.activation_url(act)


def slot_options(
    *,
    override_preflight: bool = False,
    drain_seconds: float = 0.0,
    force: bool = False,
    reason: str = "",
) -> vllm.SlotOptions:
    """The operator's choices for an activate or stop call (the site's and CLI's)."""
    return vllm.SlotOptions(
        override_preflight=override_preflight,
        drain_s=drain_seconds,
        force=force,
        reason=reason.strip(),
    )


def request_activation(
    entry: ModelEntry, who: Actor, options: vllm.SlotOptions = vllm.NO_OPTIONS
) -> Job:
    """Queue the activation of ``entry`` under the one-activation-at-a-time rule;
    raise ``ActivationRefused`` (422: the launch cannot work, preflight failed
    without an override, or the replaced model has requests in flight and neither
    a drain nor force was chosen) or ``JobConflict`` (409, the slot is busy)."""
    answer = vllm.request_activation(entry, who, options=options)
    if answer.outcome == RequestOutcome.REFUSED:
        raise vllm.ActivationRefused(answer.message)
    if answer.outcome != RequestOutcome.QUEUED:
        raise jobs.JobConflict(None, answer.message)
    return answer.job


def request_stop(who: Actor, options: vllm.SlotOptions = vllm.NO_OPTIONS) -> Job:
    """Queue a stop of the served model: ``ActivationRefused`` (422) when it has
    requests in flight and neither a drain nor force was chosen, ``JobConflict``
    when a stop is already queued."""
    answer = vllm.request_stop(who, options=options)
    if answer.outcome == RequestOutcome.REFUSED:
        raise vllm.ActivationRefused(answer.message)
    if answer.outcome != RequestOutcome.QUEUED:
        raise jobs.JobConflict(None, answer.message)
    return answer.job


def activations():
    return Activation.objects.select_related("entry")


# --------------------------------------------------------------------------- health


def health_endpoints():
    return health.configured_endpoints()


def check_health(kind: str | None = None):
    return health_check.check_all([kind] if kind else None)
