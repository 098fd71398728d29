"""``ModelRegistry``: fit → version → persist; resolve → cache → score.

It owns version numbering (delegated to the store's atomic counter), resolution of
"latest" through the :class:`~anomaly_api.registry.cache.ModelCache` (whose docstring
states the freshness guarantee) and the latency windows.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from anomaly_api import metrics
from anomaly_api.detectors import Detector, Scores, Series, detector_class
from anomaly_api.errors import SeriesNotFound, StoreUnavailable, VersionNotFound
from anomaly_api.registry.cache import LoadedModel, ModelCache
from anomaly_api.registry.health import health
from anomaly_api.registry.scoring import Prediction, score_point, unsorted
from anomaly_api.series_ids import check_series_id
from anomaly_api.storage.base import ModelRecord, ModelStore, NewModel, SeriesSummary
from anomaly_api.telemetry import WorkerStats


class ModelRegistry:
    """Fit, version, cache and score models for many series over one :class:`ModelStore`."""

    def __init__(
        self,
        store: ModelStore,
        *,
        default_detector: str = "zscore",
        model_cache_size: int = 10_000,
        training_points_cap: int = 100_000,
        latency_window: int = 1000,
        run_dir: str | os.PathLike[str] | None = None,
        freeze_models: bool = False,
    ) -> None:
        detector_class(default_detector)  # fail at start-up, not on the first fit
        self.store = store
        self.default_detector = default_detector
        self.training_points_cap = training_points_cap
        # With ``run_dir`` (the server's shared directory) health describes every worker.
        self.stats = WorkerStats(latency_window, run_dir)
        self.inference_latency = self.stats.inference
        self.training_latency = self.stats.training
        self.started_at = time.time()
        self.cache = ModelCache(
            store, self.stats, size=model_cache_size, freeze_models=freeze_models
        )

    # -- fitting -------------------------------------------------------------------------

    def fit(
        self,
        series_id: str,
        timestamps: Sequence[int] | npt.ArrayLike,
        values: Sequence[float] | npt.ArrayLike,
        detector: str | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> ModelRecord:
        """Validate, fit and store the next version of ``series_id``."""
        started = time.perf_counter()
        check_series_id(series_id)
        model = detector_class(detector or self.default_detector)(params)
        series = Series.from_arrays(timestamps, values)
        model.fit(series)
        with self.cache.lock:
            deletions_seen = self.cache.deletions_seen
        record = self.store.create_version(
            NewModel(
                series_id=series_id,
                detector=model.name,
                params=model.params,
                state=model.state(),
                points_used=len(series),
                first_timestamp=int(series.timestamps[0]),
                last_timestamp=int(series.timestamps[-1]),
                training=series.tail(self.training_points_cap),
            )
        )
        self.cache.add_fitted(LoadedModel(record, model), deletions_seen)
        metrics.record_fit(model.name)
        self.training_latency.record(time.perf_counter() - started)
        return record

    # -- scoring -------------------------------------------------------------------------

    def predict(
        self, series_id: str, value: float, timestamp: float, version: int | None = None
    ) -> Prediction:
        """Score one point against ``version`` (latest when None)."""
        started = time.perf_counter()
        prediction = score_point(self.model(series_id, version), value, timestamp)
        self.inference_latency.record(time.perf_counter() - started)
        return prediction

    def predict_cached(
        self, series_id: str, value: float, timestamp: float, version: int | None = None
    ) -> Prediction | None:
        """:meth:`predict` if the model is in memory and known current, else None.

        It reads nothing from the store but the change marker, so an event loop can
        call it directly and hand only the misses to a thread.
        """
        started = time.perf_counter()
        loaded = self.cache.cached(series_id, version)
        # Only valid ids are ever cached, so a hit needs no id check; a miss goes to
        # predict(), which checks the id and counts the miss.
        if loaded is None:
            return None
        prediction = score_point(loaded, value, timestamp, cache_hit=True)
        self.inference_latency.record(time.perf_counter() - started)
        return prediction

    def score_batch(
        self,
        series_id: str,
        timestamps: npt.ArrayLike,
        values: npt.ArrayLike,
        version: int | None = None,
    ) -> tuple[LoadedModel, Scores]:
        """Score many points at once, as the continuation of the model's training data."""
        loaded = self.model(series_id, version)
        scores = loaded.detector.score(timestamps, values)
        flagged = int(np.count_nonzero(scores.anomaly))
        metrics.record_scores(loaded.record.detector, int(scores.anomaly.size), flagged)
        return loaded, scores

    def model(self, series_id: str, version: int | None = None) -> LoadedModel:
        """The fitted model for ``version`` (latest when None), from cache or store."""
        check_series_id(series_id)
        return self.cache.model(series_id, version)

    # -- series management --------------------------------------------------------------

    def versions(self, series_id: str) -> list[ModelRecord]:
        """Every version of a series, oldest first; :class:`SeriesNotFound` when none."""
        check_series_id(series_id)
        records = self.store.list_versions(series_id)
        if not records:
            raise SeriesNotFound(series_id)
        return records

    def list_series(self, limit: int, after: str | None = None) -> list[SeriesSummary]:
        """One page of series, ordered by id."""
        return self.store.list_series(limit, after)

    def count_series(self) -> int:
        """How many series have at least one version, in the store."""
        return self.store.count_series()

    def delete_series(self, series_id: str) -> int:
        """Delete every version; return how many. Version numbers are not reused."""
        check_series_id(series_id)
        deleted = self.store.delete_series(series_id)
        if not deleted:
            raise SeriesNotFound(series_id)
        self._forget_deleted()
        return deleted

    def delete_version(self, series_id: str, version: int) -> None:
        """Delete one version; the series' other versions stay."""
        check_series_id(series_id)
        if not self.store.delete_version(series_id, version):
            latest = self.store.latest_version(series_id)
            if latest is None:
                raise SeriesNotFound(series_id)
            raise VersionNotFound(series_id, version, latest)
        self._forget_deleted()

    def _forget_deleted(self) -> None:
        """Drop what a committed delete removed. If the store cannot be read just now, the
        delete stands all the same (it is committed: no 503 for it); the marker it moved
        makes the next request sync, and no held model answers meanwhile (see
        :meth:`ModelCache.held`)."""
        with contextlib.suppress(StoreUnavailable):
            self.cache.sync()

    def training_data(
        self, series_id: str, version: int | None = None
    ) -> tuple[LoadedModel, Series]:
        """A version's model and the training points stored with it."""
        loaded = self.model(series_id, version)
        series = self.store.training_data(series_id, loaded.record.version)
        if series is None:  # deleted between the two reads
            raise VersionNotFound(series_id, loaded.record.version, None)
        return loaded, series

    # -- health --------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """See :func:`anomaly_api.registry.health.health`."""
        return health(self.store, self.stats, self.started_at)

    def close(self) -> None:
        """Release the store's connections and withdraw from the server's health figures."""
        self.stats.close()
        self.store.close()

    # -- one-off detection ---------------------------------------------------------------

    def detect(
        self,
        timestamps: npt.ArrayLike,
        values: npt.ArrayLike,
        detector: str | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> tuple[Detector, Scores]:
        """Fit ``detector`` on the points and score every one of them; store nothing.

        The model sees the points in time order (as a fit would); the scores come back
        in the order the points were given.
        """
        model = detector_class(detector or self.default_detector)(params)
        series = Series.from_arrays(timestamps, values)
        model.fit(series)
        scores = model.fitted_scores(series)
        stamps = np.asarray(timestamps)
        if stamps.size > 1 and not bool(np.all(stamps[1:] >= stamps[:-1])):
            scores = unsorted(scores, np.argsort(stamps, kind="stable"))
        metrics.record_scores(model.name, len(scores), int(np.count_nonzero(scores.anomaly)))
        return model, scores
