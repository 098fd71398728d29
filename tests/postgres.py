"""Throwaway PostgreSQL databases for the tests that need the real server.

The server is ``ANOMALY_TEST_POSTGRESQL_URL`` (default: the developer and CI machines'
``postgresql://postgres@127.0.0.1:5432/test``, trust auth). Each test run creates its
own database, ``anomaly_test_<pid>_<random>``, and drops it at the end; each test gets
its own schema in it (through ``search_path``), so tests never see each other's data.

Without a reachable server the tests skip with a message saying so, except under
``CI=true``, where they fail: CI must exercise the PostgreSQL store.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import conninfo as pg_conninfo

ADMIN_URL = os.environ.get(
    "ANOMALY_TEST_POSTGRESQL_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


def _unavailable(reason: str) -> None:
    message = f"PostgreSQL at {ADMIN_URL} is not usable ({reason})"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message + "; under CI=true the PostgreSQL tests must run", pytrace=False)
    pytest.skip(message + "; set ANOMALY_TEST_POSTGRESQL_URL or start the server")


def with_database(url: str, database: str) -> str:
    """``url`` pointing at ``database`` instead."""
    parts = pg_conninfo.conninfo_to_dict(url)
    parts["dbname"] = database
    host = parts.get("host", "127.0.0.1")
    port = parts.get("port", "5432")
    user = parts.get("user", "postgres")
    password = f":{quote(str(parts['password']))}" if parts.get("password") else ""
    return f"postgresql://{quote(str(user))}{password}@{host}:{port}/{database}"


def with_port(url: str, port: int) -> str:
    """``url`` reaching the server through ``127.0.0.1:port`` (a proxy) instead."""
    parts = urlsplit(url)
    credentials = parts.netloc.rpartition("@")[0]
    netloc = f"{credentials}@127.0.0.1:{port}" if credentials else f"127.0.0.1:{port}"
    return urlunsplit(parts._replace(netloc=netloc))


def with_schema(url: str, schema: str) -> str:
    """``url`` whose sessions create and find tables in ``schema``."""
    return f"{url}?options=-csearch_path%3D{schema}"


@pytest.fixture(scope="session")
def postgresql_database() -> Iterator[str]:
    """The URL of a database created for this test run (dropped afterwards)."""
    try:
        admin = psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.Error as exc:
        _unavailable(str(exc).strip())
    name = f"anomaly_test_{os.getpid()}_{secrets.token_hex(4)}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield with_database(ADMIN_URL, name)
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def postgresql_url(postgresql_database: str) -> str:
    """A URL whose tables live in a schema of this test's own."""
    schema = f"t_{secrets.token_hex(6)}"
    with psycopg.connect(postgresql_database, autocommit=True) as connection:
        connection.execute(f'CREATE SCHEMA "{schema}"')
    return with_schema(postgresql_database, schema)
