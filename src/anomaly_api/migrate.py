"""Copy one model store into another without losing a version (``anomaly-api migrate``).

What "without losing a version" means here: every stored version arrives under its own
number, with its creation time, parameters, fitted state and training points unchanged,
and every series' version counter arrives too, including the counters of series whose
versions were all deleted, so the target never hands out a number the source already
used. Nothing is taken on trust: after copying, both stores are read again and compared
version by version (:func:`verify`).

Why the copy can be resumed
---------------------------
Versions are immutable and keyed by ``(series, version)``, so copying one is the same
whether it happens once or twice. Each batch is one
:meth:`~anomaly_api.storage.base.ModelStore.import_versions` transaction, which inserts
the versions the target lacks and leaves those it holds alone. A copy interrupted by a
crash, a lost connection or Ctrl-C has therefore committed some whole batches and
nothing of the others; running the same command again skips what arrived and copies
the rest. Counters are only ever raised (to the highest of the two stores), so
repeating that step is harmless too.

That reasoning holds only if a version already in the target *is* the source's
version. When the target holds a different model under the same number (a database
that was used on its own, or the wrong database), skipping it would silently keep the
wrong model, and overwriting it would destroy one. So before writing anything the
versions both stores hold are compared, and any difference is a *conflict*: the
migration stops with the list of them and the target untouched.

Live streams (each series' rolling context, last timestamp and kept points, see
``docs/streams.md``) are copied after the versions, a series at a time, under a lease
of the target taken for the copy: a stream the target holds already is left alone when
it is the source's (a repeated run) and reported as a problem when it is not, since
overwriting it could throw away what a live server observed.

API keys (their digests, scopes, limits and revocations) are copied too; a key name the
target holds with another digest is a conflict like a version. A key revoked in the
source is revoked in the target.

The source should not be written to meanwhile (stop the service or point it at the
target first): a version fitted after the copy read its series would be missing, and
verification would say so.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, fields
from typing import Any, Literal, Protocol

import numpy as np

from anomaly_api.storage import POSTGRESQL_PREFIXES, SQLITE_PREFIX, open_store
from anomaly_api.storage.base import (
    ExportedStream,
    ModelRecord,
    ModelStore,
    StoredVersion,
    StreamUpdate,
)
from anomaly_api.storage.chunks import pack_point

DEFAULT_BATCH_SIZE = 100
"""Versions per import transaction. Each holds up to ``training_points_cap`` training
points (100 000 by default, 1.6 MB), and verification keeps a batch of each store in
memory, so the default stays modest; raise it for stores of short series."""

MAX_EXAMPLES = 20
"""How many conflicts or verification failures a report lists (all are counted)."""

Role = Literal["source", "target"]


class Progress(Protocol):
    """Told as versions are done, so a caller can draw a progress bar."""

    def __call__(self, phase: str, versions: int, total: int | None) -> None:
        """``versions`` more versions of ``phase`` (``"copy"``, ``"verify"``) are done,
        out of ``total`` when it is known."""


@dataclass(frozen=True, slots=True)
class Discrepancy:
    """One thing that differs between the stores: a version (or a series' counter)."""

    series_id: str
    version: int | None
    detail: str

    def __str__(self) -> str:
        where = f"{self.series_id!r}" + ("" if self.version is None else f" version {self.version}")
        return f"{where}: {self.detail}"


@dataclass(slots=True)
class Findings:
    """Discrepancies counted in full but kept only up to :data:`MAX_EXAMPLES`, so a
    badly broken target cannot exhaust memory."""

    examples: list[Discrepancy] = field(default_factory=list)
    count: int = 0

    def add(self, series_id: str, version: int | None, detail: str) -> None:
        self.count += 1
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(Discrepancy(series_id, version, detail))


@dataclass(frozen=True, slots=True)
class MigrationReport:
    """What a migration did and whether the target was verified to hold the source."""

    series: int
    """Series with at least one version in the source."""
    versions: int
    """Versions the source holds (copied + already present)."""
    copied: int
    """Versions inserted into the target by this run."""
    already_present: int
    """Versions the target held already (identical: a resumed or repeated run)."""
    counters: int
    """Series counters in the source, including those of fully deleted series."""
    counters_raised: int
    """Counters that were below the source's in the target before this run."""
    conflicts: tuple[Discrepancy, ...] = ()
    """Versions the target held with other content (the first :data:`MAX_EXAMPLES`);
    when there are any, nothing was written."""
    conflict_count: int = 0
    problems: tuple[Discrepancy, ...] = ()
    """What verification found missing or different after the copy (the first
    :data:`MAX_EXAMPLES`)."""
    problem_count: int = 0
    streams: int = 0
    """Series with a live stream in the source."""
    streams_copied: int = 0
    """Streams written into the target by this run (the others it held already)."""
    keys: int = 0
    """API keys in the source (revoked ones included)."""
    keys_copied: int = 0
    """Keys inserted into the target, or revoked there, by this run."""

    @property
    def ok(self) -> bool:
        """Whether the target now holds every source version and counter, verified."""
        return self.conflict_count == 0 and self.problem_count == 0


def migrate(
    source: ModelStore,
    target: ModelStore,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Progress | None = None,
) -> MigrationReport:
    """Copy every version and counter of ``source`` into ``target``, then verify.

    Nothing is written when the target holds conflicting versions (see the module
    docstring); the report lists them instead. Store errors
    (:class:`~anomaly_api.errors.StoreUnavailable`) propagate: the batches committed
    until then stay, and running again resumes.
    """
    if source is target:
        raise ValueError("the source and the target are the same store")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, not {batch_size}")
    source_counters = source.series_counters()
    target_counters = target.series_counters()
    counters_raised = sum(
        1 for series_id, last in source_counters.items() if target_counters.get(series_id, 0) < last
    )

    conflicts = find_conflicts(source, target, source_counters.keys() & target_counters.keys())
    source_keys = source.export_keys()
    held_keys = {record.name: digest for record, digest in target.export_keys()}
    for record, digest in source_keys:
        if held_keys.get(record.name, digest) != digest:
            conflicts.add(f"API key {record.name}", None, "the target holds another key so named")
    if conflicts.count:
        return MigrationReport(
            series=source.count_series(),
            versions=0,
            copied=0,
            already_present=0,
            counters=len(source_counters),
            counters_raised=0,
            conflicts=tuple(conflicts.examples),
            conflict_count=conflicts.count,
        )

    series: set[str] = set()
    versions = copied = 0
    for batch in source.export_versions(batch_size):
        batch_series = {stored.record.series_id for stored in batch}
        # Each batch carries its series' counters, so a copy cut short after this
        # commit already numbers new fits of these series correctly.
        floors = {key: source_counters[key] for key in batch_series if key in source_counters}
        copied += target.import_versions(batch, floors)
        series |= batch_series
        versions += len(batch)
        if progress is not None:
            progress("copy", len(batch), None)
    if source_counters:
        target.import_versions([], source_counters)

    # Keys before streams: a server started on the target as soon as the versions are
    # there must not refuse every client for want of keys.
    keys_copied = target.import_keys(source_keys)
    streams, streams_copied, refused = copy_streams(source, target)
    problems = verify(source, target, batch_size=batch_size, progress=progress, total=versions)
    for series_id, detail in refused:
        problems.add(series_id, None, detail)
    return MigrationReport(
        series=len(series),
        versions=versions,
        copied=copied,
        already_present=versions - copied,
        counters=len(source_counters),
        counters_raised=counters_raised,
        problems=tuple(problems.examples),
        problem_count=problems.count,
        streams=streams,
        streams_copied=streams_copied,
        keys=len(source_keys),
        keys_copied=keys_copied,
    )


MIGRATE_OWNER = f"anomaly-api-migrate-{os.getpid()}"
"""The stream holder a migration writes the target's streams as."""
MIGRATE_LEASE_S = 300.0


def copy_streams(source: ModelStore, target: ModelStore) -> tuple[int, int, list[tuple[str, str]]]:
    """Copy every live stream the target lacks; returns how many the source has, how many
    were written, and the series left alone with why (held by a live server, or holding
    another stream than the source's)."""
    ids = source.stream_ids()
    copied = 0
    refused: list[tuple[str, str]] = []
    for series_id in ids:
        stream = source.export_stream(series_id)
        if stream is None:  # deleted meanwhile
            continue
        present = target.export_stream(series_id)
        if present is not None and present.observed > 0:
            if _stream_differences(stream, present):
                refused.append(
                    (series_id, "the target has another live stream for it; not overwritten")
                )
            continue
        state = target.acquire_stream(series_id, MIGRATE_OWNER, MIGRATE_LEASE_S)
        if state is None:
            refused.append((series_id, "a live server holds its stream in the target"))
            continue
        update = StreamUpdate(
            series_id=series_id,
            token=state.token,
            points=[pack_point(point) for point in stream.points],
            last_timestamp=stream.last_timestamp,
            observed=stream.observed,
            context_version=stream.context_version,
            context=stream.context,
        )
        rejected = target.save_streams(
            MIGRATE_OWNER, MIGRATE_LEASE_S, [update], max(len(stream.points), 1)
        )
        target.release_streams(MIGRATE_OWNER, {series_id: state.token})
        if rejected:
            refused.append((series_id, "the target refused its stream (deleted or taken)"))
            continue
        copied += 1
    return len(ids), copied, refused


def verify_streams(source: ModelStore, target: ModelStore, found: Findings) -> None:
    """Add to ``found`` every source stream the target lacks or holds differently."""
    for series_id in source.stream_ids():
        expected = source.export_stream(series_id)
        if expected is None:
            continue
        actual = target.export_stream(series_id)
        if actual is None:
            found.add(series_id, None, "stream missing from the target")
            continue
        differing = _stream_differences(expected, actual)
        if differing:
            found.add(series_id, None, f"stream differs: {_differ(differing)}")


def _stream_differences(expected: ExportedStream, actual: ExportedStream) -> list[str]:
    """Names of the stream fields that differ, numbers bit for bit, the context by its
    JSON content."""
    differing = [
        name
        for name in ("last_timestamp", "observed", "context_version")
        if getattr(expected, name) != getattr(actual, name)
    ]
    if _context(expected.context) != _context(actual.context):
        differing.append("context")
    if _exact([list(point) for point in expected.points]) != _exact(
        [list(point) for point in actual.points]
    ):
        differing.append("points")
    return differing


def _context(text: str | None) -> object:
    return None if text is None else _exact(json.loads(text))


def find_conflicts(source: ModelStore, target: ModelStore, series_ids: Iterable[str]) -> Findings:
    """Versions of ``series_ids`` that both stores hold with different records.

    Only records are compared (one small query per series and store, no training
    points), which is enough to tell another store's model from a copy: a copy repeats
    the creation time to the last bit. :func:`verify` compares the training points too.
    """
    found = Findings()
    for series_id in sorted(series_ids):
        held = {record.version: record for record in target.list_versions(series_id)}
        if not held:
            continue
        for record in source.list_versions(series_id):
            other = held.get(record.version)
            if other is None:
                continue
            differing = record_differences(record, other)
            if differing:
                found.add(series_id, record.version, _differ(differing))
    return found


def verify(
    source: ModelStore,
    target: ModelStore,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Progress | None = None,
    total: int | None = None,
) -> Findings:
    """Every source version that the target lacks or holds differently, and every
    series whose counter in the target is below the source's.

    Both stores export in ``(series, version)`` order, so they are read side by side
    in batches, each once. A version not met at its place in the target's order is
    looked up directly before being called missing, so a difference in how the two
    databases sort ids could only cost time, never give a wrong answer.
    """
    found = Findings()
    held = itertools.chain.from_iterable(target.export_versions(batch_size))
    candidate = next(held, None)
    for batch in source.export_versions(batch_size):
        for expected in batch:
            key = _key(expected.record)
            while candidate is not None and _key(candidate.record) < key:
                candidate = next(held, None)
            if candidate is not None and _key(candidate.record) == key:
                actual: StoredVersion | None = candidate
            else:
                actual = _fetch(target, *key)
            if actual is None:
                found.add(*key, "missing from the target")
                continue
            differing = record_differences(expected.record, actual.record)
            differing += training_differences(expected, actual)
            if differing:
                found.add(*key, _differ(differing))
        if progress is not None:
            progress("verify", len(batch), total)
    verify_streams(source, target, found)
    copied_counters = target.series_counters()
    for series_id, last in sorted(source.series_counters().items()):
        reached = copied_counters.get(series_id)
        if reached is None or reached < last:
            found.add(series_id, None, f"counter is {reached} in the target, {last} in the source")
    return found


def record_differences(expected: ModelRecord, actual: ModelRecord) -> list[str]:
    """Names of the record fields that differ, compared exactly: JSON fields by their
    canonical text (so a NaN equals itself), numbers bit for bit."""
    return [
        item.name
        for item in fields(ModelRecord)
        if _exact(getattr(expected, item.name)) != _exact(getattr(actual, item.name))
    ]


def training_differences(expected: StoredVersion, actual: StoredVersion) -> list[str]:
    """``training timestamps`` and/or ``training values`` when they differ in any bit."""
    differing = []
    if _bits(expected.training.timestamps, "<i8") != _bits(actual.training.timestamps, "<i8"):
        differing.append("training timestamps")
    if _bits(expected.training.values, "<f8") != _bits(actual.training.values, "<f8"):
        differing.append("training values")
    return differing


def _exact(value: object) -> object:
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    if isinstance(value, float):
        return value.hex()
    return value


def _bits(array: Any, dtype: str) -> bytes:
    return np.ascontiguousarray(array, dtype=dtype).tobytes()


def _differ(names: list[str]) -> str:
    return f"{', '.join(names)} {'differs' if len(names) == 1 else 'differ'}"


def _key(record: ModelRecord) -> tuple[str, int]:
    return record.series_id, record.version


def _fetch(store: ModelStore, series_id: str, version: int) -> StoredVersion | None:
    record = store.get_model(series_id, version)
    training = store.training_data(series_id, version) if record is not None else None
    if record is None or training is None:
        return None
    return StoredVersion(record, training)


# -- store URLs -----------------------------------------------------------------------------


class InvalidUrl(ValueError):
    """A ``--from`` or ``--to`` URL that cannot be used; ``role`` says which."""

    def __init__(self, role: Role, message: str) -> None:
        super().__init__(message)
        self.role = role
        self.message = message


def check_urls(source_url: str, target_url: str) -> None:
    """Raise :class:`InvalidUrl` unless both URLs name a usable store, the source
    exists, and they are not the same store.

    Checked before anything is opened: opening a SQLite URL creates the file, so a
    mistyped source path would otherwise "migrate" an empty store, successfully.
    """
    source_identity = _identity("source", source_url)
    if source_identity[0] == "sqlite" and not os.path.isfile(source_identity[1]):
        raise InvalidUrl("source", f"{source_identity[1]} does not exist (or is not a file)")
    target_identity = _identity("target", target_url)
    if source_identity == target_identity:
        raise InvalidUrl(
            "target", f"{describe_url(target_url)} is the source itself; name another store"
        )


def _identity(role: Role, url: str) -> tuple[str, ...]:
    """What tells two URLs of one store apart from two stores: the SQLite file's real
    path, or PostgreSQL's server, database and options (a ``search_path`` among them
    makes another store in the same database)."""
    if url.startswith(SQLITE_PREFIX):
        path = url[len(SQLITE_PREFIX) :]
        if not path or path == ":memory:":
            raise InvalidUrl(role, f"{url!r} must name a SQLite file")
        return ("sqlite", os.path.realpath(path))
    if url.startswith(POSTGRESQL_PREFIXES):
        import psycopg
        from psycopg import conninfo

        try:
            parts = conninfo.conninfo_to_dict("postgresql://" + url.split("://", 1)[1])
        except psycopg.Error as exc:
            reason = str(exc).strip().splitlines()[0]
            raise InvalidUrl(role, f"malformed PostgreSQL URL: {reason}") from None
        user = str(parts.get("user") or "")
        return (
            "postgresql",
            str(parts.get("host") or "localhost"),
            str(parts.get("port") or "5432"),
            str(parts.get("dbname") or user),
            str(parts.get("options") or ""),
        )
    raise InvalidUrl(
        role, f"unsupported store URL {url!r}: expected sqlite:///PATH or postgresql://..."
    )


def describe_url(url: str) -> str:
    """A store URL for messages, without a password."""
    if url.startswith(POSTGRESQL_PREFIXES):
        from anomaly_api.storage.postgresql import describe_url as describe_postgresql

        return "postgresql " + describe_postgresql("postgresql://" + url.split("://", 1)[1])
    if url.startswith(SQLITE_PREFIX):
        return "sqlite " + url[len(SQLITE_PREFIX) :]
    return url


def migrate_urls(
    source_url: str,
    target_url: str,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Progress | None = None,
) -> MigrationReport:
    """:func:`migrate` between the stores two URLs name, opened for the copy only.

    Raises :class:`InvalidUrl` for a URL that cannot be used and
    :class:`~anomaly_api.errors.StoreUnavailable` when a store does not answer.
    """
    check_urls(source_url, target_url)
    with contextlib.ExitStack() as stores:
        source = open_store(source_url)
        stores.callback(source.close)
        target = open_store(target_url)
        stores.callback(target.close)
        return migrate(source, target, batch_size=batch_size, progress=progress)


# -- presentation ---------------------------------------------------------------------------


@contextlib.contextmanager
def progress_bars(enabled: bool) -> Iterator[Progress | None]:
    """A tqdm bar on stderr for the phase under way (each replaces the one before), or
    None when ``enabled`` is false."""
    if not enabled:
        yield None
        return
    from tqdm import tqdm

    bars: dict[str, tqdm[Any]] = {}

    def advance(phase: str, versions: int, total: int | None) -> None:
        if phase not in bars:
            for finished in bars.values():
                finished.close()
            bars[phase] = tqdm(
                total=total,
                desc=phase,
                unit=" versions",
                file=sys.stderr,
                mininterval=0.2,
                leave=False,
            )
        bars[phase].update(versions)

    try:
        yield advance
    finally:
        for bar in bars.values():
            bar.close()


def format_report(report: MigrationReport) -> str:
    """A few lines for people: the numbers, then what went wrong, if anything."""
    if report.conflict_count:
        lines = [
            f"conflict: the target holds {report.conflict_count} version(s) or API key(s) "
            "with other content under the source's numbers or names; nothing was written",
            *(f"  {item}" for item in report.conflicts),
        ]
        if report.conflict_count > len(report.conflicts):
            lines.append(f"  ... and {report.conflict_count - len(report.conflicts)} more")
        return "\n".join(lines)
    lines = [
        f"series: {report.series}, versions: {report.versions} "
        f"({report.copied} copied, {report.already_present} already present)",
        f"counters: {report.counters} ({report.counters_raised} raised)",
        f"live streams: {report.streams} ({report.streams_copied} copied, "
        f"{report.streams - report.streams_copied} already present or left alone)",
        f"API keys: {report.keys} ({report.keys_copied} copied or revoked in the target)",
    ]
    if report.problem_count:
        lines.append(f"verification FAILED: {report.problem_count} problem(s)")
        lines += [f"  {item}" for item in report.problems]
        if report.problem_count > len(report.problems):
            lines.append(f"  ... and {report.problem_count - len(report.problems)} more")
    else:
        lines.append(
            "verified: every version and live stream is identical in the target, "
            "every counter at least the source's"
        )
    return "\n".join(lines)
