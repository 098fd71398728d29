"""What only the PostgreSQL store has: migrations, URLs, the listener, unreachability."""

from __future__ import annotations

import threading
import time
import zlib
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from anomaly_api.errors import StoreUnavailable
from anomaly_api.storage import ModelStore, open_store
from anomaly_api.storage.base import Changes
from anomaly_api.storage.postgresql import (
    CHANGE_LOG_SIZE,
    MIGRATIONS,
    ChangeLog,
    PostgreSQLModelStore,
    describe_url,
)
from tests.postgres import with_port
from tests.storage.test_store import new_model, wait_until
from tests.tcp_proxy import TcpProxy


@pytest.fixture
def proxy() -> Iterator[TcpProxy]:
    tunnel = TcpProxy("127.0.0.1", 5432)
    yield tunnel
    tunnel.close()


def opened(url: str, **options: Any) -> PostgreSQLModelStore:
    store = open_store(url, **options)
    assert isinstance(store, PostgreSQLModelStore)
    return store


def test_replicas_starting_together_apply_each_migration_once(postgresql_url: str) -> None:
    stores: list[ModelStore] = []
    errors: list[BaseException] = []

    def start() -> None:
        store = open_store(postgresql_url)
        stores.append(store)
        try:
            store.ping()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert errors == []
        with psycopg.connect(postgresql_url) as connection:
            rows = connection.execute(
                "SELECT version FROM anomaly_schema_migrations ORDER BY version"
            ).fetchall()
        assert [version for (version,) in rows] == [version for version, _, _ in MIGRATIONS]
        assert opened(postgresql_url).schema_version() == MIGRATIONS[-1][0]
    finally:
        for store in stores:
            store.close()


def test_a_schema_from_a_newer_release_is_refused(postgresql_url: str) -> None:
    store = opened(postgresql_url)
    store.ping()
    store.close()
    with psycopg.connect(postgresql_url, autocommit=True) as connection:
        connection.execute(
            "INSERT INTO anomaly_schema_migrations (version, description) VALUES (99, 'future')"
        )
    newer = opened(postgresql_url)
    try:
        with pytest.raises(StoreUnavailable, match=r"schema version 99.*upgrade anomaly-api"):
            newer.ping()
    finally:
        newer.close()


@pytest.mark.parametrize("scheme", ["postgres://", "postgresql+psycopg://"])
def test_other_spellings_of_the_url_are_accepted(postgresql_url: str, scheme: str) -> None:
    store = opened(scheme + postgresql_url.split("://", 1)[1])
    try:
        store.create_version(new_model("a"))
        assert store.latest_version("a") == 1
    finally:
        store.close()


def test_messages_name_the_server_but_never_the_password() -> None:
    assert describe_url("postgresql://app:s3cret@db.internal:6543/models") == (
        "db.internal:6543/models"
    )
    assert "s3cret" not in describe_url("postgresql://app:s3cret@db/models?sslmode=require")


def test_an_unreachable_server_fails_fast_and_is_used_again_when_back(
    postgresql_url: str, proxy: TcpProxy
) -> None:
    store = opened(with_port(postgresql_url, proxy.port), connect_timeout_s=5.0)
    try:
        store.create_version(new_model("a"))
        # Connected (1), its own fit logged (2), then its NOTIFY came back (3): steady.
        wait_until(lambda: store._changes.count == 3, "the store's own notification")
        marker = store.change_marker()
        proxy.down()
        wait_until(lambda: store._listener.failure() is not None, "the listener to notice")
        started = time.monotonic()
        with pytest.raises(
            StoreUnavailable, match=r"PostgreSQL at 127\.0\.0\.1:\d+/.* unreachable"
        ):
            store.latest_version("a")
        assert time.monotonic() - started < 0.5
        assert store.change_marker() == marker  # an outage alone invalidates nothing
        proxy.up()
        wait_until(lambda: store._listener.failure() is None, "the listener to reconnect")
        # Reconnecting counts as a change: what was committed meanwhile is re-read.
        assert store.change_marker() != marker
        assert store.latest_version("a") == 1
        assert store.create_version(new_model("a")).version == 2
    finally:
        store.close()


