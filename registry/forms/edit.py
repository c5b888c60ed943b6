"""Forms of the entry editor and the import wizard (validation only; no writes).

Stored values are shown as they are, even out of the ranges the form enforces: range
checks apply only to a value the operator *changed*, so an entry with
``context_window: 131072`` or ``port: 0`` opens and saves other fields normally.
"""

from __future__ import annotations

import json

from django import forms

from .. import layers, normalize
from ..choices import BACKEND_CHOICES
from ..models import ModelEntry
from ..services.editing import (
    CAPABILITY_FLAGS,
    GEN_FLOAT_FIELDS,
    GEN_INT_FIELDS,
    STANDARD_ROLES,
    edit_form_initial,
    field_layer,
)

PORT_MESSAGE = "Port must be 1–65535"

# field -> (min, max) checked when the value changed
GEN_RANGES: dict[str, tuple[float | None, float | None]] = {
    "temperature": (0.0, 2.0),
    "top_p": (0.0, 1.0),
    "top_k": (0, None),
    "max_tokens": (1, None),
    "min_tokens": (0, None),
    "context_window": (1, None),
    "frequency_penalty": (-2.0, 2.0),
    "presence_penalty": (-2.0, 2.0),
}
LINES_HELP = "One per line."


def roles_in_use(extra: list[str] | tuple[str, ...] = ()) -> list[str]:
    """The standard roles plus every role any entry uses (stable order)."""
    seen = dict.fromkeys(STANDARD_ROLES)
    for roles in ModelEntry.objects.values_list("roles", flat=True):
        for role in normalize.roles(roles):
            seen.setdefault(role)
    for role in extra:
        seen.setdefault(role)
    return list(seen)


def alias_owner(alias: str, exclude_pk: int | None = None) -> str | None:
    """The name of another entry using *alias* as an alias or as its name, if any."""
    wanted = alias.strip().lower()
    rows = ModelEntry.objects.exclude(pk=exclude_pk).values_list("name", "aliases")
    for name, aliases in rows:
        if name.lower() == wanted or wanted in (
            a.lower() for a in normalize.aliases(aliases)
        ):
            return name
    return None


def backend_choices(current: str = "") -> list[tuple[str, str]]:
    choices = [(b, b) for b in BACKEND_CHOICES]
    if current and current not in BACKEND_CHOICES:
        choices.append((current, f"{current} (not a known backend)"))
    return choices


