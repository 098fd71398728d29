"""Points of many series in one call (``POST /predict``), each answered as its single
predict would be.

Points of different series are independent: only each series' own order matters. So the
points that need nothing but memory and arithmetic, one point of a zscore series each,
are scored together in arrays (:meth:`ZScoreDetector.observe_across`, the same bits as
one by one), and every other point goes through the single-predict path in the request's
order: later points of a series that appears twice, other detectors, points that are not
news, a retrain falling due, a model or stream not in memory. The answers come back in
the request's order.
"""

from __future__ import annotations

import contextlib
import math
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING

from anomaly_api import metrics
from anomaly_api.detectors import ZScoreDetector
from anomaly_api.errors import AnomalyApiError, StoreUnavailable
from anomaly_api.registry.cache import LoadedModel
from anomaly_api.registry.scoring import Prediction, prediction_of
from anomaly_api.registry.streams import LiveStream

if TYPE_CHECKING:
    from anomaly_api.registry.registry import ModelRegistry

Point = tuple[str, int, float, int | None]


def predict_many(
    registry: ModelRegistry, points: Sequence[Point], observe: bool
) -> list[Prediction | AnomalyApiError]:
    """See :meth:`ModelRegistry.predict_many`."""
    cache, streams = registry.cache, registry.streams
    # The change marker once for the request: a fit acknowledged after it started may or
    # may not be seen by its later points, as for concurrent single predicts.
    with contextlib.suppress(StoreUnavailable):
        cache.sync()
    synced = cache.current()
    answers: list[Prediction | AnomalyApiError | None] = [None] * len(points)
    together: list[tuple[int, LoadedModel, LiveStream]] = []
    alone: list[int] = []
    if observe and synced and streams.pending() < streams.max_pending:
        ids = [point[0] for point in points]
        # A series that appears more than once takes the single-predict path (its points
        # are its stream, in order); most requests have none, which a set tells at C speed.
        repeated = Counter(ids) if len(set(ids)) < len(ids) else None
        epoch = streams.epoch
        # ModelCache.held_now and Streams.cached, inline: this loop runs once per point.
        lock, latest, models = cache.lock, cache.latest, cache.models
        entries = streams.live_entries()
        for index, (series_id, timestamp, value, version) in enumerate(points):
            entry = None
            loaded = None
            if repeated is None or repeated[series_id] == 1:
                with lock:
                    loaded = (
                        latest.get(series_id)
                        if version is None
                        else models.get((series_id, version))
                    )
            if loaded is not None and type(loaded.detector) is ZScoreDetector:
                entry = entries.get(series_id)
                if entry is not None:
                    try:
                        entries.move_to_end(series_id)
                    except KeyError:  # let go by another thread just now
                        entry = None
            if (
                entry is None
                or loaded is None
                or entry.model is None
                or entry.model.version != loaded.version
                or entry.verified != epoch
                or entry.last_timestamp is None
                or timestamp <= entry.last_timestamp
                or not math.isfinite(value)
                or (
                    loaded.policy is not None
                    and version is None
                    and loaded.policy.due(entry.since_fit + 1, timestamp, loaded.trained_until)
                )
                or not entry.lock.acquire(blocking=False)
            ):
                alone.append(index)
                continue
            if entry.released:
                entry.lock.release()
                alone.append(index)
                continue
            together.append((index, loaded, entry))  # its lock held until it is scored
    else:
        alone = list(range(len(points)))
    if together:
        _together(points, together, answers)
    for index in alone:
        series_id, timestamp, value, version = points[index]
        try:
            answers[index] = registry.predict_cached(
                series_id, value, timestamp, version, observe, False
            ) or registry.predict(series_id, value, timestamp, version, observe, False)
        except AnomalyApiError as exc:
            answers[index] = exc
    return [answer for answer in answers if answer is not None]


def _together(
    points: Sequence[Point],
    together: list[tuple[int, LoadedModel, LiveStream]],
    answers: list[Prediction | AnomalyApiError | None],
) -> None:
    """Score one point each of many zscore series in arrays, learn them, answer them;
    the series' locks are held on entry and released here."""
    try:
        detectors = [loaded.detector for _, loaded, _ in together]
        contexts = [entry.context for _, _, entry in together]
        values = [points[index][2] for index, _, _ in together]
        scores = ZScoreDetector.observe_across(
            detectors,  # type: ignore[arg-type]
            contexts,  # type: ignore[arg-type]
            values,
        )
        columns = zip(
            scores.expected.tolist(),
            scores.lower.tolist(),
            scores.upper.tolist(),
            scores.score.tolist(),
            scores.anomaly.tolist(),
            scores.side.tolist(),
            strict=True,
        )
        for (index, loaded, entry), (expected, lower, upper, score, anomaly, side) in zip(
            together, columns, strict=True
        ):
            timestamp, value = points[index][1], points[index][2]
            entry.last_timestamp = timestamp
            entry.observed += 1
            entry.since_fit += 1
            entry.appended += 1
            entry.changes += 1
            entry.pending.append(
                (timestamp, value, loaded.version, score, anomaly, expected, lower, upper)
            )
            answers[index] = prediction_of(
                loaded, timestamp, value, expected, lower, upper, score, anomaly, side
            )
    finally:
        for _, _, entry in together:
            entry.lock.release()
    # Every point here was scored by a zscore model.
    metrics.record_scores(ZScoreDetector.name, len(together), int(scores.anomaly.sum()))
    metrics.record_cache_hits(len(together))
