"""The ``ModelStore`` protocol: what the registry needs from persistent storage.

A store keeps immutable model versions. Its one piece of real logic is version
numbering, which must be atomic in the database itself (a transaction that bumps a
per-series counter), because several threads, worker processes or replicas may fit
the same series at once. Numbers are never reused: deleting versions or a whole
series leaves the counter where it was, so a version number, once answered, always
means the same model.

Implementations: :class:`~anomaly_api.storage.sqlite.SQLiteModelStore` (one machine) and
:class:`~anomaly_api.storage.postgresql.PostgreSQLModelStore` (replicas sharing one
database); both pass the same test suite (``tests/storage/test_store.py``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from anomaly_api.detectors.series import Series

JsonDict = dict[str, Any]


@dataclass(frozen=True, slots=True)
class NewModel:
    """A fitted model about to be stored; the store assigns version and creation time."""

    series_id: str
    detector: str
    params: JsonDict
    state: JsonDict
    points_used: int
    first_timestamp: int
    last_timestamp: int
    training: Series
    """The training points kept for plots and re-fits (already capped by the registry)."""


@dataclass(frozen=True, slots=True)
class ModelRecord:
    """One stored, immutable model version (without its training points)."""

    series_id: str
    version: int
    detector: str
    params: JsonDict
    state: JsonDict
    points_used: int
    points_stored: int
    first_timestamp: int
    last_timestamp: int
    created_at: float
    """Unix seconds (UTC) when the version was committed."""


@dataclass(frozen=True, slots=True)
class StoredVersion:
    """A stored version with its training points: what copying between stores moves."""

    record: ModelRecord
    training: Series


@dataclass(frozen=True, slots=True)
class Changes:
    """What other commits did since a position of the store's change log: the series
    that got new versions, and those that lost some (a deleted version or series)."""

    fitted: frozenset[str]
    deleted: frozenset[str]


@dataclass(frozen=True, slots=True)
class SeriesSummary:
    """A series in listings: its latest version and how many versions it has."""

    series_id: str
    latest_version: int
    version_count: int
    points_used: int
    last_fit_at: float


class ModelStore(Protocol):
    """Persistent, versioned storage of fitted models.

    Every method may raise :class:`~anomaly_api.errors.StoreUnavailable` when the
    database does not answer; none returns a half-written version.
    """

    backend: str
    """A short name for health reports: ``"sqlite"``, ``"postgresql"``."""

    def create_version(self, model: NewModel) -> ModelRecord:
        """Store ``model`` as the next version of its series, atomically, and durably."""
        ...

    def get_model(self, series_id: str, version: int | None = None) -> ModelRecord | None:
        """The given version, or the latest when ``version`` is None; None if absent."""
        ...

    def latest_version(self, series_id: str) -> int | None:
        """The highest stored version of the series, None when it has none."""
        ...

    def list_versions(self, series_id: str) -> list[ModelRecord]:
        """Every stored version of the series, oldest first."""
        ...

    def list_series(self, limit: int, after: str | None = None) -> list[SeriesSummary]:
        """Series with at least one version, ordered by id, starting after ``after``."""
        ...

    def count_series(self) -> int:
        """How many series have at least one stored version."""
        ...

    def training_data(self, series_id: str, version: int) -> Series | None:
        """The training points stored with a version; None when the version is absent."""
        ...

    def delete_series(self, series_id: str) -> int:
        """Delete every version of the series; return how many were deleted."""
        ...

    def delete_version(self, series_id: str, version: int) -> bool:
        """Delete one version; return whether it existed."""
        ...

    def change_marker(self) -> int:
        """A number that changes whenever any process commits a change; cheap to call."""
        ...

    def change_position(self) -> int:
        """Where the store's change log stands: pass it to :meth:`changes_since` later."""
        ...

    def changes_since(self, position: int) -> tuple[int, Changes] | None:
        """The log's new position and what fits and deletes committed after
        ``position``; None when the store cannot tell (the log no longer reaches back so
        far, a copy between stores happened, or a reconnection may have missed some).
        Lets caches forget one series instead of every series."""
        ...

    def deletion_epoch(self) -> int:
        """A counter bumped by every delete, so caches know when to drop versions."""
        ...

    def export_versions(self, batch_size: int = 500) -> Iterator[list[StoredVersion]]:
        """Every stored version with its training points, in (series, version) order, a
        batch at a time (for ``anomaly-api migrate``)."""
        ...

    def series_counters(self) -> dict[str, int]:
        """Each series' version counter, including series whose versions were all deleted
        (their numbers must not be reused after a copy either)."""
        ...

    def import_versions(
        self, versions: Sequence[StoredVersion], counters: Mapping[str, int]
    ) -> int:
        """Store copied versions under their own numbers and creation times, in one
        transaction, and raise each series' counter to at least ``counters`` and its
        highest copied version. Versions already present are left alone, so an interrupted
        copy can be run again. Returns how many versions were inserted."""
        ...

    def ping(self) -> None:
        """Raise :class:`~anomaly_api.errors.StoreUnavailable` unless the store answers."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...
