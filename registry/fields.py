"""A JSON column that keeps key order on every database.

PostgreSQL's ``jsonb`` (what Django's JSONField uses there) re-orders object keys.
The registry's key order is part of its file format (a no-op save must be
byte-identical, diffs must read in file order), so the raw entries are stored as
JSON text instead. These columns are never queried by JSON path.
"""

from __future__ import annotations

import json

import orjson
from django.db import models


class OrderedJSONField(models.TextField):
    description = "JSON stored as text (key order preserved)"

    def from_db_value(self, value, expression, connection):
        if value is None:
            return None
        return json.loads(value)

    def to_python(self, value):
        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError:
                return value
        return value

    def get_prep_value(self, value):
        if value is None:
            return None
        try:
            # orjson: a sync writes megabytes of entries; 5x faster than json.dumps.
            return orjson.dumps(value).decode("utf-8")
        except TypeError:  # integers beyond 64 bits, lone surrogates, ...
            return json.dumps(value, ensure_ascii=True, allow_nan=False)

    def get_placeholder(self, value, compiler, connection):
        """Plain ``%s``. Defining this keeps PostgreSQL bulk inserts on ``VALUES``
        lists: Django 5.2's ``UNNEST`` path sends each column as one array, and
        psycopg escapes array items in Python, which made inserting 10,000 entries'
        JSON take about 20 s instead of about 3 (``bench/bench_sync.py``)."""
        return "%s"

    def value_to_string(self, obj):
        return self.get_prep_value(self.value_from_object(obj))