def test_a_server_down_at_start_only_delays_the_schema(
    postgresql_url: str, proxy: TcpProxy
) -> None:
    proxy.down()
    store = opened(with_port(postgresql_url, proxy.port), connect_timeout_s=2.0)
    try:
        wait_until(lambda: store._listener.failure() is not None, "the first attempt")
        with pytest.raises(StoreUnavailable):
            store.ping()
        proxy.up()
        wait_until(lambda: store._listener.failure() is None, "the listener to connect")
        assert store.create_version(new_model("a")).version == 1
    finally:
        store.close()


def test_sessions_commit_synchronously_unless_told_not_to(postgresql_url: str) -> None:
    for durable, expected in ((True, "on"), (False, "off")):
        store = opened(postgresql_url, durable=durable)
        try:
            store.ping()
            with store._pool.connection() as connection:
                row = connection.execute("SHOW synchronous_commit").fetchone()
            assert row is not None and row[0] == expected
        finally:
            store.close()


def fitted(log: ChangeLog, position: int) -> frozenset[str] | None:
    found = log.changes_since(position)
    return None if found is None else found[1].fitted


def test_the_change_log_names_fitted_and_deleted_series() -> None:
    log = ChangeLog()
    start = log.count
    log.record("fit", "a")
    log.record("fit", "b")
    log.record("fit", "a")
    assert log.changes_since(start) == (3, Changes(frozenset({"a", "b"}), frozenset()))
    assert fitted(log, start + 2) == frozenset({"a"})
    assert fitted(log, log.count) == frozenset()
    middle = log.count
    log.record("delete", "b")
    log.record("fit", "c")
    assert log.changes_since(middle) == (5, Changes(frozenset({"c"}), frozenset({"b"})))
    log.record(None)  # a copy, or a reconnection: anything may have changed
    log.record("fit", "d")
    assert log.changes_since(start) is None
    assert log.changes_since(middle) is None
    assert fitted(log, log.count - 1) == frozenset({"d"})
    assert log.changes_since(log.count + 1) is None  # not a marker of this log


def test_the_change_log_forgets_beyond_its_size() -> None:
    log = ChangeLog()
    for index in range(CHANGE_LOG_SIZE + 5):
        log.record("fit", f"s{index}")
    assert log.changes_since(0) is None
    assert log.changes_since(4) is None
    assert len(fitted(log, 5) or ()) == CHANGE_LOG_SIZE


def test_a_notified_fit_names_its_series(postgresql_url: str) -> None:
    watcher, fitter = opened(postgresql_url), opened(postgresql_url)
    try:
        watcher.ping()
        wait_until(
            lambda: watcher._listener.failure() is None and watcher._changes.count > 0, "listening"
        )
        marker = watcher.change_marker()
        fitter.create_version(new_model("température"))
        wait_until(lambda: watcher.change_marker() != marker, "the notification")
        assert watcher.changes_since(marker) == (
            watcher.change_marker(),
            Changes(frozenset({"température"}), frozenset()),
        )
        fitter.delete_series("température")
        wait_until(
            lambda: (
                (watcher.changes_since(marker) or (0, None))[1]
                == Changes(
                    frozenset({"température"}),
                    frozenset({"température"}),
                    frozenset({"température"}),
                )
            ),
            "the delete's notification",
        )
    finally:
        watcher.close()
        fitter.close()


