"""The embedded default under contention: WAL, IMMEDIATE writers, a long busy timeout."""

from __future__ import annotations

import sqlite3

import pytest
from django.db import connection, transaction

pytestmark = pytest.mark.skipif(
    connection.vendor != "sqlite", reason="SQLite settings (DATABASE_URL is set)"
)


@pytest.mark.django_db(transaction=True)
def test_writers_queue_instead_of_failing():
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA journal_mode")
        assert cursor.fetchone()[0] == "wal"
        cursor.execute("PRAGMA busy_timeout")
        # at least a minute: a waiting request must not 503 behind a big sync
        assert cursor.fetchone()[0] >= 60_000


@pytest.mark.django_db(transaction=True)
def test_a_transaction_holds_the_write_lock_from_begin():
    """IMMEDIATE: a transaction that has only read still excludes other writers, so
    it can never fail later on a read-to-write upgrade (SQLITE_BUSY, no waiting)."""
    other = sqlite3.connect(connection.settings_dict["NAME"], timeout=0)
    try:
        with transaction.atomic():
            connection.cursor().execute("SELECT 1").fetchone()
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
        other.execute("BEGIN IMMEDIATE")  # free again after the commit
        other.rollback()
    finally:
        other.close()
