"""Seasonal decomposition of an evenly spaced series, robust to spikes: its period, its
expected values, and the spread of what they leave.

- **Period.** The lag at which the series repeats, AUTOPERIOD's way (M. Vlachos, P. Yu,
  V. Castelli, "On Periodicity Detection and Structural Periodic Similarity", SDM 2005):
  the periodogram's strongest frequency proposes a period, the autocorrelation (linear
  trend removed; unbiased estimate) confirms it by climbing to the top of its hill, which
  must lie above ``z / sqrt(n)``: the white-noise bound of Bartlett's formula, ``z`` the
  normal quantile for 5% over all the lags that could be chosen (Bonferroni). Lags from 2
  to ``(n - 1) / 2``: more than two cycles of points.
- **Expected values.** With a period, the classical decomposition: the level is the
  centred moving average over one period (which removes a pattern of that period), the
  seasonal part the median, per phase, of what the level leaves, centred on zero. Without
  one, the level is a centred moving median over 7 points (the Hampel filter's usual
  half-width of 3). Two passes, as STL's robustness loop (Cleveland et al. 1990, below):
  points beyond Tukey's bisquare cut-off in the first are replaced by their expected value
  for the second, so that a spike does not drag its neighbours' level along.
- **Spread.** The residuals' robust standard deviation: 1.4826 x their median absolute
  deviation.

Pure numpy (and bottleneck's moving median): no web or database imports.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import bottleneck as bn
import numpy as np

from anomaly_api.detectors.series import FloatArray

LEVEL_WINDOW = 7
"""Points of the moving median without a period: half-width 3, the Hampel filter's."""
BISQUARE_CUTOFF = 4.685
"""Tukey's bisquare constant: beyond it, a point gets no weight in the second pass."""
_MAD_TO_SIGMA = 1.4826


def detect_period(values: FloatArray) -> int:
    """The series' period in points (0: none found), AUTOPERIOD's way: the periodogram's
    strongest frequency proposes a period, the autocorrelation confirms it (the nearest
    peak of its hill, which must be significant)."""
    n = values.size
    top = (n - 1) // 2
    if top < 2:
        return 0
    # The least-squares line, in closed form (x = 0, 1, ..., n - 1).
    x = np.arange(n, dtype=np.float64) - (n - 1) / 2.0
    centred = values - values.mean()
    slope = float(np.dot(x, centred)) / (n * (n * n - 1) / 12.0)
    residual = centred - slope * x
    energy = float(np.dot(residual, residual))
    spread = float(np.sum((values - values.mean()) ** 2))
    if not math.isfinite(energy) or spread == 0.0 or energy <= 1e-12 * spread:
        return 0  # a straight line (up to rounding): nothing repeats
    power = np.abs(np.fft.rfft(residual)) ** 2
    frequencies = np.arange(power.size)
    usable = (frequencies >= 1) & (n / np.maximum(frequencies, 1) <= top)
    if not np.any(usable):
        return 0
    strongest = int(frequencies[usable][np.argmax(power[usable])])
    denominators = n - np.arange(top + 2)

    def acf(lag: int) -> float:
        """The autocorrelation at ``lag``: each lag's products averaged over the pairs it
        has (the unbiased estimate: the biased one shrinks with the lag and prefers a
        period's shorter neighbours). Only the lags the climb visits are computed."""
        if not 2 <= lag <= top:
            return -2.0
        products = float(np.dot(residual[:-lag], residual[lag:]))
        return products / float(denominators[lag]) * (n / energy)

    lag = min(max(round(n / strongest), 2), top)
    here = acf(lag)
    while True:  # climb the autocorrelation's hill to its top
        below, above = acf(lag - 1), acf(lag + 1)
        if max(below, above) <= here:
            break
        lag, here = (lag - 1, below) if below > above else (lag + 1, above)
    bound = NormalDist().inv_cdf(1.0 - 0.05 / (top - 1)) / math.sqrt(n)
    return lag if here > bound else 0


def centred_median(values: FloatArray, window: int) -> FloatArray:
    """Each point's median over the ``window`` points centred on it (fewer at the ends)."""
    n = values.size
    half = window // 2
    trailing = bn.move_median(values, window, min_count=1)
    level = np.empty(n)
    level[: max(0, n - half)] = trailing[half:]
    for index in range(max(0, n - half), n):
        level[index] = np.median(values[max(0, index - half) :])
    return level


