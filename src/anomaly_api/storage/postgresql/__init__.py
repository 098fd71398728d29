"""The ``ModelStore`` for replicas sharing one PostgreSQL database.

* :mod:`.store`: the store itself (pool, versions, reads, deletes, copies);
* :mod:`.schema`: the versioned migrations;
* :mod:`.changes`: the change log and the notification listener that fills it.
"""

from __future__ import annotations

from anomaly_api.storage.postgresql.changes import CHANGE_LOG_SIZE, CHANNEL, ChangeLog
from anomaly_api.storage.postgresql.schema import MIGRATIONS
from anomaly_api.storage.postgresql.store import PostgreSQLModelStore, describe_url

__all__ = [
    "CHANGE_LOG_SIZE",
    "CHANNEL",
    "MIGRATIONS",
    "ChangeLog",
    "PostgreSQLModelStore",
    "describe_url",
]
