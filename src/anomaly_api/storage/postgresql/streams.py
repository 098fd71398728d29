"""Streams in the PostgreSQL store: observed points, saved contexts and who holds them.

The tables mirror the SQLite store's (see :mod:`anomaly_api.storage.sqlite_streams`):
``anomaly_streams`` (one row per series: last timestamp, counts, the saved context, the
holder and its token), ``anomaly_stream_chunks`` (the observed points, one row per
series per save: :mod:`anomaly_api.storage.chunks`) and ``anomaly_stream_owners`` (one
lease per live holder, renewed by every save). Times are the database's clock, so
replicas whose clocks differ agree on when a lease ran out. A release is asked with a
notification on :data:`~anomaly_api.storage.postgresql.changes.STREAM_CHANNEL`, which
the holder's listener receives at once. A save runs a fixed number of statements
whatever the number of series in it (the updates travel as arrays).
"""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import psycopg

from anomaly_api.detectors.series import FloatArray, IntArray
from anomaly_api.storage.base import (
    ExportedStream,
    Retention,
    StreamPoint,
    StreamState,
    StreamUpdate,
)
from anomaly_api.storage.chunks import (
    POINT,
    as_points,
    blob_row,
    chunk_row,
    count_between,
    newest,
    news,
    scan_points,
    trim_plan,
)
from anomaly_api.storage.postgresql.changes import CHANNEL, DELETE_PREFIX, STREAM_CHANNEL
from anomaly_api.storage.sqlite_streams import (
    FORGET_OWNERS_AFTER_S,
    FORGET_OWNERS_CHANCE,
    NEVER,
    TRIM_SLACK,
    exported_stream,
    new_token,
)

_CHANCE = random.Random()
"""A private generator: the global one belongs to the application (and to test
frameworks that seed it), and these saves run on background threads."""

T = TypeVar("T")
_NOW = "extract(epoch FROM clock_timestamp())"

STREAM_MIGRATION = """
ALTER TABLE anomaly_models ADD COLUMN fit_trigger text NOT NULL DEFAULT 'client';
ALTER TABLE anomaly_models ADD COLUMN retrain text;
CREATE TABLE anomaly_streams (
    series_id       text COLLATE "C" PRIMARY KEY,
    owner           text,
    token           bigint NOT NULL,
    last_timestamp  bigint,
    observed        bigint NOT NULL DEFAULT 0,
    stored          bigint NOT NULL DEFAULT 0,
    context_version integer,
    context         text,
    updated_at      double precision NOT NULL
);
CREATE TABLE anomaly_stream_points (
    series_id text COLLATE "C" NOT NULL,
    timestamp bigint NOT NULL,
    value     double precision NOT NULL,
    version   integer NOT NULL,
    score     double precision NOT NULL,
    anomaly   boolean NOT NULL,
    expected  double precision NOT NULL,
    lower     double precision,
    upper     double precision,
    PRIMARY KEY (series_id, timestamp)
);
CREATE TABLE anomaly_stream_owners (
    owner      text PRIMARY KEY,
    expires_at double precision NOT NULL
)
"""


CHUNK_MIGRATION = """
CREATE TABLE anomaly_stream_chunks (
    series_id text COLLATE "C" NOT NULL,
    first     bigint NOT NULL,
    last      bigint NOT NULL,
    count     integer NOT NULL,
    points    bytea NOT NULL,
    PRIMARY KEY (series_id, first)
);
INSERT INTO anomaly_stream_chunks (series_id, first, last, count, points)
SELECT series_id, min(timestamp), max(timestamp), count(*),
       string_agg(packed, ''::bytea ORDER BY timestamp)
FROM (
    SELECT series_id, timestamp,
           (row_number() OVER (PARTITION BY series_id ORDER BY timestamp) - 1) / 1024 AS part,
           float8send(timestamp::float8) || float8send(value) || float8send(version::float8)
           || float8send(score) || float8send(CASE WHEN anomaly THEN 1 ELSE 0 END::float8)
           || float8send(expected) || float8send(coalesce(lower, 'NaN'::float8))
           || float8send(coalesce(upper, 'NaN'::float8)) AS packed
    FROM anomaly_stream_points
) rows
GROUP BY series_id, part;
DROP TABLE anomaly_stream_points
"""
"""Migration 4: the per-point rows packed into chunks of up to
:data:`~anomaly_api.storage.chunks.MIGRATION_CHUNK` points, in SQL (``float8send``
writes the chunks' big-endian doubles)."""


