from __future__ import annotations

import re

from django import forms
from django.core.exceptions import ValidationError

KEY_RE = re.compile(r"^(entry:\d{1,12}|folder:/.{1,4000})$")
MAX_KEYS = 500


class KeyListField(forms.Field):
    """Selection keys (``entry:<pk>``, ``folder:<absolute path>``) from repeated fields."""

    widget = forms.MultipleHiddenInput

    def to_python(self, value):
        if not value:
            return []
        if isinstance(value, str):
            value = [value]
        keys = [str(v).strip() for v in value if str(v).strip()]
        if len(keys) > MAX_KEYS:
            raise ValidationError(f"Select at most {MAX_KEYS} items at once.")
        bad = [k for k in keys if not KEY_RE.match(k) or "\x00" in k]
        if bad:
            raise ValidationError(f"Not a selection: {bad[0][:80]}")
        return list(dict.fromkeys(keys))


class SelectionForm(forms.Form):
    select = KeyListField(
        required=True,
        error_messages={"required": "Select at least one entry or folder."},
    )


class ExecuteForm(SelectionForm):
    digest = forms.RegexField(
        regex=r"^[0-9a-f]{32}$",
        error_messages={
            "invalid": "The plan preview is missing; preview the plan again."
        },
    )


class SuggestForm(forms.Form):
    days = forms.IntegerField(
        label="Unused for at least", min_value=1, max_value=3650, required=False
    )


class DeprecateForm(forms.Form):
    fingerprint = forms.RegexField(regex=r"^[0-9a-f]{64}$", required=False)


class EmptyTrashForm(forms.Form):
    confirm = forms.BooleanField(
        required=True,
        label="I understand: these folders are deleted for good",
        error_messages={
            "required": "Tick the box to confirm: emptying the trash cannot be undone."
        },
    )
    items = forms.CharField(required=False, widget=forms.MultipleHiddenInput)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.item_ids: list[int] = []

    def clean(self):
        data = super().clean()
        raw = self.data.getlist("items") if hasattr(self.data, "getlist") else []
        try:
            self.item_ids = [int(x) for x in raw if str(x).strip()]
        except ValueError:
            raise ValidationError("Not a trash item.")
        return data
