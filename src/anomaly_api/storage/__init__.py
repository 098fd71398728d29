"""Persistent model storage behind the :class:`ModelStore` protocol."""

from __future__ import annotations

from pathlib import Path

from anomaly_api.storage.base import (
    ModelRecord,
    ModelStore,
    NewModel,
    SeriesSummary,
    StoredVersion,
)
from anomaly_api.storage.sqlite import SQLiteModelStore

SQLITE_PREFIX = "sqlite:///"
POSTGRESQL_PREFIXES = ("postgresql://", "postgres://", "postgresql+psycopg://")


def open_store(
    database_url: str,
    *,
    busy_timeout_s: float = 30.0,
    durable: bool = True,
    pool_size: int = 10,
    connect_timeout_s: float = 5.0,
    statement_timeout_s: float = 30.0,
) -> ModelStore:
    """Open the store ``database_url`` names.

    * ``sqlite:///relative/path.db`` and ``sqlite:////absolute/path.db`` (three slashes,
      then the path, as SQLAlchemy writes them);
    * ``postgresql://user:password@host:port/dbname`` (also ``postgres://`` and
      SQLAlchemy's ``postgresql+psycopg://``), with any libpq parameters as a query.

    The PostgreSQL driver is imported only when such a URL is given.
    """
    if database_url.startswith(POSTGRESQL_PREFIXES):
        from anomaly_api.storage.postgresql import PostgreSQLModelStore

        url = "postgresql://" + database_url.split("://", 1)[1]
        return PostgreSQLModelStore(
            url,
            pool_size=pool_size,
            timeout_s=connect_timeout_s,
            durable=durable,
            statement_timeout_s=statement_timeout_s,
        )
    if database_url.startswith(SQLITE_PREFIX):
        path = database_url[len(SQLITE_PREFIX) :]
        if not path or path == ":memory:":
            raise ValueError(
                "ANOMALY_DATABASE_URL must name a SQLite file (the store is shared by "
                "threads and processes, so an in-memory database cannot work)"
            )
        return SQLiteModelStore(Path(path), busy_timeout_s=busy_timeout_s, durable=durable)
    raise ValueError(
        f"unsupported ANOMALY_DATABASE_URL {database_url!r}: expected sqlite:///PATH or "
        "postgresql://USER@HOST:PORT/DBNAME"
    )


__all__ = [
    "ModelRecord",
    "ModelStore",
    "NewModel",
    "SQLiteModelStore",
    "SeriesSummary",
    "StoredVersion",
    "open_store",
]
