"""Streams in the SQLite store: observed points, saved contexts and who holds them.

* ``streams``: one row per series whose stream began: its last observed timestamp, how
  many points it observed, the rolling context saved with its version, and the holder
  (``owner``, ``token``). A save whose token no longer matches is refused: the series
  was taken over (or deleted) meanwhile.
* ``stream_chunks``: the observed points with what was answered for them, newest kept,
  one row per series per save (:mod:`anomaly_api.storage.chunks`).
* ``stream_owners``: one row per live holder, its lease renewed by every save; a series
  whose holder's lease ran out may be taken over.
* ``stream_release_requests``: "please give this series up", read by the holder at its
  next save (SQLite has no notifications; processes of one server never need this,
  since each series is always served by the same worker).

Saves are not fsynced (``synchronous = NORMAL`` for the transaction, WAL mode): a save
survives the process being killed, as the operating system has the data, but not a crash
of the machine; model versions keep their full durability.
"""

from __future__ import annotations

import contextlib
import json
import random
import secrets
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from itertools import groupby
from operator import itemgetter
from typing import Any

from anomaly_api.detectors.series import FloatArray, IntArray
from anomaly_api.storage.base import ExportedStream, StreamPoint, StreamState, StreamUpdate
from anomaly_api.storage.chunks import (
    MIGRATION_CHUNK,
    POINT,
    as_points,
    blob_row,
    chunk_row,
    count_between,
    newest,
    news,
    pack_point,
    scan_points,
    trim_plan,
)

_CHANCE = random.Random()
"""A private generator: the global one belongs to the application (and to test
frameworks that seed it), and these saves run on background threads."""

STREAM_SCHEMA = """
ALTER TABLE models ADD COLUMN fit_trigger TEXT NOT NULL DEFAULT 'client';
ALTER TABLE models ADD COLUMN retrain TEXT;
CREATE TABLE streams (
    series_id       TEXT PRIMARY KEY,
    owner           TEXT,
    token           INTEGER NOT NULL,
    last_timestamp  INTEGER,
    observed        INTEGER NOT NULL DEFAULT 0,
    stored          INTEGER NOT NULL DEFAULT 0,
    context_version INTEGER,
    context         TEXT,
    updated_at      REAL NOT NULL
);
CREATE TABLE stream_points (
    series_id TEXT NOT NULL,
    timestamp INTEGER NOT NULL,
    value     REAL NOT NULL,
    version   INTEGER NOT NULL,
    score     REAL NOT NULL,
    anomaly   INTEGER NOT NULL,
    expected  REAL NOT NULL,
    lower     REAL,
    upper     REAL,
    PRIMARY KEY (series_id, timestamp)
) WITHOUT ROWID;
CREATE TABLE stream_owners (
    owner      TEXT PRIMARY KEY,
    expires_at REAL NOT NULL
);
CREATE TABLE stream_release_requests (
    series_id    TEXT PRIMARY KEY,
    requester    TEXT NOT NULL,
    requested_at REAL NOT NULL
)
"""
"""Schema 3: what streams need, and each version's trigger and retrain policy."""

CHUNK_SCHEMA = """
CREATE TABLE stream_chunks (
    series_id TEXT NOT NULL,
    first     INTEGER NOT NULL,
    last      INTEGER NOT NULL,
    count     INTEGER NOT NULL,
    points    BLOB NOT NULL
);
CREATE UNIQUE INDEX stream_chunks_series ON stream_chunks (series_id, first)
"""


def upgrade_to_chunks(connection: sqlite3.Connection) -> None:
    """Schema 4: observed points in chunks (:mod:`anomaly_api.storage.chunks`), the
    schema 3 rows (one per point) packed into them."""
    for statement in CHUNK_SCHEMA.split(";"):
        connection.execute(statement)
    rows = connection.execute(
        "SELECT series_id, timestamp, value, version, score, anomaly, expected, lower, upper "
        "FROM stream_points ORDER BY series_id, timestamp"
    )
    for series_id, points in groupby(rows, key=itemgetter(0)):
        run = [pack_point(row[1:]) for row in points]
        connection.executemany(
            "INSERT INTO stream_chunks (series_id, first, last, count, points) "
            "VALUES (?, ?, ?, ?, ?)",
            [
                chunk_row(series_id, run[start : start + MIGRATION_CHUNK])
                for start in range(0, len(run), MIGRATION_CHUNK)
            ],
        )
    connection.execute("DROP TABLE stream_points")


