"""CSV export of a table view: ``?_export=csv`` answers every row of the current view.

Exports every row of the current filter view (the table's data, not just the page)
with the visible column headers in order. Cells that a spreadsheet would run as a
formula are neutralised with a leading apostrophe (OWASP "CSV injection"). Any other
``_export`` value is refused with 400.

Tables that declare ``export_fields`` are streamed straight from the rows of a
``values_list`` query (:func:`raw_rows`: no model instances, no per-cell
django-tables2 machinery, booleans and JSON as the database sends them: 10,000 rows in
a fraction of a second, in constant memory); the others go through django-tables2's
``ExportMixin`` (tablib).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator, Sequence
from itertools import chain
from operator import itemgetter

from django.db.models import QuerySet
from django.db.models.sql.constants import MULTI
from django.http import HttpResponseBadRequest, StreamingHttpResponse
from django.utils import timezone
from django_tables2.export.views import ExportMixin

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
STREAM_CHUNK = 2000

#: Field types :func:`raw_rows` leaves as the database sends them. Their converters
#: (SQLite's 0/1 -> bool for every flag, ``json.loads`` for every JSON cell) were a
#: third of a 10,000-row export's time; ``export_fields`` converters take the raw
#: values instead (a flag: any truthy value; JSON: its text, or None).
RAW_TYPES = frozenset({"BooleanField", "JSONField"})


def neutralise(value):
    """``=1+1`` -> ``'=1+1``; other values pass through unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


class SafeExportTableMixin:
    """Mix into a ``tables.Table``: exported values go through :func:`neutralise`.

    A table may declare ``export_fields = {column name: (fields, convert)}``: the
    cell is ``convert(table, *values of fields)`` (or the one field's value, for a
    ``convert`` of None), the fields read by
    :func:`raw_rows` from the table's (filtered, sorted) queryset, so a boolean may
    arrive as 0/1 and a JSON field as its text.
    """

    export_fields: dict[str, tuple[tuple[str, ...], Callable | None]] | None = None
    #: Columns whose exported cells come from a fixed vocabulary ("locked", "yes", a
    #: number), never from registry text: they skip the formula guard.
    export_fixed_words: frozenset[str] = frozenset()

    def as_values(self, exclude_columns=None):
        for row in super().as_values(exclude_columns=exclude_columns):
            yield [neutralise(value) for value in row]

    def stream_values(self, exclude_columns=()) -> Iterator[list]:
        """Header, then one list per row, from ``values_list`` (``export_fields``).

        A column whose ``convert`` is None is its field's value as is. The per-row
        work is one ``itemgetter`` for those, one call per computed column and the
        formula guard (:func:`neutralise`, inlined) for columns that can hold text.
        """
        columns = [c for c in self.columns if c.name not in exclude_columns]
        yield [str(c.header) for c in columns]
        specs = [self.export_fields[c.name] for c in columns]
        fields: list[str] = []
        for names, _convert in specs:
            fields.extend(f for f in names if f not in fields)
        firsts = [fields.index(names[0]) for names, _convert in specs]
        plain = itemgetter(*firsts) if len(firsts) > 1 else lambda v: (v[firsts[0]],)
        single, several = [], []  # computed columns: (column, convert, field place(s))
        for column, (names, convert) in enumerate(specs):
            if convert is not None and len(names) == 1:
                single.append((column, convert, firsts[column]))
            elif convert is not None:
                places = itemgetter(*(fields.index(f) for f in names))
                several.append((column, convert, places))
        guarded = [
            column
            for column, c in enumerate(columns)
            if c.name not in self.export_fixed_words
        ]
        for values in raw_rows(self.data.data, fields):
            row = list(plain(values))
            for column, convert, at in single:
                row[column] = convert(self, values[at])
            for column, convert, places in several:
                row[column] = convert(self, *places(values))
            for column in guarded:
                value = row[column]
                if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
                    row[column] = "'" + value
            yield row


def raw_rows(queryset: QuerySet, fields: Sequence[str]) -> Iterator[Sequence]:
    """``queryset.values_list(*fields)``'s rows, fetched in chunks, except that the
    fields of :data:`RAW_TYPES` skip Django's converters (every other field is
    converted as usual).

    Runs the query's own SQL through its compiler, as ``QuerySet.iterator()`` does
    (a server-side cursor on PostgreSQL), so filters, annotations and ordering are
    the queryset's.
    """
    values = queryset.values_list(*fields)
    compiler = values.query.get_compiler(using=values.db)
    chunks = compiler.execute_sql(MULTI, chunked_fetch=True, chunk_size=STREAM_CHUNK)
    selected = [expression for expression, _sql, _alias in compiler.select]
    aliases = [alias for _expression, _sql, alias in compiler.select]
    converters = {
        at: (convert, expression)
        for at, (convert, expression) in compiler.get_converters(
            selected[: compiler.col_count]
        ).items()
        if expression.output_field.get_internal_type() not in RAW_TYPES
    }
    rows = chain.from_iterable(chunks)
    if converters:
        rows = compiler.apply_converters(map(list, rows), converters)
    if aliases[: len(fields)] == list(fields):
        return rows
    # values_list's order, whatever order the SQL selected them in.
    pick = itemgetter(*(aliases.index(field) for field in fields))
    return (tuple(pick(row)) if len(fields) > 1 else (pick(row),) for row in rows)


def csv_chunks(rows: Iterator[list], rows_per_chunk: int = 500) -> Iterator[str]:
    """CSV text in blocks of rows: one write per block, not one per row."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    for count, row in enumerate(rows, 1):
        writer.writerow(row)
        if count % rows_per_chunk == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue()


class CsvExportMixin(ExportMixin):
    """``?_export=csv`` on a list view answers a timestamped CSV download."""

    export_formats = ("csv",)
    export_prefix = "export"

    def get(self, request, *args, **kwargs):
        export_format = request.GET.get(self.export_trigger_param)
        if export_format and export_format not in self.export_formats:
            return HttpResponseBadRequest(
                f"Cannot export as {export_format!r}: the formats offered are "
                + ", ".join(self.export_formats)
                + ".",
                content_type="text/plain; charset=utf-8",
            )
        return super().get(request, *args, **kwargs)

    def get_export_filename(self, export_format):
        stamp = timezone.localtime().strftime("%Y%m%d-%H%M")
        return f"{self.export_prefix}-{stamp}.{export_format}"

    def create_export(self, export_format):
        table = self.get_table(**self.get_table_kwargs())
        if getattr(table, "export_fields", None) is None:
            return super().create_export(export_format)
        response = StreamingHttpResponse(
            csv_chunks(table.stream_values(exclude_columns=self.exclude_columns)),
            content_type="text/csv; charset=utf-8",
        )
        filename = self.get_export_filename(export_format)
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response
