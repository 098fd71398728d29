"""``anomaly-api migrate``: every version, number, counter and training point arrives,
the copy resumes, conflicts stop it untouched, and verification catches what is wrong."""

from __future__ import annotations

import dataclasses
import os
import secrets
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import psycopg
import pytest
from typer.testing import CliRunner

from anomaly_api.cli import app
from anomaly_api.detectors import DETECTORS, Series
from anomaly_api.errors import StoreUnavailable
from anomaly_api.migrate import (
    MAX_EXAMPLES,
    Discrepancy,
    InvalidUrl,
    MigrationReport,
    check_urls,
    format_report,
    migrate,
    progress_bars,
)
from anomaly_api.quotas import Limits
from anomaly_api.registry import ModelRegistry
from anomaly_api.storage import ModelStore, SQLiteModelStore, StoredVersion, open_store
from tests.postgres import with_schema
from tests.storage.test_store import new_model

runner = CliRunner()

UrlFactory = Callable[[str, str], str]

PAIRS = [
    ("sqlite", "sqlite"),
    ("sqlite", "postgresql"),
    ("postgresql", "sqlite"),
    ("postgresql", "postgresql"),
]


@pytest.fixture
def make_url(request: pytest.FixtureRequest, tmp_path: Path) -> UrlFactory:
    """A fresh, empty store URL of the given backend: a SQLite file or a PostgreSQL schema
    of its own (two calls give two stores, even in one database)."""

    def make(backend: str, name: str) -> str:
        if backend == "postgresql":
            database = str(request.getfixturevalue("postgresql_database"))
            schema = f"m_{name}_{secrets.token_hex(4)}"
            with psycopg.connect(database, autocommit=True) as connection:
                connection.execute(f'CREATE SCHEMA "{schema}"')
            return with_schema(database, schema)
        return f"sqlite:///{tmp_path / name}.db"

    return make


@pytest.fixture(params=PAIRS, ids=["->".join(pair) for pair in PAIRS])
def urls(request: pytest.FixtureRequest, make_url: UrlFactory) -> tuple[str, str]:
    source_backend, target_backend = request.param
    return make_url(source_backend, "source"), make_url(target_backend, "target")


@pytest.fixture
def stores(urls: tuple[str, str]) -> Iterator[tuple[ModelStore, ModelStore]]:
    source, target = open_store(urls[0]), open_store(urls[1])
    yield source, target
    source.close()
    target.close()


@pytest.fixture
def sqlite_urls(tmp_path: Path) -> tuple[str, str]:
    return f"sqlite:///{tmp_path / 'source.db'}", f"sqlite:///{tmp_path / 'target.db'}"


def fill(store: ModelStore) -> None:
    """A store with every shape a copy must keep: gaps left by deleted versions, a series
    whose versions were all deleted, a Unicode id, and distinct content per version.

    a: 1 3 5 (2 and 4 deleted, counter 5) · b: 1 · gone: none (counter 3) ·
    température.salon: 1 2
    """
    plan = {"a": 5, "b": 1, "gone": 3, "température.salon": 2}
    for series_id, fits in plan.items():
        for index in range(fits):
            model = new_model(series_id, points=10 + 7 * index)
            store.create_version(
                dataclasses.replace(model, state={"mean": 0.5 + index, "std": 0.3 * (index + 1)})
            )
    store.delete_version("a", 2)
    store.delete_version("a", 4)
    store.delete_series("gone")


EXPECTED_VERSIONS = {"a": [1, 3, 5], "b": [1], "température.salon": [1, 2]}
EXPECTED_COUNTERS = {"a": 5, "b": 1, "gone": 3, "température.salon": 2}


def assert_identical(source: ModelStore, target: ModelStore) -> None:
    """The target holds every source version exactly, and at least every counter."""
    for series_id, versions in EXPECTED_VERSIONS.items():
        copied = target.list_versions(series_id)
        assert [record.version for record in copied] == versions
        assert copied == source.list_versions(series_id)
        for version in versions:
            expected = source.training_data(series_id, version)
            actual = target.training_data(series_id, version)
            assert expected is not None and actual is not None
            np.testing.assert_array_equal(actual.timestamps, expected.timestamps)
            np.testing.assert_array_equal(actual.values, expected.values)
    counters = target.series_counters()
    assert all(counters[key] >= last for key, last in source.series_counters().items())


