"""The model registry: the one layer between the HTTP routes and the store.

It owns version numbering (delegated to the store's atomic counter), resolution of
"latest", the in-memory model cache and the latency windows. It raises domain errors
from :mod:`anomaly_api.errors` and knows nothing about HTTP.

Freshness of "latest"
---------------------
Fitted versions are immutable, so a cached ``(series, version)`` model never goes
stale; only the answer to "which version is latest?" can. Before resolving latest the
registry reads the store's :meth:`~anomaly_api.storage.base.ModelStore.change_marker`
(a memory read on both backends: SQLite's commit announcement file, PostgreSQL's count
of NOTIFY messages). When it moved, some process committed something, so the remembered
latest versions are dropped and re-read on demand. Hence the guarantee: **a predict
that starts after a fit was acknowledged answers with that version or a newer one**,
for every process sharing a SQLite file, and on PostgreSQL for the process that made
the fit; other PostgreSQL replicas follow once the notification arrives (milliseconds;
the README gives the measured bound). Deletes
also bump the store's deletion epoch, which empties the model cache so a deleted
version is never served.

While the store is unreachable (PostgreSQL down), models held in this process's cache
keep answering: availability of predictions is preferred to freshness during an outage,
and every answer names the version it used. That includes a fit announced just before
the outage that could not be read yet (except for "latest" of that series), but not a
delete or any change the store cannot describe: then no held model answers, since any
of them might be the deleted one. Anything that needs the store is a
:class:`~anomaly_api.errors.StoreUnavailable` (503). When the store is back, the
marker moves and the caches resynchronise.
"""

from __future__ import annotations

import contextlib
import gc
import math
import os
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from cachetools import LRUCache

from anomaly_api import __version__, metrics
from anomaly_api.detectors import Detector, Scores, Series, detector_class
from anomaly_api.detectors.base import band_point
from anomaly_api.errors import SeriesNotFound, StoreUnavailable, VersionNotFound
from anomaly_api.series_ids import check_series_id
from anomaly_api.storage.base import ModelRecord, ModelStore, NewModel, SeriesSummary
from anomaly_api.telemetry import WorkerStats

FREEZE_EVERY = 1000
"""With ``freeze_models``, freeze after this many models were cached (or a tenth of the
cache, if more); see :func:`_collect_and_freeze`."""


class LoadedModel:
    """A stored version together with its ready-to-score detector.

    What a single predict needs is also copied here, into one object made at once: with
    10^5 cached models, a predict of a model no recent request touched paid a cache miss
    for each object it read (the record, its parameter dict, the detector, its attribute
    values), about a fifth of the predict's CPU time.
    """

    __slots__ = (
        "band",
        "detector",
        "detector_name",
        "direction",
        "record",
        "series_id",
        "threshold",
        "version",
    )

    def __init__(self, record: ModelRecord, detector: Detector) -> None:
        self.record = record
        self.detector = detector
        self.series_id = record.series_id
        self.version = record.version
        self.detector_name = record.detector
        self.threshold: float | None = record.params.get("threshold")
        self.direction: str = detector.params.get("direction", "both")
        self.band = detector.fixed_band()


@dataclass(slots=True)
class Prediction:
    """The answer for one point, with everything a user needs to see why."""

    series_id: str
    version: int
    detector: str
    threshold: float | None
    value: float
    anomaly: bool
    score: float
    expected: float
    lower: float | None
    upper: float | None
    direction: str | None
    """``"above"`` the band, ``"below"`` it, or None inside it."""


_SIDES = {1: "above", -1: "below", 0: None}


