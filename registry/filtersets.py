from __future__ import annotations

import django_filters
from django import forms
from django.db.models import Count, Q
from django.utils.functional import cached_property

from .choices import Action, Outcome
from .models import ActionLog, ModelEntry
from .search import search_queryset
from .version import per_registry_version, per_version

LOCK_CHOICES = [("locked", "Locked"), ("unlocked", "Unlocked")]
INSTALLED_CHOICES = [
    ("yes", "Installed"),
    ("no", "Not installed"),
    ("unknown", "Unknown"),
]


class CheckboxFilter(django_filters.Filter):
    """A plain on/off checkbox: unchecked means False (not "no filter")."""

    field_class = forms.BooleanField

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("widget", forms.CheckboxInput(attrs={"value": "1"}))
        super().__init__(*args, **kwargs)


def choices_in_use() -> tuple[list[str], list[str]]:
    """(backends, roles) that some entry has, sorted: the filter choices.

    A ``DISTINCT`` over the whole table: kept per registry version, not per request.
    """
    in_use = (
        ModelEntry.objects.order_by().values_list("backend", "roles_key").distinct()
    )
    backends, roles = set(), set()
    for backend, roles_key in in_use:
        backends.add(backend)
        roles.update(r for r in (roles_key or "").split("|") if r)
    return sorted(backends), sorted(roles)


class ModelEntryFilterSet(django_filters.FilterSet):
    role = django_filters.MultipleChoiceFilter(
        label="Roles", method="filter_roles", widget=forms.CheckboxSelectMultiple
    )
    backend = django_filters.ChoiceFilter(label="Backend", empty_label="Any backend")
    lock = django_filters.ChoiceFilter(
        label="Lock", choices=LOCK_CHOICES, method="filter_lock", empty_label="Any lock"
    )
    installed = django_filters.ChoiceFilter(
        label="Installed",
        choices=INSTALLED_CHOICES,
        method="filter_installed",
        empty_label="Any install state",
    )
    # Declared last: the fuzzy search only scores what the other filters kept.
    q = django_filters.CharFilter(
        label="Search",
        method="filter_search",
        widget=forms.TextInput(
            attrs={
                "type": "search",
                "placeholder": "Search name, display name, alias…  (f)",
                "autocomplete": "off",
                "spellcheck": "false",
                "aria-keyshortcuts": "f",
            }
        ),
    )
    testing = CheckboxFilter(label="Include testing models", method="keep")
    deprecated = CheckboxFilter(label="Show deprecated", method="keep")

    class Meta:
        model = ModelEntry
        fields: list[str] = []

    def __init__(self, data=None, *args, **kwargs):
        # Always bound: the defaults (testing and deprecated hidden) apply to a bare URL.
        super().__init__(data if data is not None else {}, *args, **kwargs)
        self._testing_counted = None
        backends, roles = per_version("filter-choices", choices_in_use)
        self.filters["backend"].extra["choices"] = [(b, b) for b in backends]
        self.filters["role"].extra["choices"] = [(r, r) for r in roles]

    def filter_search(self, queryset, name, value):
        return search_queryset(queryset, value)

    def filter_roles(self, queryset, name, value):
        match = Q()
        for role in value:
            match |= Q(roles_key__contains=f"|{role}|")
        return queryset.filter(match)

    def filter_lock(self, queryset, name, value):
        return queryset.filter(locked=value == "locked")

    def filter_installed(self, queryset, name, value):
        if value == "unknown":
            return queryset.filter(installed__isnull=True)
        return queryset.filter(installed=value == "yes")

    def keep(self, queryset, name, value):
        return queryset

    def filter_queryset(self, queryset):
        queryset = super().filter_queryset(queryset)
        data = self.form.cleaned_data
        if not data.get("deprecated"):
            queryset = queryset.filter(deprecated=False)
        if not data.get("testing"):
            # Lazy: counted only when asked (``counts``).
            self._testing_counted = queryset
            queryset = queryset.filter(testing=False)
        return queryset

    @cached_property
    def counts(self) -> tuple[int, int] | None:
        """``(shown, hidden testing)`` rows, in one query, or None when testing models
        are shown. The pager's count and the footer's "N testing models hidden" both
        read it, instead of one ``COUNT`` each."""
        self.qs  # noqa: B018 - filter_queryset() sets what to count
        counted = self._testing_counted
        if counted is None:
            return None

        def count() -> tuple[int, int]:
            totals = counted.aggregate(
                shown=Count("pk", filter=Q(testing=False)),
                hidden=Count("pk", filter=Q(testing=True)),
            )
            return totals["shown"], totals["hidden"]

        if self.queryset.query.where:  # a narrowed base: not the same rows per filter
            return count()
        # The same filters give the same counts until the rows change (a bump).
        filters = tuple(sorted((k, str(v)) for k, v in self.form.cleaned_data.items()))
        return per_registry_version(("entry-counts", filters), count)

    @property
    def hidden_testing(self) -> int | None:
        """How many testing models the default hiding left out (None: none hidden)."""
        counts = self.counts
        return None if counts is None else counts[1]

    @property
    def is_default(self) -> bool:
        """No filter or search narrows the view beyond the default hiding rules."""
        data = getattr(self.form, "cleaned_data", {}) or {}
        return not any(
            data.get(key) for key in ("q", "role", "backend", "lock", "installed")
        )


class ActionLogFilterSet(django_filters.FilterSet):
    user_name = django_filters.ChoiceFilter(
        label="Operator", empty_label="Any operator"
    )
    action = django_filters.MultipleChoiceFilter(
        choices=Action.choices, widget=forms.CheckboxSelectMultiple
    )
    outcome = django_filters.ChoiceFilter(
        choices=Outcome.choices, empty_label="Any outcome"
    )
    entry = django_filters.CharFilter(
        label="Entry",
        field_name="entry_name",
        lookup_expr="icontains",
        widget=forms.TextInput(attrs={"type": "search", "placeholder": "Model name…"}),
    )
    time = django_filters.DateFromToRangeFilter(
        label="Date range",
        widget=django_filters.widgets.DateRangeWidget(attrs={"type": "date"}),
    )

    class Meta:
        model = ActionLog
        fields: list[str] = []

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        operators = (
            ActionLog.objects.order_by("user_name")
            .values_list("user_name", flat=True)
            .distinct()
        )
        self.filters["user_name"].extra["choices"] = [(u, u) for u in operators]