# -- the copy ---------------------------------------------------------------------------------


def test_every_version_arrives_with_its_number_and_content(
    stores: tuple[ModelStore, ModelStore],
) -> None:
    source, target = stores
    fill(source)
    report = migrate(source, target, batch_size=2)
    assert report == MigrationReport(
        series=3, versions=6, copied=6, already_present=0, counters=4, counters_raised=4
    )
    assert report.ok
    assert_identical(source, target)
    assert target.series_counters() == EXPECTED_COUNTERS
    assert target.count_series() == 3


def test_new_fits_on_the_target_continue_the_source_numbering(
    stores: tuple[ModelStore, ModelStore],
) -> None:
    source, target = stores
    fill(source)
    assert migrate(source, target).ok
    # 'gone' had versions 1..3, all deleted: its numbers stay used.
    assert target.create_version(new_model("gone")).version == 4
    assert target.create_version(new_model("a")).version == 6
    assert target.create_version(new_model("b")).version == 2
    assert target.create_version(new_model("température.salon")).version == 3


def test_a_second_run_copies_nothing_and_succeeds(
    stores: tuple[ModelStore, ModelStore],
) -> None:
    source, target = stores
    fill(source)
    assert migrate(source, target).copied == 6
    again = migrate(source, target, batch_size=4)
    assert again.ok
    assert (again.copied, again.already_present, again.counters_raised) == (0, 6, 0)
    assert_identical(source, target)


def test_api_keys_arrive_with_their_limits_and_revocations(
    stores: tuple[ModelStore, ModelStore],
) -> None:
    source, target = stores
    fill(source)
    source.create_key("ingest", "d-ingest", ("write", "predict"), Limits(5, None, 30.0))
    source.create_key("old", "d-old", ("read",))
    source.revoke_key("old")
    source.create_key("later", "d-later", ("read",))
    report = migrate(source, target)
    assert report.ok and (report.keys, report.keys_copied) == (3, 3)
    assert target.export_keys() == source.export_keys()
    assert sorted(name for _, name, _, _ in target.active_keys()) == ["ingest", "later"]
    # Revoked in the source after the copy: a second run revokes it in the target.
    source.revoke_key("later")
    again = migrate(source, target)
    assert again.ok and again.keys_copied == 1
    assert [name for _, name, _, _ in target.active_keys()] == ["ingest"]
    assert "API keys: 3 (1 copied or revoked" in format_report(again)


def test_a_key_name_the_target_holds_with_another_key_is_a_conflict(
    stores: tuple[ModelStore, ModelStore],
) -> None:
    source, target = stores
    fill(source)
    source.create_key("ingest", "d-source", ("write",))
    target.create_key("ingest", "d-target", ("read",))
    report = migrate(source, target)
    assert not report.ok and report.copied == 0
    assert [str(item) for item in report.conflicts] == [
        "'API key ingest': the target holds another key so named"
    ]
    assert target.count_series() == 0
    assert [record.scopes for record, _ in target.export_keys()] == [("read",)]


def test_a_migrated_model_predicts_exactly_as_before(
    urls: tuple[str, str],
) -> None:
    source = ModelRegistry(open_store(urls[0]))
    rng = np.random.default_rng(7)
    timestamps = 1_691_000_000 + np.arange(2016, dtype=np.int64) * 300
    values = 50 + 10 * np.sin(2 * np.pi * timestamps / 86_400) + rng.normal(0, 1, timestamps.size)
    for name in DETECTORS:
        source.fit(f"s_{name}", timestamps, values, detector=name)
        source.fit(f"s_{name}", timestamps, values * 2 + 1, detector=name)
    target = ModelRegistry(open_store(urls[1]))
    try:
        assert migrate(source.store, target.store).ok
        later = timestamps[-1] + 300 * np.arange(1, 101)
        probe = 50 + 10 * np.sin(2 * np.pi * later / 86_400) + rng.normal(0, 3, later.size)
        probe[::17] += 40  # some anomalies among them
        for name in DETECTORS:
            for version in (1, 2):
                before = source.predict(f"s_{name}", float(probe[0]), float(later[0]), version)
                after = target.predict(f"s_{name}", float(probe[0]), float(later[0]), version)
                assert repr(after) == repr(before)
                _, expected, _ = source.score_batch(f"s_{name}", later, probe, version)
                _, actual, _ = target.score_batch(f"s_{name}", later, probe, version)
                for column in ("expected", "lower", "upper", "score", "anomaly"):
                    np.testing.assert_array_equal(
                        getattr(actual, column), getattr(expected, column), err_msg=column
                    )
        assert target.fit(f"s_{next(iter(DETECTORS))}", timestamps, values).version == 3
    finally:
        source.close()
        target.close()


