"""``trend``: the series climbs or falls faster than it ever did in training (a leak, a
filling disk, a slow failure), judged by the slope of its recent points."""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from typing import Any, ClassVar, Self

import numpy as np

from anomaly_api.detectors.bands import (
    ROUNDING,
    PointScore,
    Scores,
    decided_score,
    scores_of,
    side_units,
    sided_distance,
)
from anomaly_api.detectors.base import Context, Detector
from anomaly_api.detectors.params import (
    DIRECTIONS,
    JsonDict,
    Parameter,
)
from anomaly_api.detectors.seasonal import PERIOD, SeasonalDetector
from anomaly_api.detectors.series import FloatArray, Series
from anomaly_api.errors import InvalidInput

_LARGEST = sys.float_info.max


def slope_weights(window: int) -> FloatArray:
    """The least-squares slope of ``window`` equally spaced points is the dot product of
    these weights with the points (oldest first): ``(j - mean j) / sum (j - mean j)²``.

    >>> slope_weights(3).tolist()  # the slope of 1, 2, 3 is 1
    [-0.5, 0.0, 0.5]
    """
    centred = np.arange(window, dtype=np.float64) - (window - 1) / 2.0
    weights: FloatArray = centred / float(np.dot(centred, centred))
    return weights


class TrendContext(Context):
    """The residuals (value less the seasonal profile) of the latest points, oldest
    first: the window the next point's slope is fitted on, less the point itself; and
    their running sums ``s0 = sum r_j`` and ``s1 = sum j·r_j``, so that a point costs
    the same whatever the window (the sums are recomputed exactly once a window, so
    rounding cannot build up; None until first needed)."""

    __slots__ = ("age", "residuals", "sums")

    def __init__(
        self,
        residuals: list[float] | None = None,
        sums: tuple[float, float] | None = None,
        age: int = 0,
    ) -> None:
        super().__init__()
        self.residuals = [] if residuals is None else residuals
        self.sums = sums
        self.age = age

    def to_json(self) -> JsonDict:
        data: JsonDict = {"residuals": self.residuals}
        if self.sums is not None:
            data["sums"] = list(self.sums)
            data["age"] = self.age
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        residuals, sums, age = data.get("residuals"), data.get("sums"), data.get("age", 0)
        try:
            values = [float(item) for item in residuals] if isinstance(residuals, list) else []
            pair = (float(sums[0]), float(sums[1])) if isinstance(sums, list) else None
            age = int(age) if isinstance(age, int) and not isinstance(age, bool) else 0
        except (TypeError, ValueError, IndexError):
            return cls()
        if not all(math.isfinite(item) for item in values):
            return cls()
        if pair is not None and not all(math.isfinite(item) for item in pair):
            pair = None
        return cls(values, pair, age)

    def _copy(self) -> Self:
        return type(self)(list(self.residuals), self.sums, self.age)


def _exact_sums(residuals: list[float]) -> tuple[float, float]:
    """``sum r_j`` and ``sum j·r_j``, correctly rounded; infinite where they overflow."""
    try:
        return math.fsum(residuals), math.fsum(j * r for j, r in enumerate(residuals))
    except OverflowError:
        return sum(residuals), sum(j * r for j, r in enumerate(residuals))


