"""Rows of the models table and the records they stand for, the same on every backend.

Both stores keep a model version in the same fifteen columns (:data:`RECORD_COLUMNS`,
then the two training blobs) and count versions per series the same way; only the SQL
dialect around them differs. These functions are the one translation between rows and
:mod:`anomaly_api.storage.base` records. New rows are written in the order of
:data:`INSERT_COLUMNS`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from anomaly_api.auth import KeyRecord
from anomaly_api.detectors.series import Series
from anomaly_api.storage.base import ModelRecord, NewModel, SeriesSummary, StoredVersion
from anomaly_api.storage.codec import (
    decode_timestamps,
    decode_values,
    encode_timestamps,
    encode_values,
)

RECORD_COLUMNS = (
    "series_id, version, detector, params, state, points_used, points_stored, "
    "first_timestamp, last_timestamp, created_at, fit_trigger, retrain, created_by"
)
"""What :func:`record_from_row` reads, in order; ``training_timestamps, training_values``
follow for :func:`stored_from_row`."""
INSERT_COLUMNS = RECORD_COLUMNS + ", training_timestamps, training_values"
"""The columns of :func:`copied_row` (and of a series id, a version and :func:`new_row`)."""


def record_from_row(row: Sequence[Any]) -> ModelRecord:
    """The record of a row selected as :data:`RECORD_COLUMNS`."""
    return ModelRecord(
        series_id=row[0],
        version=int(row[1]),
        detector=row[2],
        params=json.loads(row[3]),
        state=json.loads(row[4]),
        points_used=int(row[5]),
        points_stored=int(row[6]),
        first_timestamp=int(row[7]),
        last_timestamp=int(row[8]),
        created_at=float(row[9]),
        trigger=row[10],
        retrain=None if row[11] is None else json.loads(row[11]),
        created_by=row[12],
    )


def stored_from_row(row: Sequence[Any]) -> StoredVersion:
    """A row of :data:`RECORD_COLUMNS` and the two training blobs."""
    training = Series(decode_timestamps(bytes(row[13])), decode_values(bytes(row[14])))
    return StoredVersion(record_from_row(row), training)


def summary_from_row(row: Sequence[Any]) -> SeriesSummary:
    """A listing row: series id, latest version, version count, points used, created at."""
    return SeriesSummary(
        series_id=row[0],
        latest_version=int(row[1]),
        version_count=int(row[2]),
        points_used=int(row[3]),
        last_fit_at=float(row[4]),
    )


def training_blobs(training: Series) -> tuple[bytes, bytes]:
    """The two training columns of a version."""
    return encode_timestamps(training.timestamps), encode_values(training.values)


def new_row(
    model: NewModel, created_at: float, blobs: tuple[bytes, bytes] | None = None
) -> tuple[Any, ...]:
    """The values of a new version's row after its series id and version number
    (``blobs`` from :func:`training_blobs`, when encoded beforehand)."""
    return (
        model.detector,
        json.dumps(model.params),
        json.dumps(model.state),
        model.points_used,
        len(model.training),
        model.first_timestamp,
        model.last_timestamp,
        created_at,
        model.trigger,
        _json_or_none(model.retrain),
        model.created_by,
        *(blobs or training_blobs(model.training)),
    )


def _json_or_none(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


def created_record(model: NewModel, version: int, created_at: float) -> ModelRecord:
    """The record a store answers for ``model`` once it is stored as ``version``."""
    return ModelRecord(
        series_id=model.series_id,
        version=version,
        detector=model.detector,
        params=model.params,
        state=model.state,
        points_used=model.points_used,
        points_stored=len(model.training),
        first_timestamp=model.first_timestamp,
        last_timestamp=model.last_timestamp,
        created_at=created_at,
        trigger=model.trigger,
        retrain=model.retrain,
        created_by=model.created_by,
    )


def copied_row(stored: StoredVersion) -> tuple[Any, ...]:
    """All values of a copied version's row (:data:`INSERT_COLUMNS`), under its own
    number and time."""
    record = stored.record
    return (
        record.series_id,
        record.version,
        record.detector,
        json.dumps(record.params),
        json.dumps(record.state),
        record.points_used,
        len(stored.training),
        record.first_timestamp,
        record.last_timestamp,
        record.created_at,
        record.trigger,
        _json_or_none(record.retrain),
        record.created_by,
        *training_blobs(stored.training),
    )


def counter_floors(
    versions: Sequence[StoredVersion], counters: Mapping[str, int]
) -> dict[str, int]:
    """What each series' version counter must at least be after importing ``versions``."""
    floors = dict(counters)
    for stored in versions:
        key = stored.record.series_id
        floors[key] = max(floors.get(key, 0), stored.record.version)
    return floors


def key_row(record: KeyRecord) -> tuple[Any, ...]:
    """A copied key's columns after its name and digest: scopes, created_at, revoked_at,
    max_series, max_points, retention_days."""
    limits = record.limits
    return (
        ",".join(record.scopes),
        record.created_at,
        record.revoked_at,
        limits.max_series,
        limits.max_points,
        limits.retention_days,
    )
