"""Edit and import through the API: JSON in, the site's own forms validate, the
site's services preview, check conflicts and write (``api.services``)."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.http import JsonResponse
from ninja.errors import HttpError

from .. import services
from .common import Invalid, entry_out, form_errors

LIST_FIELDS = ("aliases", "extra_args", "gen_stop_sequences")
NOT_EDITABLE = ("fingerprint", "preview_digest")


def _as_posted(name: str, value: Any, booleans: set[str]) -> Any:
    """A JSON value as the edit form would post it (``None`` clears the field)."""
    if name in booleans:
        return "on" if value else None  # an unchecked box is absent from a post
    if value is None:
        return ""
    if name in LIST_FIELDS and isinstance(value, list):
        return "\n".join(str(item) for item in value)
    if name == "roles":
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return [str(role) for role in value]
    if name == "metadata" and isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _form_data(form, fields: dict[str, Any], fingerprint: str) -> dict[str, Any]:
    """The form's current values with ``fields`` changed, as POST data."""
    editable = [name for name in form.fields if name not in NOT_EDITABLE]
    unknown = sorted(set(fields) - set(editable))
    if unknown:
        raise Invalid(
            [
                {
                    "type": "value_error",
                    "loc": ["body", "fields", name],
                    "msg": f"Unknown field '{name}' (see the schema's field list).",
                }
                for name in unknown
            ]
        )
    booleans = {
        name
        for name, field in form.fields.items()
        if isinstance(field, forms.BooleanField)
    }
    values = {**form.initial_values, **fields}
    data: dict[str, Any] = {"fingerprint": fingerprint}
    for name in editable:
        posted = _as_posted(name, values.get(name), booleans)
        if posted is not None:
            data[name] = posted
    return data


def _conflict_body(entry, conflict, mine) -> JsonResponse:
    theirs = conflict.current_curated
    label = f"{services.CURATED_FILE}:{entry.name}"
    return JsonResponse(
        {
            "detail": str(conflict),
            "current_fingerprint": conflict.fingerprint,
            "changed_by": conflict.changed_by,
            "other_change": services.diff_rows(conflict.other_change or []),
            "diff": services.unified_diff(theirs, mine, label) if mine else "",
        },
        status=409,
    )


def edit_entry(entry, who, payload):
    """Validate, preview, check the fingerprint, then save (or only preview)."""
    blank = services.edit_form(entry)
    data = _form_data(blank, payload.fields, payload.fingerprint)
    form = services.edit_form(entry, data)
    if not form.is_valid():
        raise Invalid(form_errors(form, "body", "fields"))
    preview = services.preview_edit(entry, form)
    conflict = services.check_edit_conflict(entry, payload.fingerprint, who)
    if conflict is not None:
        return _conflict_body(entry, conflict, preview.new_curated)
    result = {
        "changed": preview.changed,
        "saved": False,
        "summary": preview.summary if preview.changed else "No field changed.",
        "diff": preview.rows,
        "unified_diff": preview.unified_text,
        "entry": entry_out(entry),
    }
    if payload.dry_run or not preview.changed:
        return result
    try:
        saved = services.save_edit(entry, who, form)
    except services.EntryConflict as exc:
        return _conflict_body(entry, exc, preview.new_curated)
    except services.RegistryError as exc:
        raise HttpError(503, str(exc))
    result["saved"] = True
    result["entry"] = entry_out(saved.entry or entry)
    return result


def import_entries(who, payload):
    """Validate every item with the wizard's form, plan, then apply (or only plan)."""
    errors, items = [], []
    for index, item in enumerate(payload.items):
        data = item.dict()
        data["roles"] = ", ".join(item.roles)
        data["display_name"] = item.display_name or item.name
        form = services.ImportRowForm(data)
        if not form.is_valid():
            errors += form_errors(form, "body", "items", str(index))
            continue
        cleaned = {**form.cleaned_data, "ollama_tag": item.ollama_tag}
        items.append(services.import_item(cleaned))
    if errors:
        raise Invalid(errors)
    plan = services.plan_import(items)
    planned = [{"name": p.item.name, "curated": p.curated} for p in plan.entries]
    refused = [{"name": name, "reason": reason} for name, reason in plan.refused]
    if payload.dry_run:
        return {
            "imported": [],
            "refused": refused,
            "planned": planned,
            "message": plan.describe(),
            "diff": services.import_diff(plan),
        }
    try:
        result = services.apply_import(plan, who)
    except services.RegistryError as exc:
        raise HttpError(503, str(exc))
    return {
        "imported": result.imported,
        "refused": [{"name": n, "reason": r} for n, r in result.refused],
        "planned": planned,
        "message": result.message,
    }