def test_migration_2_counts_what_a_version_1_database_holds(postgresql_url: str) -> None:
    with psycopg.connect(postgresql_url, autocommit=True) as connection:
        connection.execute(
            "CREATE TABLE anomaly_schema_migrations (version integer PRIMARY KEY,"
            " description text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        for statement in MIGRATIONS[0][2].split(";"):
            if statement.strip():
                connection.execute(statement.encode())
        connection.execute(
            "INSERT INTO anomaly_schema_migrations (version, description) VALUES (1, 'v1')"
        )
        connection.execute(
            "INSERT INTO anomaly_series VALUES ('two', 2), ('one', 1), ('deleted', 3)"
        )
        for series_id, version in (("two", 1), ("two", 2), ("one", 1)):
            connection.execute(
                "INSERT INTO anomaly_models VALUES (%s, %s, 'zscore', '{}', '{}', 5, 0, 0, 0, 0,"
                " %s, %s)",
                (series_id, version, b"\x01" + zlib.compress(b""), b"\x01" + zlib.compress(b"")),
            )
    store = opened(postgresql_url)
    try:
        assert store.count_series() == 2
        assert [(s.series_id, s.version_count) for s in store.list_series(10)] == [
            ("one", 1),
            ("two", 2),
        ]
        assert store.schema_version() == len(MIGRATIONS)
        assert store.create_version(new_model("deleted")).version == 4
        assert store.count_series() == 3
    finally:
        store.close()


def test_migration_4_packs_the_per_point_rows_into_chunks(postgresql_url: str) -> None:
    """A schema 3 database (one row per observed point) keeps every point, with what was
    answered for it, once migration 4 packed them in SQL."""
    with psycopg.connect(postgresql_url, autocommit=True) as connection:
        connection.execute(
            "CREATE TABLE anomaly_schema_migrations (version integer PRIMARY KEY,"
            " description text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        for version, description, sql in MIGRATIONS[:3]:
            for statement in sql.split(";"):
                if statement.strip():
                    connection.execute(statement.encode())
            connection.execute(
                "INSERT INTO anomaly_schema_migrations (version, description) VALUES (%s, %s)",
                (version, description),
            )
        connection.execute(
            "INSERT INTO anomaly_streams (series_id, token, last_timestamp, observed, stored, "
            "updated_at) VALUES ('s', 1, 29990, 3000, 3000, 0)"
        )
        old = [
            ("s", 10 * i, i + 0.5, 1, 0.25, i % 7 == 0, 1.5, None if i % 2 else -1.0, 9.0)
            for i in range(3000)
        ]
        with connection.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO anomaly_stream_points VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                old,
            )
    store = opened(postgresql_url)
    try:
        assert store.schema_version() == len(MIGRATIONS)
        exported = store.export_stream("s")
        assert exported is not None
        assert exported.points == [row[1:] for row in old]
        assert store.count_stream_points("s", after=100, before=2000) == 189
        timestamps, values = store.stream_points("s", after=-1, limit=3)
        assert timestamps.tolist() == [29970, 29980, 29990]
        assert values.tolist() == [2997.5, 2998.5, 2999.5]
    finally:
        store.close()
    with psycopg.connect(postgresql_url) as connection:
        [(chunks,)] = connection.execute("SELECT COUNT(*) FROM anomaly_stream_chunks").fetchall()
        assert chunks == 3  # 3,000 points in chunks of 1,024


def test_counts_stay_exact_under_concurrent_fits_and_deletes(postgresql_url: str) -> None:
    store = opened(postgresql_url, pool_size=8)
    try:

        def churn(worker: int) -> None:
            for step in range(15):
                series_id = f"s{(worker + step) % 4}"
                store.create_version(new_model(series_id))
                if step % 3 == 2:
                    store.delete_series(series_id)
                elif step % 3 == 1:
                    store.delete_version(series_id, 1)

        threads = [threading.Thread(target=churn, args=(worker,)) for worker in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        with psycopg.connect(postgresql_url) as connection:
            actual: dict[str, int] = dict(
                connection.execute(
                    "SELECT series_id, COUNT(*) FROM anomaly_models GROUP BY series_id"
                ).fetchall()
            )
        assert store.count_series() == len(actual)
        assert {s.series_id: s.version_count for s in store.list_series(100)} == actual
    finally:
        store.close()


def test_the_listener_survives_any_failure_and_counts_it_as_a_change(
    postgresql_url: str,
) -> None:
    store, other = opened(postgresql_url), opened(postgresql_url)
    try:
        assert store._listener.connected.wait(5)
        record = store._changes.record
        failures: list[str] = []

        def fail_once(kind: str | None, series_id: str | None = None, heard: bool = False) -> None:
            if not failures:
                failures.append("raised")
                raise RuntimeError("not a driver error")
            record(kind, series_id, heard)

        store._changes.record = fail_once  # type: ignore[method-assign]
        marker = store.change_marker()
        other.create_version(new_model("a"))
        wait_until(lambda: failures == ["raised"], "the listener to meet the failure")
        # The reconnection counts as "anything may have changed".
        wait_until(
            lambda: store.change_marker() != marker and store._listener.failure() is None,
            "the listener to reconnect",
        )
        assert store._listener._thread.is_alive()
        assert store.changes_since(marker) is None
    finally:
        store.close()
        other.close()


def test_a_sql_ascii_database_still_speaks_utf8(postgresql_database: str) -> None:
    name = f"{postgresql_database.rsplit('/', 1)[1]}_ascii"
    with psycopg.connect(postgresql_database, autocommit=True) as admin:
        admin.execute(
            f'CREATE DATABASE "{name}" ENCODING SQL_ASCII LC_COLLATE "C" LC_CTYPE "C" '
            "TEMPLATE template0"
        )
    url = postgresql_database.rsplit("/", 1)[0] + f"/{name}"
    watcher, fitter = opened(url), opened(url)
    try:
        assert watcher._listener.connected.wait(5)
        marker = watcher.change_marker()
        fitter.create_version(new_model("température"))
        wait_until(lambda: watcher.change_marker() != marker, "the notification")
        assert watcher.changes_since(marker) == (
            watcher.change_marker(),
            Changes(frozenset({"température"}), frozenset()),
        )
        [record] = watcher.list_versions("température")
        assert (record.series_id, record.detector) == ("température", "zscore")
    finally:
        watcher.close()
        fitter.close()
        with psycopg.connect(postgresql_database, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def test_concurrent_imports_of_the_same_series_do_not_deadlock(postgresql_url: str) -> None:
    store = opened(postgresql_url, pool_size=4)
    try:
        counters = {f"s{index:03d}": 5 for index in range(200)}
        orders = [dict(counters), dict(reversed(list(counters.items())))]
        errors: list[BaseException] = []

        def run(order: dict[str, int]) -> None:
            try:
                store.import_versions([], order)
            except BaseException as exc:
                errors.append(exc)

        for _ in range(3):
            threads = [threading.Thread(target=run, args=(order,)) for order in orders]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        assert errors == []
        assert store.series_counters() == counters
    finally:
        store.close()


def test_a_delete_repairs_a_count_an_older_release_left_wrong(postgresql_url: str) -> None:
    store = opened(postgresql_url)
    try:
        for _ in range(3):
            store.create_version(new_model("a"))
        with psycopg.connect(postgresql_url, autocommit=True) as connection:
            # What a replica of the previous release does: fits without keeping counts.
            connection.execute("UPDATE anomaly_series SET versions = 0")
            connection.execute(
                "UPDATE anomaly_meta SET value = 0 WHERE key = 'series_with_versions'"
            )
        assert store.delete_version("a", 1)
        assert store.count_series() == 1
        assert [(s.series_id, s.version_count) for s in store.list_series(10)] == [("a", 2)]
    finally:
        store.close()


def test_a_statement_longer_than_the_timeout_is_cancelled_as_unavailable(
    postgresql_url: str,
) -> None:
    """A slow statement or a wait for a lock held elsewhere gives up (a 503) instead of
    holding the request and its connection (issue 12, item 5)."""
    store = open_store(postgresql_url, statement_timeout_s=0.2)
    try:
        assert isinstance(store, PostgreSQLModelStore)
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match="statement timeout"):
            store._read("SELECT pg_sleep(5)")
        assert time.monotonic() - started < 3
        store.create_version(new_model("s"))  # the pool works on
        assert store.latest_version("s") == 1
    finally:
        store.close()


def test_the_change_log_tells_when_a_notification_came_back() -> None:
    changes = ChangeLog()
    changes.record("delete", "a")  # this process's own record: not heard
    assert not changes.wait_heard("delete", "a", 0, timeout=0.01)
    position = changes.count
    threading.Timer(0.05, changes.record, ("delete", "a", True)).start()
    assert changes.wait_heard("delete", "a", position, timeout=5)
    assert not changes.wait_heard("delete", "a", changes.count, timeout=0.01)  # an older one
    assert not changes.wait_heard("drop", "a", position, timeout=0.01)
