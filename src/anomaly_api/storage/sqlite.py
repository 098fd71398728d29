"""The default ``ModelStore``: one SQLite file in WAL mode, safe across processes.

* **Durability.** WAL journal with ``synchronous=FULL``: a fit is acknowledged only
  after its transaction is fsynced, so it survives ``kill -9`` and an OS crash.
  (``durable=False`` skips the fsync, for throw-away stores such as the evaluator's.)
* **Version numbers.** ``BEGIN IMMEDIATE`` takes SQLite's single write lock before the
  per-series counter is bumped (``INSERT … ON CONFLICT DO UPDATE … RETURNING``), so
  threads and processes sharing the file queue up instead of reading the same counter;
  ``busy_timeout`` makes them wait rather than fail.
* **Connections.** A small pool: each operation borrows a connection for its duration
  (a sqlite3 connection must not be shared mid-transaction) and returns it; at most
  ``MAX_IDLE_CONNECTIONS`` are kept open between bursts, so short-lived worker threads
  cannot pile up connections.
* **Change marker.** Every commit of this store (a fit, a delete) is announced by
  writing a fresh random number into ``<database>-changes``, an 8-byte file every
  process maps into memory; :meth:`change_marker` reads it, a memory read rather than a
  query (``PRAGMA data_version`` took ~35 µs per call under load in a server, a third
  of a cached predict's cost). The announcement comes after the commit and before the
  fit is acknowledged, so a predict that starts after the acknowledgement sees it.
  A commit made without announcing (a program writing the file with another copy of this
  code, say) is caught within :data:`WATCH_INTERVAL_S`: when the ``PRAGMA data_version``
  of a *watch* connection moved, the change log's newest entry and the deletion epoch
  are read too, and a model change there moves the marker. Stream saves move
  ``data_version`` every second but change no model, so they leave the marker (and every
  cache) alone.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import queue
import secrets
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from anomaly_api.auth import KeyRecord
from anomaly_api.detectors.series import Series
from anomaly_api.errors import InvalidInput, QuotaExceeded, StoreUnavailable
from anomaly_api.quotas import NO_LIMITS, Limits, Usage, check
from anomaly_api.storage.base import (
    ActiveKey,
    Changes,
    ModelRecord,
    NewModel,
    Retention,
    SeriesSummary,
    StoredVersion,
    ascii_lower,
)
from anomaly_api.storage.codec import (
    decode_timestamps,
    decode_values,
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
    training_blobs,
)
from anomaly_api.storage.sqlite_streams import STREAM_SCHEMA, SQLiteStreams, upgrade_to_chunks

MAX_IDLE_CONNECTIONS = 8
WATCH_INTERVAL_S = 1.0
"""How stale the change marker may be for commits made without this store's announcement."""

_INSERT_MODEL = f"INSERT INTO models ({INSERT_COLUMNS}) VALUES ({', '.join(['?'] * 15)})"

CHANGES_KEPT = 100_000
"""Rows of the change log kept; a registry further behind forgets everything it cached."""

_SCHEMA_V1 = """
CREATE TABLE IF NOT EXISTS series (
    series_id    TEXT PRIMARY KEY,
    last_version INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS models (
    series_id           TEXT NOT NULL,
    version             INTEGER NOT NULL,
    detector            TEXT NOT NULL,
    params              TEXT NOT NULL,
    state               TEXT NOT NULL,
    points_used         INTEGER NOT NULL,
    points_stored       INTEGER NOT NULL,
    first_timestamp     INTEGER NOT NULL,
    last_timestamp      INTEGER NOT NULL,
    created_at          REAL NOT NULL,
    training_timestamps BLOB NOT NULL,
    training_values     BLOB NOT NULL,
    PRIMARY KEY (series_id, version)
);
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
INSERT OR IGNORE INTO meta (key, value) VALUES ('deletion_epoch', 0);
"""