class TrendDetector(Detector):
    """The least-squares slope of the last ``window`` points, the daily or weekly cycle
    taken out first, against the slopes of every window of the training data.

    A memory leak or a filling disk moves a series by a small fraction of its noise per
    point: no band sees one point of it until the sum is large, and a cumulative sum
    of the steps drowns in their noise. A straight line fitted to many points finds it:
    the slope of ``w`` points of noise ``s`` varies by only ``s·sqrt(12 / w³)`` (a
    hundredth of ``s`` for the default 48 points), while one spike barely tilts the
    line (the least-squares slope on time, the statistic behind regression trend
    tests; Sen 1968 and Mann-Kendall use its rank-based relatives). The residuals are
    the values less the ``seasonal`` detector's profile, so a daily cycle is no trend.
    Points are taken as equally spaced.

    **Calibration.** The slope of every window of the training residuals is computed;
    their median is the expected slope, and the ``quantile`` (99th percentile) of the
    windows' slopes above it, and below it, are the units of each side (at least their
    robust sigma). ``score`` is ``d² / (1 + d²)`` of the slope's distance from the
    median in ``threshold`` units: *a steeper climb (or fall) than all but 1% of the
    training windows, by* ``threshold`` *times that margin*. A training series shorter
    than two windows uses a window of half its points.

    The slope is linear in the newest point, so the band is exact: the values this
    point could take with the slope in bounds; ``expected`` is the value that would keep
    the slope at the median. A level shift tilts the line too, once it lies inside the
    window: this detector reports it (as a trend) after a few dozen points, later than
    a band detector does.

    Examples
    --------
    >>> rng = np.random.default_rng(2)
    >>> times = np.arange(3000) * 300
    >>> values = 50 + rng.normal(0, 1, 3000)
    >>> values[2000:] += 0.05 * np.arange(1000)  # a leak: 5% of the noise per point
    >>> detector = TrendDetector().fit(Series.from_arrays(times[:1500], values[:1500]))
    >>> scores = detector.score(times[1500:], values[1500:])
    >>> (np.flatnonzero(scores.incident == 1) + 1500).tolist()  # one alert, 7 points in
    [2007]
    """

    name: ClassVar[str] = "trend"
    fit_cost_us: ClassVar[float] = 1.2
    score_cost_us: ClassVar[float] = 5.0
    description: ClassVar[str] = (
        "The least-squares slope of the last points (daily cycle removed) against the "
        "training windows' slopes: leaks, filling disks, slow drifts."
    )
    min_points: ClassVar[int] = 10
    context_type: ClassVar[type[Context]] = TrendContext
    learns: ClassVar[str] = (
        "every point enters the window the slope is fitted on; the profile, the expected "
        "slope and its units change when it is fitted again"
    )
    cooldown_default: ClassVar[int] = 4 * 3600  # cross-validated (docs/detection.md)
    parameters: ClassVar[tuple[Parameter, ...]] = (
        Parameter(
            "threshold",
            float,
            1.5,
            "How far the slope may lie from the training windows' median slope, in "
            "calibrated units (the 99th percentile of their slopes above it, or below it).",
            minimum=0.0,
            exclusive_minimum=True,
        ),
        Parameter(
            "window",
            int,
            48,
            "How many of the latest points the slope is fitted on (at most half the "
            "training series: a shorter series uses that).",
            minimum=3,
            maximum=2016,  # a week of 5-minute points; the stream keeps this many
        ),
        Parameter(
            "direction",
            str,
            "both",
            "Which trends are anomalies: 'both', only 'upper' (climbing faster than in "
            "training) or only 'lower' (falling faster).",
            choices=DIRECTIONS,
        ),
        PERIOD,
        Parameter(
            "quantile",
            float,
            0.99,
            "Quantile of the training windows' slopes above (and below) their median that "
            "is one unit on each side.",
            minimum=0.5,
            maximum=0.9999,
        ),
    )

    seasonal_: SeasonalDetector
    window_: int
    center_: float
    unit_high_: float
    unit_low_: float
    tail_: list[float]

    def _fit_core(self, series: Series) -> None:
        self.seasonal_ = SeasonalDetector({"period": self.params["period"]}).fit(series)
        residuals = series.values - self.seasonal_.expected(series.timestamps.astype(np.float64))
        window = max(min(int(self.params["window"]), residuals.size // 2), 3)
        self.window_ = window
        # Every training window's slope: a correlation with the weights.
        slopes = np.correlate(residuals, slope_weights(window), mode="valid")
        self.center_ = float(np.median(slopes))
        deviations = slopes - self.center_
        # A perfectly straight series has one slope; rounding must not become a unit.
        floor = ROUNDING * float(np.median(np.abs(slopes)))
        self.unit_high_, self.unit_low_ = side_units(
            deviations, float(self.params["quantile"]), floor
        )
        self.tail_ = residuals[-(window - 1) :].tolist()
        if not all(math.isfinite(item) for item in _exact_sums(self.tail_)):
            raise InvalidInput(
                f"trend cannot fit a slope over {window} points of values this large: its "
                "sums overflow floating point",
                field="values",
            )
        self._derive()

    def _derive(self) -> None:
        threshold = float(self.params["threshold"])
        window = self.window_
        self._middle = (window - 1) / 2.0
        self._inverse_sxx = 12.0 / (window * (window * window - 1.0))
        self._newest = self._middle * self._inverse_sxx
        direction = self.params["direction"]
        self._watch_upper = direction in ("both", "upper")
        self._watch_lower = direction in ("both", "lower")
        self._high = threshold * self.unit_high_
        self._low = threshold * self.unit_low_

    def initial_context(self) -> TrendContext:
        return TrendContext(list(self.tail_))

    def baseline_at(self, timestamp: float) -> float:
        return self.seasonal_.baseline_at(timestamp)

    def _step(self, context: TrendContext, profile: float, value: float) -> PointScore:
        """One point: the slope with it as the newest of the window, the band of values
        that keep the slope in bounds; the window moves on."""
        residuals = context.residuals
        keep = self.window_ - 1
        residual = value - profile
        if len(residuals) < keep:  # the start of a plot of the training data
            residuals.append(residual)
            context.sums = None
            return PointScore(profile, -math.inf, math.inf, 0.0, False, 0)
        if len(residuals) > keep or context.sums is None:
            del residuals[: len(residuals) - keep]
            context.sums, context.age = _exact_sums(residuals), 0
        s0, s1 = context.sums
        # The slope is the others' part plus the newest point's weight times it.
        others = (s1 - self._middle * s0) * self._inverse_sxx
        if not math.isfinite(others + residual):
            # Values near the float limit: no slope can be computed, and such values
            # were not in training; flagged until they leave the window.
            self._slide(context, residual, s0, s1)
            return PointScore(profile, -_LARGEST, _LARGEST, 1.0, True, 0)
        newest = self._newest
        slope = others + newest * residual
        expected = profile + (self.center_ - others) / newest
        upper = profile + (self.center_ + self._high - others) / newest
        lower = profile + (self.center_ - self._low - others) / newest
        # Beyond float range the edge is still an edge (None on the wire means unwatched).
        upper = min(upper, _LARGEST) if self._watch_upper else math.inf
        lower = max(lower, -_LARGEST) if self._watch_lower else -math.inf
        distance = sided_distance(
            slope - self.center_, self._high, self._low, self._watch_upper, self._watch_lower
        )
        side = 1 if value > upper else -1 if value < lower else 0
        anomaly = side != 0
        score = decided_score(distance, anomaly)
        self._slide(context, residual, s0, s1)
        return PointScore(expected, lower, upper, score, anomaly, side)

    def _slide(self, context: TrendContext, residual: float, s0: float, s1: float) -> None:
        """The window moves on: the oldest residual leaves, ``residual`` enters at the
        end, and the sums follow (exactly again once a window)."""
        residuals = context.residuals
        keep = len(residuals)
        oldest = residuals.pop(0)
        residuals.append(residual)
        context.age += 1
        if context.age >= keep or not math.isfinite(s0 + s1):
            context.sums, context.age = _exact_sums(residuals), 0
        else:
            rest = s0 - oldest
            context.sums = (rest + residual, s1 - rest + (keep - 1) * residual)

    def _stream_core(self, context: Context, timestamps: FloatArray, values: FloatArray) -> Scores:
        assert isinstance(context, TrendContext)
        profile = self.seasonal_.expected(timestamps)
        points = [
            self._step(context, center, value)
            for center, value in zip(profile.tolist(), values.tolist(), strict=True)
        ]
        return scores_of(points)

    def _observe_one(self, context: Context, timestamp: float, value: float) -> PointScore:
        assert isinstance(context, TrendContext)
        if not math.isfinite(value):
            raise InvalidInput("value is not a finite number (NaN or infinity)", field="value")
        return self._step(context, self.seasonal_.baseline_at(timestamp), float(value))

    def fitted_scores(self, series: Series) -> Scores:
        return self.score_stream(TrendContext(), series.timestamps, series.values)

    def state(self) -> JsonDict:
        return {
            "seasonal": self.seasonal_.state(),
            "window": self.window_,
            "center": self.center_,
            "unit_high": self.unit_high_,
            "unit_low": self.unit_low_,
            "tail": self.tail_,
        }

    def _restore(self, state: Mapping[str, Any]) -> None:
        self.seasonal_ = SeasonalDetector.from_state(
            {"period": self.params["period"]}, state["seasonal"]
        )
        self.window_ = int(state["window"])
        self.center_ = float(state["center"])
        self.unit_high_ = float(state["unit_high"])
        self.unit_low_ = float(state["unit_low"])
        self.tail_ = [float(item) for item in state["tail"]]
        self._derive()
