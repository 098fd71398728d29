"""Persistent model storage behind the :class:`ModelStore` protocol."""

from __future__ import annotations

from pathlib import Path

from anomaly_api.storage.base import ModelRecord, ModelStore, NewModel, SeriesSummary
from anomaly_api.storage.sqlite import SQLiteModelStore

SQLITE_PREFIX = "sqlite:///"


def open_store(
    database_url: str, *, busy_timeout_s: float = 30.0, durable: bool = True
) -> ModelStore:
    """Open the store ``database_url`` names.

    ``sqlite:///relative/path.db`` and ``sqlite:////absolute/path.db`` (three slashes,
    then the path, as SQLAlchemy writes them).
    """
    if database_url.startswith(SQLITE_PREFIX):
        path = database_url[len(SQLITE_PREFIX) :]
        if not path or path == ":memory:":
            raise ValueError(
                "ANOMALY_DATABASE_URL must name a SQLite file (the store is shared by "
                "threads and processes, so an in-memory database cannot work)"
            )
        return SQLiteModelStore(Path(path), busy_timeout_s=busy_timeout_s, durable=durable)
    raise ValueError(f"unsupported ANOMALY_DATABASE_URL {database_url!r}: expected sqlite:///PATH")


__all__ = [
    "ModelRecord",
    "ModelStore",
    "NewModel",
    "SQLiteModelStore",
    "SeriesSummary",
    "open_store",
]