MIGRATIONS: tuple[tuple[int, str | Callable[[sqlite3.Connection], None]], ...] = (
    (1, _SCHEMA_V1),
    (
        2,
        # What each commit changed, so caches forget one series instead of all of them.
        "CREATE TABLE changes (seq INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, "
        "series_id TEXT)",
    ),
    (3, STREAM_SCHEMA),
    (4, upgrade_to_chunks),
    (
        5,
        # API keys: only their digests (anomaly_api.auth).
        "CREATE TABLE api_keys (name TEXT PRIMARY KEY, digest TEXT NOT NULL UNIQUE, "
        "scopes TEXT NOT NULL, created_at REAL NOT NULL, revoked_at REAL)",
    ),
    (
        6,
        # Who fitted each version, and each key's own quotas (anomaly_api.quotas). The
        # index answers a key's usage from the index alone.
        "ALTER TABLE models ADD COLUMN created_by TEXT;"
        "CREATE INDEX models_by_owner ON models (created_by, series_id, points_stored);"
        "ALTER TABLE api_keys ADD COLUMN max_series INTEGER;"
        "ALTER TABLE api_keys ADD COLUMN max_points INTEGER;"
        "ALTER TABLE api_keys ADD COLUMN retention_days REAL",
    ),
)
"""(``user_version``, SQL or a function of the connection) in order; append, never edit
an applied one."""
SCHEMA_VERSION = MIGRATIONS[-1][0]


