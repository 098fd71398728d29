"""The ``ModelStore`` for several replicas: one PostgreSQL database shared by all of them.

* **Connections.** A :mod:`psycopg_pool` pool per process (``pool_size`` connections at
  most, one opened eagerly and in the background, so a replica starts even when
  PostgreSQL is not up yet). A request waits at most ``timeout_s`` for a connection,
  then gets :class:`~anomaly_api.errors.StoreUnavailable` (a 503).
* **Schema.** A versioned migration table, ``anomaly_schema_migrations``: each entry of
  :data:`~anomaly_api.storage.postgresql.schema.MIGRATIONS` is applied once, in order, by
  the first process that reaches the database, under a transaction-scoped advisory lock
  so replicas starting together do not race. It runs on the first successful connection
  rather than at start-up, for the same reason. A database migrated by a newer release
  is refused with a clear message.
* **Version numbers.** ``INSERT … ON CONFLICT DO UPDATE SET last_version = last_version
  + 1 RETURNING`` on a per-series counter row: the row lock queues concurrent fits of
  one series, whichever replica they reach, so they get exactly 1..N. The model row is
  inserted in the same statement, so a version is never half-written.
* **Durability.** A fit is acknowledged after its COMMIT returns, and sessions run with
  ``synchronous_commit`` at least ``on`` (raised if the server default is ``off``).
* **Change marker, without I/O.** Every commit also sends ``NOTIFY`` on
  :data:`CHANNEL` (delivered by PostgreSQL at commit; a fit's payload names its series).
  A listener thread per process logs the notifications in a :class:`ChangeLog`;
  :meth:`change_marker` is the log's count, a memory read, and :meth:`fitted_since`
  tells the registry which series' "latest" moved. This process's own commits are
  logged at once, so a predict in the process that made the fit sees it immediately;
  every other process (worker or replica) sees it within the notification's delivery
  time. When the listener loses its connection it reconnects every
  :data:`RECONNECT_INTERVAL_S` and then logs "anything may have changed".
* **Unavailability.** While the listener's latest connection attempt has failed, calls
  that need the database fail at once with :class:`StoreUnavailable` instead of waiting
  for the pool; models already in the registry's cache keep answering.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

import psycopg
from psycopg import conninfo as pg_conninfo
from psycopg_pool import ConnectionPool, PoolClosed, PoolTimeout

from anomaly_api.auth import KeyRecord
from anomaly_api.detectors.series import Series
from anomaly_api.errors import InvalidInput, QuotaExceeded, StoreUnavailable
from anomaly_api.quotas import NO_LIMITS, Limits, Usage, check
from anomaly_api.storage.base import (
    ASCII_LOWER,
    ASCII_UPPER,
    ActiveKey,
    Changes,
    ModelRecord,
    NewModel,
    SeriesSummary,
    StoredVersion,
    ascii_lower,
)
from anomaly_api.storage.codec import (
    decode_timestamps,
    decode_values,
)
from anomaly_api.storage.postgresql.changes import (
    CHANNEL,
    FIT_PREFIX,
    ChangeListener,
    ChangeLog,
    first_line,
)
from anomaly_api.storage.postgresql.schema import apply_migrations
from anomaly_api.storage.postgresql.streams import (
    PostgreSQLStreams,
    drop_stream,
    prune_versions,
)
from anomaly_api.storage.rows import (
    INSERT_COLUMNS,
    RECORD_COLUMNS,
    copied_row,
    counter_floors,
    created_record,
    key_row,
    new_row,
    record_from_row,
    stored_from_row,
    summary_from_row,
)

_INSERT_MODEL = f"INSERT INTO anomaly_models ({INSERT_COLUMNS}) VALUES ({', '.join(['%s'] * 15)})"

T = TypeVar("T")
DELETE_HEARD_S = 1.0
"""How long a delete waits for its own notification to come back (a listener that is
reconnecting meanwhile makes every replica forget everything anyway)."""
DELETE_SETTLE_S = 0.05
"""And then how long more, for the other replicas' listeners to handle theirs: they get
the notification when this process does, and need a moment of CPU to act on it."""


def describe_url(url: str) -> str:
    """``host:port/dbname`` of a PostgreSQL URL, for messages (never the password)."""
    try:
        parts = pg_conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "the configured PostgreSQL server"
    host = parts.get("host") or "localhost"
    return f"{host}:{parts.get('port') or 5432}/{parts.get('dbname') or ''}"


class PostgreSQLModelStore(PostgreSQLStreams):
    """A :class:`~anomaly_api.storage.base.ModelStore` in a PostgreSQL database."""

    backend = "postgresql"

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 10,
        timeout_s: float = 5.0,
        durable: bool = True,
        statement_timeout_s: float = 30.0,
    ) -> None:
        self.url = url
        self.where = describe_url(url)
        self._timeout_s = timeout_s
        self._statement_timeout_ms = max(1, round(statement_timeout_s * 1000))
        self._durable = durable
        self._connect_kwargs: dict[str, Any] = {
            "autocommit": True,
            "connect_timeout": max(2, round(timeout_s)),
            "application_name": "anomaly-api",
            # A server that vanishes without closing the socket (host down, cable cut) is
            # noticed in seconds instead of the kernel's default of hours.
            "keepalives": 1,
            "keepalives_idle": 5,
            "keepalives_interval": 2,
            "keepalives_count": 3,
            "tcp_user_timeout": 10_000,
            # Text as UTF-8 whatever the database's encoding: a SQL_ASCII database would
            # otherwise hand back bytes, and undecodable notifications.
            "client_encoding": "UTF8",
        }
        try:
            pg_conninfo.conninfo_to_dict(url)  # a malformed URL fails here, at start-up
        except psycopg.ProgrammingError as exc:
            raise ValueError(f"malformed PostgreSQL URL: {first_line(exc)}") from None
        self._schema_ready = False
        self._schema_lock = threading.Lock()
        self._changes = ChangeLog()
        self._pool = ConnectionPool(
            url,
            min_size=1,
            max_size=max(1, pool_size),
            kwargs=self._connect_kwargs,
            configure=self._configure,
            timeout=timeout_s,
            # A failed attempt is not retried in the background (0 s); the pool grows back
            # on demand instead, and the listener says when the server is back.
            reconnect_timeout=0,
            name="anomaly-api",
            open=False,
        )
        self._pool.open(wait=False)
        self._init_streams()
        self._listener = ChangeListener(
            url,
            self._connect_kwargs,
            self._changes,
            on_reconnect=self._pool.check,
            on_release=self._asked_to_release,
        )

    # -- connections -----------------------------------------------------------------

    def _configure(self, connection: psycopg.Connection[Any]) -> None:
        # A statement (or a wait for a lock) longer than this is cancelled and answered
        # with a 503, instead of holding a request and a connection indefinitely.
        connection.execute(
            "SELECT set_config('statement_timeout', %s, false)",
            (str(self._statement_timeout_ms),),
        )
        if self._durable:
            row = connection.execute("SHOW synchronous_commit").fetchone()
            if row is not None and row[0] in {"off", "local"}:
                connection.execute("SET synchronous_commit = on")
        else:
            connection.execute("SET synchronous_commit = off")

    @contextlib.contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection with the schema in place; errors become StoreUnavailable."""
        down = self._listener.failure()
        if down is not None:
            raise StoreUnavailable(f"PostgreSQL at {self.where} is unreachable: {down}")
        try:
            with self._pool.connection() as connection:
                if not self._schema_ready:
                    self._migrate(connection)
                yield connection
        except PoolTimeout as exc:
            raise StoreUnavailable(
                f"PostgreSQL at {self.where} gave no connection within {self._timeout_s:g} s"
            ) from exc
        except PoolClosed as exc:
            raise StoreUnavailable("the PostgreSQL store is closed") from exc
        except (psycopg.OperationalError, psycopg.InterfaceError, psycopg.ProgrammingError) as exc:
            # The server, the connection or the database's set-up (missing rights, say);
            # a DataError or IntegrityError would be a bug here, and stays one (a 500).
            raise StoreUnavailable(f"PostgreSQL at {self.where} failed: {first_line(exc)}") from exc

    def _run(self, work: Callable[[psycopg.Connection[Any]], T], *, retry: bool = True) -> T:
        """``work`` on a pooled connection. A read that meets a connection broken since it
        was pooled (the server restarted) is retried once on a fresh one."""
        try:
            with self._connection() as connection:
                return work(connection)
        except StoreUnavailable as exc:
            cause = exc.__cause__
            if not (retry and isinstance(cause, psycopg.OperationalError)):
                raise
            self._pool.check()  # drop every other broken connection too
            with self._connection() as connection:
                return work(connection)

    def _read(self, sql: str, parameters: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self._run(lambda connection: connection.execute(sql, parameters).fetchall())

    def _migrate(self, connection: psycopg.Connection[Any]) -> None:
        with self._schema_lock:
            if self._schema_ready:
                return
            apply_migrations(connection, self.where)
            self._schema_ready = True

    def schema_version(self) -> int:
        """The newest migration applied to the database."""
        [(version,)] = self._read("SELECT MAX(version) FROM anomaly_schema_migrations")
        return int(version)

    def _committed(self, kind: str | None, series_id: str | None = None) -> None:
        """Log a commit of this process at once: its own predicts must see it without
        waiting for the notification (which arrives too, and is logged again)."""
        self._changes.record(kind, series_id)

    # -- the ModelStore protocol ----------------------------------------------------------

    def create_version(self, model: NewModel) -> ModelRecord:
        created_at = time.time()
        values = new_row(model, created_at)

        def write(connection: psycopg.Connection[Any]) -> tuple[int, int]:
            with connection.transaction():
                if model.quota is not None and model.quota.limited:
                    _check_quota(connection, model)
                # One statement: bump the counter (its row lock queues concurrent fits of
                # the series), store the model, and count the series in when it is its
                # only version.
                row = connection.execute(
                    "WITH counter AS ("
                    "  INSERT INTO anomaly_series AS s (series_id, last_version, versions)"
                    "  VALUES (%s, 1, 1) ON CONFLICT (series_id) DO UPDATE"
                    "  SET last_version = s.last_version + 1, versions = s.versions + 1"
                    "  RETURNING last_version, versions),"
                    " counted AS (UPDATE anomaly_meta SET value = value + 1"
                    "  WHERE key = 'series_with_versions'"
                    "  AND (SELECT versions FROM counter) = 1)"
                    f" INSERT INTO anomaly_models ({INSERT_COLUMNS})"
                    " SELECT %s, last_version, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s"
                    " FROM counter RETURNING version",
                    (model.series_id, model.series_id, *values),
                ).fetchone()
                connection.execute(
                    "SELECT pg_notify(%s, %s)", (CHANNEL, FIT_PREFIX + model.series_id)
                )
                assert row is not None
                pruned = (
                    prune_versions(connection, model.series_id, int(row[0]), model.prune)
                    if model.prune is not None
                    else 0
                )
            return int(row[0]), pruned

        # No retry: a write whose connection broke may have committed.
        version, pruned = self._run(write, retry=False)
        self._committed("fit", model.series_id)
        if pruned:
            self._committed("delete", model.series_id)
        return created_record(model, version, created_at)

    def usage(self, owner: str | None, series_id: str | None = None) -> Usage:
        return self._run(lambda connection: _usage(connection, owner, series_id or ""))

    def expire_versions(self, owner: str | None, before: float, limit: int = 10_000) -> int:
        rows = self._read(
            "SELECT series_id, array_agg(version) FROM (SELECT series_id, version"
            " FROM anomaly_models m WHERE " + _OWNER + " AND created_at < %s AND version <"
            " (SELECT MAX(version) FROM anomaly_models l WHERE l.series_id = m.series_id)"
            " LIMIT %s) doomed GROUP BY series_id ORDER BY series_id",
            (owner, before, limit),
        )
        # Series by series, each as a delete of those versions (counts and notices kept
        # as a delete keeps them); the latest version is never among them.
        return sum(
            self._delete(
                series_id,
                " AND version = ANY(%s) AND version <"
                " (SELECT MAX(version) FROM anomaly_models WHERE series_id = %s)",
                list(versions),
                series_id,
                settle=False,  # nobody waits for retention to answer
            )
            for series_id, versions in rows
        )

    def get_model(self, series_id: str, version: int | None = None) -> ModelRecord | None:
        if version is None:
            rows = self._read(
                f"SELECT {RECORD_COLUMNS} FROM anomaly_models WHERE series_id = %s "
                "ORDER BY version DESC LIMIT 1",
                (series_id,),
            )
        else:
            if not _fits_integer(version):
                return None
            rows = self._read(
                f"SELECT {RECORD_COLUMNS} FROM anomaly_models "
                "WHERE series_id = %s AND version = %s",
                (series_id, version),
            )
        return record_from_row(rows[0]) if rows else None

    def latest_version(self, series_id: str) -> int | None:
        [(latest,)] = self._read(
            "SELECT MAX(version) FROM anomaly_models WHERE series_id = %s", (series_id,)
        )
        return None if latest is None else int(latest)

    def list_versions(
        self, series_id: str, after: int = 0, limit: int | None = None
    ) -> list[ModelRecord]:
        rows = self._read(
            f"SELECT {RECORD_COLUMNS} FROM anomaly_models WHERE series_id = %s AND version > %s"
            " ORDER BY version LIMIT %s",
            (series_id, after, limit),  # LIMIT NULL: no limit
        )
        return [record_from_row(row) for row in rows]

    def list_series(
        self, limit: int, after: str | None = None, contains: str | None = None
    ) -> list[SeriesSummary]:
        # Walks the counter table's primary key and looks up each series' newest model,
        # so a page costs the same at the start and at the end of 10^5 series.
        # translate(), not lower(): only ASCII letters fold, as in SQLite.
        match = "" if contains is None else " AND strpos(translate(s.series_id, %s, %s), %s) > 0"
        needle = () if contains is None else (ASCII_UPPER, ASCII_LOWER, ascii_lower(contains))
        rows = self._read(
            "SELECT s.series_id, m.version, s.versions, m.points_used, m.created_at"
            " FROM anomaly_series s"
            " JOIN LATERAL (SELECT version, points_used, created_at FROM anomaly_models l"
            "  WHERE l.series_id = s.series_id ORDER BY version DESC LIMIT 1) m ON true"
            f" WHERE s.series_id > %s{match} ORDER BY s.series_id LIMIT %s",
            # PostgreSQL text cannot hold NUL, and no series id does: ids after "a\0b"
            # are exactly the ids after "a".
            ("" if after is None else after.split("\0", 1)[0], *needle, limit),
        )
        return [summary_from_row(row) for row in rows]

    def count_series(self) -> int:
        [(count,)] = self._read("SELECT value FROM anomaly_meta WHERE key = 'series_with_versions'")
        return int(count)

    def training_data(self, series_id: str, version: int) -> Series | None:
        if not _fits_integer(version):
            return None
        rows = self._read(
            "SELECT training_timestamps, training_values FROM anomaly_models "
            "WHERE series_id = %s AND version = %s",
            (series_id, version),
        )
        if not rows:
            return None
        return Series(decode_timestamps(bytes(rows[0][0])), decode_values(bytes(rows[0][1])))

    def delete_series(self, series_id: str) -> int:
        return self._delete(series_id, "")

    def delete_version(self, series_id: str, version: int) -> bool:
        if not _fits_integer(version):
            return False
        return bool(self._delete(series_id, " AND version = %s", version))

    def _delete(self, series_id: str, condition: str, *values: Any, settle: bool = True) -> int:
        """Delete the series' versions matching ``condition`` (all: drop the series).
        ``settle``: return only once the delete's notification came back to this process,
        and :data:`DELETE_SETTLE_S` more, so that the other replicas, which get it at the
        same moment, have stopped serving the versions by the time the client hears."""
        kind = "delete" if condition else "drop"
        position = self._changes.count

        def write(connection: psycopg.Connection[Any]) -> int:
            with connection.transaction():
                # Lock the counter row first, as a fit does, so counts stay exact.
                locked = connection.execute(
                    "SELECT versions FROM anomaly_series WHERE series_id = %s FOR UPDATE",
                    (series_id,),
                ).fetchone()
                deleted = connection.execute(
                    "DELETE FROM anomaly_models WHERE series_id = %s" + condition,
                    (series_id, *values),
                ).rowcount
                if deleted:
                    # Recounted rather than decremented: a count an older release left
                    # behind (it did not keep one) is repaired here instead of going wrong.
                    row = connection.execute(
                        "UPDATE anomaly_series SET versions = (SELECT COUNT(*) FROM "
                        "anomaly_models WHERE series_id = %s) WHERE series_id = %s "
                        "RETURNING versions",
                        (series_id, series_id),
                    ).fetchone()
                    had = locked is not None and locked[0] > 0
                    has = row is not None and row[0] > 0
                    if had != has:
                        connection.execute(
                            "UPDATE anomaly_meta SET value = value + %s "
                            "WHERE key = 'series_with_versions'",
                            (1 if has else -1,),
                        )
                    connection.execute(
                        "UPDATE anomaly_meta SET value = value + 1 WHERE key = 'deletion_epoch'"
                    )
                    if kind == "drop":
                        drop_stream(connection, series_id)
                    connection.execute("SELECT pg_notify(%s, %s)", (CHANNEL, f"{kind} {series_id}"))
            return int(deleted)

        deleted = self._run(write, retry=False)
        if deleted:
            self._committed(kind, series_id)
            if settle and self._changes.wait_heard(kind, series_id, position, DELETE_HEARD_S):
                time.sleep(DELETE_SETTLE_S)
        return deleted

    def change_marker(self) -> int:
        # Called on every cached predict: an attribute read, no I/O.
        return self._changes.count

    def change_position(self) -> int:
        return self._changes.count

    def changes_since(self, position: int) -> tuple[int, Changes] | None:
        return self._changes.changes_since(position)

    def deletion_epoch(self) -> int:
        [(epoch,)] = self._read("SELECT value FROM anomaly_meta WHERE key = 'deletion_epoch'")
        return int(epoch)

    # -- API keys ---------------------------------------------------------------------

    def create_key(
        self, name: str, key_digest: str, scopes: Sequence[str], limits: Limits = NO_LIMITS
    ) -> KeyRecord:
        created_at = time.time()

        def write(connection: psycopg.Connection[Any]) -> bool:
            with connection.transaction():
                row = connection.execute(
                    "INSERT INTO anomaly_api_keys (name, digest, scopes, created_at, max_series,"
                    " max_points, retention_days) VALUES (%s, %s, %s, %s, %s, %s, %s)"
                    " ON CONFLICT (name) DO NOTHING RETURNING name",
                    (
                        name,
                        key_digest,
                        ",".join(scopes),
                        created_at,
                        limits.max_series,
                        limits.max_points,
                        limits.retention_days,
                    ),
                ).fetchone()
            return row is not None

        if not self._run(write, retry=False):
            raise InvalidInput(f"a key named {name!r} exists (or existed)", field="name")
        return KeyRecord(name, tuple(scopes), created_at, limits=limits)

    def list_keys(self) -> list[KeyRecord]:
        rows = self._read(
            "SELECT name, scopes, created_at, revoked_at, max_series, max_points, retention_days"
            " FROM anomaly_api_keys ORDER BY name"
        )
        return [
            KeyRecord(name, tuple(scopes.split(",")), at, revoked, Limits(*limits))
            for name, scopes, at, revoked, *limits in rows
        ]

    def revoke_key(self, name: str) -> bool:
        def write(connection: psycopg.Connection[Any]) -> int:
            with connection.transaction():
                return connection.execute(
                    "UPDATE anomaly_api_keys SET revoked_at = %s"
                    " WHERE name = %s AND revoked_at IS NULL",
                    (time.time(), name),
                ).rowcount

        return bool(self._run(write, retry=False))

    def export_keys(self) -> list[tuple[KeyRecord, str]]:
        rows = self._read(
            "SELECT name, scopes, created_at, revoked_at, max_series, max_points, retention_days,"
            " digest FROM anomaly_api_keys ORDER BY name"
        )
        return [
            (KeyRecord(name, tuple(scopes.split(",")), at, revoked, Limits(*limits)), key_digest)
            for name, scopes, at, revoked, *limits, key_digest in rows
        ]

    def import_keys(self, keys: Sequence[tuple[KeyRecord, str]]) -> int:
        def write(connection: psycopg.Connection[Any]) -> int:
            changed = 0
            with connection.transaction():
                for record, key_digest in keys:
                    inserted = connection.execute(
                        "INSERT INTO anomaly_api_keys (name, digest, scopes, created_at,"
                        " revoked_at, max_series, max_points, retention_days)"
                        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                        (record.name, key_digest, *key_row(record)),
                    ).rowcount
                    if not inserted and record.revoked_at is not None:
                        inserted = connection.execute(
                            "UPDATE anomaly_api_keys SET revoked_at = %s WHERE name = %s"
                            " AND digest = %s AND revoked_at IS NULL",
                            (record.revoked_at, record.name, key_digest),
                        ).rowcount
                    changed += max(inserted, 0)
            return changed

        return self._run(write, retry=False)

    def active_keys(self) -> list[ActiveKey]:
        rows = self._read(
            "SELECT digest, name, scopes, max_series, max_points, retention_days"
            " FROM anomaly_api_keys WHERE revoked_at IS NULL"
        )
        return [
            (key_digest, name, tuple(scopes.split(",")), Limits(*limits))
            for key_digest, name, scopes, *limits in rows
        ]

    def ping(self) -> None:
        self._read("SELECT 1")

    # -- copying between stores -----------------------------------------------------------

    def export_versions(self, batch_size: int = 500) -> Iterator[list[StoredVersion]]:
        after: tuple[str, int] = ("", 0)
        while True:
            rows = self._read(
                f"SELECT {RECORD_COLUMNS}, training_timestamps, training_values "
                "FROM anomaly_models WHERE (series_id, version) > (%s, %s) "
                "ORDER BY series_id, version LIMIT %s",
                (*after, batch_size),
            )
            if not rows:
                return
            yield [stored_from_row(row) for row in rows]
            after = (rows[-1][0], int(rows[-1][1]))

    def series_counters(self) -> dict[str, int]:
        return {
            series_id: int(last)
            for series_id, last in self._read("SELECT series_id, last_version FROM anomaly_series")
        }

    def import_versions(
        self, versions: Sequence[StoredVersion], counters: Mapping[str, int]
    ) -> int:
        rows = [copied_row(stored) for stored in versions]
        floors = counter_floors(versions, counters)

        def write(connection: psycopg.Connection[Any]) -> int:
            with connection.transaction(), connection.cursor() as cursor:
                cursor.executemany(
                    "INSERT INTO anomaly_series AS s (series_id, last_version) VALUES (%s, %s) "
                    "ON CONFLICT (series_id) DO UPDATE "
                    "SET last_version = GREATEST(s.last_version, EXCLUDED.last_version)",
                    sorted(floors.items()),  # one lock order for every importer
                )
                # Lock the touched counter rows (as fits do), then recount them.
                touched = sorted({stored.record.series_id for stored in versions})
                before = dict(
                    cursor.execute(
                        "SELECT series_id, versions FROM anomaly_series "
                        "WHERE series_id = ANY(%s) ORDER BY series_id FOR UPDATE",
                        (touched,),
                    ).fetchall()
                )
                inserted = 0
                if rows:
                    cursor.executemany(_INSERT_MODEL + " ON CONFLICT DO NOTHING", rows)
                    inserted = max(cursor.rowcount, 0)
                after = dict(
                    cursor.execute(
                        "UPDATE anomaly_series s SET versions = (SELECT COUNT(*) FROM "
                        "anomaly_models m WHERE m.series_id = s.series_id) "
                        "WHERE s.series_id = ANY(%s) RETURNING series_id, versions",
                        (touched,),
                    ).fetchall()
                )
                newly_counted = sum(
                    1 for key, count in after.items() if count > 0 and before.get(key, 0) == 0
                )
                if newly_counted:
                    cursor.execute(
                        "UPDATE anomaly_meta SET value = value + %s "
                        "WHERE key = 'series_with_versions'",
                        (newly_counted,),
                    )
                if inserted or floors:
                    cursor.execute("SELECT pg_notify(%s, 'import')", (CHANNEL,))
            return inserted

        inserted = self._run(write, retry=False)
        self._committed(None)
        return inserted

    # -- lifecycle -------------------------------------------------------------------------

    def close(self) -> None:
        self._listener.close()
        self._pool.close()


_OWNER = "created_by IS NOT DISTINCT FROM %s"
"""Matches a key's versions, or the anonymous ones for None. (``IS NOT DISTINCT FROM``
cannot use an index, so the usage query spells the two cases out.)"""
_QUOTA_LOCK = "anomaly-quota:"


def _usage(connection: psycopg.Connection[Any], owner: str | None, series_id: str) -> Usage:
    row = connection.execute(
        "SELECT COUNT(DISTINCT series_id), COALESCE(SUM(points_stored), 0),"
        " COALESCE(BOOL_OR(series_id = %s), false) FROM anomaly_models WHERE "
        + ("created_by IS NULL" if owner is None else "created_by = %s"),
        (series_id,) if owner is None else (series_id, owner),
    ).fetchone()
    assert row is not None
    return Usage(int(row[0]), int(row[1]), bool(row[2]))


def _check_quota(connection: psycopg.Connection[Any], model: NewModel) -> None:
    """In the fit's transaction: refuse ``model`` when it takes its owner over quota.
    A lock per owner (held to the commit) queues the owner's concurrent fits, on every
    replica, so two cannot both pass on the same usage."""
    assert model.quota is not None
    connection.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
        (_QUOTA_LOCK + (model.created_by or ""),),
    )
    usage = _usage(connection, model.created_by, model.series_id)
    try:
        check(model.quota, usage, len(model.training), None, time.time())
    except QuotaExceeded:
        row = connection.execute(
            "SELECT MIN(created_at) FROM anomaly_models m WHERE " + _OWNER + " AND version <"
            " (SELECT MAX(version) FROM anomaly_models l WHERE l.series_id = m.series_id)",
            (model.created_by,),
        ).fetchone()
        check(model.quota, usage, len(model.training), None if row is None else row[0], time.time())
        raise


def _fits_integer(version: int) -> bool:
    """Whether ``version`` fits the ``integer`` column; larger ones simply do not exist."""
    return -(2**31) <= version < 2**31
