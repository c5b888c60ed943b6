"""Table rows rendered from a plan made once per table, not worked out per cell.

django-tables2 decides, for every cell of every row, which arguments the column's
``render_FOO`` method takes (``inspect.signature``), how to read the value (a dict
lookup that raises first, then ``getattr``, ``_meta.get_field`` for choices) and the
``<td>`` attributes; and per row, the same for each ``row_attrs`` callable. For a
page of 50 rows x 9 columns that was most of the table's rendering time.

:class:`PlannedRowsMixin` does that work once per column when the table first
renders a row, then each cell is an attribute read and one call with fixed keyword
arguments. The semantics are django-tables2's (``call_with_appropriate``, choices
shown through ``get_FOO_display``, empty values -> the column default). Columns the
plan cannot describe (links, dotted accessors, callable cell attributes, non-model
records) fall back to django-tables2's own per-cell path, so the output is the
same either way.

Templates print ``row.cells_html`` (every ``<td>``, escaped as a template would) and
use ``row.attrs`` as usual; ``row.planned_cells`` gives the (attributes, cell) pairs.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

from django.core.exceptions import FieldDoesNotExist
from django.utils.formats import localize
from django.utils.html import conditional_escape
from django.utils.safestring import SafeString, mark_safe
from django.utils.timezone import template_localtime
from django_tables2.columns import ManyToManyColumn
from django_tables2.rows import BoundRow, BoundRows
from django_tables2.utils import AttributeDict


def _wanted(fn: Callable) -> tuple[str, ...] | None:
    """The keyword arguments ``call_with_appropriate`` would pass to ``fn``.

    None means "all of them" (``fn`` takes ``**kwargs``); a name ``fn`` needs that is
    not offered makes django-tables2 skip the call, which the callers mirror.
    """
    params = inspect.signature(fn).parameters.values()
    if any(p.kind == p.VAR_KEYWORD for p in params):
        return None
    return tuple(
        p.name for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    )


@dataclass
class CellPlan:
    """How one column's cells are read and rendered.

    ``read`` is None when the plan cannot describe the column: the cell and its
    ``<td>`` attributes then come from django-tables2 itself, per cell.
    """

    bound_column: object
    td_html: str
    read: Callable | None
    render: Callable
    wants: tuple[str, ...] | None

    def td_and_cell(self, row: PlannedRow) -> tuple[str, object]:
        bound_column = self.bound_column
        if self.read is None:
            value = row.get_cell(bound_column.name)
            bound_column.current_value = value
            bound_column.current_record = row.record
            return bound_column.attrs["td"].as_html(), value
        value = self.read(row.record)
        column = bound_column.column
        if value in column.empty_values:
            return self.td_html, bound_column.default
        offered = {
            "value": value,
            "record": row.record,
            "column": column,
            "bound_column": bound_column,
            "bound_row": row,
            "table": row.table,
        }
        if self.wants is None:
            return self.td_html, self.render(**offered)
        if any(name not in offered for name in self.wants):
            return self.td_html, None  # what call_with_appropriate does
        return self.td_html, self.render(**{name: offered[name] for name in self.wants})


def _reader(table, bound_column) -> Callable | None:
    """record -> value for plain model fields and attributes, else None."""
    model = getattr(table.data, "model", None)
    accessor = str(bound_column.accessor)
    if model is None or bound_column.link or not accessor.isidentifier():
        return None
    if isinstance(bound_column.column, ManyToManyColumn):
        return None
    try:
        field = model._meta.get_field(accessor)
    except FieldDoesNotExist:
        field = None
    if field is not None and getattr(field, "choices", None):
        display = f"get_{accessor}_display"
        return lambda record: getattr(record, display)()  # as django-tables2 does

    def read(record):
        try:
            value = getattr(record, accessor)
            if callable(value) and not getattr(value, "alters_data", False):
                value = value()
        except Exception:  # django-tables2 shows the column default then
            return None
        return value

    return read


def _template_value(value) -> str:
    """What ``{{ value }}`` prints with autoescaping on (``render_value_in_context``)."""
    if type(value) is SafeString:  # most render_FOO results: printed as they are
        return value
    value = localize(template_localtime(value))
    if not issubclass(type(value), str):
        value = str(value)
    return conditional_escape(value)


def _static_td(table, column) -> bool:
    """True when the column's ``<td>`` attributes hold no callables (same per row)."""
    merged = {**table.attrs, **column.attrs}
    td = merged.get("td", merged.get("cell", {}))
    return not any(callable(v) or isinstance(v, dict) for v in td.values())


class PlannedRow(BoundRow):
    """A row that renders its cells through the table's plan."""

    @property
    def planned_cells(self):
        """``(td attributes HTML, rendered cell)`` for each column."""
        for plan in self._table.cell_plan:
            yield plan.td_and_cell(self)

    @property
    def cells_html(self) -> SafeString:
        """Every ``<td>`` of the row, as ``<td {{ attrs }}>{{ cell }}</td>`` renders
        them in a template: one template variable per row instead of a loop."""
        return mark_safe(  # noqa: S308 - every cell goes through _template_value
            "".join(
                f"<td {td}>{_template_value(cell)}</td>"
                for td, cell in self.planned_cells
            )
        )

    @property
    def attrs(self):
        table = self._table
        if table.row_attrs_plan is None:
            return super().attrs
        offered = {"table": table, "record": self._record}
        attrs = {}
        for key, value, wants in table.row_attrs_plan:
            if callable(value):
                if wants is None:
                    value = value(**offered)
                elif all(name in offered for name in wants):
                    value = value(**{name: offered[name] for name in wants})
                else:
                    value = None
            attrs[key] = value
        css = self.get_even_odd_css_class()
        attrs["class"] = f"{attrs['class']} {css}" if attrs.get("class") else css
        return AttributeDict(attrs)


class PlannedRows(BoundRows):
    def __iter__(self):
        for record in self.data:
            yield PlannedRow(record, table=self.table)

    def __getitem__(self, key):
        if isinstance(key, slice):
            return PlannedRows(data=self.data[key], table=self.table)
        return PlannedRow(record=self.data[key], table=self.table)


class PlannedRowsMixin:
    """Mix into a ``tables.Table`` (no pinned rows): rows render through a plan."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        pinned = self.rows.pinned_data
        if pinned.get("top") is not None or pinned.get("bottom") is not None:
            raise ValueError("PlannedRowsMixin does not support pinned rows")
        self.rows = PlannedRows(data=self.data, table=self)

    @cached_property
    def cell_plan(self) -> list[CellPlan]:
        plans = []
        for bound_column in self.columns:
            read = _reader(self, bound_column)
            if not _static_td(self, bound_column.column):
                read = None
            plans.append(
                CellPlan(
                    bound_column=bound_column,
                    td_html=bound_column.attrs["td"].as_html(),
                    read=read,
                    render=bound_column.render,
                    wants=_wanted(bound_column.render),
                )
            )
        return plans

    @cached_property
    def row_attrs_plan(self) -> list[tuple[str, object, tuple | None]] | None:
        """``(key, value, wanted arguments)``; None for nested attribute dicts."""
        if any(isinstance(v, dict) for v in self.row_attrs.values()):
            return None
        return [
            (key, value, _wanted(value) if callable(value) else ())
            for key, value in self.row_attrs.items()
        ]