def _create_file(path: Path) -> None:
    """Create a new, empty database at ``path`` in one step, so that the path never names
    an empty file (which another process, starting at the same moment, would refuse as
    a truncated store): a SQLite header in WAL mode (4 KiB, no tables yet) is written
    beside it and linked into place. When another process links its own first, that
    one is used."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.new")
    try:
        connection = sqlite3.connect(temporary)
        try:
            connection.execute("PRAGMA journal_mode = WAL")
        finally:
            connection.close()
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass  # another process made it first
        except OSError:  # a file system without hard links
            if not path.exists():
                os.replace(temporary, path)
    finally:
        with contextlib.suppress(OSError):
            temporary.unlink()


class SQLiteModelStore(SQLiteStreams):
    """A :class:`~anomaly_api.storage.base.ModelStore` in one SQLite file."""

    backend = "sqlite"

    def __init__(
        self, path: str | Path, busy_timeout_s: float = 30.0, durable: bool = True
    ) -> None:
        self.path = Path(path)
        self._synchronous = "FULL" if durable else "OFF"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._busy_timeout_s = busy_timeout_s
        self._idle: queue.LifoQueue[sqlite3.Connection] = queue.LifoQueue()
        self._closed = False
        self._watch_lock = threading.Lock()
        self._watched_at = 0.0
        self._data_version = -1
        self._logged = 0
        self._identity: tuple[int, int, int] | None = None
        if not self.path.exists():
            _create_file(self.path)
        elif self.path.stat().st_size == 0:
            # SQLite would take an empty file for a new database: a truncated store would
            # silently start again at version 1.
            raise StoreUnavailable(
                f"SQLite store at {self.path} is an empty file (truncated?); restore it "
                "from a backup or remove it to start a new store"
            )
        with self._translate():
            self._watch = self._open_connection()
            try:
                # Named after the real path, so every name of the file shares it.
                self._announcements = _Announcements(Path(f"{os.path.realpath(self.path)}-changes"))
                self._migrate()
                self._identity = self._read_identity()
            except BaseException:
                self.close()
                raise

    # -- connections -----------------------------------------------------------------

    def _open_connection(self) -> sqlite3.Connection:
        connection = sqlite3.connect(
            self.path,
            timeout=self._busy_timeout_s,
            isolation_level=None,  # autocommit; transactions are explicit BEGIN … COMMIT
            check_same_thread=False,
        )
        connection.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_s * 1000)}")
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute(f"PRAGMA synchronous = {self._synchronous}")
        return connection

    @contextlib.contextmanager
    def _borrow(self) -> Iterator[sqlite3.Connection]:
        """A connection for one operation; back to the pool (or closed) afterwards."""
        try:
            connection = self._idle.get_nowait()
        except queue.Empty:
            connection = self._open_connection()
        try:
            yield connection
        finally:
            if (
                self._closed
                or connection.in_transaction
                or self._idle.qsize() >= MAX_IDLE_CONNECTIONS
            ):
                connection.close()
            else:
                self._idle.put(connection)

    def _read(self, sql: str, parameters: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Every row a query returns."""
        with self._translate(), self._borrow() as connection:
            return connection.execute(sql, parameters).fetchall()

    @contextlib.contextmanager
    def _translate(self) -> Iterator[None]:
        """Turn driver errors into :class:`StoreUnavailable`, the one place that does."""
        try:
            yield
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"SQLite store at {self.path} failed: {exc}") from exc

    @contextlib.contextmanager
    def _write(self, synchronous: str | None = None) -> Iterator[sqlite3.Connection]:
        """A write transaction holding SQLite's write lock from its first statement;
        ``synchronous`` (e.g. ``"NORMAL"``: no fsync) for this transaction only. Refused
        when the file is no longer the one opened (:meth:`check_identity`)."""
        self._check_file()
        with self._translate(), self._borrow() as connection:
            if synchronous is not None:
                connection.execute(f"PRAGMA synchronous = {synchronous}")
            try:
                connection.execute("BEGIN IMMEDIATE")
                try:
                    yield connection
                    connection.execute("COMMIT")
                except BaseException:
                    # A failed COMMIT must not leave the write lock held; a failing
                    # ROLLBACK must not hide the error that got us here (the connection is
                    # then closed).
                    with contextlib.suppress(sqlite3.Error):
                        connection.execute("ROLLBACK")
                    raise
            finally:
                if synchronous is not None:
                    connection.execute(f"PRAGMA synchronous = {self._synchronous}")

    def _read_identity(self) -> tuple[int, int, int]:
        """(device, inode, store id) of the open database: the id is a random number
        written once per store, so a file replaced by another store is noticed too."""
        with self._borrow() as connection:
            connection.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('store_id', ?)",
                (secrets.randbits(62) + 1,),
            )
            [(store_id,)] = connection.execute(
                "SELECT value FROM meta WHERE key = 'store_id'"
            ).fetchall()
        status = os.stat(self.path)
        return status.st_dev, status.st_ino, int(store_id)

    def check_identity(self) -> None:
        """Raise :class:`StoreUnavailable` when the file at ``path`` is no longer the
        database this store opened (deleted, replaced or truncated): writes would go to
        a file nobody will open again, or a new store would start numbering at 1."""
        if self._identity is None:
            return
        device, inode, store_id = self._identity
        try:
            status = os.stat(self.path)
        except FileNotFoundError:
            raise StoreUnavailable(
                f"SQLite store at {self.path} was deleted while in use; writes are refused "
                "until it is restored and the service restarted"
            ) from None
        if (status.st_dev, status.st_ino) != (device, inode):
            raise StoreUnavailable(
                f"SQLite store at {self.path} was replaced by another file while in use; "
                "writes are refused until the service is restarted"
            )
        if status.st_size == 0:
            raise StoreUnavailable(
                f"SQLite store at {self.path} was truncated while in use; writes are refused"
            )
        rows = self._read("SELECT value FROM meta WHERE key = 'store_id'")
        if not rows or int(rows[0][0]) != store_id:
            raise StoreUnavailable(
                f"SQLite store at {self.path} is no longer the store that was opened"
            )

    def _migrate(self) -> None:
        with self._write() as connection:
            (current,) = connection.execute("PRAGMA user_version").fetchone()
            if current > SCHEMA_VERSION:
                raise StoreUnavailable(
                    f"{self.path} has schema version {current}, newer than this release "
                    f"understands ({SCHEMA_VERSION}); upgrade anomaly-api"
                )
            for version, sql in MIGRATIONS:
                if version <= current:
                    continue
                if callable(sql):
                    sql(connection)
                    continue
                for statement in sql.split(";"):
                    if statement.strip():
                        connection.execute(statement)
            connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    # -- the ModelStore protocol ----------------------------------------------------------

    def create_version(self, model: NewModel) -> ModelRecord:
        blobs = training_blobs(model.training)  # encoded before the write lock is taken
        with self._write() as connection:
            if model.quota is not None and model.quota.limited:
                self._check_quota(connection, model)
            (version,) = connection.execute(
                "INSERT INTO series (series_id, last_version) VALUES (?, 1) "
                "ON CONFLICT (series_id) DO UPDATE SET last_version = last_version + 1 "
                "RETURNING last_version",
                (model.series_id,),
            ).fetchone()
            created_at = time.time()
            values = new_row(model, created_at, blobs)
            connection.execute(_INSERT_MODEL, (model.series_id, version, *values))
            self._log_change(connection, "fit", model.series_id)
            if model.prune is not None:
                self._prune(connection, model.series_id, int(version), model.prune, created_at)
        self._announcements.announce()
        return created_record(model, int(version), created_at)

    @staticmethod
    def _usage(connection: sqlite3.Connection, owner: str | None, series_id: str) -> Usage:
        series, points, holds = connection.execute(
            "SELECT COUNT(DISTINCT series_id), COALESCE(SUM(points_stored), 0),"
            " COALESCE(MAX(series_id = ?), 0) FROM models WHERE created_by IS ?",
            (series_id, owner),
        ).fetchone()
        return Usage(int(series), int(points), bool(holds))

    def _check_quota(self, connection: sqlite3.Connection, model: NewModel) -> None:
        """Under the write lock: refuse ``model`` when it takes its owner over quota."""
        assert model.quota is not None
        usage = self._usage(connection, model.created_by, model.series_id)
        try:
            check(model.quota, usage, len(model.training), None, time.time())
        except QuotaExceeded:
            # Refused: say when retention frees room (one more query, only now).
            (oldest,) = connection.execute(
                "SELECT MIN(created_at) FROM models m WHERE created_by IS ? AND version < "
                "(SELECT MAX(version) FROM models l WHERE l.series_id = m.series_id)",
                (model.created_by,),
            ).fetchone()
            check(model.quota, usage, len(model.training), oldest, time.time())
            raise

    def usage(self, owner: str | None, series_id: str | None = None) -> Usage:
        with self._borrow() as connection, self._translate():
            return self._usage(connection, owner, "" if series_id is None else series_id)

    def expire_versions(self, owner: str | None, before: float, limit: int = 10_000) -> int:
        with self._write() as connection:
            rows = connection.execute(
                "SELECT series_id, version FROM models m WHERE created_by IS ?"
                " AND created_at < ? AND version <"
                " (SELECT MAX(version) FROM models l WHERE l.series_id = m.series_id) LIMIT ?",
                (owner, before, limit),
            ).fetchall()
            if rows:
                connection.executemany(
                    "DELETE FROM models WHERE series_id = ? AND version = ?", rows
                )
                self._bump_deletion_epoch(connection)
                for series_id in sorted({row[0] for row in rows}):
                    self._log_change(connection, "delete", series_id)
        if rows:
            self._announcements.announce()
        return len(rows)

    def get_model(self, series_id: str, version: int | None = None) -> ModelRecord | None:
        if version is None:
            rows = self._read(
                f"SELECT {RECORD_COLUMNS} FROM models WHERE series_id = ? "
                "ORDER BY version DESC LIMIT 1",
                (series_id,),
            )
        else:
            rows = self._read(
                f"SELECT {RECORD_COLUMNS} FROM models WHERE series_id = ? AND version = ?",
                (series_id, version),
            )
        return record_from_row(rows[0]) if rows else None

    def latest_version(self, series_id: str) -> int | None:
        [(latest,)] = self._read(
            "SELECT MAX(version) FROM models WHERE series_id = ?", (series_id,)
        )
        return None if latest is None else int(latest)

    def list_versions(
        self, series_id: str, after: int = 0, limit: int | None = None
    ) -> list[ModelRecord]:
        rows = self._read(
            f"SELECT {RECORD_COLUMNS} FROM models WHERE series_id = ? AND version > ?"
            " ORDER BY version LIMIT ?",
            (series_id, after, -1 if limit is None else limit),  # -1: no limit
        )
        return [record_from_row(row) for row in rows]

    def list_series(
        self, limit: int, after: str | None = None, contains: str | None = None
    ) -> list[SeriesSummary]:
        match = "" if contains is None else " AND instr(lower(series_id), ?) > 0"
        needle = () if contains is None else (ascii_lower(contains),)
        rows = self._read(
            "WITH page AS ("
            "  SELECT series_id, MAX(version) AS latest, COUNT(*) AS versions"
            f"  FROM models WHERE series_id > ?{match} GROUP BY series_id"
            "  ORDER BY series_id LIMIT ?)"
            " SELECT p.series_id, p.latest, p.versions, m.points_used, m.created_at"
            " FROM page p JOIN models m"
            "  ON m.series_id = p.series_id AND m.version = p.latest"
            " ORDER BY p.series_id",
            ("" if after is None else after, *needle, limit),
        )
        return [summary_from_row(row) for row in rows]

    def count_series(self) -> int:
        [(count,)] = self._read("SELECT COUNT(*) FROM (SELECT DISTINCT series_id FROM models)")
        return int(count)

    def training_data(self, series_id: str, version: int) -> Series | None:
        rows = self._read(
            "SELECT training_timestamps, training_values FROM models "
            "WHERE series_id = ? AND version = ?",
            (series_id, version),
        )
        if not rows:
            return None
        return Series(decode_timestamps(rows[0][0]), decode_values(rows[0][1]))

    def delete_series(self, series_id: str) -> int:
        with self._write() as connection:
            deleted = connection.execute(
                "DELETE FROM models WHERE series_id = ?", (series_id,)
            ).rowcount
            if deleted:
                self._bump_deletion_epoch(connection)
                self._log_change(connection, "drop", series_id)
                self._drop_stream(connection, series_id)
        if deleted:
            self._announcements.announce()
        return int(deleted)

    def delete_version(self, series_id: str, version: int) -> bool:
        with self._write() as connection:
            deleted = connection.execute(
                "DELETE FROM models WHERE series_id = ? AND version = ?", (series_id, version)
            ).rowcount
            if deleted:
                self._bump_deletion_epoch(connection)
                self._log_change(connection, "delete", series_id)
        if deleted:
            self._announcements.announce()
        return bool(deleted)

    def _prune(
        self,
        connection: sqlite3.Connection,
        series_id: str,
        newest: int,
        rule: Retention,
        now: float,
    ) -> None:
        """Delete the automatic versions of ``series_id`` that ``rule`` does not keep."""
        rows = connection.execute(
            "SELECT version, created_at FROM models WHERE series_id = ? "
            "AND fit_trigger = 'retrain' AND version < ? ORDER BY version DESC",
            (series_id, newest),
        ).fetchall()
        doomed = [
            version
            for index, (version, created_at) in enumerate(rows)
            if index + 1 >= rule.keep  # the new version counts as one of those kept
            and (rule.keep_seconds is None or now - created_at > rule.keep_seconds)
        ]
        if doomed:
            connection.executemany(
                "DELETE FROM models WHERE series_id = ? AND version = ?",
                [(series_id, version) for version in doomed],
            )
            self._bump_deletion_epoch(connection)
            self._log_change(connection, "delete", series_id)

    @staticmethod
    def _bump_deletion_epoch(connection: sqlite3.Connection) -> None:
        connection.execute("UPDATE meta SET value = value + 1 WHERE key = 'deletion_epoch'")

    @staticmethod
    def _log_change(connection: sqlite3.Connection, kind: str, series_id: str | None) -> None:
        """Record what this transaction changed; keep the log's newest CHANGES_KEPT rows."""
        (seq,) = connection.execute(
            "INSERT INTO changes (kind, series_id) VALUES (?, ?) RETURNING seq", (kind, series_id)
        ).fetchone()
        if seq % 1000 == 0:
            connection.execute("DELETE FROM changes WHERE seq <= ?", (seq - CHANGES_KEPT,))

    def change_marker(self) -> int:
        # Called on every cached predict: a memory read, and queries once a second. Only
        # model changes count: streams save every second, and those saves move SQLite's
        # data_version without changing any model, so when it moved the change log is
        # asked whether a model change came without its announcement.
        now = time.monotonic()
        if now - self._watched_at >= WATCH_INTERVAL_S:
            try:
                with self._watch_lock:
                    (version,) = self._watch.execute("PRAGMA data_version").fetchone()
                    if version != self._data_version:
                        (seq, epoch) = self._watch.execute(
                            "SELECT (SELECT COALESCE(MAX(seq), 0) FROM changes), "
                            "(SELECT value FROM meta WHERE key = 'deletion_epoch')"
                        ).fetchone()
                        self._logged = int(seq) * 1_000_003 + int(epoch)
            except sqlite3.Error as exc:
                raise StoreUnavailable(f"SQLite store at {self.path} failed: {exc}") from exc
            self._data_version, self._watched_at = int(version), now
        return self._announcements.latest() * 1_000_003 + self._logged

    def change_position(self) -> int:
        [(seq,)] = self._read("SELECT COALESCE(MAX(seq), 0) FROM changes")
        return int(seq)

    def changes_since(self, position: int) -> tuple[int, Changes] | None:
        rows = self._read(
            "SELECT seq, kind, series_id FROM changes WHERE seq > ? ORDER BY seq", (position,)
        )
        if not rows:
            return position, Changes(frozenset(), frozenset())
        if rows[0][0] != position + 1:
            # Numbers follow each other in commit order (writers hold the write lock, and
            # a rolled-back number is reused), so a gap means the log was pruned past it.
            return None
        fitted: set[str] = set()
        deleted: set[str] = set()
        dropped: set[str] = set()
        for _, kind, series_id in rows:
            if series_id is None or kind not in ("fit", "delete", "drop"):
                return None
            (fitted if kind == "fit" else deleted).add(series_id)
            if kind == "drop":
                dropped.add(series_id)
        return int(rows[-1][0]), Changes(frozenset(fitted), frozenset(deleted), frozenset(dropped))

    def deletion_epoch(self) -> int:
        [(epoch,)] = self._read("SELECT value FROM meta WHERE key = 'deletion_epoch'")
        return int(epoch)

    # -- API keys ---------------------------------------------------------------------

    def create_key(
        self, name: str, key_digest: str, scopes: Sequence[str], limits: Limits = NO_LIMITS
    ) -> KeyRecord:
        created_at = time.time()
        with self._write() as connection:
            taken = connection.execute("SELECT 1 FROM api_keys WHERE name = ?", (name,))
            if taken.fetchone() is not None:
                raise InvalidInput(f"a key named {name!r} exists (or existed)", field="name")
            connection.execute(
                "INSERT INTO api_keys (name, digest, scopes, created_at, max_series, max_points,"
                " retention_days) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    name,
                    key_digest,
                    ",".join(scopes),
                    created_at,
                    limits.max_series,
                    limits.max_points,
                    limits.retention_days,
                ),
            )
        return KeyRecord(name, tuple(scopes), created_at, limits=limits)

    def list_keys(self) -> list[KeyRecord]:
        rows = self._read(
            "SELECT name, scopes, created_at, revoked_at, max_series, max_points, retention_days"
            " FROM api_keys ORDER BY name"
        )
        return [
            KeyRecord(name, tuple(scopes.split(",")), at, revoked, Limits(*limits))
            for name, scopes, at, revoked, *limits in rows
        ]

    def revoke_key(self, name: str) -> bool:
        with self._write() as connection:
            revoked = connection.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL",
                (time.time(), name),
            ).rowcount
        return bool(revoked)

    def export_keys(self) -> list[tuple[KeyRecord, str]]:
        rows = self._read(
            "SELECT name, scopes, created_at, revoked_at, max_series, max_points, retention_days,"
            " digest FROM api_keys ORDER BY name"
        )
        return [
            (KeyRecord(name, tuple(scopes.split(",")), at, revoked, Limits(*limits)), key_digest)
            for name, scopes, at, revoked, *limits, key_digest in rows
        ]

    def import_keys(self, keys: Sequence[tuple[KeyRecord, str]]) -> int:
        changed = 0
        with self._write() as connection:
            for record, key_digest in keys:
                held = connection.execute(
                    "SELECT digest, revoked_at FROM api_keys WHERE name = ?", (record.name,)
                ).fetchone()
                if held is None:
                    connection.execute(
                        "INSERT INTO api_keys (name, digest, scopes, created_at, revoked_at,"
                        " max_series, max_points, retention_days)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        (record.name, key_digest, *key_row(record)),
                    )
                    changed += 1
                elif held[0] == key_digest and held[1] is None and record.revoked_at is not None:
                    connection.execute(
                        "UPDATE api_keys SET revoked_at = ? WHERE name = ?",
                        (record.revoked_at, record.name),
                    )
                    changed += 1
        return changed

    def active_keys(self) -> list[ActiveKey]:
        rows = self._read(
            "SELECT digest, name, scopes, max_series, max_points, retention_days"
            " FROM api_keys WHERE revoked_at IS NULL"
        )
        return [
            (key_digest, name, tuple(scopes.split(",")), Limits(*limits))
            for key_digest, name, scopes, *limits in rows
        ]

    def ping(self) -> None:
        self._read("SELECT 1")
        self.check_identity()

    def _check_file(self) -> None:
        """The cheap part of :meth:`check_identity`, before every write: the path still
        names the file opened (one ``stat``)."""
        if self._identity is None:
            return
        try:
            status = os.stat(self.path)
        except FileNotFoundError:
            status = None
        if (
            status is None
            or (status.st_dev, status.st_ino) != self._identity[:2]
            or not (status.st_size)
        ):
            self.check_identity()

    # -- copying between stores -----------------------------------------------------------

    def export_versions(self, batch_size: int = 500) -> Iterator[list[StoredVersion]]:
        after: tuple[str, int] = ("", 0)
        while True:
            rows = self._read(
                f"SELECT {RECORD_COLUMNS}, training_timestamps, training_values FROM models "
                # A row value comparison is an index search; the OR spelling scanned the
                # index from its start for every page.
                "WHERE (series_id, version) > (?, ?) ORDER BY series_id, version LIMIT ?",
                (after[0], after[1], batch_size),
            )
            if not rows:
                return
            yield [stored_from_row(row) for row in rows]
            after = (rows[-1][0], int(rows[-1][1]))

    def series_counters(self) -> dict[str, int]:
        return {
            series_id: int(last)
            for series_id, last in self._read("SELECT series_id, last_version FROM series")
        }

    def import_versions(
        self, versions: Sequence[StoredVersion], counters: Mapping[str, int]
    ) -> int:
        floors = counter_floors(versions, counters)
        with self._write() as connection:
            connection.executemany(
                "INSERT INTO series (series_id, last_version) VALUES (?, ?) "
                "ON CONFLICT (series_id) DO UPDATE "
                "SET last_version = MAX(last_version, excluded.last_version)",
                list(floors.items()),
            )
            inserted = 0
            for stored in versions:
                insert = _INSERT_MODEL.replace("INSERT", "INSERT OR IGNORE", 1)
                inserted += connection.execute(insert, copied_row(stored)).rowcount
            self._log_change(connection, "import", None)
        self._announcements.announce()
        return inserted

    def idle_connections(self) -> int:
        """Connections kept open for reuse (bounded by ``MAX_IDLE_CONNECTIONS``)."""
        return self._idle.qsize()

    def close(self) -> None:
        self._closed = True
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                break
        with self._watch_lock:
            self._watch.close()
        if hasattr(self, "_announcements"):
            self._announcements.close()


class _Announcements:
    """An 8-byte file shared by every process using the database: each commit writes a
    fresh random number there, so readers notice any commit with one memory read."""

    def __init__(self, path: Path) -> None:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if os.fstat(descriptor).st_size < 8:
                os.ftruncate(descriptor, 8)
            self._map = mmap.mmap(descriptor, 8)
        finally:
            os.close(descriptor)
        self._slot = memoryview(self._map).cast("Q")

    def announce(self) -> None:
        """Tell every reader that something was committed (one aligned 8-byte store)."""
        self._slot[0] = int.from_bytes(os.urandom(8), "little")

    def latest(self) -> int:
        """The last announcement; it changes with every commit."""
        return int(self._slot[0])

    def close(self) -> None:
        self._slot.release()
        self._map.close()
