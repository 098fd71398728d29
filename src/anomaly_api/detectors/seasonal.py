"""``seasonal``: a periodic profile of the series, with robust bands on its residuals."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from anomaly_api.detectors.bands import (
    PointScore,
    Scores,
    band_point,
    band_scores,
    robust_scale,
    tail_unit,
)
from anomaly_api.detectors.base import Context, Detector
from anomaly_api.detectors.params import (
    CALIBRATED_THRESHOLD,
    DIRECTION,
    QUANTILE,
    JsonDict,
    Parameter,
)
from anomaly_api.detectors.series import FloatArray, Series
from anomaly_api.errors import InvalidInput

DAY = 86_400
WEEK = 7 * DAY
PERIODS = {"daily": DAY, "weekly": WEEK, "none": 0}
MAX_BINS = 2016  # a week of 5-minute bins
MIN_POINTS_PER_BIN = 4
# A period is kept only if it explains a real share of the spread: its residuals'
# robust scale must be at most this fraction of the scale without it.
MIN_IMPROVEMENT = 0.8
PERIOD = Parameter(
    "period",
    str,
    "auto",
    "'daily', 'weekly', 'none', or 'auto' to pick whichever explains the data best.",
    choices=("auto", "daily", "weekly", "none"),
)


def profile_bins(timestamps: FloatArray, period: int, bin_seconds: int) -> np.ndarray:
    """The profile bin of each timestamp: its phase within the period (UTC), binned."""
    return ((timestamps % period) // bin_seconds).astype(np.int64)


def fit_profile(
    timestamps: FloatArray, values: FloatArray, period: int, bin_seconds: int
) -> FloatArray:
    """The median of each bin; empty bins interpolated circularly from their neighbours."""
    bins = int(np.ceil(period / bin_seconds))
    index = profile_bins(timestamps, period, bin_seconds)
    # Sort by bin, then value: each bin's median sits in the middle of its run.
    order = np.lexsort((values, index))
    sorted_index, sorted_values = index[order], values[order]
    present, starts, counts = np.unique(sorted_index, return_index=True, return_counts=True)
    medians = (sorted_values[starts + (counts - 1) // 2] + sorted_values[starts + counts // 2]) / 2
    if present.size == bins:
        result: FloatArray = medians.astype(np.float64)
    else:
        result = np.interp(np.arange(bins), present, medians, period=bins).astype(np.float64)
    return result


class SeasonalDetector(Detector):
    """A daily or weekly profile (median per time-of-day/week bin) ± k calibrated units.

    Many monitored series repeat: traffic by hour of day and day of week, temperature
    by hour. A global band must be as wide as the whole cycle, so a night-time value
    at daytime level passes unseen. This detector learns the expected value for each
    phase of the period (the median of the training points that fall in that bin, as
    in STL's seasonal sub-series, Cleveland et al. 1990) and scores the residual from
    it with a robust scale (:func:`~anomaly_api.detectors.base.robust_scale`), so
    incidents inside the training data do not bend the profile.

    **Calibration.** The unit is the ``quantile`` (99th percentile) of the training
    residuals' absolute values, at least their robust sigma
    (:func:`~anomaly_api.detectors.bands.tail_unit`): ``score > 0.5`` means *farther
    from the profile than* ``threshold`` *times what all but 1% of the training points
    were*, the same on every series (models fitted before this keep sigma units).

    The period is ``period`` (``daily``, ``weekly``, ``none``), or ``period_seconds``
    when given, or with ``auto`` the candidate that shrinks the residual spread most
    (by at least 20%; otherwise no period, which is the ``robust`` detector). A period
    needs two full cycles of data. Bins are as fine as the sampling interval allows
    while holding about four points each. The predict timestamp chooses the bin.

    Examples
    --------
    >>> hours = np.arange(0, 14 * 24)
    >>> values = 10 + 5 * np.sin(2 * np.pi * hours / 24)
    >>> detector = SeasonalDetector().fit(Series.from_arrays(hours * 3600, values))
    >>> detector.period_
    86400
    >>> peak = 14 * 24 * 3600 + 6 * 3600  # 06:00 UTC, the daily peak
    >>> detector.score([peak, peak + 12 * 3600], [15.0, 15.0]).anomaly.tolist()
    [False, True]
    """

    name: ClassVar[str] = "seasonal"
    fit_cost_us: ClassVar[float] = 1.0
    score_cost_us: ClassVar[float] = 0.2
    description: ClassVar[str] = (
        "A daily/weekly profile learnt from the timestamps (or a given period) with robust "
        "bands on the residuals; uses the predict timestamp."
    )
    cooldown_default: ClassVar[int] = 4 * 3600  # cross-validated (docs/detection.md)
    min_points: ClassVar[int] = 5
    parameters: ClassVar[tuple[Parameter, ...]] = (
        CALIBRATED_THRESHOLD,
        DIRECTION,
        PERIOD,
        Parameter(
            "period_seconds",
            int,
            0,
            "A custom period in seconds; overrides 'period' when above 0.",
            minimum=0,
            maximum=366 * DAY,
        ),
        QUANTILE,
    )

    period_: int
    bin_seconds_: int
    profile_: FloatArray
    scale_: float
    unit_: float

    def _fit_core(self, series: Series) -> None:
        timestamps = series.timestamps.astype(np.float64)
        values = series.values
        best = (0, 1, np.array([float(np.median(values))]), robust_scale(values))
        for period in self._candidate_periods(series):
            bin_seconds = self._bin_seconds(series, period)
            profile = fit_profile(timestamps, values, period, bin_seconds)
            residuals = values - profile[profile_bins(timestamps, period, bin_seconds)]
            scale = robust_scale(residuals)
            forced = self._forced_period() is not None
            if forced or scale < best[3] * MIN_IMPROVEMENT:
                best = (period, bin_seconds, profile, scale)
        self.period_, self.bin_seconds_, self.profile_, self.scale_ = best
        residuals = values - self.expected(timestamps)
        self.unit_ = tail_unit(residuals, float(self.params["quantile"]), self.scale_)

    def _forced_period(self) -> int | None:
        if self.params["period_seconds"] > 0:
            return int(self.params["period_seconds"])
        if self.params["period"] != "auto":
            return PERIODS[self.params["period"]]
        return None

    def _candidate_periods(self, series: Series) -> list[int]:
        span = int(series.timestamps[-1] - series.timestamps[0])
        forced = self._forced_period()
        candidates = [DAY, WEEK] if forced is None else ([forced] if forced else [])
        return [period for period in candidates if span >= 2 * period]

    @staticmethod
    def _bin_seconds(series: Series, period: int) -> int:
        steps = np.diff(series.timestamps)
        steps = steps[steps > 0]
        interval = int(np.median(steps)) if steps.size else period
        bins = min(period // max(interval, 1), MAX_BINS, len(series) // MIN_POINTS_PER_BIN)
        if interval <= 0 or interval >= period:
            return int(np.ceil(period / max(bins, 1)))
        # A whole number of sampling intervals per bin: bins that straddle samples
        # unevenly hold 1 or 2 points of a cycle in turn and make the profile ragged.
        samples = int(np.ceil(period / interval / max(bins, 1)))
        return interval * samples

    def expected(self, timestamps: FloatArray) -> FloatArray:
        """The profile's value at each timestamp."""
        if self.period_ == 0:
            return np.full(timestamps.shape, self.profile_[0], dtype=np.float64)
        expected: FloatArray = self.profile_[
            profile_bins(timestamps, self.period_, self.bin_seconds_)
        ]
        return expected

    def _stream_core(self, context: Context, timestamps: FloatArray, values: FloatArray) -> Scores:
        half_width = np.array(self.params["threshold"] * self.unit_)
        return band_scores(values, self.expected(timestamps), half_width, self.params["direction"])

    def baseline_at(self, timestamp: float) -> float:
        """The profile's value at ``timestamp`` (the expected value itself)."""
        if self.period_ == 0:
            return float(self.profile_[0])
        return float(self.profile_[int(float(timestamp) % self.period_ // self.bin_seconds_)])

    def _observe_one(self, context: Context, timestamp: float, value: float) -> PointScore:
        if not math.isfinite(value):
            raise InvalidInput("value is not a finite number (NaN or infinity)", field="value")
        expected = self.baseline_at(timestamp)
        half_width = float(self.params["threshold"] * self.unit_)
        return band_point(float(value), expected, half_width, self.params["direction"])

    def _peek_one(self, context: Context, timestamp: float, value: float) -> PointScore:
        return self._observe_one(context, timestamp, value)

    def state(self) -> JsonDict:
        return {
            "period": self.period_,
            "bin_seconds": self.bin_seconds_,
            "profile": self.profile_.tolist(),
            "scale": self.scale_,
            "unit": self.unit_,
        }

    def _restore(self, state: Mapping[str, Any]) -> None:
        self.period_ = int(state["period"])
        self.bin_seconds_ = int(state["bin_seconds"])
        self.profile_ = np.asarray(state["profile"], dtype=np.float64)
        self.scale_ = float(state["scale"])
        self.unit_ = float(state.get("unit", self.scale_))  # older fits: sigma units
