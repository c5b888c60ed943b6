"""What the benches create, they own: a PostgreSQL database and free ports.

A bench never deletes what it did not create. ``own_pg_database`` makes a database
with a fresh, unique name (``CREATE DATABASE`` fails rather than reuse an existing
one) and drops only that database afterwards.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit


def free_port() -> int:
    """A port the kernel says is free right now (bound to port 0, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def database_url(server_url: str, name: str) -> str:
    """``server_url`` with its path replaced by ``/name`` (query string kept)."""
    parts = urlsplit(server_url)
    return urlunsplit(parts._replace(path="/" + name))


def create_pg_database(server_url: str, prefix: str) -> tuple[str, str]:
    """Create a new database named ``<prefix>_<pid>_<random>``: (name, its URL).

    ``server_url`` only says where to connect (its database is the maintenance one,
    e.g. ``postgres``); nothing in it is read or changed.
    """
    import psycopg
    from psycopg import sql

    name = f"{prefix}_{os.getpid()}_{secrets.token_hex(3)}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return name, database_url(server_url, name)


def drop_pg_database(server_url: str, name: str) -> None:
    """Drop a database made by :func:`create_pg_database` (its sessions ended first)."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)
            )
        )


@contextmanager
def own_pg_database(
    server_url: str, prefix: str, *, keep: bool = False
) -> Iterator[str]:
    """A fresh database for the duration of the block; dropped after unless ``keep``."""
    name, url = create_pg_database(server_url, prefix)
    try:
        yield url
    finally:
        if keep:
            print(f"kept database {name}")
        else:
            drop_pg_database(server_url, name)
