"""The band arithmetic every detector shares: per-point answers as arrays or as floats.

Scores are comparable across detectors because each is the same function of *how many
band half-widths* the point lies from the expected value (see :func:`band_scores`): 0 at
the expected value, exactly 0.5 on the edge of the band, towards 1 far outside it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from statistics import NormalDist

import numpy as np
import numpy.typing as npt

from anomaly_api.detectors.params import Direction
from anomaly_api.detectors.series import FloatArray

JUST_ABOVE_HALF = float(np.nextafter(0.5, 1.0))


@dataclass(frozen=True, slots=True)
class Scores:
    """Per-point answers of a detector, as parallel arrays.

    ``lower`` is ``-inf`` and ``upper`` ``+inf`` on a side the detector does not watch
    (``direction="upper"`` or ``"lower"``). ``side`` is +1 where the value lies above
    ``upper``, -1 below ``lower`` and 0 inside the band.
    """

    expected: FloatArray
    lower: FloatArray
    upper: FloatArray
    score: FloatArray
    anomaly: npt.NDArray[np.bool_]
    side: npt.NDArray[np.int8] = field(repr=False)
    incident: npt.NDArray[np.int8] | None = field(default=None, repr=False)
    """Per point, whether it opens an incident (:data:`~anomaly_api.detectors.incidents.NEW`),
    belongs to an open one (``ONGOING``) or is not anomalous (``NONE``); None until
    :meth:`~anomaly_api.detectors.base.Detector.score_stream` marks them."""

    def __len__(self) -> int:
        return int(self.score.size)


def consistent_score(score: FloatArray, anomaly: npt.NDArray[np.bool_]) -> FloatArray:
    """``score`` nudged so that ``anomaly == (score > 0.5)`` holds exactly.

    Rounding may put a point a hair outside the band with a deviation of exactly one
    half-width (or inside with a hair more); the decision is what users act on, so the
    score follows it.
    """
    nudged: FloatArray = np.where(
        anomaly, np.maximum(score, JUST_ABOVE_HALF), np.minimum(score, 0.5)
    )
    return nudged


def band_scores(
    values: FloatArray,
    expected: FloatArray,
    half_width: FloatArray,
    direction: Direction,
) -> Scores:
    """Score ``values`` against the band ``expected ± half_width``.

    The deviation ``d`` is the distance from ``expected`` in half-widths, on the watched
    side(s) only, and ``score = d² / (1 + d²)``: 0 at the expected value, 0.5 on the
    band's edge, 0.8 at twice the half-width, 0.9 at three times. A point is anomalous
    when it lies strictly outside the band (``d > 1``), so ``anomaly == (score > 0.5)``.

    A zero half-width (a constant training series) makes any departure from the
    expected value infinitely unusual: score 1 and anomalous.

    >>> s = band_scores(np.array([10.0, 13.0, 4.0]), np.array([10.0]), np.array([3.0]), "both")
    >>> s.score.tolist(), s.anomaly.tolist(), s.side.tolist()
    ([0.0, 0.5, 0.8], [False, False, True], [0, 0, -1])
    """
    shape = values.shape
    expected = np.asarray(expected, dtype=np.float64)
    half_width = np.asarray(half_width, dtype=np.float64)
    watch_upper = direction in ("both", "upper")
    watch_lower = direction in ("both", "lower")
    # Finite values far apart (1e308 and -1e308) may overflow to inf: that is a deviation
    # beyond any band, which the arithmetic below turns into a score of 1. Large batches
    # are the point of this function, so it avoids temporaries where it can; band_point
    # (one point) mirrors it operation for operation.
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        deviation = values - expected
        if watch_upper and watch_lower:
            watched = np.abs(deviation)
        elif watch_upper:
            watched = np.maximum(deviation, 0.0)
        else:
            watched = np.maximum(np.negative(deviation, out=deviation), 0.0)
        if half_width.ndim == 0 and half_width > 0:
            relative = np.divide(watched, half_width, out=watched)
        else:
            relative = np.where(
                half_width > 0, watched / half_width, np.where(watched > 0, np.inf, 0.0)
            )
        # d²/(1+d²) written as 1/(1+(1/d)²), which cannot overflow to inf/inf for huge d.
        score = np.divide(1.0, relative, out=relative)
        np.multiply(score, score, out=score)
        score += 1.0
        np.divide(1.0, score, out=score)
        # A band the same for every point stays a broadcast view: no array is written.
        lower = expected - half_width if watch_lower else np.float64(-np.inf)
        upper = expected + half_width if watch_upper else np.float64(np.inf)
    above = values > upper
    below = values < lower
    anomaly = above | below
    score = consistent_score(score, anomaly)
    side = above.view(np.int8) - below.view(np.int8)
    return Scores(
        expected=np.broadcast_to(expected, shape),
        lower=np.broadcast_to(lower, shape),
        upper=np.broadcast_to(upper, shape),
        score=score,
        anomaly=anomaly,
        side=side,
    )


@dataclass(slots=True)
class PointScore:
    """One point's answer, as plain floats: :class:`Scores` for a single point. (Not
    frozen: a frozen dataclass costs ~2 µs more to build, a tenth of a single predict.)"""

    expected: float
    lower: float
    upper: float
    score: float
    anomaly: bool
    side: int
    incident: int = 0
    """:data:`~anomaly_api.detectors.incidents.NEW`, ``ONGOING`` or ``NONE``."""


def distance_score(distance: float) -> float:
    """``d² / (1 + d²)`` of a distance ``d >= 0`` in band half-widths, without
    overflowing: 1.0 for an infinite or astronomically large ``d``.

    >>> distance_score(1.0), distance_score(0.0), distance_score(1e200)
    (0.5, 0.0, 1.0)
    """
    if distance <= 0.0:
        return 0.0
    inverse = 1.0 / distance
    return 1.0 / (1.0 + inverse * inverse)


def decided_score(distance: float, anomaly: bool) -> float:
    """:func:`distance_score`, nudged to agree with the decision: above 0.5 exactly when
    ``anomaly`` (rounding may put a point on the edge on either side of it).

    >>> decided_score(1.0, True) > 0.5, decided_score(1.2, False)
    (True, 0.5)
    """
    score = distance_score(distance)
    if anomaly:
        return score if score > 0.5 else JUST_ABOVE_HALF
    return score if score <= 0.5 else 0.5


def sided_distance(
    rise: float, high: float, low: float, watch_upper: bool, watch_lower: bool
) -> float:
    """How far a statistic lies from its median, in the margin of the side it is on
    (``rise`` above it, ``high`` and ``low`` the margins); 0 on a side not watched."""
    if rise >= 0.0:
        return ratio(rise, high) if watch_upper else 0.0
    return ratio(-rise, low) if watch_lower else 0.0


def scores_of(points: Sequence[PointScore]) -> Scores:
    """Answers computed point by point (detectors whose state is a recursion), as
    arrays; the scores agree with the decisions (:func:`consistent_score`)."""
    anomaly = np.array([point.anomaly for point in points], dtype=np.bool_)
    return Scores(
        expected=np.array([point.expected for point in points], dtype=np.float64),
        lower=np.array([point.lower for point in points], dtype=np.float64),
        upper=np.array([point.upper for point in points], dtype=np.float64),
        score=consistent_score(
            np.array([point.score for point in points], dtype=np.float64), anomaly
        ),
        anomaly=anomaly,
        side=np.array([point.side for point in points], dtype=np.int8),
    )


def ratio(excess: float, margin: float) -> float:
    """``excess / margin`` in band half-widths; a zero margin (a constant training
    series) makes any excess infinitely far."""
    if margin > 0.0:
        return excess / margin
    return math.inf if excess > 0.0 else 0.0


ROUNDING = 1e-9
"""A margin below this fraction of a statistic's own size is rounding, not spread: a
perfectly regular series (a straight ramp, steps all alike) must not turn the last
bits of its arithmetic into alarms."""


def side_units(deviations: FloatArray, quantile: float, floor: float = 0.0) -> tuple[float, float]:
    """The calibrated units above and below a median: the ``quantile`` of the
    ``deviations`` (from that median) above it, and of those below it, each at least
    their robust sigma and ``floor``. For statistics whose normal rises are not like
    their falls (a window's activity, its slope), each side gets its own margin.

    >>> side_units(np.array([-1.0, 0.0, 0.0, 4.0]), 0.99)
    (4.0, 1.0)
    """
    scale = robust_scale(deviations, 0.0)
    rises, falls = deviations[deviations > 0], -deviations[deviations < 0]
    high = float(np.quantile(rises, quantile)) if rises.size else 0.0
    low = float(np.quantile(falls, quantile)) if falls.size else 0.0
    return max(high, scale, floor), max(low, scale, floor)


def band_point(value: float, expected: float, half_width: float, direction: str) -> PointScore:
    """:func:`band_scores` for one point, in plain float arithmetic (no arrays).

    A single predict is the service's hot path; numpy's per-call overhead on arrays of
    one element costs more than the arithmetic. This mirrors :func:`band_scores`
    operation for operation, so both give the same bits (``tests/detectors`` checks).

    >>> band_point(13.0, 10.0, 3.0, "both")
    PointScore(expected=10.0, lower=7.0, upper=13.0, score=0.5, anomaly=False, side=0, incident=0)
    >>> band_point(4.0, 10.0, 3.0, "both").side
    -1
    """
    watch_upper = direction in ("both", "upper")
    watch_lower = direction in ("both", "lower")
    deviation = value - expected  # may overflow to inf, as in band_scores
    watched = 0.0
    if watch_upper and deviation > 0:
        watched = deviation
    if watch_lower and deviation < 0:
        watched = -deviation
    # A zero-width band (a constant training series): any departure is infinitely far.
    relative = watched / half_width if half_width > 0 else (math.inf if watched > 0 else 0.0)
    if relative == 0:
        score = 0.0
    else:
        inverse = 1.0 / relative
        score = 1.0 / (1.0 + inverse * inverse)
    lower = expected - half_width if watch_lower else -math.inf
    upper = expected + half_width if watch_upper else math.inf
    side = 1 if value > upper else -1 if value < lower else 0
    anomaly = side != 0
    score = max(score, JUST_ABOVE_HALF) if anomaly else min(score, 0.5)
    return PointScore(expected, lower, upper, score, anomaly, side)


_MAD_TO_SIGMA = 1.482602218505602  # 1 / Phi^-1(3/4): MAD of a normal sample -> its sigma
_MEANAD_TO_SIGMA = 1.2533141373155003  # sqrt(pi / 2): mean absolute deviation -> sigma


def robust_scale(values: FloatArray, center: float | None = None) -> float:
    """A spread estimate that a few outliers cannot inflate: the scaled MAD.

    When more than half the values are identical (a counter that is mostly 0) the MAD
    is 0 even though the series varies; then the scaled *mean* absolute deviation is
    used, as Iglewicz and Hoaglin's modified z-score does. 0 only for a constant series.

    >>> robust_scale(np.array([1.0, 2.0, 3.0, 4.0, 100.0]))
    1.482602218505602
    >>> round(robust_scale(np.array([0.0, 0.0, 0.0, 0.0, 5.0])), 4)
    1.2533
    """
    if values.size == 0:
        return 0.0
    middle = float(np.median(values)) if center is None else center
    deviations = np.abs(values - middle)
    mad = float(np.median(deviations))
    if mad > 0:
        return mad * _MAD_TO_SIGMA
    return float(deviations.mean()) * _MEANAD_TO_SIGMA


OUTLIER_CUT = 3.5
"""Iglewicz & Hoaglin's (1993) cut-off: a modified z-score beyond 3.5 is an outlier."""


def tail_unit(
    residuals: FloatArray,
    quantile: float,
    scale: float,
    outlier_cut: float | None = None,
    few_points: bool = True,
) -> float:
    """The calibrated unit of deviation: the ``quantile`` of the training residuals'
    absolute values, never below ``scale`` (their robust sigma).

    A band ``k`` units wide then means the same on every series: ``k`` times as far
    out as all but ``1 - quantile`` of the series' own training points lay, whatever
    the shape of its distribution. A sigma-based band is exceeded by 0.006% of normal
    points but by several percent of a heavy-tailed series' points, so one threshold
    cannot serve a fleet; normalising by the series' own empirical distribution is the
    idea of NAB's anomaly likelihood (Ahmad et al. 2017) and of the quantile-based
    thresholds of monitoring tools. 0 only for a constant series.

    With ``outlier_cut``, residuals farther than that many ``scale`` units (training
    incidents, by Iglewicz & Hoaglin's rule) are left out first, so that incidents in
    the training data cannot widen the band (the ``robust`` detector's promise).
    A short training series has few points beyond the quantile: :func:`tail_quantile`
    extrapolates from more of them, unless ``few_points`` is False (the plain quantile).

    >>> round(tail_unit(np.arange(-1000.0, 1001.0) / 10, 0.99, 1.0), 2)
    99.0
    """
    distances = np.abs(residuals)
    if outlier_cut is not None and scale > 0:
        distances = distances[distances <= outlier_cut * scale]
    if distances.size == 0:
        return scale
    if not few_points:
        return max(float(np.quantile(distances, quantile)), scale)
    return max(tail_quantile(distances, quantile), scale)


MIN_TAIL_POINTS = 10
"""How many training points must lie beyond a quantile for it to be read off them: with
fewer, the 99th percentile of 100 points is their largest one, and one incident in a
short training series sets the band (cross-validated: docs/detection.md)."""


def tail_quantile(distances: FloatArray, quantile: float) -> float:
    """The ``quantile`` of ``distances`` (absolute deviations), read off the training
    points when at least :data:`MIN_TAIL_POINTS` lie beyond it. From a shorter series:
    the :data:`MIN_TAIL_POINTS`-th largest distance (at most the median), stretched to
    ``quantile`` as a normal tail would be from that rank (the ratio of the
    half-normal's quantiles, ``z((1 + q) / 2)``).

    A tail quantile is only as good as the points beyond it: the 99th percentile of 100
    points is their largest, and one incident in a short training series would set
    the band. Extrapolating from a lower order statistic with a parametric tail is the
    usual remedy when they are few (the idea of peaks-over-threshold estimation, e.g.
    Siffer et al. 2017, with the simplest tail).

    >>> distances = np.abs(np.random.default_rng(0).normal(0.0, 1.0, 100))  # sigma 1: q99 2.58
    >>> round(float(np.quantile(distances, 0.99)), 2), round(tail_quantile(distances, 0.99), 2)
    (2.2, 2.47)
    """
    size = distances.size
    if size * (1.0 - quantile) >= MIN_TAIL_POINTS:
        return float(np.quantile(distances, quantile))
    rank = max(min(MIN_TAIL_POINTS, size // 2), 1)
    reached = float(np.partition(distances, size - rank)[size - rank])
    normal = NormalDist()
    level = max(1.0 - rank / size, 0.5)
    stretch = normal.inv_cdf((1.0 + quantile) / 2.0) / normal.inv_cdf((1.0 + level) / 2.0)
    return reached * stretch
