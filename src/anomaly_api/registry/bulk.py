"""Points of many series in one call (``POST /predict``), each answered as its single
predict would be.

Points of different series are independent: only each series' own order matters. So the
points that need nothing but memory and arithmetic, one point of a zscore series each,
are scored together in arrays (:meth:`ZScoreDetector.observe_across`, the same bits as
one by one), and every other point goes through the single-predict path in the request's
order: later points of a series that appears twice, points that name a version, other
detectors, points that are not news, a retrain falling due, a model or stream not in
memory. The answers come back in the request's order.
"""

from __future__ import annotations

import contextlib
import math
from collections import Counter, OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain, compress, repeat
from typing import TYPE_CHECKING

import numpy as np

from anomaly_api import metrics
from anomaly_api.detectors import ZScoreDetector
from anomaly_api.detectors.incidents import NAMES as INCIDENTS
from anomaly_api.detectors.series import MAX_TIMESTAMP, MIN_TIMESTAMP, FloatArray
from anomaly_api.errors import AnomalyApiError, StoreUnavailable
from anomaly_api.registry.cache import LoadedModel
from anomaly_api.registry.scoring import Prediction
from anomaly_api.registry.streams import LiveStream
from anomaly_api.storage.chunks import anomaly_codes, pack_rows

if TYPE_CHECKING:
    from anomaly_api.registry.registry import ModelRegistry

Point = tuple[str, int, float, int | None]
_get = OrderedDict.get


@dataclass(slots=True)
class Columns:
    """Points of many series as columns (what a parsed request holds), so that no tuple
    is built per point; ``versions`` None means every point is scored with its series'
    latest version."""

    series_ids: list[str]
    timestamps: list[int]
    values: list[float]
    versions: list[int | None] | None = None

    @classmethod
    def of(cls, points: Sequence[Point]) -> Columns:
        """The columns of ``(series_id, timestamp, value, version)`` points."""
        if not points:
            return cls([], [], [])
        ids, stamps, values, versions = map(list, zip(*points, strict=True))
        return cls(ids, stamps, values, None if all(v is None for v in versions) else versions)


def predict_many(
    registry: ModelRegistry, points: Columns, observe: bool
) -> list[Prediction | AnomalyApiError]:
    """See :meth:`ModelRegistry.predict_many`."""
    cache, streams = registry.cache, registry.streams
    # The change marker once for the request: a fit acknowledged after it started may or
    # may not be seen by its later points, as for concurrent single predicts.
    with contextlib.suppress(StoreUnavailable):
        cache.sync()
    size = len(points.series_ids)
    answers: list[Prediction | AnomalyApiError | None] = [None] * size
    if observe and cache.current() and streams.pending() < streams.max_pending:
        alone = _together(registry, points, answers)
        if not alone:
            return answers  # type: ignore[return-value]  # every one was answered
    else:
        alone = list(range(size))
    ids, stamps, values = points.series_ids, points.timestamps, points.values
    versions = points.versions
    for index in alone:
        series_id, timestamp, value = ids[index], stamps[index], values[index]
        version = None if versions is None else versions[index]
        try:
            answers[index] = registry.predict_cached(
                series_id, value, timestamp, version, observe, False
            ) or registry.predict(series_id, value, timestamp, version, observe, False)
        except AnomalyApiError as exc:
            answers[index] = exc
    return [answer for answer in answers if answer is not None]