def centred_mean(values: FloatArray, period: int) -> FloatArray:
    """The classical decomposition's trend: each point's mean over one period centred on
    it (for an even period, ``period + 1`` points with the two ends weighted a half: the
    "2 x period" moving average), which removes a seasonal pattern of that period exactly;
    within half a period of either end, the level of the nearest full window."""
    n = values.size
    half = period // 2
    sums = np.concatenate([[0.0], np.cumsum(values)])
    index = np.arange(n)
    low, high = np.maximum(index - half, 0), np.minimum(index + half, n - 1)
    level = (sums[high + 1] - sums[low]) / (high - low + 1)
    inner = index[(index >= half) & (index < n - half)]
    if inner.size == 0:
        return np.asarray(level, dtype=np.float64)
    total = sums[inner + half + 1] - sums[inner - half]
    if period % 2 == 0:
        total = total - 0.5 * (values[inner - half] + values[inner + half])
    level[inner] = total / period
    # Near the ends a window would hold part of a cycle: the nearest full one's level.
    level[: inner[0]] = level[inner[0]]
    level[inner[-1] + 1 :] = level[inner[-1]]
    return np.asarray(level, dtype=np.float64)


def level_of(values: FloatArray, period: int) -> FloatArray:
    """The level: a period's centred mean, or without one a centred moving median."""
    if period >= 2:
        return centred_mean(values, period)
    return centred_median(values, LEVEL_WINDOW)


def seasonal_profile(detrended: FloatArray, period: int) -> FloatArray:
    """The median of each phase of ``period``, centred on zero (zeros without a period)."""
    if period < 2:
        return np.zeros(max(period, 1))
    cycles = -(-detrended.size // period)
    table = np.full(cycles * period, np.nan)
    table[: detrended.size] = detrended
    phases = bn.nanmedian(table.reshape(cycles, period), axis=0)  # one pass for every phase
    return np.asarray(phases - phases.mean(), dtype=np.float64)


def robust_unit(residuals: FloatArray, scale: float) -> float:
    """Robust standard deviation of the residuals; never zero (a flat series gets a
    sliver of its own scale)."""
    spread = _MAD_TO_SIGMA * float(np.median(np.abs(residuals - np.median(residuals))))
    if spread > 0.0:
        return spread
    mean_abs = float(np.mean(np.abs(residuals)))
    return mean_abs if mean_abs > 0.0 else max(abs(scale) * 1e-9, 1e-12)


@dataclass(frozen=True, slots=True)
class Decomposition:
    period: int
    expected: FloatArray
    unit: float
    seasonal: FloatArray


def _one_pass(values: FloatArray, period: int) -> tuple[FloatArray, FloatArray]:
    """Expected values and the seasonal part, one pass."""
    level = level_of(values, period)
    seasonal = seasonal_profile(values - level, period)
    phases = seasonal[np.arange(values.size) % period] if period >= 2 else 0.0
    return level + phases, seasonal


def decompose(values: FloatArray, period: int | None) -> Decomposition:
    """The decomposition of ``values`` (on the grid) with ``period`` (None: detected).

    Twice, as STL's robustness loop does (R. B. Cleveland, W. S. Cleveland, J. E. McRae,
    I. Terpenning, "STL: A Seasonal-Trend Decomposition Procedure Based on Loess", J.
    Official Statistics 6(1), 1990): points beyond Tukey's bisquare cut-off (4.685 robust
    standard deviations) of the first pass are replaced by their expected value before the
    second, so that a spike does not drag its neighbours' level along."""
    chosen = detect_period(values) if period is None else period
    if chosen >= values.size:
        chosen = 0
    scale = float(np.median(np.abs(values))) if values.size else 1.0
    expected, seasonal = _one_pass(values, chosen)
    unit = robust_unit(values - expected, scale)
    outlying = np.abs(values - expected) > BISQUARE_CUTOFF * unit
    if np.any(outlying):
        expected, seasonal = _one_pass(np.where(outlying, expected, values), chosen)
        unit = robust_unit(values - expected, scale)
    return Decomposition(chosen, expected, unit, seasonal)


def deseasonalized(values: FloatArray, period: int) -> FloatArray:
    """``values`` without their seasonal part of ``period`` (as they are without one)."""
    if period < 2:
        return values
    profile = seasonal_profile(values - level_of(values, period), period)
    return values - profile[np.arange(values.size) % period]
