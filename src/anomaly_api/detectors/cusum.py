"""``cusum``: level shifts too small for any band, found by accumulating the evidence."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar, Self

import numpy as np

from anomaly_api.detectors.bands import (
    PointScore,
    Scores,
    decided_score,
    scores_of,
    tail_unit,
)
from anomaly_api.detectors.base import Context, Detector
from anomaly_api.detectors.params import DIRECTION, MAX_THRESHOLD, JsonDict, Parameter
from anomaly_api.detectors.seasonal import PERIOD, SeasonalDetector
from anomaly_api.detectors.series import FloatArray, Series
from anomaly_api.errors import InvalidInput

_Z99 = 2.5758293035489004
"""The 99.5th percentile of the standard normal: a normal series' 99th-percentile
absolute deviation is this many sigmas, so ``q99 / _Z99`` is its sigma."""


class CusumContext(Context):
    """The two cumulative sums: the evidence so far for a shift up and for a shift down."""

    __slots__ = ("high", "low")

    def __init__(self, high: float = 0.0, low: float = 0.0) -> None:
        super().__init__()
        self.high = high
        self.low = low

    def to_json(self) -> JsonDict:
        return {"high": self.high, "low": self.low}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        high, low = float(data.get("high", 0.0)), float(data.get("low", 0.0))
        if not (math.isfinite(high) and math.isfinite(low)):
            high = low = 0.0
        return cls(max(high, 0.0), max(low, 0.0))

    def _copy(self) -> Self:
        return type(self)(self.high, self.low)


class CusumDetector(Detector):
    """Page's cumulative sum (CUSUM) of the residuals from the seasonal profile: a shift
    of the level by a fraction of the noise, invisible to any band a single point is
    judged by, adds up point after point until it is evidence.

    Each residual ``z`` (the value less the profile of the ``seasonal`` detector, in
    units of the series' calibrated sigma: its 99th-percentile deviation over 2.576, at
    least its robust sigma) feeds two sums, ``high = max(0, high + z - drift)`` and
    ``low = max(0, low - z - drift)`` (Page 1954; Montgomery, *Introduction to
    Statistical Quality Control*, ch. 9). A sum above ``threshold`` is an alarm, and
    the sum that fired starts again from 0, so a lasting shift alarms again every few
    points (one ``ongoing`` incident) and a passing one stops. The sums are a recursion,
    so a batch is scored point by point (about a microsecond each). With the defaults
    (``drift`` 0.5, ``threshold`` 5) a normal series alarms once in about 465 points of
    no change, and a shift of one sigma is found after about 10 points.

    ``score`` is ``d² / (1 + d²)`` of ``d`` = the larger sum over ``threshold``: 0.5
    exactly at the alarm. The band is honest in CUSUM's own terms: the values this point
    could take without an alarm, given the evidence so far, so it narrows on the side a
    shift is building up and is widest (``threshold + drift`` units) when there is none.

    Examples
    --------
    >>> rng = np.random.default_rng(5)
    >>> values = 100 + rng.normal(0, 1, 700)
    >>> detector = CusumDetector().fit(Series.from_arrays(np.arange(500) * 60, values[:500]))
    >>> values[600:] += 1.5  # a shift of 1.5 sigmas: inside any 3-sigma band
    >>> scores = detector.score(np.arange(500, 700) * 60, values[500:])
    >>> flagged = np.flatnonzero(scores.anomaly) + 500
    >>> int(flagged[0]), int((scores.incident == 1).sum())  # found 3 points in; one incident
    (603, 1)
    """

    name: ClassVar[str] = "cusum"
    fit_cost_us: ClassVar[float] = 1.0
    score_cost_us: ClassVar[float] = 3.0
    stream_cost_us: ClassVar[float] = 70.0
    description: ClassVar[str] = (
        "Page's CUSUM of the residuals from the seasonal profile: level shifts too small "
        "for a band, found by accumulating the evidence."
    )
    min_points: ClassVar[int] = 10
    context_type: ClassVar[type[Context]] = CusumContext
    learns: ClassVar[str] = (
        "every point moves the two cumulative sums (the one that alarms starts again); the "
        "profile and units change when it is fitted again"
    )
    cooldown_default: ClassVar[int] = 86_400  # cross-validated (docs/detection.md)
    parameters: ClassVar[tuple[Parameter, ...]] = (
        Parameter(
            "threshold",
            float,
            5.0,
            "The cumulative sum, in calibrated sigmas, that is an alarm (h).",
            minimum=0.0,
            exclusive_minimum=True,
            maximum=MAX_THRESHOLD,
        ),
        DIRECTION,
        PERIOD,
        Parameter(
            "drift",
            float,
            0.5,
            "Allowance per point, in calibrated sigmas: shifts smaller than this are not "
            "accumulated (k; half the shift to be found fastest).",
            minimum=0.0,
            maximum=100.0,
        ),
    )

    seasonal_: SeasonalDetector
    unit_: float

    def _fit_core(self, series: Series) -> None:
        self.seasonal_ = SeasonalDetector({"period": self.params["period"]}).fit(series)
        residuals = series.values - self.seasonal_.expected(series.timestamps.astype(np.float64))
        sigma = self.seasonal_.scale_
        self.unit_ = max(tail_unit(residuals, 0.99, sigma) / _Z99, sigma)
        self._derive()

    def _derive(self) -> None:
        self._threshold = float(self.params["threshold"])
        self._drift = float(self.params["drift"])
        direction = self.params["direction"]
        self._up = direction in ("both", "upper")
        self._down = direction in ("both", "lower")

    def initial_context(self) -> CusumContext:
        return CusumContext()

    def baseline_at(self, timestamp: float) -> float:
        return self.seasonal_.baseline_at(timestamp)

    def _step(self, context: CusumContext, expected: float, value: float) -> PointScore:
        """One point: the sums, the decision, the band; the context moves on."""
        unit, threshold, drift = self.unit_, self._threshold, self._drift
        deviation = value - expected
        if unit > 0:
            z = deviation / unit
        else:  # a constant training series: any departure is overwhelming evidence
            z = math.inf if deviation > 0 else -math.inf if deviation < 0 else 0.0
        high = context.high + z - drift if self._up else 0.0
        high = high if high > 0.0 else 0.0
        low = context.low - z - drift if self._down else 0.0
        low = low if low > 0.0 else 0.0
        upper = expected + (threshold + drift - context.high) * unit if self._up else math.inf
        lower = expected - (threshold + drift - context.low) * unit if self._down else -math.inf
        evidence = high if high >= low else low
        anomaly = evidence > threshold
        score = decided_score(evidence / threshold, anomaly)
        side = 0
        if anomaly:
            side = 1 if high >= low else -1
        # The sum that fired starts again.
        context.high = 0.0 if high > threshold else high
        context.low = 0.0 if low > threshold else low
        return PointScore(expected, lower, upper, score, anomaly, side)

    def _stream_core(self, context: Context, timestamps: FloatArray, values: FloatArray) -> Scores:
        assert isinstance(context, CusumContext)
        expected = self.seasonal_.expected(timestamps)
        points = [
            self._step(context, center, value)
            for center, value in zip(expected.tolist(), values.tolist(), strict=True)
        ]
        return scores_of(points)

    def _observe_one(self, context: Context, timestamp: float, value: float) -> PointScore:
        assert isinstance(context, CusumContext)
        if not math.isfinite(value):
            raise InvalidInput("value is not a finite number (NaN or infinity)", field="value")
        return self._step(context, self.seasonal_.baseline_at(timestamp), float(value))

    def fitted_scores(self, series: Series) -> Scores:
        return self.score_stream(CusumContext(), series.timestamps, series.values)

    def state(self) -> JsonDict:
        return {"seasonal": self.seasonal_.state(), "unit": self.unit_}

    def _restore(self, state: Mapping[str, Any]) -> None:
        self.seasonal_ = SeasonalDetector.from_state(
            {"period": self.params["period"]}, state["seasonal"]
        )
        self.unit_ = float(state["unit"])
        self._derive()