def _together(
    registry: ModelRegistry,
    points: Columns,
    answers: list[Prediction | AnomalyApiError | None],
) -> list[int]:
    """Score, learn and answer in arrays the points that need only memory: one point of
    a zscore series each, its model and stream live and current, the point news, no
    retrain falling due. The indices of the other points are returned, in order.

    Every step is a comprehension or an array operation over all the points, not a
    loop with a branch per point: at 10^4 points a request, each Python step per point
    costs as much as the arithmetic of all of them."""
    cache, streams = registry.cache, registry.streams
    ids, versions = points.series_ids, points.versions
    size = len(ids)
    if versions is None and len(set(ids)) == size:
        candidates: list[int] | None = None  # all of them
    else:
        # A series that appears more than once takes the single-predict path (its
        # points are its stream, in order), as does a point that names its version.
        counts = Counter(ids)
        candidates = [
            index
            for index in range(size)
            if (versions is None or versions[index] is None) and counts[ids[index]] == 1
        ]
        ids = [ids[index] for index in candidates]
    latest, entries = cache.latest, streams.live_entries()
    with cache.lock:  # ModelCache.held_now, for all of them: LRU.get's lookups and use
        models = list(map(_get, repeat(latest), ids))
        deque(map(latest.move_to_end, compress(ids, models)), maxlen=0)
    found = list(map(_get, repeat(entries), ids))
    try:  # Streams.cached, for all of them
        deque(map(entries.move_to_end, compress(ids, found)), maxlen=0)
    except KeyError:  # one was let go by another thread just now: it goes alone
        found = [entry if entry is None or entry.series_id in entries else None for entry in found]
    # Each stream's lock is taken (without waiting: a held one goes alone) before its
    # state is read, so nothing moves it between the checks and the update.
    held = [
        position
        for position, loaded, entry in zip(range(len(ids)), models, found, strict=True)
        if entry is not None
        and loaded is not None
        and loaded.bulk_row is not None  # a zscore model
        and entry.lock.acquire(blocking=False)
    ]
    if not held:
        return [index for index in range(size) if answers[index] is None]
    entries_held: list[LiveStream] = [found[position] for position in held]  # type: ignore[misc]
    models_held: list[LoadedModel] = [models[position] for position in held]  # type: ignore[misc]
    indices = held if candidates is None else [candidates[position] for position in held]
    epoch = streams.epoch
    count = len(held)
    try:
        # The stream's last timestamp where its state is current, else +inf (never news).
        state = np.fromiter(
            chain.from_iterable(
                [
                    (
                        entry.last_timestamp
                        if not entry.released
                        and entry.last_timestamp is not None
                        and entry.verified == epoch
                        and (model := entry.model) is not None
                        and model.version == loaded.version
                        else math.inf,
                        entry.since_fit,
                    )
                    for entry, loaded in zip(entries_held, models_held, strict=True)
                ]
            ),
            np.float64,
            2 * count,
        ).reshape(count, 2)
        # Each model's detector constants, retrain marks and version (LoadedModel.bulk_row).
        rows = np.fromiter(
            chain.from_iterable([loaded.bulk_row for loaded in models_held]),  # type: ignore[misc]
            np.float64,
            (ZScoreDetector.ACROSS + 4) * count,
        ).reshape(count, ZScoreDetector.ACROSS + 4)
        chosen = np.array(indices, dtype=np.intp)
        stamps = np.array(points.timestamps, dtype=np.float64)[chosen]
        values = np.array(points.values, dtype=np.float64)[chosen]
        last, since = state[:, 0], state[:, 1] + 1
        across = ZScoreDetector.ACROSS
        every_points, every_seconds, trained_until = rows[:, across : across + 3].T
        with np.errstate(invalid="ignore"):
            due = (since >= every_points) | (
                (since > 0) & (stamps - trained_until >= every_seconds)
            )
        # Whole seconds in range only: anything else is floored or refused by the
        # single-predict path (and a float64 holds every second in range exactly).
        whole = (stamps == np.floor(stamps)) & (stamps >= MIN_TIMESTAMP) & (stamps <= MAX_TIMESTAMP)
        good = whole & (stamps > last) & np.isfinite(values) & ~due
    except BaseException:
        _release(entries_held)
        raise
    if not good.all():
        keep = good.tolist()
        _release(list(compress(entries_held, [not flag for flag in keep])))
        entries_held = list(compress(entries_held, keep))
        models_held = list(compress(models_held, keep))
        indices = list(compress(indices, keep))
        stamps = stamps[good]
        values = values[good]
        rows = rows[good]
    if entries_held:
        _score(indices, models_held, entries_held, rows, stamps, values, answers)
    if len(entries_held) == size:
        return []
    return [index for index in range(size) if answers[index] is None]


def _release(entries: list[LiveStream]) -> None:
    for entry in entries:
        entry.lock.release()


def _score(
    indices: list[int],
    models: list[LoadedModel],
    entries: list[LiveStream],
    constants: FloatArray,
    timestamps: FloatArray,
    values: FloatArray,
    answers: list[Prediction | AnomalyApiError | None],
) -> None:
    """Score one point each of many zscore series (their streams' locks held, released
    here; ``constants``: their models' ``bulk_row``), learn them as
    :meth:`Streams.observe` does, answer them."""
    try:
        scores = ZScoreDetector.observe_across(
            constants,
            [entry.context for entry in entries],  # type: ignore[misc]
            timestamps,
            values,
        )
        expected = scores.expected.tolist()
        lower, upper = scores.lower.tolist(), scores.upper.tolist()
        score = scores.score.tolist()
        anomaly = scores.anomaly.tolist()
        sides = _SIDE_NAMES[scores.side + 1].tolist()
        stamps = timestamps.astype(np.int64).tolist()  # exact: |timestamps| < 2**53
        numbers = values.tolist()
        # The points as a save stores them, packed in one pass (Streams.observe's).
        packed = pack_rows(
            np.column_stack(
                (
                    timestamps,
                    values,
                    constants[:, ZScoreDetector.ACROSS + 3],
                    scores.score,
                    anomaly_codes(scores.anomaly, scores.incident),
                    scores.expected,
                    scores.lower,
                    scores.upper,
                )
            )
        )
        for entry, timestamp, point in zip(entries, stamps, packed, strict=True):
            entry.last_timestamp = timestamp
            entry.observed += 1
            entry.since_fit += 1
            entry.appended += 1
            entry.changes += 1
            entry.pending.append(point)
        for index, answer in zip(
            indices,
            map(
                Prediction,
                anomaly,
                [loaded.version_text for loaded in models],
                [entry.series_id for entry in entries],
                stamps,
                numbers,
                expected,
                _edges(scores.lower, lower),
                _edges(scores.upper, upper),
                score,
                sides,
                [loaded.threshold for loaded in models],
                repeat(ZScoreDetector.name),
                repeat(True),
                repeat(None),
                [INCIDENTS[code] for code in scores.incident.tolist()]  # type: ignore[union-attr]
                if scores.anomaly.any()
                else repeat(None),
            ),
            strict=True,
        ):
            answers[index] = answer
    finally:
        _release(entries)
    metrics.record_scores(ZScoreDetector.name, len(entries), sum(anomaly))
    metrics.record_cache_hits(len(entries))


_SIDE_NAMES = np.array(["below", None, "above"], dtype=object)


def _edges(edges: FloatArray, listed: list[float]) -> list[float | None]:
    """A band's edges (also as a list) as the answer gives them: None for an unwatched
    (infinite) side."""
    finite = np.isfinite(edges)
    if finite.all():
        return listed  # type: ignore[return-value]
    out = edges.astype(object)
    out[~finite] = None
    return out.tolist()  # type: ignore[no-any-return]