class ModelEntryEditForm(forms.Form):
    """Every editable field of an entry; ``layer_of(field)`` says where its value lives."""

    fingerprint = forms.CharField(widget=forms.HiddenInput)
    preview_digest = forms.CharField(widget=forms.HiddenInput, required=False)

    display_name = forms.CharField(max_length=500, required=False)
    backend = forms.CharField(max_length=50, required=False, widget=forms.Select)
    served_model_id = forms.CharField(
        max_length=500, required=False, help_text="Blank = unset."
    )
    roles = forms.MultipleChoiceField(
        required=False, widget=forms.CheckboxSelectMultiple
    )
    roles_extra = forms.CharField(
        required=False,
        label="Other roles",
        help_text="New roles, comma-separated.",
    )
    aliases = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 2}), help_text=LINES_HELP
    )
    deprecated = forms.BooleanField(required=False)

    port = forms.IntegerField(required=False, help_text="Blank = unset.")
    host = forms.CharField(required=False)
    base_url = forms.CharField(required=False, label="Base URL")
    model_path = forms.CharField(required=False)
    extra_args = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="One argument per line, e.g. --max-model-len then 4096.",
    )
    gen_stop_sequences = forms.CharField(
        required=False,
        label="Stop sequences",
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=LINES_HELP,
    )
    metadata = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 6}),
        help_text="A JSON object.",
    )

    def __init__(self, *args, entry: ModelEntry, **kwargs):
        self.entry = entry
        self.initial_values = edit_form_initial(entry)
        kwargs.setdefault("initial", self.initial_values)
        super().__init__(*args, **kwargs)
        for flag in CAPABILITY_FLAGS:
            self.fields[f"cap_{flag}"] = forms.BooleanField(
                required=False, label=flag.capitalize()
            )
        for key in GEN_INT_FIELDS:
            self.fields[f"gen_{key}"] = forms.IntegerField(
                required=False, label=key.replace("_", " ").capitalize()
            )
        for key in GEN_FLOAT_FIELDS:
            self.fields[f"gen_{key}"] = forms.FloatField(
                required=False, label=key.replace("_", " ").capitalize()
            )
        current_backend = self.initial_values["backend"]
        self.fields["backend"].widget.choices = backend_choices(current_backend)
        self.fields["roles"].choices = [
            (r, r) for r in roles_in_use(self.initial_values["roles"])
        ]
        self.fields["served_model_id"].widget.attrs["autocomplete"] = "off"
        # Fields are deep-copied per form instance, so this is per request.
        for name, field in self.fields.items():
            if name not in (
                "fingerprint",
                "preview_digest",
                "roles_extra",
            ) and not name.startswith("cap_"):
                field.layer = field_layer(entry, name)
        self.capabilities_layer = field_layer(entry, "cap_text")

    # ---- grouping for the template ------------------------------------------------

    def layer_of(self, name: str) -> str:
        return field_layer(self.entry, name)

    @property
    def capability_fields(self):
        return [self[f"cap_{flag}"] for flag in CAPABILITY_FLAGS]

    @property
    def generation_fields(self):
        keys = GEN_FLOAT_FIELDS + GEN_INT_FIELDS
        return [self[f"gen_{key}"] for key in keys] + [self["gen_stop_sequences"]]

    def _changed(self, name: str, value) -> bool:
        old = self.initial_values.get(name)
        if isinstance(old, str):
            old = old.strip() or None
        if isinstance(value, str):
            value = value.strip() or None
        return old != value

    # ---- validation -----------------------------------------------------------------

    def clean_display_name(self) -> str:
        value = (self.cleaned_data.get("display_name") or "").strip()
        if not value:
            raise forms.ValidationError("Display name is required.")
        return value

    def clean_backend(self) -> str:
        value = (self.cleaned_data.get("backend") or "").strip()
        if not value:
            raise forms.ValidationError("Backend is required.")
        if value not in BACKEND_CHOICES and value != self.initial_values["backend"]:
            raise forms.ValidationError(
                f"Unknown backend '{value}' (choose one of: {', '.join(BACKEND_CHOICES)})."
            )
        return value

    def clean_port(self):
        value = self.cleaned_data.get("port")
        if (
            value is not None
            and self._changed("port", value)
            and not 1 <= value <= 65535
        ):
            raise forms.ValidationError(PORT_MESSAGE)
        return value

    def clean_metadata(self) -> dict:
        text = (self.cleaned_data.get("metadata") or "").strip()
        if not text:
            return {}
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(f"Invalid JSON: {exc}") from None
        if not isinstance(value, dict):
            raise forms.ValidationError(
                "Invalid JSON: metadata must be a JSON object {…}."
            )
        reason = layers.unwritable(value)
        if reason:
            raise forms.ValidationError(f"Invalid JSON: {reason}.")
        return value

    def clean_aliases(self) -> str:
        text = self.cleaned_data.get("aliases") or ""
        old = {a.lower() for a in self.initial_values["aliases"].splitlines()}
        errors = []
        for alias in (line.strip() for line in text.splitlines()):
            if not alias or alias.lower() in old:
                continue
            owner = alias_owner(alias, exclude_pk=self.entry.pk)
            if owner:
                errors.append(f"alias {alias} is already used by {owner}")
        if errors:
            raise forms.ValidationError(errors)
        return text

    def clean(self):
        cleaned = super().clean()
        refuse_unwritable(self, cleaned, skip=("metadata",))
        for key, (low, high) in GEN_RANGES.items():
            name = f"gen_{key}"
            value = cleaned.get(name)
            if value is None or not self._changed(name, value):
                continue
            if (low is not None and value < low) or (high is not None and value > high):
                bound = f"{low}–{high}" if high is not None else f"≥ {low}"
                self.add_error(
                    name, f"{key.replace('_', ' ').capitalize()} must be {bound}"
                )
        return cleaned


def refuse_unwritable(form: forms.Form, cleaned: dict, skip=()) -> None:
    """A field error for each value a registry file cannot hold (NUL, a lone
    surrogate, an integer beyond 64 bits: the API posts JSON, not browser text)."""
    for name, value in list(cleaned.items()):
        reason = None if name in skip else layers.unwritable(value)
        if reason and name in form.fields:
            form.add_error(name, f"{reason[0].upper()}{reason[1:]}.")


class ImportRowForm(forms.Form):
    """Step 2 of the import wizard: the fields one entry needs to become curated."""

    name = forms.CharField(widget=forms.HiddenInput)
    ollama_tag = forms.CharField(widget=forms.HiddenInput, required=False)
    display_name = forms.CharField(max_length=500)
    backend = forms.ChoiceField(choices=[(b, b) for b in BACKEND_CHOICES])
    served_model_id = forms.CharField(max_length=500, required=False)
    roles = forms.CharField(help_text="Comma-separated, at least one.")

    def clean_roles(self) -> list[str]:
        roles = normalize.roles((self.cleaned_data.get("roles") or "").split(","))
        if not roles:
            raise forms.ValidationError("At least one role is required.")
        return roles

    def clean(self):
        cleaned = super().clean()
        refuse_unwritable(self, cleaned)
        served = normalize.served_id(cleaned.get("served_model_id"))
        cleaned["served_model_id"] = served
        if not served and cleaned.get("backend") not in (None, "unassigned"):
            self.add_error(
                "served_model_id",
                f"A served model id is required for a {cleaned.get('backend')} entry.",
            )
        return cleaned


def import_formset(data=None, initial=None):
    """The step-2 formset (one form per selected entry)."""
    formset_class = forms.formset_factory(ImportRowForm, extra=0)
    return formset_class(data=data, initial=initial, prefix="item")
