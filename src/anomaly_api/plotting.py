"""Training data, expected value, band, flagged points and incidents, drawn to PNG bytes.

Uses matplotlib's object API on the Agg canvas (no pyplot, no display, no global
state, safe from worker threads). Long series are reduced before drawing to the
minimum and maximum of each of ``max_points / 2`` equal buckets, which keeps every
spike visible while a 1M-point series draws as fast as a 4,000-point one.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, replace

import numpy as np
from matplotlib.figure import Figure

from anomaly_api.detectors.bands import Scores
from anomaly_api.detectors.incidents import NEW
from anomaly_api.detectors.series import FloatArray, IntArray, Series


@dataclass(frozen=True, slots=True)
class PlotTitle:
    """What the title says."""

    series_id: str
    version: int
    detector: str
    threshold: float | None
    of_points: int | None = None
    """When the plot shows only the latest training points: how many there are in all."""


def downsample_minmax(
    timestamps: IntArray, values: FloatArray, max_points: int
) -> tuple[IntArray, FloatArray]:
    """Keep each bucket's minimum and maximum, in time order, so spikes survive.

    >>> ts, vs = downsample_minmax(np.arange(10), np.array([0, 9, 1, 1, 1, 1, 1, 1, -5, 1.0]), 4)
    >>> ts.tolist(), vs.tolist()
    ([0, 1, 5, 8], [0.0, 9.0, 1.0, -5.0])
    """
    keep = minmax_positions(values, max_points)
    return timestamps[keep], values[keep]


def minmax_positions(values: FloatArray, max_points: int) -> IntArray:
    """Positions of each bucket's minimum and maximum (all positions for short series)."""
    count = values.size
    if count <= max_points:
        return np.arange(count, dtype=np.int64)
    buckets = max(1, max_points // 2)
    edges = np.linspace(0, count, buckets + 1).astype(np.int64)
    starts = edges[:-1]
    minima = np.minimum.reduceat(values, starts)
    maxima = np.maximum.reduceat(values, starts)
    # The index of each bucket's min/max: the first position equal to it within the bucket.
    bucket_of = np.repeat(np.arange(buckets), np.diff(edges))
    is_min = values == minima[bucket_of]
    is_max = values == maxima[bucket_of]
    first_min = _first_in_bucket(is_min, bucket_of, buckets)
    first_max = _first_in_bucket(is_max, bucket_of, buckets)
    positions: IntArray = np.unique(np.concatenate([first_min, first_max]))
    return positions


def _first_in_bucket(mask: np.ndarray, bucket_of: np.ndarray, buckets: int) -> IntArray:
    positions = np.flatnonzero(mask)
    _, first = np.unique(bucket_of[positions], return_index=True)
    result: IntArray = positions[first].astype(np.int64)
    assert result.size == buckets
    return result


_DRAWABLE = 1e300
"""Beyond this magnitude matplotlib's axis arithmetic overflows."""


def _drawable_exponent(values: np.ndarray, scores: Scores) -> int:
    """0, or the power of ten to divide everything drawn by when it is too large to draw."""
    largest = 0.0
    for array in (values, scores.expected, scores.lower, scores.upper):
        finite = np.abs(array[np.isfinite(array)])
        if finite.size:
            largest = max(largest, float(finite.max()))
    if largest <= _DRAWABLE:
        return 0
    return math.floor(math.log10(largest))


def render_plot(series: Series, scores: Scores, title: PlotTitle, max_points: int = 4000) -> bytes:
    """A PNG of the training series against its model's band (:func:`plot_figure`)."""
    buffer = io.BytesIO()
    plot_figure(series, scores, title, max_points).savefig(buffer, format="png")
    return buffer.getvalue()


def plot_figure(series: Series, scores: Scores, title: PlotTitle, max_points: int = 4000) -> Figure:
    """The series against its model's band: the band as the model gives it (it is never
    widened around an incident), the points outside it in red, and each point that
    opened an incident ringed, with the legend beside the axes so that it hides none."""
    figure = Figure(figsize=(12, 4.5), dpi=100, layout="constrained")
    axes = figure.subplots()
    times = series.timestamps.astype("datetime64[s]")
    # Values near the float limit overflow the axis arithmetic: draw them scaled.
    exponent = _drawable_exponent(series.values, scores)
    factor = 10.0**exponent
    values = series.values / factor
    scores = replace(
        scores,
        expected=scores.expected / factor,
        lower=scores.lower / factor,
        upper=scores.upper / factor,
    )
    shown_ts, shown_values = downsample_minmax(series.timestamps, values, max_points)
    axes.plot(
        shown_ts.astype("datetime64[s]"),
        shown_values,
        color="#4c72b0",
        lw=0.8,
        label="training data",
        zorder=2,
    )
    expected = scores.expected
    if np.ptp(expected) == 0:
        edges = np.array([times[0], times[-1]]) if times.size > 1 else times[[0, 0]]
        band_x = edges
        expected_y = np.full(2, expected[0])
        lower_y = np.full(2, scores.lower[0])
        upper_y = np.full(2, scores.upper[0])
    else:
        # Positions, not timestamps: a series may repeat a timestamp.
        index = minmax_positions(expected, max_points)
        band_x = times[index]
        expected_y, lower_y, upper_y = expected[index], scores.lower[index], scores.upper[index]
    axes.plot(band_x, expected_y, color="#2ca02c", lw=0.8, label="expected", zorder=1)
    finite_low = np.where(np.isfinite(lower_y), lower_y, np.nan)
    finite_high = np.where(np.isfinite(upper_y), upper_y, np.nan)
    low_fill = np.where(np.isnan(finite_low), np.nanmin(values), finite_low)
    high_fill = np.where(np.isnan(finite_high), np.nanmax(values), finite_high)
    axes.fill_between(
        band_x, low_fill, high_fill, color="#2ca02c", alpha=0.15, label="normal band", zorder=0
    )
    for edge in (finite_low, finite_high):
        if np.isfinite(edge).any():
            axes.plot(band_x, edge, color="#2ca02c", lw=0.6, ls="--")
    flagged = np.flatnonzero(scores.anomaly)
    if flagged.size > max_points:  # keep the most unusual
        flagged = np.sort(flagged[np.argsort(scores.score[flagged])[-max_points:]])
    if flagged.size:
        axes.scatter(
            times[flagged],
            values[flagged],
            s=8,
            color="#d62728",
            zorder=3,
            label=f"outside band ({int(scores.anomaly.sum())})",
        )
    opened = np.flatnonzero(scores.incident == NEW) if scores.incident is not None else flagged[:0]
    if opened.size:
        axes.scatter(
            times[opened],
            values[opened],
            s=80,
            facecolors="none",
            edgecolors="#000000",
            linewidths=1.2,
            zorder=4,
            label=f"incident opened ({opened.size})",
        )
    threshold = "" if title.threshold is None else f", threshold {title.threshold:g}"
    part = ""
    if title.of_points is not None:
        part = f" · latest {len(series):,} of {title.of_points:,} training points"
    axes.set_title(
        f"{title.series_id} · version {title.version} · {title.detector}{threshold}{part}"
    )
    axes.set_xlabel("time (UTC)")
    axes.set_ylabel("value" if exponent == 0 else f"value (in units of 1e{exponent})")
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    axes.grid(alpha=0.3)
    return figure