def live_source(url: str) -> tuple[np.ndarray, np.ndarray]:
    """Fit a series per detector in the store at ``url`` and stream 300 points to each
    through single predicts (saved when the registry closes); the next points to send."""
    rng = np.random.default_rng(11)
    timestamps = 1_691_000_000 + np.arange(2316, dtype=np.int64) * 300
    values = 50 + 10 * np.sin(2 * np.pi * timestamps / 86_400) + rng.normal(0, 1, timestamps.size)
    values[2100::23] += 30  # some anomalies in the stream
    registry = ModelRegistry(open_store(url))
    try:
        for name in DETECTORS:
            registry.fit(f"s_{name}", timestamps[:2016], values[:2016], detector=name)
            for t, v in zip(timestamps[2016:], values[2016:], strict=True):
                registry.predict(f"s_{name}", float(v), float(t))
    finally:
        registry.close()
    later = timestamps[-1] + 300 * np.arange(1, 51)
    probe = 50 + 10 * np.sin(2 * np.pi * later / 86_400) + rng.normal(0, 3, later.size)
    probe[::13] += 40
    return later, probe


def test_live_streams_arrive_and_go_on_as_in_the_source(urls: tuple[str, str]) -> None:
    later, probe = live_source(urls[0])
    source, target = open_store(urls[0]), open_store(urls[1])
    try:
        report = migrate(source, target)
        assert report.ok, format_report(report)
        assert (report.streams, report.streams_copied) == (len(DETECTORS), len(DETECTORS))
        for name in DETECTORS:
            copied = target.export_stream(f"s_{name}")
            assert copied is not None and copied.observed == 300
            assert copied == source.export_stream(f"s_{name}")
        again = migrate(source, target)
        assert again.ok and (again.streams, again.streams_copied) == (len(DETECTORS), 0)
        assert "live streams: " in format_report(again)
    finally:
        source.close()
        target.close()
    # Each store's next points are scored as the continuation of the same stream.
    before, after = ModelRegistry(open_store(urls[0])), ModelRegistry(open_store(urls[1]))
    try:
        for name in DETECTORS:
            for t, v in zip(later, probe, strict=True):
                expected = before.predict(f"s_{name}", float(v), float(t))
                assert repr(after.predict(f"s_{name}", float(v), float(t))) == repr(expected)
                assert expected.observed
    finally:
        before.close()
        after.close()


def test_a_live_stream_the_target_holds_differently_is_left_alone(
    sqlite_urls: tuple[str, str],
) -> None:
    live_source(sqlite_urls[0])
    source, target = open_store(sqlite_urls[0]), open_store(sqlite_urls[1])
    try:
        assert migrate(source, target).ok
        # The target's stream of one series goes on (a server used it), the source's not.
        served = ModelRegistry(target)
        stream = target.export_stream("s_zscore")
        assert stream is not None and stream.last_timestamp is not None
        served.predict("s_zscore", 50.0, float(stream.last_timestamp + 300))
        served.streams.flush()
        served.streams.close()
        moved_on = target.export_stream("s_zscore")
        report = migrate(source, target)
        assert not report.ok
        assert [str(problem) for problem in report.problems] == [
            "'s_zscore': stream differs: last_timestamp, observed, context, points differ",
            "'s_zscore': the target has another live stream for it; not overwritten",
        ]
        assert target.export_stream("s_zscore") == moved_on
    finally:
        source.close()
        target.close()


