"""The operator's choices in the Activate and Stop dialogs, as a Django form.

The fields map onto :class:`backends.vllm.options.SlotOptions` (the CLI's
``--override-preflight``, ``--drain``, ``--force`` and ``--reason``).
"""

from __future__ import annotations

from django import forms
from django.db import models

from .vllm.options import MAX_DRAIN_S, MAX_REASON_LENGTH, SlotOptions

DEFAULT_DRAIN_S = 60


class InFlightChoice(models.TextChoices):
    WAIT = "wait", "Wait until idle"
    NOW = "now", "Stop now"


class SlotOptionsForm(forms.Form):
    override_preflight = forms.BooleanField(required=False)
    in_flight = forms.ChoiceField(
        choices=[("", "(no choice)"), *InFlightChoice.choices], required=False
    )
    drain_s = forms.IntegerField(
        min_value=1, max_value=MAX_DRAIN_S, required=False, initial=DEFAULT_DRAIN_S
    )
    reason = forms.CharField(max_length=MAX_REASON_LENGTH, required=False)

    def options(self) -> SlotOptions:
        """The choices as the service takes them (call after ``is_valid()``)."""
        data = self.cleaned_data
        choice = data.get("in_flight") or ""
        return SlotOptions(
            override_preflight=bool(data.get("override_preflight")),
            drain_s=float(data.get("drain_s") or DEFAULT_DRAIN_S)
            if choice == InFlightChoice.WAIT
            else 0.0,
            force=choice == InFlightChoice.NOW,
            reason=(data.get("reason") or "").strip(),
        )

    def first_error(self) -> str:
        for field, errors in self.errors.items():
            label = field.replace("_", " ") if field != "__all__" else ""
            return f"{label}: {errors[0]}" if label else errors[0]
        return ""