class PostgreSQLStreams:
    """The stream part of :class:`~anomaly_api.storage.postgresql.PostgreSQLModelStore`."""

    _release_asks: set[str]
    _release_lock: threading.Lock
    _release_wake: Callable[[], object] | None

    def _run(self, work: Callable[[psycopg.Connection[Any]], T], *, retry: bool = True) -> T:
        raise NotImplementedError

    def _read(self, sql: str, parameters: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def _init_streams(self) -> None:
        self._release_asks = set()
        self._release_lock = threading.Lock()
        self._release_wake = None

    def _asked_to_release(self, series_id: str) -> None:
        """The listener's hand-off: remember the ask and wake whoever serves them."""
        with self._release_lock:
            self._release_asks.add(series_id)
            wake = self._release_wake
        if wake is not None:
            wake()

    def watch_releases(self, wake: Callable[[], object]) -> None:
        """Call ``wake`` whenever a release is asked (from the listener's thread)."""
        self._release_wake = wake

    def acquire_stream(self, series_id: str, owner: str, lease_s: float) -> StreamState | None:
        token = new_token()

        def work(connection: psycopg.Connection[Any]) -> StreamState | None:
            with connection.transaction():
                _heartbeat(connection, owner, lease_s)
                created = connection.execute(
                    "INSERT INTO anomaly_streams (series_id, owner, token, updated_at) "
                    f"VALUES (%s, %s, %s, {_NOW}) ON CONFLICT (series_id) DO NOTHING "
                    "RETURNING series_id",
                    (series_id, owner, token),
                ).fetchone()
                if created is not None:
                    return StreamState(series_id, token, None, 0, None, None)
                row = connection.execute(
                    f"SELECT s.owner, o.expires_at > {_NOW}, s.last_timestamp, s.observed, "
                    "s.context_version, s.context FROM anomaly_streams s "
                    "LEFT JOIN anomaly_stream_owners o ON o.owner = s.owner "
                    "WHERE s.series_id = %s FOR UPDATE OF s",
                    (series_id,),
                ).fetchone()
                assert row is not None
                holder, alive, last_timestamp, observed, context_version, context = row
                if holder is not None and holder != owner and alive:
                    return None
                connection.execute(
                    "UPDATE anomaly_streams SET owner = %s, token = %s WHERE series_id = %s",
                    (owner, token, series_id),
                )
            return StreamState(
                series_id,
                token,
                None if last_timestamp is None else int(last_timestamp),
                int(observed),
                None if context_version is None else int(context_version),
                None if context is None else json.loads(context),
            )

        return self._run(work, retry=False)

    def save_streams(
        self, owner: str, lease_s: float, updates: Sequence[StreamUpdate], keep_points: int
    ) -> set[str]:
        def work(connection: psycopg.Connection[Any]) -> set[str]:
            with connection.transaction():
                _heartbeat(connection, owner, lease_s)
                if not updates:
                    return set()
                # Locked in one order, so saves of series being handed over cannot deadlock.
                held = {
                    series_id: (token, saved_until)
                    for series_id, token, saved_until in connection.execute(
                        "SELECT series_id, token, last_timestamp FROM anomaly_streams "
                        "WHERE series_id = ANY(%s) ORDER BY series_id FOR UPDATE",
                        ([update.series_id for update in updates],),
                    ).fetchall()
                }
                accepted = [
                    (update, news(update.points, found[1]))
                    for update in updates
                    if (found := held.get(update.series_id)) is not None
                    and found[0] == update.token
                ]
                if not accepted:
                    return {update.series_id for update in updates}
                stored = connection.execute(
                    "UPDATE anomaly_streams s SET last_timestamp = u.last_timestamp, "
                    "observed = u.observed, stored = s.stored + u.added, "
                    "context_version = u.context_version, context = u.context, "
                    f"updated_at = {_NOW} "
                    "FROM unnest(%s::text[], %s::bigint[], %s::bigint[], "
                    "%s::bigint[], %s::integer[], %s::text[]) AS u(series_id, "
                    "last_timestamp, observed, added, context_version, context) "
                    "WHERE s.series_id = u.series_id "
                    "RETURNING s.series_id, s.stored",
                    (
                        [update.series_id for update, _ in accepted],
                        [update.last_timestamp for update, _ in accepted],
                        [update.observed for update, _ in accepted],
                        [len(points) for _, points in accepted],
                        [update.context_version for update, _ in accepted],
                        [update.context for update, _ in accepted],
                    ),
                ).fetchall()
                chunks = [
                    chunk_row(update.series_id, points) for update, points in accepted if points
                ]
                if chunks:
                    columns = list(zip(*chunks, strict=True))
                    connection.execute(
                        "INSERT INTO anomaly_stream_chunks (series_id, first, last, count, "
                        "points) SELECT * FROM unnest(%s::text[], %s::bigint[], %s::bigint[], "
                        "%s::integer[], %s::bytea[]) ON CONFLICT DO NOTHING",
                        [list(column) for column in columns],
                    )
                for series_id, count in stored:
                    if count > keep_points * TRIM_SLACK:
                        _trim(connection, series_id, keep_points)
                return {update.series_id for update in updates} - {
                    update.series_id for update, _ in accepted
                }

        return self._run(work, retry=False)

    def stream_state(self, series_id: str) -> StreamState | None:
        rows = self._read(
            "SELECT last_timestamp, observed, context_version, context FROM anomaly_streams "
            "WHERE series_id = %s",
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
            None if context is None else json.loads(context),
        )

    def release_streams(self, owner: str, tokens: Mapping[str, int]) -> None:
        if not tokens:
            return

        def work(connection: psycopg.Connection[Any]) -> None:
            connection.execute(
                "UPDATE anomaly_streams s SET owner = NULL "
                "FROM unnest(%s::text[], %s::bigint[]) AS r(series_id, token) "
                "WHERE s.series_id = r.series_id AND s.token = r.token AND s.owner = %s",
                (list(tokens), list(tokens.values()), owner),
            )

        self._run(work, retry=False)

    def request_release(self, series_id: str, requester: str) -> None:
        self._read("SELECT pg_notify(%s, %s)", (STREAM_CHANNEL, series_id))

    def release_requests(self, owner: str) -> list[str]:
        with self._release_lock:
            asked = sorted(self._release_asks)
            self._release_asks.clear()
        return asked

    def stream_points(
        self, series_id: str, after: int, limit: int, before: int | None = None
    ) -> tuple[IntArray, FloatArray]:
        end = NEVER if before is None else before
        rows = self._read(
            "SELECT count, points FROM anomaly_stream_chunks WHERE series_id = %s "
            "AND last > %s AND first < %s ORDER BY first DESC",
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
                "SELECT last, points FROM anomaly_stream_chunks WHERE series_id = %s AND last > %s "
                "AND first < %s ORDER BY first LIMIT %s",
                (series_id, cursor, before, count),
            )

        return scan_points(chunks, after, before, limit, anomalies_only)

    def expire_stream_points(self, window_s: float) -> int:
        def write(connection: psycopg.Connection[Any]) -> int:
            with connection.transaction():
                # A chunk goes when its newest point is older than the window before its
                # series' newest; a series' "stored" count is recounted at its next trim.
                return int(
                    connection.execute(
                        "DELETE FROM anomaly_stream_chunks c USING anomaly_streams s"
                        " WHERE s.series_id = c.series_id AND c.last < s.last_timestamp - %s",
                        (window_s,),
                    ).rowcount
                )

        return self._run(write, retry=False)

    def count_stream_points(self, series_id: str, after: int, before: int | None = None) -> int:
        end = NEVER if before is None else before
        rows = self._read(
            "SELECT first, last, count, CASE WHEN first > %s AND last < %s THEN NULL "
            "ELSE points END FROM anomaly_stream_chunks WHERE series_id = %s AND last > %s "
            "AND first < %s",
            (after, end, series_id, after, end),
        )
        return count_between(rows, after, end)

    def stream_ids(self) -> list[str]:
        return [
            row[0] for row in self._read("SELECT series_id FROM anomaly_streams ORDER BY series_id")
        ]

    def recent_stream_ids(self, limit: int) -> list[str]:
        rows = self._read(
            "SELECT series_id FROM anomaly_streams WHERE observed > 0 "
            "ORDER BY updated_at DESC, series_id LIMIT %s",
            (limit,),
        )
        return [row[0] for row in rows]

    def export_stream(self, series_id: str) -> ExportedStream | None:
        def work(connection: psycopg.Connection[Any]) -> ExportedStream | None:
            # One snapshot, so the points and the state are of one save.
            with connection.transaction():
                connection.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                row = connection.execute(
                    "SELECT last_timestamp, observed, context_version, context "
                    "FROM anomaly_streams WHERE series_id = %s",
                    (series_id,),
                ).fetchone()
                points = [
                    point
                    for (blob,) in connection.execute(
                        "SELECT points FROM anomaly_stream_chunks WHERE series_id = %s "
                        "ORDER BY first",
                        (series_id,),
                    ).fetchall()
                    for point in as_points(blob)
                ]
            return None if row is None else exported_stream(series_id, row, points)

        return self._run(work)


def _heartbeat(connection: psycopg.Connection[Any], owner: str, lease_s: float) -> None:
    connection.execute(
        "INSERT INTO anomaly_stream_owners (owner, expires_at) "
        f"VALUES (%s, {_NOW} + %s) ON CONFLICT (owner) DO UPDATE "
        "SET expires_at = EXCLUDED.expires_at",
        (owner, lease_s),
    )
    if _CHANCE.random() < FORGET_OWNERS_CHANCE:
        connection.execute(
            f"DELETE FROM anomaly_stream_owners WHERE expires_at < {_NOW} - %s AND owner NOT IN "
            "(SELECT owner FROM anomaly_streams WHERE owner IS NOT NULL)",
            (FORGET_OWNERS_AFTER_S,),
        )


def _trim(connection: psycopg.Connection[Any], series_id: str, keep_points: int) -> None:
    drop, cut, kept = trim_plan(
        connection.execute(
            "SELECT first, count FROM anomaly_stream_chunks WHERE series_id = %s "
            "ORDER BY first DESC",
            (series_id,),
        ).fetchall(),
        keep_points,
    )
    if drop:
        connection.execute(
            "DELETE FROM anomaly_stream_chunks WHERE series_id = %s AND first = ANY(%s)",
            (series_id, drop),
        )
    if cut is not None:
        first, stay = cut
        row = connection.execute(
            "DELETE FROM anomaly_stream_chunks WHERE series_id = %s AND first = %s "
            "RETURNING points",
            (series_id, first),
        ).fetchone()
        assert row is not None
        connection.execute(
            "INSERT INTO anomaly_stream_chunks (series_id, first, last, count, points) "
            "VALUES (%s, %s, %s, %s, %s)",
            blob_row(series_id, row[0][-stay * POINT.size :]),
        )
    connection.execute(
        "UPDATE anomaly_streams SET stored = %s WHERE series_id = %s", (kept, series_id)
    )


def drop_stream(connection: psycopg.Connection[Any], series_id: str) -> None:
    """Forget a deleted series' stream (its holder's next save is refused)."""
    connection.execute("DELETE FROM anomaly_stream_chunks WHERE series_id = %s", (series_id,))
    connection.execute("DELETE FROM anomaly_streams WHERE series_id = %s", (series_id,))


def prune_versions(
    connection: psycopg.Connection[Any], series_id: str, newest: int, rule: Retention
) -> int:
    """Delete the automatic versions of ``series_id`` that ``rule`` does not keep (in the
    transaction that stored ``newest``, whose counter-row lock is held); how many."""
    rows = connection.execute(
        "DELETE FROM anomaly_models m USING ("
        "  SELECT version FROM (SELECT version, created_at,"
        "   row_number() OVER (ORDER BY version DESC) AS rank FROM anomaly_models"
        "   WHERE series_id = %s AND fit_trigger = 'retrain' AND version < %s) r"
        f"  WHERE rank >= %s AND (%s::float8 IS NULL OR {_NOW} - created_at > %s::float8)"
        ") d WHERE m.series_id = %s AND m.version = d.version RETURNING m.version",
        (series_id, newest, rule.keep, rule.keep_seconds, rule.keep_seconds, series_id),
    ).fetchall()
    if rows:
        connection.execute(
            "UPDATE anomaly_series SET versions = versions - %s WHERE series_id = %s",
            (len(rows), series_id),
        )
        connection.execute("UPDATE anomaly_meta SET value = value + 1 WHERE key = 'deletion_epoch'")
        connection.execute("SELECT pg_notify(%s, %s)", (CHANNEL, DELETE_PREFIX + series_id))
    return len(rows)