NEVER = 2**63 - 1
"""A timestamp later than any (``before`` when there is no bound)."""
_IN_CHUNK = 500
"""Series ids per ``IN (...)`` list (SQLite allows 32,766 variables; keep statements small)."""
FORGET_OWNERS_AFTER_S = 86_400.0
FORGET_OWNERS_CHANCE = 0.01
"""About one save in a hundred also forgets the leases of holders that stopped a day ago
and hold nothing (processes that died, or ran under another instance id)."""
TRIM_SLACK = 1.5
"""A series' points are trimmed to ``keep_points`` once they exceed it by this factor, so
trimming is an occasional statement rather than one per save (a series that observes
thousands of points a second would otherwise trim at every save)."""


def new_token() -> int:
    """A random lease token (63 bits: fits SQLite's and PostgreSQL's integers)."""
    return secrets.randbits(63)


class SQLiteStreams:
    """The stream part of :class:`~anomaly_api.storage.sqlite.SQLiteModelStore`."""

    def _write(
        self, synchronous: str | None = None
    ) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError

    def _read(self, sql: str, parameters: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def _translate(self) -> contextlib.AbstractContextManager[None]:
        raise NotImplementedError

    def _borrow(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError

    def _relaxed_write(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        """A write transaction committed without fsync (see the module docstring)."""
        return self._write(synchronous="NORMAL")

    def acquire_stream(self, series_id: str, owner: str, lease_s: float) -> StreamState | None:
        now = time.time()
        with self._relaxed_write() as connection:
            _heartbeat(connection, owner, now + lease_s)
            row = connection.execute(
                "SELECT s.owner, o.expires_at, s.last_timestamp, s.observed, "
                "s.context_version, s.context FROM streams s "
                "LEFT JOIN stream_owners o ON o.owner = s.owner WHERE s.series_id = ?",
                (series_id,),
            ).fetchone()
            token = new_token()
            if row is None:
                connection.execute(
                    "INSERT INTO streams (series_id, owner, token, updated_at) VALUES (?, ?, ?, ?)",
                    (series_id, owner, token, now),
                )
                return StreamState(series_id, token, None, 0, None, None)
            holder, expires_at, last_timestamp, observed, context_version, context = row
            if holder is not None and holder != owner and (expires_at or 0.0) > now:
                return None
            connection.execute(
                "UPDATE streams SET owner = ?, token = ? WHERE series_id = ?",
                (owner, token, series_id),
            )
            connection.execute(
                "DELETE FROM stream_release_requests WHERE series_id = ?", (series_id,)
            )
        return StreamState(
            series_id,
            token,
            None if last_timestamp is None else int(last_timestamp),
            int(observed),
            None if context_version is None else int(context_version),
            None if context is None else _loads(context),
        )

    def save_streams(
        self, owner: str, lease_s: float, updates: Sequence[StreamUpdate], keep_points: int
    ) -> set[str]:
        now = time.time()
        refused: set[str] = set()
        with self._relaxed_write() as connection:
            _heartbeat(connection, owner, now + lease_s)
            held: dict[str, tuple[int, int, int | None]] = {}
            ids = [update.series_id for update in updates]
            for start in range(0, len(ids), _IN_CHUNK):  # one query per chunk, not per series
                chunk = ids[start : start + _IN_CHUNK]
                marks = ", ".join("?" * len(chunk))
                held.update(
                    (series_id, (token, stored, saved_until))
                    for series_id, token, stored, saved_until in connection.execute(
                        "SELECT series_id, token, stored, last_timestamp FROM streams "
                        f"WHERE series_id IN ({marks})",
                        chunk,
                    )
                )
            chunks: list[tuple[Any, ...]] = []
            rows: list[tuple[Any, ...]] = []
            for update in updates:
                found = held.get(update.series_id)
                if found is None or found[0] != update.token:
                    refused.add(update.series_id)
                    continue
                series_id = update.series_id
                points = news(update.points, found[2])
                if points:
                    chunks.append(chunk_row(series_id, points))
                stored = found[1] + len(points)
                if stored > keep_points * TRIM_SLACK:
                    stored = -1  # trimmed below, once its points are in
                rows.append(
                    (
                        update.last_timestamp,
                        update.observed,
                        stored,
                        update.context_version,
                        update.context,
                        now,
                        series_id,
                    )
                )
            connection.executemany(
                "INSERT OR IGNORE INTO stream_chunks (series_id, first, last, count, points) "
                "VALUES (?, ?, ?, ?, ?)",
                chunks,
            )
            kept = {
                row[-1]: _trim(connection, row[-1], keep_points) for row in rows if row[2] == -1
            }
            if kept:
                rows = [
                    (*row[:2], kept[row[-1]], *row[3:]) if row[2] == -1 else row for row in rows
                ]
            connection.executemany(
                "UPDATE streams SET last_timestamp = ?, observed = ?, stored = ?, "
                "context_version = ?, context = ?, updated_at = ? WHERE series_id = ?",
                rows,
            )
        return refused

    def stream_state(self, series_id: str) -> StreamState | None:
        rows = self._read(
            "SELECT last_timestamp, observed, context_version, context FROM streams "
            "WHERE series_id = ?",
            (series_id,),
        )
        if not rows:
            return None
        last_timestamp, observed, context_version, context = rows[0]
        return StreamState(
            series_id,
            0,
            None if last_timestamp is None else int(last_timestamp),
            int(observed),
            None if context_version is None else int(context_version),
            None if context is None else _loads(context),
        )

    def release_streams(self, owner: str, tokens: Mapping[str, int]) -> None:
        if not tokens:
            return
        with self._relaxed_write() as connection:
            connection.executemany(
                "UPDATE streams SET owner = NULL WHERE series_id = ? AND token = ? AND owner = ?",
                [(series_id, token, owner) for series_id, token in tokens.items()],
            )

    def request_release(self, series_id: str, requester: str) -> None:
        with self._relaxed_write() as connection:
            connection.execute(
                "INSERT OR REPLACE INTO stream_release_requests (series_id, requester, "
                "requested_at) VALUES (?, ?, ?)",
                (series_id, requester, time.time()),
            )

    def release_requests(self, owner: str) -> list[str]:
        if not self._read("SELECT 1 FROM stream_release_requests LIMIT 1"):
            return []  # the usual case: one read, no write
        with self._relaxed_write() as connection:
            rows = connection.execute(
                "SELECT r.series_id FROM stream_release_requests r "
                "JOIN streams s ON s.series_id = r.series_id WHERE s.owner = ?",
                (owner,),
            ).fetchall()
            connection.executemany("DELETE FROM stream_release_requests WHERE series_id = ?", rows)
        return [series_id for (series_id,) in rows]

    def watch_releases(self, wake: Callable[[], object]) -> None:
        """No notifications here: :meth:`release_requests` is polled by every save."""

    def stream_points(
        self, series_id: str, after: int, limit: int, before: int | None = None
    ) -> tuple[IntArray, FloatArray]:
        end = NEVER if before is None else before
        rows = self._read(
            "SELECT count, points FROM stream_chunks WHERE series_id = ? AND last > ? "
            "AND first < ? ORDER BY first DESC",
            (series_id, after, end),
        )
        return newest(rows, after, end, limit)

    def scored_points(
        self,
        series_id: str,
        after: int,
        before: int,
        limit: int,
        anomalies_only: bool = False,
    ) -> list[StreamPoint]:
        def chunks(cursor: int, count: int) -> list[tuple[int, bytes]]:
            return self._read(
                "SELECT last, points FROM stream_chunks WHERE series_id = ? AND last > ? "
                "AND first < ? ORDER BY first LIMIT ?",
                (series_id, cursor, before, count),
            )

        return scan_points(chunks, after, before, limit, anomalies_only)

    def expire_stream_points(self, window_s: float) -> int:
        with self._relaxed_write() as connection:
            # A chunk goes when its newest point is older than the window before its
            # series' newest; a series' "stored" count is recounted at its next trim.
            return int(
                connection.execute(
                    "DELETE FROM stream_chunks WHERE last < (SELECT s.last_timestamp"
                    " FROM streams s WHERE s.series_id = stream_chunks.series_id) - ?",
                    (window_s,),
                ).rowcount
            )

    def count_stream_points(self, series_id: str, after: int, before: int | None = None) -> int:
        end = NEVER if before is None else before
        rows = self._read(
            "SELECT first, last, count, CASE WHEN first > ? AND last < ? THEN NULL "
            "ELSE points END FROM stream_chunks WHERE series_id = ? AND last > ? AND first < ?",
            (after, end, series_id, after, end),
        )
        return count_between(rows, after, end)

    def stream_ids(self) -> list[str]:
        return [row[0] for row in self._read("SELECT series_id FROM streams ORDER BY series_id")]

    def recent_stream_ids(self, limit: int) -> list[str]:
        rows = self._read(
            "SELECT series_id FROM streams WHERE observed > 0 "
            "ORDER BY updated_at DESC, series_id LIMIT ?",
            (limit,),
        )
        return [row[0] for row in rows]

    def export_stream(self, series_id: str) -> ExportedStream | None:
        # One read transaction, so the points and the state are of one save.
        with self._translate(), self._borrow() as connection:
            connection.execute("BEGIN")
            try:
                row = connection.execute(
                    "SELECT last_timestamp, observed, context_version, context FROM streams "
                    "WHERE series_id = ?",
                    (series_id,),
                ).fetchone()
                points = [
                    point
                    for (blob,) in connection.execute(
                        "SELECT points FROM stream_chunks WHERE series_id = ? ORDER BY first",
                        (series_id,),
                    )
                    for point in as_points(blob)
                ]
            finally:
                connection.execute("ROLLBACK")
        if row is None:
            return None
        return exported_stream(series_id, row, points)

    @staticmethod
    def _drop_stream(connection: sqlite3.Connection, series_id: str) -> None:
        """Forget a deleted series' stream (its holder's next save is refused)."""
        connection.execute("DELETE FROM stream_chunks WHERE series_id = ?", (series_id,))
        connection.execute("DELETE FROM streams WHERE series_id = ?", (series_id,))
        connection.execute("DELETE FROM stream_release_requests WHERE series_id = ?", (series_id,))


def exported_stream(
    series_id: str, row: Sequence[Any], points: Sequence[Sequence[Any]]
) -> ExportedStream:
    """A stream read for export, from its ``streams`` row (last_timestamp, observed,
    context_version, context) and its points, oldest first (both backends)."""
    last_timestamp, observed, context_version, context = row
    return ExportedStream(
        series_id,
        None if last_timestamp is None else int(last_timestamp),
        int(observed),
        None if context_version is None else int(context_version),
        context,
        [
            # ``an``: the anomaly code, incident marker included (chunks.anomaly_codes)
            (int(t), float(v), int(ver), float(sc), int(an), float(ex), lo, up)
            for t, v, ver, sc, an, ex, lo, up in points
        ],
    )


def _heartbeat(connection: sqlite3.Connection, owner: str, expires_at: float) -> None:
    connection.execute(
        "INSERT INTO stream_owners (owner, expires_at) VALUES (?, ?) "
        "ON CONFLICT (owner) DO UPDATE SET expires_at = excluded.expires_at",
        (owner, expires_at),
    )
    if _CHANCE.random() < FORGET_OWNERS_CHANCE:
        connection.execute(
            "DELETE FROM stream_owners WHERE expires_at < ? AND owner NOT IN "
            "(SELECT owner FROM streams WHERE owner IS NOT NULL)",
            (expires_at - FORGET_OWNERS_AFTER_S,),
        )


def _trim(connection: sqlite3.Connection, series_id: str, keep_points: int) -> int:
    """Keep the newest ``keep_points`` points of the series; return how many are kept."""
    drop, cut, kept = trim_plan(
        connection.execute(
            "SELECT first, count FROM stream_chunks WHERE series_id = ? ORDER BY first DESC",
            (series_id,),
        ).fetchall(),
        keep_points,
    )
    connection.executemany(
        "DELETE FROM stream_chunks WHERE series_id = ? AND first = ?",
        [(series_id, first) for first in drop],
    )
    if cut is not None:
        first, stay = cut
        [(blob,)] = connection.execute(
            "SELECT points FROM stream_chunks WHERE series_id = ? AND first = ?",
            (series_id, first),
        ).fetchall()
        connection.execute(
            "DELETE FROM stream_chunks WHERE series_id = ? AND first = ?", (series_id, first)
        )
        connection.execute(
            "INSERT INTO stream_chunks (series_id, first, last, count, points) "
            "VALUES (?, ?, ?, ?, ?)",
            blob_row(series_id, blob[-stay * POINT.size :]),
        )
    return kept


def _loads(text: str) -> Any:
    return json.loads(text)
