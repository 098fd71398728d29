"""``ModelRegistry``: fit → version → persist; resolve → cache → score the stream.

It owns version numbering (delegated to the store's atomic counter), resolution of
"latest" through the :class:`~anomaly_api.registry.cache.ModelCache` (whose docstring
states the freshness guarantee), the live streams of :mod:`~anomaly_api.registry.streams`
(whose docstring states what a point observed means) and the latency windows.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import socket
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from anomaly_api import metrics
from anomaly_api.detectors import Detector, Scores, Series, detector_class
from anomaly_api.detectors.bands import PointScore
from anomaly_api.detectors.series import finite_values
from anomaly_api.errors import (
    AnomalyApiError,
    InvalidInput,
    SeriesNotFound,
    StoreUnavailable,
    TooMuchWork,
    VersionNotFound,
)
from anomaly_api.quotas import Quota
from anomaly_api.registry.bulk import Columns, predict_many
from anomaly_api.registry.cache import LoadedModel, ModelCache
from anomaly_api.registry.health import health
from anomaly_api.registry.history import recent_counts
from anomaly_api.registry.retrain import RetrainPolicy, policy_for_fit
from anomaly_api.registry.scoring import Prediction, incident_codes, prediction, unsorted
from anomaly_api.registry.streams import LiveStream, Streams
from anomaly_api.series_ids import check_series_id
from anomaly_api.storage.base import ModelRecord, ModelStore, NewModel, SeriesSummary
from anomaly_api.telemetry import WorkerStats

_log = logging.getLogger(__name__)


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
        owner: str | None = None,
        stream_cache_size: int = 100_000,
        stream_flush_s: float = 1.0,
        stream_lease_s: float = 10.0,
        stream_keep_points: int = 10_000,
        stream_max_pending: int = 1_000_000,
        stream_takeover_s: float = 2.0,
        max_work_s: float | None = None,
        model_cache_bytes: int | None = None,
    ) -> None:
        detector_class(default_detector)  # fail at start-up, not on the first fit
        self.store = store
        self.default_detector = default_detector
        self.training_points_cap = training_points_cap
        self.max_work_s = max_work_s
        # With ``run_dir`` (the server's shared directory) health describes every worker.
        self.stats = WorkerStats(latency_window, run_dir)
        self.inference_latency = self.stats.inference
        self.training_latency = self.stats.training
        self.started_at = time.time()
        self.streams = Streams(
            store,
            owner=owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}",
            size=stream_cache_size,
            flush_s=stream_flush_s,
            lease_s=stream_lease_s,
            keep_points=stream_keep_points,
            max_pending=stream_max_pending,
            takeover_s=stream_takeover_s,
        )
        self.cache = ModelCache(
            store,
            self.stats,
            size=model_cache_size,
            max_bytes=model_cache_bytes,
            freeze_models=freeze_models,
            on_dropped=self.streams.forget,
            on_unsure=self.streams.unsure,
        )
        if stream_flush_s > 0:
            self.streams.start()

    # -- the work budget -----------------------------------------------------------------

    def check_work(
        self,
        model: Detector,
        fit_points: int,
        score_points: int,
        what: str,
        stream: bool = False,
    ) -> None:
        """Refuse (:class:`TooMuchWork`, before any of it starts) work on ``model``'s
        detector and parameters estimated to need more than ``max_work_s`` of CPU;
        ``stream``: the points are scored one after another on the live path."""
        if self.max_work_s is None:
            return
        if stream:
            estimate = type(model).stream_work_s(model.params, int(score_points))
        else:
            estimate = type(model).work_s(model.params, int(fit_points), int(score_points))
        if estimate > self.max_work_s:
            raise TooMuchWork(
                f"{what} ({score_points or fit_points:,} points, detector {model.name})",
                estimate,
                self.max_work_s,
                field="values",
            )

    def affordable_points(self, model: Detector, points: int) -> int:
        """How many of ``points`` points ``model`` can score within the work budget (at
        least one)."""
        if self.max_work_s is None:
            return points
        fixed = type(model).work_s(model.params, 0, 0)
        each = type(model).work_s(model.params, 0, 1) - fixed
        if each <= 0.0:
            return points
        return max(1, min(points, int((self.max_work_s - fixed) / each)))

    # -- fitting -------------------------------------------------------------------------

    def fit(
        self,
        series_id: str,
        timestamps: Sequence[int] | npt.ArrayLike,
        values: Sequence[float] | npt.ArrayLike,
        detector: str | None = None,
        params: Mapping[str, Any] | None = None,
        retrain: Any = None,
        quota: Quota | None = None,
    ) -> ModelRecord:
        """Validate, fit and store the next version of ``series_id``. ``retrain`` is the
        fit body's policy (see :mod:`~anomaly_api.registry.retrain`): None for the
        detector's default, False for none. ``quota``: whose fit this is and what it may
        store (None: anonymous, no limits)."""
        started = time.perf_counter()
        check_series_id(series_id)
        model = detector_class(detector or self.default_detector)(params)
        policy = policy_for_fit(model.name, retrain, self.streams.keep_points)
        self.check_work(model, np.size(values), 0, "this fit")
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
                retrain=None if policy is None else policy.to_json(),
                created_by=None if quota is None else quota.owner,
                quota=quota,
            )
        )
        self.cache.add_fitted(LoadedModel(record, model), deletions_seen)
        metrics.record_fit(model.name)
        self.training_latency.record(time.perf_counter() - started)
        return record

    def _not_behind_stream(self, entry: LiveStream, loaded: LoadedModel) -> LoadedModel:
        """``loaded``, this process's latest version, unless the series' stream
        (``entry``, its lock held) already goes on with a newer one: a version another
        replica fitted (the retrain of the holder this stream was just taken over from)
        whose announcement has not reached this process yet. Then the latest from the
        store, so that the stream goes on as it would in one process instead of falling
        back to an older version."""
        known = entry.model.version if entry.model is not None else entry.saved_context[0]
        if known is None or known <= loaded.version:
            return loaded
        latest = self.store.latest_version(entry.series_id)
        if latest is None or latest <= loaded.version:
            return loaded
        if entry.model is not None and entry.model.version == latest:
            return entry.model
        # Not remembered as latest here (generation -1): its announcement will be.
        return self.cache.load(entry.series_id, latest, -1, asked_latest=True)

    def _retrain_if_due(self, entry: LiveStream, loaded: LoadedModel) -> LoadedModel:
        """After ``entry`` (its lock held) observed a point scored by ``loaded``, the
        latest version: fit the next version when the policy says so, and make the
        stream continue it. Returns the version that scores the next point. A retrain
        that fails (the store down, say) is logged and tried again at the next point."""
        policy = loaded.policy
        last = entry.last_timestamp
        if (
            policy is None
            or last is None
            or not policy.due(entry.since_fit, last, loaded.trained_until)
        ):
            return loaded
        started = time.perf_counter()
        try:
            newer = self._retrain(entry, loaded, policy)
        except (StoreUnavailable, InvalidInput) as exc:
            _log.warning("retraining %r failed: %s", entry.series_id, exc.message)
            return loaded
        self.training_latency.record(time.perf_counter() - started)
        return newer

    def _retrain(
        self, entry: LiveStream, loaded: LoadedModel, policy: RetrainPolicy
    ) -> LoadedModel:
        record = loaded.record
        training = self.store.training_data(entry.series_id, record.version)
        stream_t, stream_v = self.streams.history(
            entry, record.last_timestamp, self.streams.keep_points
        )
        timestamps = np.concatenate(
            [training.timestamps if training is not None else stream_t[:0], stream_t]
        ).astype(np.int64)
        values = np.concatenate(
            [training.values if training is not None else stream_v[:0], stream_v]
        )
        cls = detector_class(record.detector)
        # A window of stream time may hold too few points after a gap in the data: then
        # the detector's minimum of the most recent points.
        window = policy.window_of(timestamps, values)
        if window[0].size < cls.min_points:
            window = timestamps[-cls.min_points :], values[-cls.min_points :]
        series = Series(*window)
        model = cls(record.params).fit(series)
        with self.cache.lock:
            deletions_seen = self.cache.deletions_seen
        stored = self.store.create_version(
            NewModel(
                series_id=entry.series_id,
                detector=model.name,
                params=model.params,
                state=model.state(),
                points_used=len(series),
                first_timestamp=int(series.timestamps[0]),
                last_timestamp=int(series.timestamps[-1]),
                training=series.tail(self.training_points_cap),
                trigger="retrain",
                retrain=record.retrain,
                prune=policy.retention(),
                # The key that fitted the series pays for its retrains; they are not
                # refused (the retrain policy's retention bounds how many stay).
                created_by=record.created_by,
            )
        )
        newer = LoadedModel(stored, model)
        self.cache.add_fitted(newer, deletions_seen)
        metrics.record_fit(model.name)
        # Trained up to the last observed point: the stream continues from its end.
        entry.model = newer
        # The series' open incident goes on across the retrain: the new context takes it.
        incident = None if entry.context is None else entry.context.incident
        entry.context = model.initial_context()
        if incident is not None:
            entry.context.incident = incident
        entry.since_fit = 0
        entry.changes += 1
        return newer

    # -- scoring -------------------------------------------------------------------------

    def predict(
        self,
        series_id: str,
        value: float,
        timestamp: float,
        version: int | None = None,
        observe: bool = True,
        timed: bool = True,
    ) -> Prediction:
        """Score one point of the series' stream against ``version`` (latest when None)
        and, unless ``observe`` is False or the point is not news, remember it.
        ``timestamp`` is in Unix seconds (a fraction is dropped). ``timed``: count it in
        the inference latency window."""
        started = time.perf_counter()
        if not math.isfinite(value):
            raise InvalidInput("value is not a finite number (NaN or infinity)", field="value")
        timestamp = math.floor(timestamp)
        while True:
            loaded = self.model(series_id, version)
            entry = self._live(series_id)
            with entry.lock:
                if entry.released:
                    continue  # handed over meanwhile: look it up again
                if version is None:
                    loaded = self._not_behind_stream(entry, loaded)
                self.streams.ready(entry, loaded)
                point, why = self.streams.observe(entry, int(timestamp), value, observe)
                if why is None and version is None:
                    self._retrain_if_due(entry, loaded)
                break
        answer = prediction(loaded, int(timestamp), value, point, why)
        if timed:
            self.inference_latency.record(time.perf_counter() - started)
        return answer

    def predict_cached(
        self,
        series_id: str,
        value: float,
        timestamp: float,
        version: int | None = None,
        observe: bool = True,
        timed: bool = True,
        counted: bool = True,
    ) -> Prediction | None:
        """:meth:`predict` if everything it needs is in memory and current, else None.

        It reads nothing from the store but the change marker, so an event loop can
        call it directly and hand only the misses to a thread. ``counted``: False when
        the caller counts the answer in the metrics itself (the fast path does, with
        the request, in one call).
        """
        started = time.perf_counter()
        found = self.score_cached(series_id, value, timestamp, version, observe)
        if found is None:
            return None
        loaded, stamp, point, why = found
        answer = prediction(loaded, stamp, value, point, why, cache_hit=True, counted=counted)
        if timed:
            self.inference_latency.record(time.perf_counter() - started)
        return answer

    def score_cached(
        self,
        series_id: str,
        value: float,
        timestamp: float,
        version: int | None,
        observe: bool,
    ) -> tuple[LoadedModel, int, PointScore, str | None] | None:
        """:meth:`predict_cached` without building the :class:`Prediction`, counting it
        in the metrics or timing it, for the fast path, which writes the answer, counts
        it and records the whole request's time in :attr:`inference_latency` itself:
        the model, the point's second, its score and why it was not observed (None when
        it was). Each step a request takes shows in the rate of cached predicts,
        several times over what it costs in a loop."""
        stamp = math.floor(timestamp)
        found = self._fast(series_id, value, stamp, version, observe)
        if found is None:
            return None
        return found[0], stamp, found[1], found[2]

    def _fast(
        self,
        series_id: str,
        value: float,
        stamp: int,
        version: int | None,
        observe: bool,
        synced: bool = False,
    ) -> tuple[LoadedModel, PointScore, str | None] | None:
        """Score and learn one point from memory alone (the model and the stream known
        current, the stream's lock free, no retrain falling due); None otherwise.
        ``synced``: the caller checked the change marker already."""
        cache = self.cache
        if synced:
            loaded = cache.held_now(series_id, version)
        else:
            # ModelCache.cached, inline: this is the hot path of every cached predict.
            marker = cache.store.change_marker()
            with cache.lock:
                if marker != cache.marker:
                    return None
                loaded = (
                    cache.latest.get(series_id)
                    if version is None
                    else cache.models.get((series_id, version))
                )
        # Only valid ids are ever cached, so a hit needs no id check; a miss goes to
        # predict(), which checks the id and counts the miss.
        if loaded is None:
            return None
        streams = self.streams
        entry = streams.cached(series_id)
        if (
            entry is None
            or entry.model is None
            or entry.model.version != loaded.version
            or entry.verified != streams.epoch
            or not math.isfinite(value)
            or not entry.lock.acquire(blocking=False)
        ):
            return None
        try:
            if entry.released:
                return None
            policy = loaded.policy
            if (
                policy is not None
                and version is None
                and observe
                and entry.last_timestamp is not None
                and stamp > entry.last_timestamp
                and policy.due(entry.since_fit + 1, stamp, loaded.trained_until)
            ):
                return None  # this point makes a retrain due: the slow path does it
            point, why = streams.observe(entry, stamp, value, observe)
        finally:
            entry.lock.release()
        return loaded, point, why

    def predict_many(
        self,
        points: Sequence[tuple[str, int, float, int | None]] | Columns,
        observe: bool = True,
    ) -> list[Prediction | AnomalyApiError]:
        """Score ``(series_id, timestamp, value, version)`` points of any series (or the
        same as :class:`~anomaly_api.registry.bulk.Columns`), in order, each as
        :meth:`predict` would (the points of one series are its stream), or its error:
        one point's error does not stop the others. The whole call counts as one sample
        of the inference latency window (see :mod:`.bulk`)."""
        started = time.perf_counter()
        columns = points if isinstance(points, Columns) else Columns.of(points)
        answers = predict_many(self, columns, observe)
        self.inference_latency.record(time.perf_counter() - started)
        return answers

    def score_batch(
        self,
        series_id: str,
        timestamps: npt.ArrayLike,
        values: npt.ArrayLike,
        version: int | None = None,
        observe: bool = True,
    ) -> tuple[list[tuple[int, LoadedModel]], Scores, npt.NDArray[np.bool_]]:
        """Score many points of the series' stream at once, in the order given, as
        :meth:`predict` would one by one (retrains included); also which of them joined
        the history. The versions come as ``(first index, model)`` pairs: more than one
        when the policy retrained the series in the middle of the batch."""
        stamps = np.asarray(timestamps, dtype=np.int64)
        points = finite_values(values, field="values")
        if stamps.shape != points.shape:
            raise InvalidInput(
                f"timestamps has {stamps.size} items but values has {points.size}",
                field="timestamps",
            )
        while True:
            loaded = self.model(series_id, version)
            self.check_work(loaded.detector, 0, points.size, "this batch", stream=True)
            entry = self._live(series_id)
            with entry.lock:
                if entry.released:
                    continue
                if version is None:
                    loaded = self._not_behind_stream(entry, loaded)
                self.streams.ready(entry, loaded)
                used, parts, observed = self._score_parts(
                    entry, loaded, stamps, points, observe, version
                )
                break
        scores = parts[0] if len(parts) == 1 else _joined(parts)
        flagged = int(np.count_nonzero(scores.anomaly))
        metrics.record_scores(loaded.record.detector, int(scores.anomaly.size), flagged)
        return used, scores, observed

    def _score_parts(
        self,
        entry: LiveStream,
        loaded: LoadedModel,
        stamps: npt.NDArray[np.int64],
        points: npt.NDArray[np.float64],
        observe: bool,
        version: int | None,
    ) -> tuple[list[tuple[int, LoadedModel]], list[Scores], npt.NDArray[np.bool_]]:
        """Score the batch in parts that end where a retrain falls due (lock held)."""
        used: list[tuple[int, LoadedModel]] = [(0, loaded)]
        parts: list[Scores] = []
        observed: list[npt.NDArray[np.bool_]] = []
        position, size = 0, stamps.size
        while True:
            end = size
            policy = loaded.policy
            if observe and version is None and policy is not None and position < size:
                rest = stamps[position:]
                last = entry.last_timestamp if entry.last_timestamp is not None else rest[0] - 1
                before = np.maximum.accumulate(np.concatenate([[last], rest[:-1]]))
                news = np.flatnonzero(rest > before)
                due = policy.first_due(entry.since_fit, rest[news], loaded.trained_until)
                if due is not None:
                    end = position + int(news[due]) + 1
            part, joined, _ = self.streams.observe_batch(
                entry, stamps[position:end], points[position:end], observe
            )
            parts.append(part)
            observed.append(joined)
            position = end
            if position >= size:
                break
            newer = self._retrain_if_due(entry, loaded)
            if newer is not loaded:
                loaded = newer
                used.append((position, newer))
        return used, parts, np.concatenate(observed) if observed else np.zeros(0, np.bool_)

    def _live(self, series_id: str) -> LiveStream:
        """The series' live stream, checked against the store when the store could not
        say what changed since this process last did."""
        while True:
            entry = self.streams.entry(series_id)
            if entry.verified == self.streams.epoch or self.streams.verify(entry):
                return entry

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

    def versions_page(
        self, series_id: str, after: int, limit: int
    ) -> tuple[list[ModelRecord], int, bool]:
        """The series' versions numbered above ``after``, oldest first, at most
        ``limit``; its latest version; whether more versions follow the page.
        :class:`SeriesNotFound` when the series has no version at all."""
        check_series_id(series_id)
        records = self.store.list_versions(series_id, after, limit + 1)
        more = len(records) > limit
        records = records[:limit]
        if records and not more:
            return records, records[-1].version, False
        latest = self.store.latest_version(series_id)
        if latest is None:
            raise SeriesNotFound(series_id)
        return records, latest, more

    def stream_info(self, series_id: str) -> dict[str, Any] | None:
        """What the series' stream holds: its last observed timestamp, the points it
        observed, those not saved yet (held here only), the newest point's score and the
        anomalies in the hour and the day up to it; None before its first point."""
        check_series_id(series_id)
        info = self._stream_state(series_id)
        if info is not None:
            last = info["last_timestamp"]
            info.update(recent_counts(self.store, self.streams, series_id, last))
        return info

    def _stream_state(self, series_id: str) -> dict[str, Any] | None:
        entry = self.streams.cached(series_id)
        if entry is not None:
            with entry.lock:
                if not entry.released:
                    return {
                        "last_timestamp": entry.last_timestamp,
                        "points_observed": entry.observed,
                        "points_unsaved": len(entry.pending),
                    }
        state = self.store.stream_state(series_id)
        if state is None:
            return None
        return {
            "last_timestamp": state.last_timestamp,
            "points_observed": state.observed,
            "points_unsaved": 0,
        }

    def list_series(
        self, limit: int, after: str | None = None, contains: str | None = None
    ) -> list[SeriesSummary]:
        """One page of series, ordered by id (only ids holding ``contains``, when given)."""
        return self.store.list_series(limit, after, contains)

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
        """Save and let go of every live stream, release the store's connections and
        withdraw from the server's health figures."""
        self.streams.close()
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
        self.check_work(model, np.size(values), np.size(values), "this detect")
        series = Series.from_arrays(timestamps, values)
        model.fit(series)
        scores = model.fitted_scores(series)
        stamps = np.asarray(timestamps)
        if stamps.size > 1 and not bool(np.all(stamps[1:] >= stamps[:-1])):
            scores = unsorted(scores, np.argsort(stamps, kind="stable"))
        metrics.record_scores(model.name, len(scores), int(np.count_nonzero(scores.anomaly)))
        return model, scores


def _joined(parts: list[Scores]) -> Scores:
    """Scores of consecutive parts of a batch, as one."""
    return Scores(
        expected=np.concatenate([np.asarray(part.expected) for part in parts]),
        lower=np.concatenate([np.asarray(part.lower) for part in parts]),
        upper=np.concatenate([np.asarray(part.upper) for part in parts]),
        score=np.concatenate([part.score for part in parts]),
        anomaly=np.concatenate([part.anomaly for part in parts]),
        side=np.concatenate([part.side for part in parts]),
        incident=np.concatenate([incident_codes(part) for part in parts]),
    )
