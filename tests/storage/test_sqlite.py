"""What only the SQLite store promises: WAL, durability settings, refusing newer schemas."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from anomaly_api.errors import StoreUnavailable
from anomaly_api.storage import SQLiteModelStore, open_store
from anomaly_api.storage.base import Changes
from anomaly_api.storage.codec import encode_timestamps, encode_values
from anomaly_api.storage.sqlite import MIGRATIONS, SCHEMA_VERSION
from tests.storage.test_store import new_model


def test_wal_mode_and_schema_version(tmp_path: Path) -> None:
    store = SQLiteModelStore(tmp_path / "m.db")
    store.close()
    connection = sqlite3.connect(tmp_path / "m.db")
    assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert connection.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    connection.close()


def test_a_store_of_an_earlier_schema_is_migrated_in_place(tmp_path: Path) -> None:
    connection = sqlite3.connect(tmp_path / "m.db")
    first = MIGRATIONS[0][1]
    assert isinstance(first, str)
    for statement in first.split(";"):
        connection.execute(statement)
    connection.execute(
        "INSERT INTO models VALUES ('old', 1, 'zscore', '{}', '{\"mean\": 1.0, \"std\": 0.0}', "
        "5, 0, 0, 4, 0.0, ?, ?)",
        (encode_timestamps(np.zeros(0, np.int64)), encode_values(np.zeros(0))),
    )
    connection.execute("INSERT INTO series VALUES ('old', 1)")
    connection.execute("PRAGMA user_version = 1")
    connection.commit()
    connection.close()
    store = SQLiteModelStore(tmp_path / "m.db")
    try:
        assert store.latest_version("old") == 1
        position = store.change_position()
        store.create_version(new_model("old"))
        assert store.changes_since(position) == (
            position + 1,
            Changes(frozenset({"old"}), frozenset()),
        )
    finally:
        store.close()


def test_schema_3_points_are_packed_into_chunks(tmp_path: Path) -> None:
    """A store of schema 3 (one row per observed point) keeps every point, with what was
    answered for it, once its points are packed into chunks."""
    connection = sqlite3.connect(tmp_path / "m.db")
    for _, sql in MIGRATIONS[:3]:
        assert isinstance(sql, str)
        for statement in sql.split(";"):
            if statement.strip():
                connection.execute(statement)
    connection.execute(
        "INSERT INTO streams (series_id, owner, token, last_timestamp, observed, stored, "
        "updated_at) VALUES ('s', NULL, 1, 2990, 3000, 3000, 0)"
    )
    old = [
        ("s", 10 * i, float(i), 1, 0.25, i % 7 == 0, 1.5, None if i % 2 else -1.0, 9.0)
        for i in range(3000)
    ]
    connection.executemany("INSERT INTO stream_points VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", old)
    connection.execute("PRAGMA user_version = 3")
    connection.commit()
    connection.close()
    store = SQLiteModelStore(tmp_path / "m.db")
    try:
        exported = store.export_stream("s")
        assert exported is not None
        assert exported.points == [row[1:] for row in old]
        assert store.count_stream_points("s", after=100, before=2000) == 189
        timestamps, values = store.stream_points("s", after=-1, limit=5)
        assert timestamps.tolist() == [29950, 29960, 29970, 29980, 29990]
        assert values.tolist() == [2995.0, 2996.0, 2997.0, 2998.0, 2999.0]
    finally:
        store.close()
    connection = sqlite3.connect(tmp_path / "m.db")
    tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
    assert "stream_points" not in tables
    assert connection.execute("SELECT COUNT(*) FROM stream_chunks").fetchone()[0] == 3
    connection.close()


def test_refuses_a_schema_from_a_newer_release(tmp_path: Path) -> None:
    connection = sqlite3.connect(tmp_path / "m.db")
    connection.execute("PRAGMA user_version = 99")
    connection.close()
    with pytest.raises(StoreUnavailable, match="newer than this release"):
        SQLiteModelStore(tmp_path / "m.db")


def test_creates_missing_directories(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path}/a/b/models.db")
    store.close()
    assert (tmp_path / "a" / "b" / "models.db").exists()


@pytest.mark.parametrize("url", ["sqlite:///", "sqlite:///:memory:", "mysql://x/y", "models.db"])
def test_rejects_unusable_urls(url: str) -> None:
    with pytest.raises(ValueError, match="ANOMALY_DATABASE_URL"):
        open_store(url)


def test_unwritable_location_is_store_unavailable(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises((StoreUnavailable, OSError)):
        SQLiteModelStore(blocker / "models.db")


def test_connections_are_pooled_not_piled_up(tmp_path: Path) -> None:
    import threading

    from anomaly_api.storage.sqlite import MAX_IDLE_CONNECTIONS

    store = SQLiteModelStore(tmp_path / "m.db")
    try:
        for _ in range(3):  # bursts of short-lived threads, as a thread pool has
            threads = [threading.Thread(target=store.count_series) for _ in range(30)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        assert store.idle_connections() <= MAX_IDLE_CONNECTIONS
    finally:
        store.close()


def test_a_failed_write_releases_the_lock(tmp_path: Path) -> None:
    store = SQLiteModelStore(tmp_path / "m.db", busy_timeout_s=1)
    other = SQLiteModelStore(tmp_path / "m.db", busy_timeout_s=1)
    try:

        def fail_mid_transaction() -> None:
            with store._write() as connection:
                connection.execute("UPDATE meta SET value = value + 1")
                raise RuntimeError("boom")

        with pytest.raises(RuntimeError):
            fail_mid_transaction()
        with other._write() as connection:  # would time out if the lock were still held
            connection.execute("UPDATE meta SET value = value + 1")
        assert store.deletion_epoch() == 1
    finally:
        store.close()
        other.close()


def test_a_commit_is_announced_to_every_store_on_the_file(tmp_path: Path) -> None:
    from tests.storage.test_store import new_model

    path = tmp_path / "m.db"
    first, second = SQLiteModelStore(path), SQLiteModelStore(path)
    try:
        marker = first.change_marker()
        assert first.change_marker() == marker  # reading changes nothing
        second.create_version(new_model("a"))
        assert first.change_marker() != marker
        marker = first.change_marker()
        second.delete_series("a")
        assert first.change_marker() != marker
        assert (tmp_path / "m.db-changes").stat().st_size == 8
    finally:
        first.close()
        second.close()


def test_a_commit_by_another_program_is_noticed_within_the_watch_interval(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import anomaly_api.storage.sqlite as module

    path = tmp_path / "m.db"
    store = SQLiteModelStore(path)
    monkeypatch.setattr(module, "WATCH_INTERVAL_S", 3600.0)
    try:
        marker = store.change_marker()
        other = sqlite3.connect(path)  # writes without announcing
        try:
            with other:  # commits (a sqlite3 connection's own context does not close it)
                other.execute("UPDATE meta SET value = value + 1 WHERE key = 'deletion_epoch'")
        finally:
            other.close()
        assert store.change_marker() == marker  # not yet: the watch is read only so often
        monkeypatch.setattr(module, "WATCH_INTERVAL_S", 0.0)
        assert store.change_marker() != marker
    finally:
        store.close()


def test_a_deleted_replaced_or_truncated_file_stops_writes(tmp_path: Path) -> None:
    """Writes to a file nobody will open again are refused, never acknowledged; a new
    store is never started silently in its place (issue 12, item 5)."""
    path = tmp_path / "m.db"
    store = SQLiteModelStore(path)
    assert store.create_version(new_model("a")).version == 1
    store.ping()
    path.unlink()
    for attempt in (lambda: store.create_version(new_model("a")), store.ping):
        with pytest.raises(StoreUnavailable, match="deleted"):
            attempt()
    store.close()

    other = tmp_path / "other.db"
    SQLiteModelStore(other).close()
    store = SQLiteModelStore(path)  # a new store at the old path: a fresh start, on purpose
    store.create_version(new_model("a"))
    other.replace(path)  # another store moved over it
    with pytest.raises(StoreUnavailable, match="replaced"):
        store.create_version(new_model("a"))
    store.close()

    reopened = SQLiteModelStore(path)
    reopened.create_version(new_model("b"))
    with open(path, "r+b") as file:  # truncated in place: same inode
        file.truncate(0)
    with pytest.raises(StoreUnavailable, match=r"truncated|no longer"):
        reopened.create_version(new_model("b"))
    reopened.close()


def test_an_empty_file_at_start_is_refused_not_taken_for_a_new_store(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    path.write_bytes(b"")
    with pytest.raises(StoreUnavailable, match="empty file"):
        SQLiteModelStore(path)


def test_the_healthcheck_says_503_once_the_file_is_gone(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from anomaly_api.api.app import create_app
    from anomaly_api.settings import Settings
    from tests.conftest import CONTRACT_FIT

    path = tmp_path / "m.db"
    with TestClient(
        create_app(Settings(database_url=f"sqlite:///{path}")), base_url="http://127.0.0.1"
    ) as client:
        assert client.post("/fit/s", json=CONTRACT_FIT).json()["version"] == "1"
        path.unlink()
        assert client.post("/fit/s", json=CONTRACT_FIT).status_code == 503
        health = client.get("/healthcheck")
        assert health.status_code == 503 and health.json()["status"] == "unavailable"


def _open_at_once(path: str, barrier: Any, errors: Any) -> None:
    from anomaly_api.storage import open_store

    barrier.wait()
    try:
        open_store(f"sqlite:///{path}").close()
    except Exception as exc:  # reported to the parent
        errors.put(repr(exc))


def test_processes_creating_the_store_at_once_all_open_it(tmp_path: Path) -> None:
    """Workers starting together on a new store: none may see the file while it is still
    empty (it once refused it as a truncated store and its worker failed to start)."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    for attempt in range(3):
        path = tmp_path / f"new-{attempt}.db"
        barrier, errors = context.Barrier(6), context.Queue()
        processes = [
            context.Process(target=_open_at_once, args=(str(path), barrier, errors))
            for _ in range(6)
        ]
        for process in processes:
            process.start()
        for process in processes:
            process.join(60)
        found = []
        while not errors.empty():
            found.append(errors.get())
        assert found == [], found
        assert all(process.exitcode == 0 for process in processes)
        assert not list(tmp_path.glob(".*.new"))  # no creation leftovers
