"""One point's answer, and batch answers put back in the order the points came in."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from anomaly_api import metrics
from anomaly_api.detectors import Scores
from anomaly_api.registry.cache import LoadedModel


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


def finite_or_none(number: float) -> float | None:
    return number if math.isfinite(number) else None


def score_point(
    loaded: LoadedModel, value: float, timestamp: float, cache_hit: bool = False
) -> Prediction:
    """Score one point against ``loaded`` and count it in the metrics (with the cache hit
    that found the model, when ``cache_hit``; other lookups count their own)."""
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
        lower=finite_or_none(point.lower),
        upper=finite_or_none(point.upper),
        direction=_SIDES[point.side],
    )
    metrics.record_predict(prediction.detector, prediction.anomaly, cache_hit)
    return prediction


def unsorted(scores: Scores, order: npt.NDArray[np.intp]) -> Scores:
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
