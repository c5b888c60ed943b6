from __future__ import annotations

import django_filters
from django import forms
from django.db.models import Q

from .choices import FindingKind
from .models import Finding, TrashItem

SEVERITY_CHOICES = [("bad", "Broken"), ("warn", "Drift or waste"), ("info", "Info")]


class FindingFilterSet(django_filters.FilterSet):
    kind = django_filters.ChoiceFilter(
        label="Kind", choices=FindingKind.choices, empty_label="Every kind"
    )
    severity = django_filters.ChoiceFilter(
        label="Severity", choices=SEVERITY_CHOICES, empty_label="Any severity"
    )
    q = django_filters.CharFilter(
        label="Search",
        method="filter_search",
        widget=forms.TextInput(
            attrs={
                "type": "search",
                "placeholder": "Search entry, path, message…",
                "autocomplete": "off",
            }
        ),
    )

    class Meta:
        model = Finding
        fields: list[str] = []

    def filter_search(self, queryset, name, value):
        value = value.strip()
        if not value:
            return queryset
        return queryset.filter(
            Q(entry_name__icontains=value)
            | Q(path__icontains=value)
            | Q(message__icontains=value)
        )


class TrashFilterSet(django_filters.FilterSet):
    state = django_filters.ChoiceFilter(
        label="State",
        choices=TrashItem._meta.get_field("state").choices,
        empty_label="Every state",
    )

    class Meta:
        model = TrashItem
        fields: list[str] = []
