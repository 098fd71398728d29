"""Training data, the points scored since, expected value, band, flagged points and
incidents, drawn to PNG (or SVG) bytes.

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
from matplotlib.axes import Axes
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
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
    caption: str | None = None
    """A second line: the detector's chosen period and parameters."""


@dataclass(frozen=True, slots=True)
class History:
    """The points the series was scored on since (``GET /series/{id}/points``), with what
    was answered for each; ``lower``/``upper`` NaN on an unwatched side."""

    timestamps: IntArray
    values: FloatArray
    expected: FloatArray
    lower: FloatArray
    upper: FloatArray
    anomaly: np.ndarray
    opened: np.ndarray | None = None
    """Per point, whether it opened an incident when it was scored."""


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


def render_plot(
    series: Series,
    scores: Scores,
    title: PlotTitle,
    max_points: int = 4000,
    history: History | None = None,
    image: str = "png",
) -> bytes:
    """A PNG (or ``image="svg"``) of the training series and the scored history against
    the model's band (:func:`plot_figure`)."""
    buffer = io.BytesIO()
    plot_figure(series, scores, title, max_points, history).savefig(buffer, format=image)
    return buffer.getvalue()


def plot_figure(
    series: Series,
    scores: Scores,
    title: PlotTitle,
    max_points: int = 4000,
    history: History | None = None,
) -> Figure:
    """The series against its model's band: the band as the model gives it (it is never
    widened around an incident), the points outside it in red, and each point that
    opened an incident ringed; then the points scored since (``history``) with the band
    and expected value each was answered with. Flagged points and incidents are drawn on
    top of everything, the expected value above the data, the legend beside the axes so
    that it hides none, and dates on the time axis however short the series."""
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
    axes.plot(band_x, expected_y, color="#1b7a1b", lw=1.2, label="expected", zorder=3)
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
            s=10,
            color="#d62728",
            zorder=5,
            label=f"outside band in training ({int(scores.anomaly.sum())})",
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
            zorder=6,
            label=f"incident opened ({opened.size})",
        )
    if history is not None and history.timestamps.size:
        _draw_history(axes, history, factor, max_points)
    threshold = "" if title.threshold is None else f", threshold {title.threshold:g}"
    part = ""
    if title.of_points is not None:
        part = f" · latest {len(series):,} of {title.of_points:,} training points"
    heading = f"{title.series_id} · version {title.version} · {title.detector}{threshold}{part}"
    if title.caption:
        heading += f"\n{title.caption}"
    axes.set_title(heading, fontsize="medium")
    locator = AutoDateLocator()  # type: ignore[no-untyped-call]
    axes.xaxis.set_major_locator(locator)
    formatter = ConciseDateFormatter(locator)  # type: ignore[no-untyped-call]
    axes.xaxis.set_major_formatter(formatter)  # the date on every axis, however short
    axes.set_xlabel("time (UTC)")
    axes.set_ylabel("value" if exponent == 0 else f"value (in units of 1e{exponent})")
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    axes.grid(alpha=0.3)
    return figure


def _draw_history(axes: Axes, history: History, factor: float, max_points: int) -> None:
    """The scored points: their values, the band and expected value each was answered
    with, and the flagged ones on top."""
    keep = minmax_positions(history.values, max_points)
    times = history.timestamps.astype("datetime64[s]")
    values = history.values / factor
    axes.plot(
        times[keep], values[keep], color="#8172b3", lw=0.8, zorder=2,
        label=f"scored since ({history.timestamps.size:,})",
    )  # fmt: skip
    lower = np.where(np.isfinite(history.lower), history.lower / factor, np.nan)
    upper = np.where(np.isfinite(history.upper), history.upper / factor, np.nan)
    low_fill = np.where(np.isnan(lower), np.nanmin(values), lower)
    high_fill = np.where(np.isnan(upper), np.nanmax(values), upper)
    axes.fill_between(
        times[keep], low_fill[keep], high_fill[keep], color="#8172b3", alpha=0.12, zorder=0
    )
    axes.plot(times[keep], history.expected[keep] / factor, color="#1b7a1b", lw=1.0, zorder=3)
    flagged = np.flatnonzero(history.anomaly)
    if flagged.size > max_points:
        flagged = flagged[-max_points:]
    if flagged.size:
        axes.scatter(
            times[flagged], values[flagged], s=14, color="#d62728", marker="D", zorder=5,
            label=f"flagged when scored ({int(np.count_nonzero(history.anomaly))})",
        )  # fmt: skip
    opened = flagged[:0] if history.opened is None else np.flatnonzero(history.opened)
    if opened.size:
        axes.scatter(
            times[opened[-max_points:]], values[opened[-max_points:]], s=80,
            facecolors="none", edgecolors="#000000", linewidths=1.2, zorder=6,
            label=f"incident opened when scored ({opened.size})",
        )  # fmt: skip