class _Recording(SQLiteModelStore):
    """A SQLite store that remembers each import_versions call (its size and counters)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.imports: list[tuple[int, dict[str, int]]] = []

    def import_versions(
        self, versions: Sequence[StoredVersion], counters: Mapping[str, int]
    ) -> int:
        self.imports.append((len(versions), dict(counters)))
        return super().import_versions(versions, counters)


def test_each_batch_is_one_import_and_the_counters_come_last(tmp_path: Path) -> None:
    source = open_store(f"sqlite:///{tmp_path / 'source.db'}")
    target = _Recording(tmp_path / "target.db")
    try:
        fill(source)
        seen: list[tuple[str, int, int | None]] = []
        report = migrate(source, target, batch_size=4, progress=lambda *event: seen.append(event))
        assert report.ok
        assert [size for size, _ in target.imports] == [4, 2, 0]
        # A batch carries the counters of its own series; the last call, all of them.
        assert target.imports[0][1] == {"a": 5, "b": 1}
        assert target.imports[-1][1] == EXPECTED_COUNTERS
        assert seen == [
            ("copy", 4, None),
            ("copy", 2, None),
            ("verify", 4, 6),
            ("verify", 2, 6),
        ]
    finally:
        source.close()
        target.close()


class _FailingAfter(SQLiteModelStore):
    """A SQLite store whose connection is "lost" after a number of imports."""

    def __init__(self, path: Path, imports: int) -> None:
        super().__init__(path)
        self.left = imports

    def import_versions(
        self, versions: Sequence[StoredVersion], counters: Mapping[str, int]
    ) -> int:
        if self.left == 0:
            raise StoreUnavailable("the connection was lost")
        self.left -= 1
        return super().import_versions(versions, counters)


def test_an_interrupted_copy_resumes_where_it_stopped(tmp_path: Path) -> None:
    source = open_store(f"sqlite:///{tmp_path / 'source.db'}")
    try:
        fill(source)
        interrupted = _FailingAfter(tmp_path / "target.db", imports=2)
        try:
            with pytest.raises(StoreUnavailable, match="lost"):
                migrate(source, interrupted, batch_size=2)
            # Two whole batches arrived, nothing of the third.
            assert sum(len(interrupted.list_versions(s)) for s in EXPECTED_VERSIONS) == 4
        finally:
            interrupted.close()
        target = open_store(f"sqlite:///{tmp_path / 'target.db'}")
        try:
            report = migrate(source, target, batch_size=2)
            assert report.ok
            assert (report.copied, report.already_present) == (2, 4)
            assert_identical(source, target)
        finally:
            target.close()
    finally:
        source.close()


# -- conflicts and verification ---------------------------------------------------------------


def test_a_target_with_other_models_under_the_same_numbers_is_left_untouched(
    stores: tuple[ModelStore, ModelStore],
) -> None:
    source, target = stores
    fill(source)
    for _ in range(2):
        target.create_version(new_model("a", points=30))  # a different history of 'a'
    target.create_version(new_model("unrelated"))
    before = {key: target.list_versions(key) for key in ("a", "b", "unrelated")}
    counters = target.series_counters()

    report = migrate(source, target)

    assert not report.ok
    assert report.conflict_count == 1  # a:1; the target's a:2 is not in the source
    [conflict] = report.conflicts
    assert (conflict.series_id, conflict.version) == ("a", 1)
    assert "created_at" in conflict.detail and "points_used" in conflict.detail
    assert report.copied == 0
    assert {key: target.list_versions(key) for key in before} == before
    assert target.series_counters() == counters
    assert "nothing was written" in format_report(report)


def test_conflicts_are_counted_in_full_but_listed_up_to_a_limit(tmp_path: Path) -> None:
    source = open_store(f"sqlite:///{tmp_path / 'source.db'}")
    target = open_store(f"sqlite:///{tmp_path / 'target.db'}")
    try:
        for store in (source, target):
            for index in range(MAX_EXAMPLES + 5):
                store.create_version(new_model(f"s{index:03d}"))
        report = migrate(source, target)
        assert report.conflict_count == MAX_EXAMPLES + 5
        assert len(report.conflicts) == MAX_EXAMPLES
        assert "... and 5 more" in format_report(report)
    finally:
        source.close()
        target.close()


def test_a_present_version_differing_only_in_training_points_fails_verification(
    stores: tuple[ModelStore, ModelStore],
) -> None:
    source, target = stores
    fill(source)
    record = source.get_model("b", 1)
    assert record is not None
    training = source.training_data("b", 1)
    assert training is not None
    altered = Series(training.timestamps, training.values + 1e-9)
    target.import_versions([StoredVersion(record, altered)], {})

    report = migrate(source, target)

    assert not report.ok
    assert report.conflict_count == 0  # the records are identical
    assert report.problems == (Discrepancy("b", 1, "training values differs"),)
    assert report.copied == 5
    stored = target.training_data("b", 1)
    assert stored is not None and np.array_equal(stored.values, altered.values)  # kept
    assert "verification FAILED" in format_report(report)


class _Sabotaged(SQLiteModelStore):
    """A SQLite store whose import gets one thing wrong, to show verification sees it."""

    def __init__(self, path: Path, fault: str) -> None:
        super().__init__(path)
        self.fault = fault

    def import_versions(
        self, versions: Sequence[StoredVersion], counters: Mapping[str, int]
    ) -> int:
        changed: list[StoredVersion] = []
        for stored in versions:
            record, training = stored.record, stored.training
            if (record.series_id, record.version) == ("a", 3):
                if self.fault == "drop":
                    continue
                if self.fault == "state":
                    record = dataclasses.replace(record, state={**record.state, "std": 0.31})
                if self.fault == "created_at":
                    record = dataclasses.replace(record, created_at=record.created_at + 1e-6)
                if self.fault == "timestamps":
                    training = Series(training.timestamps + 1, training.values)
            changed.append(StoredVersion(record, training))
        if self.fault == "counters":
            counters = {}
        return super().import_versions(changed, counters)


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        ("drop", Discrepancy("a", 3, "missing from the target")),
        ("state", Discrepancy("a", 3, "state differs")),
        ("created_at", Discrepancy("a", 3, "created_at differs")),
        ("timestamps", Discrepancy("a", 3, "training timestamps differs")),
        ("counters", Discrepancy("gone", None, "counter is None in the target, 3 in the source")),
    ],
)
def test_verification_catches_a_faulty_copy(
    tmp_path: Path, fault: str, expected: Discrepancy
) -> None:
    source = open_store(f"sqlite:///{tmp_path / 'source.db'}")
    target = _Sabotaged(tmp_path / "target.db", fault)
    try:
        fill(source)
        report = migrate(source, target)
        assert not report.ok
        assert report.conflict_count == 0
        assert report.problems == (expected,)
        assert report.problem_count == 1
    finally:
        source.close()
        target.close()


class _SortsDifferently(SQLiteModelStore):
    """A SQLite store that exports in another order than the source, as a database with
    another collation would."""

    def export_versions(self, batch_size: int = 500) -> Iterator[list[StoredVersion]]:
        everything = [stored for batch in super().export_versions(batch_size) for stored in batch]
        everything.reverse()
        for start in range(0, len(everything), batch_size):
            yield everything[start : start + batch_size]


def test_verification_does_not_depend_on_the_target_sorting_alike(tmp_path: Path) -> None:
    source = open_store(f"sqlite:///{tmp_path / 'source.db'}")
    target = _SortsDifferently(tmp_path / "target.db")
    try:
        fill(source)
        report = migrate(source, target, batch_size=2)
        assert report.ok, report.problems
    finally:
        source.close()
        target.close()


# -- refusing to start -------------------------------------------------------------------------


def test_a_store_is_not_migrated_into_itself(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'only.db'}")
    other = open_store(f"sqlite:///{tmp_path / 'other.db'}")
    try:
        with pytest.raises(ValueError, match="same store"):
            migrate(store, store)
        with pytest.raises(ValueError, match="batch_size"):
            migrate(store, other, batch_size=0)
    finally:
        store.close()
        other.close()


@pytest.mark.parametrize(
    ("source", "target"),
    [
        ("sqlite:///{dir}/a.db", "sqlite:///{dir}/a.db"),
        ("sqlite:///a.db", "sqlite:///{dir}/a.db"),  # relative to the working directory
        ("sqlite:///{dir}/a.db", "sqlite:///{dir}/link.db"),  # a symlink to it
        ("sqlite:///{dir}/a.db", "sqlite:///{dir}/sub/../a.db"),
        (
            "postgresql://postgres@127.0.0.1:5432/test",
            "postgres://other:secret@127.0.0.1/test",
        ),
        (
            "postgresql://postgres@127.0.0.1:5432/test?options=-csearch_path%3Dx",
            "postgresql+psycopg://postgres@127.0.0.1:5432/test?options=-csearch_path%3Dx",
        ),
    ],
)
def test_two_urls_of_one_store_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str, target: str
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.db").touch()
    (tmp_path / "link.db").symlink_to(tmp_path / "a.db")
    with pytest.raises(InvalidUrl, match="is the source itself") as caught:
        check_urls(source.format(dir=tmp_path), target.format(dir=tmp_path))
    assert caught.value.role == "target"
    assert "secret" not in caught.value.message


@pytest.mark.parametrize(
    ("source", "target"),
    [
        ("sqlite:///{dir}/a.db", "sqlite:///{dir}/b.db"),
        (
            "postgresql://postgres@127.0.0.1:5432/test?options=-csearch_path%3Dx",
            "postgresql://postgres@127.0.0.1:5432/test?options=-csearch_path%3Dy",
        ),
        ("postgresql://postgres@127.0.0.1:5432/test", "postgresql://postgres@127.0.0.1:5433/test"),
        ("sqlite:///{dir}/a.db", "postgresql://postgres@127.0.0.1:5432/test"),
    ],
)
def test_two_different_stores_are_accepted(tmp_path: Path, source: str, target: str) -> None:
    (tmp_path / "a.db").touch()
    check_urls(source.format(dir=tmp_path), target.format(dir=tmp_path))


@pytest.mark.parametrize(
    ("source", "target", "role", "message"),
    [
        ("mysql://h/db", "sqlite:///{dir}/b.db", "source", "unsupported store URL"),
        ("sqlite:///{dir}/a.db", "redis://h", "target", "unsupported store URL"),
        ("sqlite:///{dir}/missing.db", "sqlite:///{dir}/b.db", "source", "does not exist"),
        ("sqlite:///{dir}", "sqlite:///{dir}/b.db", "source", "not a file"),
        ("sqlite:///", "sqlite:///{dir}/b.db", "source", "must name a SQLite file"),
        ("sqlite:///{dir}/a.db", "sqlite:///:memory:", "target", "must name a SQLite file"),
        ("sqlite:///{dir}/a.db", "postgresql://[bad", "target", "malformed PostgreSQL URL"),
        ("sqlite:///{dir}/a.db", "postgresql://h/db?nonsense=1", "target", "malformed"),
    ],
)
def test_unusable_urls_are_refused_before_anything_is_opened(
    tmp_path: Path, source: str, target: str, role: str, message: str
) -> None:
    (tmp_path / "a.db").touch()
    with pytest.raises(InvalidUrl, match=message) as caught:
        check_urls(source.format(dir=tmp_path), target.format(dir=tmp_path))
    assert caught.value.role == role
    assert not (tmp_path / "missing.db").exists()


# -- the command --------------------------------------------------------------------------------


def test_the_command_copies_into_postgresql_and_says_what_it_did(
    tmp_path: Path, make_url: UrlFactory
) -> None:
    source_url, target_url = make_url("sqlite", "source"), make_url("postgresql", "target")
    source = open_store(source_url)
    try:
        fill(source)
    finally:
        source.close()
    arguments = ["migrate", "--from", source_url, "--to", target_url, "--batch-size", "2"]

    first = runner.invoke(app, arguments)
    assert first.exit_code == 0, first.output
    assert "versions: 6 (6 copied, 0 already present)" in first.stdout
    assert "counters: 4 (4 raised)" in first.stdout
    assert "verified" in first.stdout
    assert first.stderr == ""

    second = runner.invoke(app, arguments)
    assert second.exit_code == 0, second.output
    assert "versions: 6 (0 copied, 6 already present)" in second.stdout
    assert "counters: 4 (0 raised)" in second.stdout

    target = open_store(target_url)
    try:
        assert target.series_counters() == EXPECTED_COUNTERS
        assert target.create_version(new_model("gone")).version == 4
    finally:
        target.close()


def test_the_command_exits_1_on_a_conflict(sqlite_urls: tuple[str, str]) -> None:
    source_url, target_url = sqlite_urls
    for url in sqlite_urls:
        store = open_store(url)
        store.create_version(new_model("a"))
        store.close()
    result = runner.invoke(app, ["migrate", "--from", source_url, "--to", target_url])
    assert result.exit_code == 1
    assert "'a' version 1: created_at differs" in result.stdout
    assert "conflicts; the target is not a copy of the source" in result.stderr


@pytest.mark.parametrize(
    ("source", "target", "option", "message"),
    [
        ("sqlite:///{dir}/source.db", "sqlite:///{dir}/source.db", "--to", "is the source itself"),
        ("sqlite:///{dir}/source.db", "mongodb://h/db", "--to", "unsupported store URL"),
        ("sqlite:///{dir}/typo.db", "sqlite:///{dir}/target.db", "--from", "does not exist"),
        ("sqlite:///{dir}/typo.db", "mongodb://h/db", "--from", "does not exist"),
    ],
)
def test_the_command_exits_2_on_bad_usage(
    tmp_path: Path, source: str, target: str, option: str, message: str
) -> None:
    open_store(f"sqlite:///{tmp_path / 'source.db'}").close()
    arguments = [
        "migrate",
        "--from",
        source.format(dir=tmp_path),
        "--to",
        target.format(dir=tmp_path),
    ]
    result = runner.invoke(app, arguments, env={"COLUMNS": "500"})  # no wrapped lines
    assert result.exit_code == 2, result.output
    assert f"Invalid value for {option}: " in result.stderr
    assert message in result.stderr
    assert not (tmp_path / "typo.db").exists()
    assert not (tmp_path / "target.db").exists()


def test_the_command_turns_a_store_error_into_one_line(tmp_path: Path) -> None:
    source_url = f"sqlite:///{tmp_path / 'source.db'}"
    open_store(source_url).close()
    (tmp_path / "directory.db").mkdir()  # SQLite cannot open a directory
    result = runner.invoke(
        app, ["migrate", "--from", source_url, "--to", f"sqlite:///{tmp_path / 'directory.db'}"]
    )
    assert result.exit_code == 1
    assert result.stderr.startswith("migrate: SQLite store at ")
    assert result.stderr.count("\n") == 1
    assert "Traceback" not in result.output


def test_the_command_reports_an_unreachable_postgresql_in_one_line(tmp_path: Path) -> None:
    source_url = f"sqlite:///{tmp_path / 'source.db'}"
    open_store(source_url).close()
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    target_url = f"postgresql://postgres:secret@127.0.0.1:{port}/nowhere"
    # A process of its own: pytest's log capture would hide the pool's log lines.
    completed = run_command("migrate", "--from", source_url, "--to", target_url)
    assert completed.returncode == 1
    assert completed.stderr.startswith(f"migrate: PostgreSQL at 127.0.0.1:{port}/nowhere ")
    assert completed.stderr.count("\n") == 1, completed.stderr  # no pool log lines either
    assert "secret" not in completed.stdout + completed.stderr


def run_command(*arguments: str) -> subprocess.CompletedProcess[str]:
    """``anomaly-api`` in a process of its own, warnings as errors."""
    return subprocess.run(
        [sys.executable, "-m", "anomaly_api", *arguments],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONWARNINGS": "error"},
        check=False,
    )


def test_the_installed_command_runs_end_to_end(sqlite_urls: tuple[str, str]) -> None:
    source_url, target_url = sqlite_urls
    source = open_store(source_url)
    try:
        fill(source)
    finally:
        source.close()
    completed = run_command("migrate", "--from", source_url, "--to", target_url)
    assert completed.returncode == 0, completed.stderr
    assert "versions: 6 (6 copied, 0 already present)" in completed.stdout
    assert completed.stderr == ""  # no progress bar when stderr is not a terminal


def test_progress_bars_draw_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    with progress_bars(enabled=True) as advance:
        assert advance is not None
        advance("copy", 3, None)
        advance("verify", 3, 6)
    assert "copy" in capsys.readouterr().err
    with progress_bars(enabled=False) as nothing:
        assert nothing is None