def _finite_or_none(number: float) -> float | None:
    return number if math.isfinite(number) else None


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
        self._lock = threading.Lock()
        self._models: LRUCache[tuple[str, int], LoadedModel] = LRUCache(model_cache_size)
        # Each series' latest model, so that a predict of latest is one lookup: at 10^5
        # series the second lookup (through the version) cost ~10% of a cached predict.
        # A model can be in both maps; the pair holds at most twice model_cache_size.
        self._latest: LRUCache[str, LoadedModel] = LRUCache(model_cache_size)
        self._generation = 0
        self._freeze_models = freeze_models
        self._inserted_since_freeze = 0
        # Nothing is read eagerly beyond these two, and a store that is down at start-up
        # (PostgreSQL not up yet) is fine: an unknown marker makes the first request sync.
        self._marker: int | None = None
        self._deletion_epoch: int | None = None
        try:
            self._deletion_epoch = store.deletion_epoch()
            self._marker = store.change_marker()
        except StoreUnavailable:
            pass

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
        with self._lock:
            epoch = self._deletion_epoch
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
        with self._lock:
            # A delete noticed since the commit may have removed this very version; then
            # caching it would serve a deleted model, so leave it to the store.
            if self._deletion_epoch == epoch:
                self._models[(series_id, record.version)] = LoadedModel(record, model)
                self._cache_changed(inserted=True)
        metrics.record_fit(model.name)
        self.training_latency.record(time.perf_counter() - started)
        return record

    # -- scoring -------------------------------------------------------------------------

    def predict(
        self, series_id: str, value: float, timestamp: float, version: int | None = None
    ) -> Prediction:
        """Score one point against ``version`` (latest when None)."""
        started = time.perf_counter()
        return self._answer(self.model(series_id, version), value, timestamp, started)

    def predict_cached(
        self, series_id: str, value: float, timestamp: float, version: int | None = None
    ) -> Prediction | None:
        """:meth:`predict` if the model is in memory and known current, else None.

        It reads nothing from the store but the change marker, so an event loop can
        call it directly and hand only the misses to a thread.
        """
        started = time.perf_counter()
        marker = self.store.change_marker()
        with self._lock:
            if marker != self._marker:
                return None
            if version is None:
                loaded = self._latest.get(series_id)
            else:
                loaded = self._models.get((series_id, version))
        # Only valid ids are ever cached, so a hit needs no id check; a miss goes to
        # predict(), which checks the id and counts the miss.
        if loaded is None:
            return None
        return self._answer(loaded, value, timestamp, started, cache_hit=True)

    def _answer(
        self,
        loaded: LoadedModel,
        value: float,
        timestamp: float,
        started: float,
        cache_hit: bool = False,
    ) -> Prediction:
        band = loaded.band
        if band is not None and math.isfinite(value):
            point = band_point(float(value), band[0], band[1], loaded.direction)
        else:
            point = loaded.detector.score_point(timestamp, value)
        prediction = Prediction(
            series_id=loaded.series_id,
            version=loaded.version,
            detector=loaded.detector_name,
            threshold=loaded.threshold,
            value=float(value),
            anomaly=point.anomaly,
            score=point.score,
            expected=point.expected,
            lower=_finite_or_none(point.lower),
            upper=_finite_or_none(point.upper),
            direction=_SIDES[point.side],
        )
        metrics.record_predict(prediction.detector, prediction.anomaly, cache_hit)
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
        try:
            generation = self._sync()
        except StoreUnavailable:
            # The store announced a change it cannot now tell us about. A model held here
            # still answers (it names its version); anything else needs the store.
            held = self._held(series_id, version)
            if held is None:
                raise
            metrics.record_cache_hit()
            return held
        if version is not None:
            return self._load(series_id, version, generation, asked_latest=False)
        with self._lock:
            held = self._latest.get(series_id)
        if held is not None:
            metrics.record_cache_hit()
            return held
        latest = self.store.latest_version(series_id)
        if latest is None:
            raise SeriesNotFound(series_id)
        loaded = self._load(series_id, latest, generation, asked_latest=True)
        with self._lock:
            # Only remember it if no commit was noticed since this request synced;
            # otherwise the answer may predate that commit.
            if self._generation == generation:
                self._latest[series_id] = loaded
        return loaded

    def _load(
        self, series_id: str, version: int, generation: int, asked_latest: bool
    ) -> LoadedModel:
        """``version`` from the cache or the store (cached when nothing changed since
        ``generation``)."""
        with self._lock:
            cached = self._models.get((series_id, version))
        if cached is not None:
            metrics.record_cache_hit()
            return cached
        metrics.record_cache_miss()
        record = self.store.get_model(series_id, version)
        if record is None and asked_latest:
            # Deleted between the two reads: whatever is latest now.
            record = self.store.get_model(series_id)
            if record is None:
                raise SeriesNotFound(series_id)
            version = record.version
        if record is None:
            latest_version = self.store.latest_version(series_id)
            if latest_version is None:
                raise SeriesNotFound(series_id)
            raise VersionNotFound(series_id, version, latest_version)
        loaded = LoadedModel(
            record, detector_class(record.detector).from_state(record.params, record.state)
        )
        with self._lock:
            if self._generation == generation:
                self._models[(series_id, version)] = loaded
                self._cache_changed(inserted=True)
        return loaded

    def _held(self, series_id: str, version: int | None) -> LoadedModel | None:
        """The cached model for ``version`` (the remembered latest when None), if it may
        still answer while the store cannot say what changed: only when the changes not
        yet read are known to be fits (a delete may have removed any held version), and
        for latest only of a series that was not refitted."""
        with self._lock:
            known = self._marker
        fitted = None if known is None else self.store.fitted_since(known)
        if fitted is None or (version is None and series_id in fitted):
            return None
        with self._lock:
            if version is None:
                return self._latest.get(series_id)
            return self._models.get((series_id, version))

    def _sync(self) -> int:
        """Drop what another commit may have outdated; return the cache generation."""
        marker = self.store.change_marker()
        with self._lock:
            if marker == self._marker:
                return self._generation
            known = self._marker
        fitted = None if known is None else self.store.fitted_since(known)
        if fitted is not None:
            # Only fits happened: forget those series' latest versions, nothing else. Even
            # if another thread moved the marker meanwhile (possibly to an older one), these
            # series must be forgotten before this request reads them.
            with self._lock:
                if self._marker == known:
                    self._marker = marker
                self._generation += 1  # in-flight reads of latest must not be kept
                for series_id in fitted:
                    self._latest.pop(series_id, None)
                return self._generation
        epoch = self.store.deletion_epoch()
        with self._lock:
            if marker != self._marker:
                self._marker = marker
                self._generation += 1
                self._latest.clear()
                if epoch != self._deletion_epoch:
                    self._deletion_epoch = epoch
                    self._models.clear()
                    self._cache_changed()
            return self._generation

    def _cache_changed(self, inserted: bool = False) -> None:
        """Publish the model cache's size; call it with the lock held."""
        size = len(self._models)
        self.stats.models_cached = size
        metrics.set_cache_size(size)
        if inserted and self._freeze_models:
            self._inserted_since_freeze += 1
            if self._inserted_since_freeze >= max(FREEZE_EVERY, self._models.maxsize // 10):
                self._inserted_since_freeze = 0
                _collect_and_freeze()

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
        makes the next request sync, and no held model answers meanwhile (see _held)."""
        with contextlib.suppress(StoreUnavailable):
            self._sync()

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
        """The contract's healthcheck fields plus store status, uptime and cache size.

        Latencies, ``models_cached`` and ``workers`` cover every live worker of the server
        when the registry was given a ``run_dir``, this process alone otherwise.
        """
        store_error: str | None = None
        series_trained: int | None = None
        try:
            self.store.ping()
            series_trained = self.store.count_series()
        except StoreUnavailable as exc:
            store_error = exc.message
        server = self.stats.server_view()
        return {
            "series_trained": series_trained,
            "inference_latency_ms": server.inference_latency_ms,
            "training_latency_ms": server.training_latency_ms,
            "status": "ok" if store_error is None else "unavailable",
            "store": {
                "backend": self.store.backend,
                "ok": store_error is None,
                "error": store_error,
            },
            "models_cached": server.models_cached,
            "workers": server.workers,
            "uptime_s": round(time.time() - self.started_at, 3),
            "version": __version__,
        }

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
            scores = _unsorted(scores, np.argsort(stamps, kind="stable"))
        metrics.record_scores(model.name, len(scores), int(np.count_nonzero(scores.anomaly)))
        return model, scores


def _collect_and_freeze() -> None:
    """Collect what is garbage, then exempt every live object, the cached models among
    them, from later full collections.

    A cached model is a handful of container objects; with 10^5 models the collector's
    full passes walked ~10^6 objects (~0.3 s on the development machine, once every few
    seconds while the cache filled, and still now and then once warm: the p99 of a warm
    random-series load was 100-200 ms). Objects frozen here are still freed by reference
    counting when evicted; collecting first means no cyclic garbage is frozen with them.
    The collection itself walks only what was not frozen before, so it is short.
    """
    gc.collect()
    gc.freeze()


def _unsorted(scores: Scores, order: npt.NDArray[np.intp]) -> Scores:
    """``scores`` of time-sorted points put back in the order the points came in."""

    def back(array: npt.NDArray[Any]) -> npt.NDArray[Any]:
        result = np.empty_like(array)
        result[order] = array
        return result

    return Scores(
        expected=back(scores.expected),
        lower=back(scores.lower),
        upper=back(scores.upper),
        score=back(scores.score),
        anomaly=back(scores.anomaly),
        side=back(scores.side),
    )
